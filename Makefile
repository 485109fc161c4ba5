# The README's two commands: `make run` and `make test`. Each first installs what is missing.
SHELL := /bin/bash
export SCHOOLVAULT_FIXTURES ?= $(abspath ../shared/fixtures)
PG_URL ?= postgres://postgres@127.0.0.1:5432

.PHONY: run test setup check lint unit bench demo

setup:
	@scripts/setup.sh

# Format, lint, then every test (engine, CLI end-to-end against the real PostgreSQL and a real
# gnome-keyring in a private D-Bus session).
test: setup
	cargo fmt --all -- --check
	cargo clippy --all-targets --locked -- -D warnings
	cargo build --locked -p schoolvault-cli   # the binary the end-to-end tests run
	cargo test --locked 2>&1 | tee target/test.log; test $${PIPESTATUS[0]} -eq 0
	@awk '/^test result:/ {p += $$4; f += $$6} END {printf "tests: %d passed, %d failed\n", p, f}' target/test.log

# Build the CLI; if no database is configured, make the demo school database and show what to try.
run: setup
	cargo build --release --locked -p schoolvault-cli
	@if [ -z "$$SCHOOLVAULT_DB" ]; then \
	  if ! psql -X -q -h 127.0.0.1 -U postgres -d postgres -tAc "select 1 from pg_database where datname='schoolvault_demo'" | grep -q 1; then \
	    echo "Creating the demo school database schoolvault_demo on 127.0.0.1:5432"; \
	    psql -X -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE schoolvault_demo" && \
	    psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d schoolvault_demo -f tests/data/school.sql; \
	  fi; \
	  echo; echo "The desktop window arrives with the app; for now, try the CLI on the demo database:"; \
	  echo "  export SCHOOLVAULT_DB=$(PG_URL)/schoolvault_demo"; \
	  echo "  target/release/schoolvault backup"; \
	  echo "  target/release/schoolvault list"; \
	  echo "  target/release/schoolvault verify <ID>"; \
	  echo "  target/release/schoolvault restore <ID>"; \
	fi
	target/release/schoolvault list

# Speed, size and memory against pg_dump on this machine (see README, Measurements).
bench: setup
	cargo build --release --locked -p schoolvault-cli
	scripts/bench.sh
