#!/usr/bin/env bash
# Benchmark: SchoolVault's backup and restore beside pg_dump / pg_restore on this machine, in
# one run. Reports wall time, output size and peak RSS (GNU time), the ratios, and the seconds
# per GB of database (how each cost grows with the size).
#   scripts/bench.sh              sizes 0.25, 1 and 1.5, made if missing; 3 interleaved rounds
#   BENCH_SCALES="0.25" BENCH_ROUNDS=1 scripts/bench.sh   a quicker run
# Each round runs every command once, one after another (so a slow minute of the machine hits
# both tools); the tables give the median of the rounds.
# The ERP fixture databases erp_sf<scale> are generated once with ../shared/fixtures (minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
FX=${SCHOOLVAULT_FIXTURES:-../shared/fixtures}
PG="-h 127.0.0.1 -p 5432 -U postgres"
SV=$PWD/target/release/schoolvault
SCALES=${BENCH_SCALES:-"0.25 1 1.5"}
ROUNDS=${BENCH_ROUNDS:-3}
PREVIEW=$PWD/target/release/examples/preview
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export BACKUP_ENCRYPTION_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export SCHOOLVAULT_DIR=$WORK/backups SCHOOLVAULT_CATALOG=$WORK/catalog.sqlite

RESULTS=$WORK/results
measure() { # scale label bytes command... -> appends "scale label seconds peak_kb" to $RESULTS
  local sf=$1 label=$2; shift 2
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
  read -r secs kb < "$WORK/time"
  echo "$sf $label $secs $kb" >> "$RESULTS"
}
fresh() { # drop (and create) a scratch database; a checkpoint so no run pays for the last one's writes
  psql -X -q $PG -d postgres -c "DROP DATABASE IF EXISTS $1" 2>/dev/null
  [ "${2:-}" = create ] && psql -X -q $PG -d postgres -c "CREATE DATABASE $1"
  psql -X -q $PG -d postgres -c "CHECKPOINT"
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
  echo "## $db: pg_database_size $((size / 1000000)) MB, $ROUNDS round(s)"
  echo "$sf dbsize $size 0" >> "$RESULTS"
  for round in $(seq "$ROUNDS"); do
    rm -rf "$WORK/backups" "$WORK/catalog.sqlite" "$WORK/dump.fc" "$WORK/dump.d"
    measure "$sf" backup "$SV" --db "postgres://postgres@127.0.0.1:5432/$db" backup --jobs 2
    sv_file=$(ls "$WORK"/backups/*.svb)
    echo "$sf size-sv $(stat -c %s "$sv_file") 0" >> "$RESULTS"
    measure "$sf" pg_dump-Fc pg_dump $PG -Fc -f "$WORK/dump.fc" "$db"
    echo "$sf size-fc $(stat -c %s "$WORK/dump.fc") 0" >> "$RESULTS"
    measure "$sf" pg_dump-Fd-j2 pg_dump $PG -Fd -j2 -f "$WORK/dump.d" "$db"

    # The restore modal's preview (the backup read completely, the live counts).
    [ -x "$PREVIEW" ] && measure "$sf" preview "$PREVIEW" "$sv_file" "postgres://postgres@127.0.0.1:5432/$db"

    # Replace restore into a live copy (indexed, one transaction) vs what a pg_dump user runs
    # for the same job, also all or nothing: pg_restore --clean --if-exists --single-transaction.
    fresh "${db}_copy"; psql -X -q $PG -d postgres -c "CREATE DATABASE ${db}_copy TEMPLATE $db"
    measure "$sf" replace "$SV" restore "$sv_file" --yes --no-safety-backup --target-db "postgres://postgres@127.0.0.1:5432/${db}_copy"
    fresh "${db}_copy"; psql -X -q $PG -d postgres -c "CREATE DATABASE ${db}_copy TEMPLATE $db"
    measure "$sf" pg_restore-clean-1 pg_restore $PG --clean --if-exists --single-transaction -d "${db}_copy" "$WORK/dump.fc"
    # Into a new database: ours creates it; a pg_dump user runs createdb, then pg_restore (timed
    # together: the same job).
    fresh "${db}_copy"
    measure "$sf" create-db "$SV" --db "postgres://postgres@127.0.0.1:5432/postgres" restore "$sv_file" --create-db "${db}_copy"
    fresh "${db}_copy"
    measure "$sf" pg_restore bash -c "createdb $PG ${db}_copy && pg_restore $PG -d ${db}_copy $WORK/dump.fc"
    fresh "${db}_copy"
    measure "$sf" pg_restore-j2 bash -c "createdb $PG ${db}_copy && pg_restore $PG -j2 -d ${db}_copy $WORK/dump.fc"
    fresh "${db}_copy"
  done

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
    measure "$sf" offsite-copy "$SV" sync
    kill "$s3pid"; wait "$s3pid" 2>/dev/null || true
    rm -f "$SCHOOLVAULT_CONFIG"; unset SCHOOLVAULT_CONFIG AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
  fi

  python3 - "$RESULTS" "$sf" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.split()[0] == sys.argv[2]]
runs = {}
for _, label, secs, kb in rows:
    runs.setdefault(label, []).append((float(secs), int(kb)))
med = {k: statistics.median(s for s, _ in v) for k, v in runs.items()}
rss = {k: max(kb for _, kb in v) for k, v in runs.items()}
def line(label, name):
    if label in med:
        print(f"{name:34} {med[label]:9.2f} s  peak RSS {rss[label] / 1024:6.1f} MiB  rounds {[s for s, _ in runs[label]]}")
print(f"scale {sys.argv[2]}: medians")
for label, name in [("backup", "schoolvault backup --jobs 2"), ("pg_dump-Fc", "pg_dump -Fc"),
                    ("pg_dump-Fd-j2", "pg_dump -Fd -j2"), ("preview", "restore preview (modal opens)"),
                    ("replace", "schoolvault restore (replace)"), ("pg_restore-clean-1", "pg_restore --clean -1"),
                    ("create-db", "schoolvault restore --create-db"), ("pg_restore", "createdb + pg_restore"),
                    ("pg_restore-j2", "createdb + pg_restore -j2"), ("offsite-copy", "schoolvault sync (S3)")]:
    line(label, name)
size = lambda k: statistics.median(s for s, _ in runs[k])
r = lambda a, b: med[a] / med[b]
print(f"backup: {r('backup', 'pg_dump-Fc'):.2f}x pg_dump -Fc, {r('backup', 'pg_dump-Fd-j2'):.2f}x -Fd -j2; "
      f"size {size('size-sv') / size('size-fc'):.3f}x -Fc ({size('size-sv') / 1e6:.1f} MB)")
print(f"replace restore: {r('replace', 'pg_restore-clean-1'):.2f}x pg_restore --clean --single-transaction")
print(f"new database: {r('create-db', 'pg_restore'):.2f}x pg_restore, {r('create-db', 'pg_restore-j2'):.2f}x pg_restore -j2")
# Seconds per GB of the database (pg_database_size): how each cost grows with the size.
gb = size('dbsize') / 1e9
per = lambda k: f"{med[k] / gb:.2f}" if k in med else "-"
print(f"per GB of database ({gb:.2f} GB): backup {per('backup')} s (-Fc {per('pg_dump-Fc')}), "
      f"replace {per('replace')} s (pg_restore --clean -1 {per('pg_restore-clean-1')}), "
      f"new db {per('create-db')} s (pg_restore -j2 {per('pg_restore-j2')}), preview {per('preview')} s")
PY
  echo
done
