#!/usr/bin/env bash
# The desktop end-to-end test, inside `xvfb-run -a dbus-run-session` (see `make e2e`): a fresh
# gnome-keyring (its files in a temporary folder, so no key survives from an earlier run),
# unlocked for the private D-Bus session; then drive the real app.
set -euo pipefail
keyrings=$(mktemp -d)
trap 'rm -rf "$keyrings"' EXIT
echo -n schoolvault | XDG_DATA_HOME="$keyrings" gnome-keyring-daemon --unlock --components=secrets >/dev/null
cargo test --locked --features desktop-e2e --test desktop 2>&1 | tee -a target/test.log
