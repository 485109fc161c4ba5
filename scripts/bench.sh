#!/usr/bin/env bash
# Benchmark: SchoolVault's backup and restore beside pg_dump / pg_restore on this machine, in
# one run. Reports wall time, output size and peak RSS (GNU time), and the ratios.
#   scripts/bench.sh              sizes 0.25 and 1 (memory) and 1.5 (speed), made if missing
#   BENCH_SCALES="0.25" scripts/bench.sh   a quicker run
# The ERP fixture databases erp_sf<scale> are generated once with ../shared/fixtures (minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
FX=${SCHOOLVAULT_FIXTURES:-../shared/fixtures}
PG="-h 127.0.0.1 -p 5432 -U postgres"
SV=$PWD/target/release/schoolvault
SCALES=${BENCH_SCALES:-"0.25 1 1.5"}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export BACKUP_ENCRYPTION_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export SCHOOLVAULT_DIR=$WORK/backups SCHOOLVAULT_CATALOG=$WORK/catalog.sqlite

measure() { # label command... -> prints "label seconds peak_kb"
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
  read -r secs kb < "$WORK/time"
  echo "$label $secs $kb"
}

for sf in $SCALES; do
  db=erp_sf${sf/./}
  if ! psql -X $PG -d postgres -tAc "select 1 from pg_database where datname='$db'" | grep -q 1; then
    echo "# generating $db (sf=$sf), once"
    psql -X -q $PG -d postgres -c "CREATE DATABASE $db"
    psql -X -q -v ON_ERROR_STOP=1 $PG -d "$db" -f "$FX/erp-schema.sql" >/dev/null
    psql -X -q -v ON_ERROR_STOP=1 $PG -d "$db" -v sf="$sf" -f "$FX/gen-erp-data.sql" >/dev/null
  fi
  size=$(psql -X $PG -d "$db" -tAc "select pg_database_size('$db')")
  echo "## $db: pg_database_size $((size / 1000000)) MB"
  rm -rf "$WORK/backups" "$WORK/dump.fc" "$WORK/dump.d"
  read -r _ sv_s sv_kb < <(measure schoolvault "$SV" --db "postgres://postgres@127.0.0.1:5432/$db" backup --jobs 2)
  sv_file=$(ls "$WORK"/backups/*.svb)
  sv_size=$(stat -c %s "$sv_file")
  read -r _ fc_s fc_kb < <(measure pg_dump-Fc pg_dump $PG -Fc -f "$WORK/dump.fc" "$db")
  fc_size=$(stat -c %s "$WORK/dump.fc")
  read -r _ fd_s fd_kb < <(measure pg_dump-Fd-j2 pg_dump $PG -Fd -j2 -f "$WORK/dump.d" "$db")
  fd_size=$(du -sb "$WORK/dump.d" | cut -f1)
  printf "%-22s %8s %12s %10s\n" "backup of $db" "wall s" "bytes" "peak RSS kB"
  printf "%-22s %8s %12s %10s\n" "schoolvault --jobs 2" "$sv_s" "$sv_size" "$sv_kb"
  printf "%-22s %8s %12s %10s\n" "pg_dump -Fc" "$fc_s" "$fc_size" "$fc_kb"
  printf "%-22s %8s %12s %10s\n" "pg_dump -Fd -j2" "$fd_s" "$fd_size" "$fd_kb"
  python3 -c "print(f'ratios vs pg_dump -Fc: time {$sv_s/$fc_s:.2f}, size {$sv_size/$fc_size:.3f}; vs -Fd -j2: time {$sv_s/$fd_s:.2f}')"

  # Offsite: that backup copied to an S3 server on loopback (s3s-fs: multipart, CRC32C per
  # part), beside the backup itself. `schoolvault sync` uploads it and checks it there.
  if command -v s3s-fs >/dev/null; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    rm -rf "$WORK/s3"; mkdir -p "$WORK/s3/bench"
    s3s-fs --host 127.0.0.1 --port "$port" --access-key bench --secret-key bench-secret "$WORK/s3" >/dev/null 2>&1 &
    s3pid=$!
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
    export SCHOOLVAULT_CONFIG=$WORK/config.toml AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret
    rm -f "$SCHOOLVAULT_CONFIG"
    "$SV" destination add bench "s3://bench/erp?endpoint=http://127.0.0.1:$port" >/dev/null
    read -r _ up_s up_kb < <(measure schoolvault-sync "$SV" sync)
    kill "$s3pid"; wait "$s3pid" 2>/dev/null || true
    rm -f "$SCHOOLVAULT_CONFIG"; unset SCHOOLVAULT_CONFIG AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
    printf "%-22s %8s %12s %10s\n" "offsite copy to S3" "$up_s" "$sv_size" "$up_kb"
    python3 -c "print(f'offsite copy: {$sv_size/1e6/$up_s:.0f} MB/s, {$up_s/$sv_s:.2f}x the backup time, peak RSS {$up_kb/1024:.0f} MiB')"
  fi

  # Restore: SchoolVault's replace restore into a live copy (indexed, in one transaction) vs
  # what a pg_dump user runs for the same job, also all or nothing:
  # pg_restore --clean --if-exists --single-transaction into a live copy. Then into a new
  # database vs pg_restore into an empty one (both build indexes and constraints after the data).
  psql -X -q $PG -d postgres -c "DROP DATABASE IF EXISTS ${db}_copy" -c "CREATE DATABASE ${db}_copy TEMPLATE $db"
  read -r _ rs_s rs_kb < <(measure schoolvault-restore "$SV" restore "$sv_file" --yes --no-safety-backup --target-db "postgres://postgres@127.0.0.1:5432/${db}_copy")
  psql -X -q $PG -d postgres -c "DROP DATABASE IF EXISTS ${db}_copy" -c "CREATE DATABASE ${db}_copy TEMPLATE $db"
  read -r _ pc_s pc_kb < <(measure pg_restore-clean pg_restore $PG --clean --if-exists --single-transaction -d "${db}_copy" "$WORK/dump.fc")
  psql -X -q $PG -d postgres -c "DROP DATABASE IF EXISTS ${db}_copy"
  read -r _ rn_s rn_kb < <(measure schoolvault-create-db "$SV" --db "postgres://postgres@127.0.0.1:5432/postgres" restore "$sv_file" --create-db "${db}_copy")
  psql -X -q $PG -d postgres -c "DROP DATABASE IF EXISTS ${db}_copy" -c "CREATE DATABASE ${db}_copy"
  read -r _ pr_s pr_kb < <(measure pg_restore pg_restore $PG -d "${db}_copy" "$WORK/dump.fc")
  psql -X -q $PG -d postgres -c "DROP DATABASE IF EXISTS ${db}_copy" -c "CREATE DATABASE ${db}_copy"
  read -r _ pr2_s pr2_kb < <(measure pg_restore-j2 pg_restore $PG -j2 -d "${db}_copy" "$WORK/dump.fc")
  psql -X -q $PG -d postgres -c "DROP DATABASE IF EXISTS ${db}_copy"
  printf "%-22s %8s %10s\n" "restore of $db" "wall s" "peak RSS kB"
  printf "%-22s %8s %10s\n" "schoolvault (replace)" "$rs_s" "$rs_kb"
  printf "%-22s %8s %10s\n" "pg_restore --clean -1" "$pc_s" "$pc_kb"
  printf "%-22s %8s %10s\n" "schoolvault --create-db" "$rn_s" "$rn_kb"
  printf "%-22s %8s %10s\n" "pg_restore" "$pr_s" "$pr_kb"
  printf "%-22s %8s %10s\n" "pg_restore -j2" "$pr2_s" "$pr2_kb"
  python3 -c "print(f'replace (live database): schoolvault / pg_restore --clean --single-transaction {$rs_s/$pc_s:.2f}')"
  python3 -c "print(f'new database: schoolvault / pg_restore {$rn_s/$pr_s:.2f}, / pg_restore -j2 {$rn_s/$pr2_s:.2f}')"
  echo
done
