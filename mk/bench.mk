# Benchmarks. See "Benchmarks" in README.md.
#   make bench             everything: Rust, Python binding, status quo, HTTP, GIL;
#                          prints a table, writes target/bench/summary.json
#   make bench-rust        the Rust-only parts (no venv needed)
#   make bench-criterion   criterion micro-benchmarks of single operations
#   make test-bench-build  compiles every bench target (part of `make test`)
.PHONY: bench bench-rust bench-criterion bench-venv test-bench-build

BENCH_OUT := $(CURDIR)/target/bench
BENCH_ARGS ?=

bench-venv: $(VENV)/.bench-ready
$(VENV)/.bench-ready: $(VENV)/.ready benches/python/requirements.txt
	$(VPY) -m pip install --quiet -r benches/python/requirements.txt
	touch $@

## The PostgreSQL part runs beside a throwaway server (mk/postgres.mk).
bench: bench-venv python-develop
	$(WITH_POSTGRES) $(CARGO) run --release --quiet -p actionq-bench -- run --repo $(CURDIR) --out $(BENCH_OUT) --python $(VPY) $(BENCH_ARGS)

bench-rust:
	$(WITH_POSTGRES) $(CARGO) run --release --quiet -p actionq-bench -- run --repo $(CURDIR) --out $(BENCH_OUT) --skip-python $(BENCH_ARGS)

bench-criterion:
	$(CARGO) bench -p actionq-bench --bench micro

test-bench-build:
	$(CARGO) bench --no-run -p actionq-bench
