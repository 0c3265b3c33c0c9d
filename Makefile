# actionq: `make run` runs the main job, `make test` runs every test.
# Each area keeps its own targets in mk/<area>.mk; this file only wires them.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
PYTHON ?= python3
VENV := $(CURDIR)/.venv
VPY := $(VENV)/bin/python

.PHONY: run test test-suites test-rust rust-tools lint bench soak venv
.DEFAULT_GOAL := test

## Python virtualenv with the pinned tools of requirements-dev.txt.
venv: $(VENV)/.ready
$(VENV)/.ready: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -r requirements-dev.txt
	touch $@

include mk/*.mk

## Every suite, with a throwaway PostgreSQL cluster for the whole run
## (mk/postgres.mk): the PostgreSQL tests fail, never skip, under `make test`.
test:
	$(WITH_POSTGRES) $(MAKE) --no-print-directory test-suites

test-suites: lint test-rust test-bench-build test-python test-agent test-c test-hosts test-fault docs $(CONTAINER_SUITES)
	@echo "make test: all suites passed"

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p actionq --no-default-features --all-targets -- -D warnings
	$(CARGO) clippy -p actionq --no-default-features --features postgres --all-targets -- -D warnings
	RUSTDOCFLAGS=-Dwarnings $(CARGO) doc --workspace --no-deps --quiet

## strace: the durability test counts the syncs each setting makes.
rust-tools:
	@command -v strace >/dev/null || { export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y strace || { apt-get update && apt-get install -y strace; }; }

test-rust: rust-tools
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc
	@# The core without its default `sqlite` feature: builds, and the tests that
	@# need no SQLite pass (the memory-store bounds on fewer rows: they ran in full above).
	ACTIONQ_BOUNDS_ROWS=100000 $(CARGO) test -p actionq --no-default-features
