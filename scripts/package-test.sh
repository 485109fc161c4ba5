#!/usr/bin/env bash
# The install test of `make package` (run by `make test` after it): what a school's IT person
# gets from the .deb and the .rpm.
#
# - the packages' files, menu entry, icons and declared dependencies;
# - the .deb installed as a user installs it (`apt-get install ./SchoolVault_….deb`, when this
#   runs as root or with password-less sudo; otherwise unpacked with `dpkg-deb -x`), the CLI on the
#   PATH, the app started from its menu entry (`gtk-launch`) under Xvfb until its window appears,
#   its start-at-login entry pointing at the installed program;
# - its first run with nothing set up opens on the set-up screens (the desktop test's first-run
#   case, through WebDriver, on the installed program);
# - the package removed: the user's settings, catalog, backups and the key in the keychain are
#   still there.
#
# The app runs with a HOME of its own (a temporary folder) and its own D-Bus session, so it never
# touches the settings of the person running the tests. Usage: package-test.sh [BUNDLE_DIR]. Last line: `package tests: N passed, M failed`.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
check() { # check "what" command...
  local what=$1
  shift
  if "$@" >/tmp/schoolvault-package-check.log 2>&1; then
    passed=$((passed + 1))
    echo "ok   $what"
  else
    failed=$((failed + 1))
    echo "FAIL $what"
    sed 's/^/     /' /tmp/schoolvault-package-check.log | head -20
  fi
}
finish() {
  echo "package tests: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}

# The bundle folder: target/release/bundle (`make package`) unless given (`make test` passes
# target/debug/bundle, the packages of the build it tested).
bundle=${1:-target/release/bundle}
deb=$(ls "$bundle"/deb/*.deb 2>/dev/null | head -1)
rpm=$(ls "$bundle"/rpm/*.rpm 2>/dev/null | head -1)
if [ -z "$deb" ] || [ -z "$rpm" ]; then
  echo "FAIL no package in $bundle: run make package first"
  failed=$((failed + 1))
  finish
fi
echo "packages: $deb ($(du -k "$deb" | cut -f1) KiB), $rpm ($(du -k "$rpm" | cut -f1) KiB)"

# The package's name (Tauri derives it from the product name).
pkg=$(dpkg-deb -f "$deb" Package)

# --- What the .deb holds ---------------------------------------------------------------------
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
depends=$(dpkg-deb -f "$deb" Depends)
has_file() { grep -qxE "(\./)?$1" <<<"$contents"; }
depends_on() { grep -q "$1" <<<"$depends"; }
check "deb: the app in /usr/bin" has_file usr/bin/schoolvault-app
check "deb: the schoolvault CLI beside it" has_file usr/bin/schoolvault
check "deb: a menu entry" has_file usr/share/applications/SchoolVault.desktop
check "deb: the icon (128x128)" has_file usr/share/icons/hicolor/128x128/apps/schoolvault-app.png
check "deb: depends on WebKitGTK 4.1" depends_on 'libwebkit2gtk-4\.1-0'
check "deb: depends on GTK 3" depends_on 'libgtk-3-0'
check "deb: depends on the tray library" depends_on 'libayatana-appindicator3-1'

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root/unpacked"
desktop="$root/unpacked/usr/share/applications/SchoolVault.desktop"
entry_says() { grep -qx "$1" "$desktop"; }
check "menu entry: Name=SchoolVault" entry_says 'Name=SchoolVault'
check "menu entry: starts schoolvault-app" entry_says 'Exec=schoolvault-app'
check "menu entry: its icon" entry_says 'Icon=schoolvault-app'
check "menu entry: in a menu category" grep -q '^Categories=.\+' "$desktop"
if command -v desktop-file-validate >/dev/null; then
  check "menu entry: desktop-file-validate" desktop-file-validate "$desktop"
fi
# The window's files are inside the program, not on a dev server: the names of the built UI's
# files are in the binary.
ui_asset=$(basename "$(ls ui/dist/assets/*.js | head -1)")
check "deb: the built UI is inside the app ($ui_asset)" grep -qF "$ui_asset" "$root/unpacked/usr/bin/schoolvault-app"
check "deb: the CLI runs (schoolvault --version)" "$root/unpacked/usr/bin/schoolvault" --version

# --- What the .rpm holds ---------------------------------------------------------------------
if command -v rpm >/dev/null; then
  rpm_files=$(rpm -qlp "$rpm" 2>/dev/null)
  rpm_requires=$(rpm -qp --requires "$rpm" 2>/dev/null)
  check "rpm: the app in /usr/bin" grep -qx /usr/bin/schoolvault-app <<<"$rpm_files"
  check "rpm: the schoolvault CLI beside it" grep -qx /usr/bin/schoolvault <<<"$rpm_files"
  check "rpm: a menu entry" grep -qx /usr/share/applications/SchoolVault.desktop <<<"$rpm_files"
  check "rpm: requires WebKitGTK 4.1" grep -q '^libwebkit2gtk-4\.1\.so' <<<"$rpm_requires"
  check "rpm: requires GTK 3" grep -q '^libgtk-3\.so' <<<"$rpm_requires"
  check "rpm: requires the tray library" grep -q '^libayatana-appindicator3\.so' <<<"$rpm_requires"
else
  echo "FAIL rpm is not installed (apt-get install rpm), so the .rpm cannot be read"
  failed=$((failed + 1))
fi

# --- Installed as a user installs it ----------------------------------------------------------
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
installed=false
prefix="$root/unpacked"
if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
  # A SchoolVault someone installed here is left alone: the app is started from the unpacked package.
  echo "note: schoolvault is installed on this machine already: the install test leaves it alone"
elif $SUDO true 2>/dev/null; then
  check "apt-get install ./$(basename "$deb")" \
    env DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "./$deb"
  if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    installed=true
    prefix=""
    check "installed: schoolvault on the PATH" test "$(command -v schoolvault)" = /usr/bin/schoolvault
    check "installed: the menu knows the entry" test -f /usr/share/applications/SchoolVault.desktop
  fi
else
  echo "note: not root and no password-less sudo: the app is started from the unpacked package"
fi

# Start it from its menu entry (gtk-launch finds SchoolVault.desktop in XDG_DATA_DIRS), with a
# HOME of its own whose settings ask for start at login.
home="$root/home"
mkdir -p "$home/.config/schoolvault" "$home/.local/share/schoolvault/backups"
printf '[app]\nstart_at_login = true\n' >"$home/.config/schoolvault/config.toml"
echo "kept" >"$home/.local/share/schoolvault/backups/marker"
data_dirs="/usr/local/share:/usr/share"
path="$PATH"
if ! $installed; then
  data_dirs="$prefix/usr/share:$data_dirs"
  path="$prefix/usr/bin:$PATH"
fi
window_appears() {
  # The app in a private display and D-Bus session; the window is looked for by its title.
  HOME="$home" XDG_CONFIG_HOME="$home/.config" XDG_DATA_HOME="$home/.local/share" \
    XDG_DATA_DIRS="$data_dirs" PATH="$path" \
    xvfb-run -a -s "-screen 0 1280x900x24" dbus-run-session -- bash -c '
      gtk-launch SchoolVault || exit 1
      for _ in $(seq 1 60); do
        if xwininfo -root -tree | grep -q "\"SchoolVault\""; then
          ok=1; break
        fi
        sleep 0.5
      done
      # The window may show before the start-up has rewritten the start-at-login entry: give
      # it time to, before the app is ended (checked below).
      for _ in $(seq 1 40); do
        [ -f "$HOME/.config/autostart/SchoolVault.desktop" ] && break
        sleep 0.5
      done
      pkill -f "^${1}schoolvault-app"
      [ -n "${ok:-}" ]' _ "$prefix/usr/bin/"
}
check "the app started from its menu entry opens its window" window_appears

# Its first run with nothing set up (another HOME, no settings file): the set-up screens, driven
# through WebDriver by the desktop test's first-run case, on the installed program.
first_run() {
  SCHOOLVAULT_APP_BIN="$prefix/usr/bin/schoolvault-app" PATH="$path" \
    xvfb-run -a -s "-screen 0 1280x900x24" dbus-run-session -- \
    cargo test --locked --features desktop-e2e --test desktop -- --exact a_first_run_opens_on_the_set_up_screens
}
check "the installed app's first run opens on its set-up screens" first_run

# A key in the user's keychain (a gnome-keyring whose files live under this HOME), made with the
# installed CLI: it must outlive the package.
keyring_run() { # keyring_run CMD...: in a private D-Bus session with the user's keyring unlocked;
  # its output in $root/keyring.out (a file, not a pipe: nothing the session leaves can hold it)
  local runtime
  runtime=$(mktemp -d)
  HOME="$home" XDG_DATA_HOME="$home/.local/share" XDG_CONFIG_HOME="$home/.config" \
    XDG_RUNTIME_DIR="$runtime" PATH="$path" dbus-run-session -- bash -c '
      echo -n schoolvault | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1
      "$@"; status=$?
      # This session'"'"'s keyring daemon (its control folder is in this XDG_RUNTIME_DIR).
      pkill -u "$(id -u)" -f "^(/usr/bin/)?gnome-keyring-daemon --unlock" 2>/dev/null
      exit $status' _ "$@" >"$root/keyring.out" 2>/dev/null </dev/null
  rm -rf "$runtime"
}
keyring_run schoolvault key generate
keyring_run schoolvault key fingerprint
fingerprint=$(tail -1 "$root/keyring.out")
check "a key made with the installed CLI is in the user's keychain ($fingerprint)" test -n "$fingerprint"
autostart="$home/.config/autostart/SchoolVault.desktop"
check "start at login: the entry points at the installed program" \
  grep -qx "Exec=$prefix/usr/bin/schoolvault-app --minimized" "$autostart"

if $installed; then
  check "apt-get remove $pkg" env DEBIAN_FRONTEND=noninteractive $SUDO apt-get remove -y -qq "$pkg"
  check "removed: the app is gone" test ! -e /usr/bin/schoolvault-app
  check "removed: the user's settings are still there" grep -q start_at_login "$home/.config/schoolvault/config.toml"
  check "removed: the user's backups are still there" test -f "$home/.local/share/schoolvault/backups/marker"
  # The CLI is gone with the package: the unpacked one reads the keychain now.
  path="$root/unpacked/usr/bin:$PATH" keyring_run schoolvault key fingerprint
  after=$(tail -1 "$root/keyring.out")
  check "removed: the key is still in the user's keychain" test -n "$fingerprint" -a "$after" = "$fingerprint"
fi
finish
