# Benchmarks. See docs/guide/benchmarks.md.
#   make bench             everything: Rust, Python binding, status quo, HTTP, GIL, agent;
#                          prints a table, writes target/bench/summary.json
#   make bench-rust        the Rust-only parts (no venv needed)
#   make bench-criterion   criterion micro-benchmarks of single operations
#   make bench-fleet       only the fleet: 2,000 agents waiting on claims (and polling)
#                          against actionq-server, SQLite and two PostgreSQL replicas
#   make test-bench-build  compiles every bench target (part of `make test`)
#   make bench-baseline    builds create_rate (benches/baseline) against the library
#                          at BENCH_BASELINE_REV, for the "create vs baseline" figure
# make bench-retention  prune 1M finished actions under a writer, keyset vs offset paging
#                        at depth 900k, file size after prune (ACTIONQ_BENCH_RETENTION_N to scale)
.PHONY: bench-retention bench bench-rust bench-criterion bench-fleet bench-venv test-bench-build bench-baseline

BENCH_OUT := $(CURDIR)/target/bench
BENCH_ARGS ?=

bench-venv: $(VENV)/.bench-ready
$(VENV)/.bench-ready: $(VENV)/.ready benches/python/requirements.txt
	$(VPY) -m pip install --quiet -r benches/python/requirements.txt
	touch $@

# The library before the approval policy and the audit chain: create
# must stay >= 0.9 x its rate. A commit of this repository; the lead moves it
# when a later change should become the reference.
BENCH_BASELINE_REV ?= 6eb1d37
BENCH_BASELINE := $(BENCH_OUT)/baseline
BENCH_BASELINE_BIN := $(BENCH_BASELINE)/target/release/create_rate
# Same dependency versions as the tree (its Cargo.lock), built offline from
# the local registry cache the tree's own build filled.
bench-baseline:
	rm -rf $(BENCH_BASELINE)/src && mkdir -p $(BENCH_BASELINE)/src
	git -C $(CURDIR) archive $(BENCH_BASELINE_REV) | tar -x -C $(BENCH_BASELINE)/src
	mkdir -p $(BENCH_BASELINE)/src/examples/rust/src/bin
	cp benches/baseline/create_rate.rs $(BENCH_BASELINE)/src/examples/rust/src/bin/create_rate.rs
	cp Cargo.lock $(BENCH_BASELINE)/src/Cargo.lock
	$(CARGO) build --release --quiet --offline --manifest-path $(BENCH_BASELINE)/src/Cargo.toml \
	  -p actionq-example --bin create_rate --target-dir $(BENCH_BASELINE)/target

## The PostgreSQL part runs beside a throwaway server (mk/postgres.mk).
bench: bench-venv python-develop agent bench-baseline
	$(WITH_POSTGRES) $(CARGO) run --release --quiet -p actionq-bench -- run --repo $(CURDIR) --out $(BENCH_OUT) --python $(VPY) --baseline $(BENCH_BASELINE_BIN) $(BENCH_ARGS)
	$(MAKE) --no-print-directory bench-retention

bench-retention:
	$(WITH_POSTGRES) $(CARGO) run --release --quiet -p actionq-bench --bin retention -- $(BENCH_OUT)

bench-rust: bench-baseline
	$(WITH_POSTGRES) $(CARGO) run --release --quiet -p actionq-bench -- run --repo $(CURDIR) --out $(BENCH_OUT) --skip-python --baseline $(BENCH_BASELINE_BIN) $(BENCH_ARGS)

bench-fleet: python-develop
	$(WITH_POSTGRES) $(CARGO) run --release --quiet -p actionq-bench -- run --repo $(CURDIR) --out $(BENCH_OUT) --python $(VPY) --only fleet $(BENCH_ARGS)

bench-criterion:
	$(CARGO) bench -p actionq-bench --bench micro

test-bench-build:
	$(CARGO) bench --no-run -p actionq-bench
