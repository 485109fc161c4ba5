#!/usr/bin/env bash
# Benchmark: SchoolVault's MariaDB backup and restore beside `mariadb-dump --single-transaction |
# gzip` (restored by piping it into `mariadb`) and mydumper/myloader, on this machine, in one
# run. Wall time, output size, peak RSS (GNU time) and the ratios.
#   scripts/bench-mariadb.sh                 scale 1 (about 1 GB of tables), made if missing
#   BENCH_MY_SCALE=0.2 scripts/bench-mariadb.sh   a quicker run
# The database sv_bench_sf<scale> is generated once (school-like tables: pupils, attendance,
# marks with comments, documents with binary content).
set -euo pipefail
cd "$(dirname "$0")/.."
SF=${BENCH_MY_SCALE:-1}
MY="--protocol=TCP -h 127.0.0.1 -P 3306 -u root"
SV=$PWD/target/release/schoolvault
DB=sv_bench_sf${SF/./}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"; for d in ${DB}_r1 ${DB}_r2 ${DB}_r3; do mariadb $MY -e "DROP DATABASE IF EXISTS $d" 2>/dev/null || true; done' EXIT
export BACKUP_ENCRYPTION_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export SCHOOLVAULT_DIR=$WORK/backups SCHOOLVAULT_CATALOG=$WORK/catalog.sqlite

command -v mydumper >/dev/null || {
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends mydumper >/dev/null 2>&1 || true
}

measure() { # label command... -> prints "label seconds peak_kb"
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
  read -r secs kb < "$WORK/time"
  echo "$label $secs $kb"
}

if [ -z "$(mariadb $MY -N -e "SHOW DATABASES LIKE '$DB'")" ]; then
  echo "# generating $DB (scale $SF), once"
  n() { python3 -c "print(max(1, int($1 * $SF)))"; }
  mariadb $MY -e "CREATE DATABASE $DB CHARACTER SET utf8mb4"
  mariadb $MY "$DB" <<SQL
CREATE TABLE pupils (id INT PRIMARY KEY, name VARCHAR(80), born DATE, address TEXT, email VARCHAR(120), KEY (name)) ENGINE=InnoDB;
INSERT INTO pupils SELECT seq, CONCAT('Pupil ', seq, ' Müller-Łukasz'), '2008-01-01' + INTERVAL (seq MOD 4000) DAY,
  CONCAT(seq, ' School Road, Flat ', seq MOD 97, ', Springfield ', LPAD(seq MOD 99999, 5, '0')), CONCAT('pupil', seq, '@school.example')
  FROM seq_1_to_$(n 50000);
CREATE TABLE attendance (id BIGINT AUTO_INCREMENT PRIMARY KEY, pupil_id INT NOT NULL, day DATE NOT NULL, period TINYINT NOT NULL,
  present TINYINT(1) NOT NULL, note VARCHAR(60), recorded_at DATETIME(6) NOT NULL, KEY (pupil_id, day)) ENGINE=InnoDB;
INSERT INTO attendance (pupil_id, day, period, present, note, recorded_at)
  SELECT 1 + (seq MOD $(n 50000)), '2025-09-01' + INTERVAL (seq MOD 200) DAY, seq MOD 8, (seq MOD 17) <> 0,
    IF(seq MOD 17 = 0, 'absent: illness reported by parent', NULL), '2025-09-01 08:00:00' + INTERVAL seq SECOND
  FROM seq_1_to_$(n 6000000);
CREATE TABLE marks (id BIGINT AUTO_INCREMENT PRIMARY KEY, pupil_id INT NOT NULL, subject VARCHAR(40) NOT NULL, mark DECIMAL(5,2) NOT NULL,
  comment TEXT, given_on DATE NOT NULL, KEY (pupil_id)) ENGINE=InnoDB;
INSERT INTO marks (pupil_id, subject, mark, comment, given_on)
  SELECT 1 + (seq MOD $(n 50000)), ELT(1 + seq MOD 6, 'Mathematics', 'English', 'Physics', 'History', 'Art', 'Biology'),
    (seq MOD 1000) / 10, REPEAT(CONCAT('Good work on unit ', seq MOD 12, '. '), 1 + seq MOD 5), '2025-09-01' + INTERVAL (seq MOD 200) DAY
  FROM seq_1_to_$(n 2000000);
CREATE TABLE documents (id INT PRIMARY KEY, pupil_id INT NOT NULL, title VARCHAR(100), body MEDIUMBLOB) ENGINE=InnoDB;
INSERT INTO documents SELECT seq, 1 + (seq MOD $(n 50000)), CONCAT('Report ', seq), RANDOM_BYTES(1024)
  FROM seq_1_to_$(n 100000);
SQL
fi
size=$(mariadb $MY -N -e "SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '$DB'")
echo "## $DB: $((size / 1000000)) MB of tables and indexes"

read -r _ sv_s sv_kb < <(measure schoolvault "$SV" --db "mariadb://root@127.0.0.1:3306/$DB" backup --jobs 2)
sv_file=$(ls "$WORK"/backups/*.svb); sv_size=$(stat -c %s "$sv_file")
sv_id=$(basename "$sv_file" .svb); sv_id=${sv_id#"$DB"-}
read -r _ md_s md_kb < <(measure mariadb-dump sh -c "mariadb-dump $MY --single-transaction --routines --triggers --events $DB | gzip > $WORK/dump.sql.gz")
md_size=$(stat -c %s "$WORK/dump.sql.gz")
have_mydumper=0
if command -v mydumper >/dev/null; then
  have_mydumper=1
  read -r _ my_s my_kb < <(measure mydumper mydumper -h 127.0.0.1 -P 3306 -u root -B "$DB" -o "$WORK/mydumper" -t 2 -c -G -E -R)
  my_size=$(du -sb "$WORK/mydumper" | cut -f1)
fi
printf "%-30s %8s %12s %10s\n" "backup of $DB" "wall s" "bytes" "peak RSS kB"
printf "%-30s %8s %12s %10s\n" "schoolvault --jobs 2" "$sv_s" "$sv_size" "$sv_kb"
printf "%-30s %8s %12s %10s\n" "mariadb-dump | gzip" "$md_s" "$md_size" "$md_kb"
[ $have_mydumper = 1 ] && printf "%-30s %8s %12s %10s\n" "mydumper -t 2 -c" "$my_s" "$my_size" "$my_kb"
python3 -c "print(f'ratios vs mariadb-dump | gzip: time {$sv_s/$md_s:.2f}, size {$sv_size/$md_size:.3f}')"

read -r _ rs_s rs_kb < <(measure schoolvault-restore "$SV" --db "mariadb://root@127.0.0.1:3306/$DB" restore "$sv_id" --create-db "${DB}_r1")
mariadb $MY -e "CREATE DATABASE ${DB}_r2"
read -r _ rm_s rm_kb < <(measure mariadb-pipe sh -c "gunzip -c $WORK/dump.sql.gz | mariadb $MY ${DB}_r2")
printf "%-30s %8s %10s\n" "restore into a new database" "wall s" "peak RSS kB"
printf "%-30s %8s %10s\n" "schoolvault (checked after)" "$rs_s" "$rs_kb"
printf "%-30s %8s %10s\n" "gunzip | mariadb" "$rm_s" "$rm_kb"
if [ $have_mydumper = 1 ]; then
  read -r _ ml_s ml_kb < <(measure myloader myloader -h 127.0.0.1 -P 3306 -u root -d "$WORK/mydumper" -B "${DB}_r3" -t 2)
  printf "%-30s %8s %10s\n" "myloader -t 2" "$ml_s" "$ml_kb"
fi
python3 -c "print(f'ratio vs gunzip | mariadb: time {$rs_s/$rm_s:.2f}')"
