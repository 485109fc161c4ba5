#!/usr/bin/env bash
# The desktop end-to-end test, inside `xvfb-run -a dbus-run-session` (see `make e2e`): a fresh
# gnome-keyring (its files in a temporary folder, so no key survives from an earlier run),
# unlocked for the private D-Bus session; then drive the real app. The output goes through a
# file, not a pipe, so a helper that outlives the test can never keep this script waiting.
set -uo pipefail
keyrings=$(mktemp -d)
trap 'rm -rf "$keyrings"' EXIT
echo -n schoolvault | XDG_DATA_HOME="$keyrings" gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1
# One test at a time: the app is single-instance.
cargo test --locked --features desktop-e2e --test desktop -- --test-threads=1 > target/e2e.log 2>&1 </dev/null
status=$?
cat target/e2e.log
cat target/e2e.log >> target/test.log
exit $status
