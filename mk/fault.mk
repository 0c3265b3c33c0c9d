# Fault, crash, race, differential and fuzz testing.
#
# The fault suites in core/tests (crash_consistency, multiprocess_races,
# differential, argv_safety, backward_compatibility, resource_bounds) already run
# in `cargo test --workspace --all-targets`; `test-fault` adds the short fuzz runs.
# `soak` reruns the suites with higher counts, then fuzzes for a long time.
# `fault-known-bugs` runs the reproductions of open core bugs: tests named
# `known_bug_*`, #[ignore]d in the default run until fixed (none open at the
# moment: fault-1 and fault-2 are fixed). The suites' other #[ignore]d tests are
# child process entries (`*_child_entry`), which check nothing alone: the
# target skips them, and fails on an #[ignore]d test that is neither.
.PHONY: test-fault soak fuzz-tool fuzz-short fuzz-long fault-known-bugs

FUZZ_TARGETS := whitelist_config param_validators c_api_strings
# Seconds per target: short run in `make test`, long run in `make soak`.
FUZZ_SECONDS ?= 10
FUZZ_SOAK_SECONDS ?= 600
CARGO_FUZZ_VERSION := 0.13.2
# cargo-fuzz passes nightly-only flags (-Zsanitizer, sancov); the stable
# toolchain accepts them under RUSTC_BOOTSTRAP.
FUZZ_ENV := RUSTC_BOOTSTRAP=1
FUZZ_FLAGS := -rss_limit_mb=2048 -timeout=20 -print_final_stats=1

test-fault: fuzz-short

fuzz-tool:
	@$(CARGO) fuzz --version >/dev/null 2>&1 || \
	  $(CARGO) install cargo-fuzz --version $(CARGO_FUZZ_VERSION) --locked

# $(1): build profile flag, $(2): seconds per target, $(3): corpus output root.
# New inputs go to $(3)/<target>; the committed seeds in fuzz/corpus are read only.
define fuzz_run
	cd fuzz && $(FUZZ_ENV) $(CARGO) fuzz build $(1)
	set -e; for t in $(FUZZ_TARGETS); do \
	  out="$(3)/$$t"; mkdir -p "$$out"; \
	  echo "fuzz: $$t for $(2)s"; \
	  ( cd fuzz && $(FUZZ_ENV) $(CARGO) fuzz run $(1) "$$t" "$$out" "corpus/$$t" -- \
	      -max_total_time=$(2) $(FUZZ_FLAGS) ) 2>&1 | tee "$(3)/$$t.log" | \
	    grep -E '^(Done|stat::number_of_executed_units|==[0-9]+==|thread .* panicked|SUMMARY)' || true; \
	  if ! grep -q '^Done ' "$(3)/$$t.log"; then \
	    echo "fuzz: $$t FAILED, see $(3)/$$t.log and fuzz/artifacts/$$t"; tail -40 "$(3)/$$t.log"; exit 1; \
	  fi; \
	done
endef

# Development build (opt-level 1, about 1.5 min from scratch) with AddressSanitizer.
fuzz-short: fuzz-tool
	$(call fuzz_run,--dev,$(FUZZ_SECONDS),$(CURDIR)/target/fuzz-short)
	rm -rf $(CURDIR)/target/fuzz-short

# Optimised build with AddressSanitizer; new corpus entries are kept in
# fuzz/corpus-run (ignored by git: minimise with `cargo fuzz cmin` before
# adding anything to the committed seeds).
fuzz-long: fuzz-tool
	$(call fuzz_run,-O,$(FUZZ_SOAK_SECONDS),$(CURDIR)/fuzz/corpus-run)

soak:
	ACTIONQ_CRASH_ROUNDS=$${ACTIONQ_CRASH_ROUNDS:-300} ACTIONQ_CRASH_MAX_SECS=$${ACTIONQ_CRASH_MAX_SECS:-1800} \
	ACTIONQ_RACE_SCALE=$${ACTIONQ_RACE_SCALE:-20} \
	ACTIONQ_DIFF_CASES=$${ACTIONQ_DIFF_CASES:-5000} \
	ACTIONQ_ARGV_CASES=$${ACTIONQ_ARGV_CASES:-200000} \
	  $(CARGO) test -p actionq --test crash_consistency --test multiprocess_races \
	    --test differential --test argv_safety -- --nocapture
	$(MAKE) fuzz-long

FAULT_TESTS := crash_consistency multiprocess_races differential argv_safety \
	backward_compatibility resource_bounds
FAULT_TEST_ARGS := -p actionq $(addprefix --test ,$(FAULT_TESTS))
fault-known-bugs:
	@stray=$$($(CARGO) test $(FAULT_TEST_ARGS) -- --ignored --list --format terse 2>/dev/null \
	  | sed -n 's/: test$$//p' | grep -v -E -e '_child_entry$$' -e '(^|::)known_bug_' || true); \
	if [ -n "$$stray" ]; then \
	  echo "fault-known-bugs: #[ignore]d but neither a known_bug_* nor a *_child_entry:"; echo "$$stray"; exit 1; \
	fi
	@open=$$($(CARGO) test $(FAULT_TEST_ARGS) -- --ignored --list --format terse known_bug_ \
	  | sed -n 's/: test$$//p'); \
	if [ -z "$$open" ]; then \
	  echo "fault-known-bugs: no known-bug reproduction is open (none named known_bug_*)"; \
	else \
	  echo "fault-known-bugs: running" $$open; \
	  $(CARGO) test $(FAULT_TEST_ARGS) -- --ignored known_bug_; \
	fi
