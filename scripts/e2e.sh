#!/usr/bin/env bash
# The desktop end-to-end test, inside `xvfb-run -a dbus-run-session` (see `make e2e`): unlock a
# fresh gnome-keyring for the private D-Bus session, then drive the real app.
set -euo pipefail
echo -n schoolvault | gnome-keyring-daemon --unlock --components=secrets >/dev/null
cargo test --locked --features desktop-e2e --test desktop 2>&1 | tee -a target/test.log
