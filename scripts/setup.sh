#!/usr/bin/env bash
# Install what `make test` / `make run` need on Debian/Ubuntu, and start PostgreSQL on
# 127.0.0.1:5432 and MariaDB on 127.0.0.1:3306 when nothing answers there. Idempotent: it does nothing that is already done.
set -euo pipefail

need=()
command -v psql >/dev/null || need+=(postgresql-client)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
command -v mariadb >/dev/null || need+=(mariadb-client)
# A MariaDB server only when none answers on 127.0.0.1:3306 (the MariaDB/MySQL tests).
(exec 3<>/dev/tcp/127.0.0.1/3306) 2>/dev/null || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
command -v dbus-run-session >/dev/null || need+=(dbus dbus-x11)
command -v gnome-keyring-daemon >/dev/null || need+=(gnome-keyring)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v cc >/dev/null || need+=(build-essential)
command -v python3 >/dev/null || need+=(python3 python3-pip)
[ -x /usr/bin/time ] || need+=(time)
command -v openssl >/dev/null || need+=(openssl)   # the TLS test makes its own CA
command -v rclone >/dev/null || need+=(rclone)     # the WebDAV server of the offsite tests
command -v node >/dev/null || need+=(nodejs npm)
command -v npm >/dev/null || need+=(npm)
# The desktop app (Tauri 2 on WebKitGTK) and its tests (a display, the WebDriver, Chromium).
for pkg in libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev libssl-dev \
           xvfb xauth webkit2gtk-driver chromium \
           rpm desktop-file-utils libgtk-3-bin x11-utils; do   # the package install test
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# The SMTP server the email tests talk to (PyPI's aiosmtpd).
if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
  echo "setup: installing aiosmtpd"
  python3 -m pip install -q aiosmtpd 2>/dev/null \
    || python3 -m pip install -q --break-system-packages aiosmtpd 2>/dev/null \
    || { SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"; \
         DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-aiosmtpd; }
fi

# The S3 server of the Object Lock test (moto's, from PyPI: s3s-fs has no Object Lock).
if ! python3 -c 'import moto.server, boto3' 2>/dev/null; then
  echo "setup: installing moto[server]"
  python3 -m pip install -q 'moto[server]' 2>/dev/null \
    || python3 -m pip install -q --break-system-packages 'moto[server]'
fi

# The standalone recovery script (recovery/schoolvault-recover.py) and its test need Python's
# `cryptography` package.
if ! python3 -c 'import cryptography' 2>/dev/null; then
  echo "setup: installing python3-cryptography"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-cryptography; } 2>/dev/null \
    || python3 -m pip install -q cryptography 2>/dev/null \
    || python3 -m pip install -q --break-system-packages cryptography
fi

if ! command -v cargo >/dev/null; then
  echo "setup: Rust is missing. Install it with rustup (https://rustup.rs), then run make again." >&2
  exit 1
fi

# The WebDriver bridge of the desktop end-to-end test.
if ! command -v tauri-driver >/dev/null; then
  echo "setup: installing tauri-driver 2.1.0 (cargo install)"
  cargo install -q tauri-driver --version 2.1.0 --locked
fi

# Tauri's bundler, which makes the .deb and the .rpm (`make package`).
if [ "$(cargo tauri --version 2>/dev/null)" != "tauri-cli 2.12.4" ]; then
  echo "setup: installing tauri-cli 2.12.4 (cargo install; makes the packages)"
  cargo install -q tauri-cli --version 2.12.4 --locked
fi

# The S3 server of the offsite tests (s3s-fs: it checks signatures and checksums).
if ! command -v s3s-fs >/dev/null && [ ! -x "$HOME/.cargo/bin/s3s-fs" ]; then
  echo "setup: installing s3s-fs 0.14.1 (cargo install; the offsite tests' S3 server)"
  cargo install -q s3s-fs --version 0.14.1 --features binary --locked
fi

# Vite 7 needs Node.js 20.19+ or 22.12+; Debian 12's nodejs is 18. Then the npm registry's
# own Node.js build (package node-linux-<arch>) goes into .tools/node, which the Makefile puts
# first on PATH.
node_ok() {
  node -e 'const [a, b] = process.versions.node.split(".").map(Number);
           process.exit(a > 22 || (a === 22 && b >= 12) || (a === 20 && b >= 19) ? 0 : 1)' 2>/dev/null
}
if ! node_ok; then
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) echo "setup: Node.js $(node --version 2>/dev/null) is too old for the frontend; install Node.js 22" >&2; exit 1 ;;
  esac
  echo "setup: Node.js $(node --version 2>/dev/null) is too old for Vite 7; installing Node.js 22 from the npm registry into .tools/node"
  rm -rf .tools/node
  npm install -q --no-audit --no-fund --loglevel=error --prefix .tools/node "node-linux-$arch@22"
  mkdir -p .tools/node/bin
  ln -sf "../node_modules/node-linux-$arch/bin/node" .tools/node/bin/node
  export PATH="$PWD/.tools/node/bin:$PATH"
  node_ok || { echo "setup: Node.js 22 could not be installed into .tools/node" >&2; exit 1; }
fi

# The frontend's packages (exactly the lock file's).
if [ ! -d ui/node_modules ] || [ ui/package-lock.json -nt ui/node_modules/.package-lock.json ]; then
  echo "setup: installing the frontend's npm packages"
  (cd ui && npm ci --no-audit --no-fund --loglevel=error)
fi

# MariaDB on 127.0.0.1:3306 with root and no password, as the tests expect (Debian's root logs
# in only through its Unix socket: the tests' root may also log in over TCP from this machine).
my_ok() { mariadb --protocol=TCP -h 127.0.0.1 -P 3306 -u root -e 'select 1' >/dev/null 2>&1; }
if ! my_ok; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  if ! (exec 3<>/dev/tcp/127.0.0.1/3306) 2>/dev/null; then
    echo "setup: starting MariaDB"
    $SUDO service mariadb start >/dev/null 2>&1 || $SUDO /etc/init.d/mariadb start >/dev/null 2>&1 || true
    for _ in $(seq 1 30); do
      (exec 3<>/dev/tcp/127.0.0.1/3306) 2>/dev/null && break
      sleep 1
    done
  fi
  $SUDO mariadb -u root -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD(''); CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION" 2>/dev/null || true
  if ! my_ok; then
    echo "setup: MariaDB does not let root log in without a password on 127.0.0.1:3306; start it" >&2
    echo "       (service mariadb start) and allow that login, then run make again" >&2
    exit 1
  fi
fi

if pg_isready -q -h 127.0.0.1 -p 5432; then
  exit 0
fi
ver=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if pg_lsclusters -h 2>/dev/null | awk '{print $1, $2}' | grep -q "^$ver main$"; then
  echo "setup: starting PostgreSQL $ver"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
else
  echo "setup: creating a PostgreSQL $ver cluster for the tests (trust auth on 127.0.0.1)"
  $SUDO pg_createcluster "$ver" main --port 5432 --start -- --auth-local=trust --auth-host=trust
fi
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p 5432 && break
  sleep 1
done
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "setup: PostgreSQL does not answer on 127.0.0.1:5432; start it and run make again" >&2
  exit 1
fi
if ! psql -X -h 127.0.0.1 -U postgres -d postgres -c 'select 1' >/dev/null 2>&1; then
  echo "setup: PostgreSQL answers but user postgres cannot log in without a password from" >&2
  echo "       127.0.0.1; the tests need trust auth there (pg_hba.conf: host all all 127.0.0.1/32 trust)" >&2
  exit 1
fi
