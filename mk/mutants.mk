## Mutation testing of the rules: the queue, the status machine and create
## rules (rules, store), the whitelist, and both stores. Not part of `make test`: it rebuilds and
## retests the core once per mutant (see README "Mutation testing" for its time).
## The suites run are the behavioural ones plus the quick SQLite lock,
## durability and multi-process race suites (they alone see the busy handler,
## the WAL switch retry and the synchronous setting); the crash and
## million-row suites would multiply the run's time.
CARGO_MUTANTS_VERSION := 27.1.0
MUTANTS_FILES := $(addprefix core/src/,queue.rs rules.rs store.rs whitelist.rs store/memory.rs) \
  $(sort $(wildcard core/src/store/sqlite/*.rs))
MUTANTS_TESTS := --lib --test behaviour --test differential --test argv_safety \
  --test whitelist_config --test backward_compatibility --test persistence \
  --test conflict_guard --test sqlite_locking --test durability \
  --test multiprocess_races
MUTANTS_ARGS ?=
MUTANTS_OUT ?= target/mutants

.PHONY: mutants mutants-tool
mutants-tool:
	@cargo mutants --version 2>/dev/null | grep -qx "cargo-mutants $(CARGO_MUTANTS_VERSION)" || \
	  $(CARGO) install --locked cargo-mutants --version $(CARGO_MUTANTS_VERSION)

mutants: mutants-tool
	$(CARGO) mutants --package actionq --test-package actionq --profile mutants \
	  $(foreach f,$(MUTANTS_FILES),--file $(f)) \
	  --timeout 180 --output $(MUTANTS_OUT) $(MUTANTS_ARGS) -- $(MUTANTS_TESTS)
