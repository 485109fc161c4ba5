# The README's two commands: `make run` and `make test`. Each first installs what is missing.
SHELL := /bin/bash
export SCHOOLVAULT_FIXTURES ?= $(abspath ../shared/fixtures)
PG_URL ?= postgres://postgres@127.0.0.1:5432
# Node.js from the npm registry when the system's is too old for Vite (scripts/setup.sh).
export PATH := $(CURDIR)/.tools/node/bin:$(PATH)

.PHONY: run test setup ui app e2e bench faults fuzz package

setup:
	@scripts/setup.sh

# The frontend (ui/dist, embedded in the app) and the desktop app, self-contained: it loads its
# built files, never a dev server.
ui:
	cd ui && npm run build

app: ui
	cargo build --locked -p schoolvault-app

# Format, lint, then every test: the UI (vitest; the screens in headless Chromium), the app's
# commands (Tauri's mock runtime; also regenerates ui/src/bindings, which must be committed),
# the engine and CLI against the real PostgreSQL, SMTP and gnome-keyring, and the desktop app
# end to end under Xvfb. The last line sums up every suite; tests skipped for a missing
# fixture (outside CI) are listed after it, from target/skipped.txt.
test: setup
	cargo fmt --all -- --check
	$(MAKE) ui
	cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
	@mkdir -p target; : > target/test.log; rm -f target/skipped.txt
	cd ui && NO_COLOR=1 npx vitest run 2>&1 | tee -a ../target/test.log; test $${PIPESTATUS[0]} -eq 0
	cd ui && npm run -s build:mock && node tests/browser.mjs 2>&1 | tee -a ../target/test.log; test $${PIPESTATUS[0]} -eq 0
	cargo build --locked -p schoolvault-app   # the app the desktop test runs (cargo builds the CLI for its tests)
	cargo test --locked -p schoolvault-app 2>&1 | tee -a target/test.log; test $${PIPESTATUS[0]} -eq 0
	@git diff --quiet -- ui/src/bindings || { echo "ui/src/bindings is stale: commit what cargo test -p schoolvault-app wrote"; git --no-pager diff --stat -- ui/src/bindings; exit 1; }
	cargo test --locked 2>&1 | tee -a target/test.log; test $${PIPESTATUS[0]} -eq 0
	$(MAKE) e2e
	$(MAKE) package PACKAGE_PROFILE=debug
	scripts/package-test.sh target/debug/bundle 2>&1 | tee -a target/test.log; test $${PIPESTATUS[0]} -eq 0
	@awk '/^test result:/ {p += $$4; f += $$6} /^(browser|package) tests:/ {p += $$3; f += $$5} /Tests +[0-9]+ passed/ {for (i = 1; i <= NF; i++) if ($$i == "passed") p += $$(i-1); for (i = 1; i <= NF; i++) if ($$i == "failed") f += $$(i-1)} END {printf "tests: %d passed, %d failed\n", p, f}' target/test.log
	@if [ -s target/skipped.txt ]; then sort -u target/skipped.txt | sed 's/^/note: /'; fi

# The packages a school installs: the release app and CLI, bundled by Tauri's bundler (tauri-cli,
# pinned in scripts/setup.sh) into target/release/bundle/deb/SchoolVault_<version>_amd64.deb and
# target/release/bundle/rpm/SchoolVault-<version>-1.x86_64.rpm. The CLI goes in beside the app
# (/usr/bin/schoolvault) as Tauri's "external binary", named for the target as it expects.
# scripts/package-test.sh checks them. `make test` builds the same packages from the debug build
# it has just tested (PACKAGE_PROFILE=debug, into target/debug/bundle): same bundler, config, files
# and install test, without a second compile of the whole stack (it took CI's time and disk).
HOST_TRIPLE = $(shell rustc -vV | sed -n 's/^host: //p')
PACKAGE_PROFILE ?= release
package: setup ui
	cargo build --locked -p schoolvault-cli $(if $(filter release,$(PACKAGE_PROFILE)),--release)
	mkdir -p target/sidecar && cp target/$(PACKAGE_PROFILE)/schoolvault target/sidecar/schoolvault-$(HOST_TRIPLE)
	cd src-tauri && cargo tauri build --ci $(if $(filter debug,$(PACKAGE_PROFILE)),--debug) --bundles deb,rpm --config tauri.package.conf.json -- --locked
	@ls -l target/$(PACKAGE_PROFILE)/bundle/deb/*.deb target/$(PACKAGE_PROFILE)/bundle/rpm/*.rpm

# The desktop app end to end (tests/desktop.rs): a virtual display, a private D-Bus session
# with an unlocked gnome-keyring, tauri-driver + WebKitWebDriver. Screenshots: target/screenshots.
e2e:
	xvfb-run -a -s "-screen 0 1280x900x24" dbus-run-session -- scripts/e2e.sh

# Build and start the desktop app. With no database configured, its first screen offers to
# create the demo school database on the local PostgreSQL (127.0.0.1:5432).
run: setup app
	target/debug/schoolvault-app

# Speed, size and memory against pg_dump, and against mariadb-dump and mydumper, on this
# machine (see README, Measurements).
bench: setup
	cargo build --release --locked -p schoolvault-cli
	cargo build --release --locked -p schoolvault-engine --example preview
	scripts/bench.sh
	scripts/bench-mariadb.sh

# Fault injection, the long form (crates/cli/tests/faults/): each operation killed with
# SIGKILL at 20 random moments, and its connection terminated from the server, each followed by
# the checks that nothing is lost or half-done; one summary line per operation. (make test runs
# the short form, 3 kills each, inside cargo test.)
faults: setup
	SCHOOLVAULT_FAULT_KILLS=20 cargo test --locked -p schoolvault-cli --test faults -- --nocapture --test-threads=1

# Fuzz the archive readers (fuzz/, cargo-fuzz on nightly): each target for FUZZ_SECONDS, one
# after another. New inputs go to fuzz/corpus, crashes to fuzz/artifacts; the seeds are
# fuzz/seeds (see fuzz/src/lib.rs).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := v2_archive v2_plaintext v1 v1_plaintext
fuzz: setup
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$t && \
	  cargo +nightly fuzz run $$t fuzz/corpus/$$t fuzz/seeds/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=512 -timeout=10 || exit 1; \
	done
