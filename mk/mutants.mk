## Mutation testing, one cargo-mutants run per area: each area mutates its
## files and tests every mutant with the suites that guard them (not every
## suite: a mutant costs one rebuild plus one run of its area's suites, and
## the machine has 2 cores). Not part of `make test`; see docs/guide/testing.md#mutation-testing-make-mutants
## for the areas' figures.
##
## - rules: the queue, the status machine and create rules (rules, store), the
##   whitelist and both stores, with the behavioural suites plus the quick
##   SQLite lock, durability and multi-process race suites (they alone see the
##   busy handler, the WAL switch retry and the synchronous setting); the crash
##   and million-row suites would multiply the run's time.
## - policy: the approval-policy branches of rules/ (stale whitelist,
##   auto-approval budget, four-eyes, required approvers, ttl expiry), with the
##   policy suites.
## - audit: the audit chain, identity (credentials, roles) and the action
##   digest, with the suites that check them.
##
## `make mutants MUTANTS_GROUPS=audit` runs one area; results land in
## $(MUTANTS_OUT)/<area>/mutants.out/ (missed.txt lists survivors).
CARGO_MUTANTS_VERSION := 27.1.0
MUTANTS_GROUPS ?= rules policy audit
MUTANTS_ARGS ?=
MUTANTS_OUT ?= target/mutants

MUTANTS_FILES_rules := $(addprefix core/src/,store/mod.rs store/sweep.rs store/open.rs) \
  $(sort $(wildcard core/src/queue/*.rs core/src/rules/*.rs core/src/whitelist/*.rs \
    core/src/store/memory/*.rs core/src/store/sqlite/*.rs))
MUTANTS_TESTS_rules := --lib --test behaviour --test differential --test argv_safety \
  --test whitelist_config --test backward_compatibility --test persistence \
  --test conflict_guard --test sqlite_locking --test durability \
  --test multiprocess_races --test identity --test checkpoint --test group_commit \
  --test sqlite_pages

MUTANTS_FILES_policy := $(sort $(wildcard core/src/rules/*.rs))
MUTANTS_RE_policy := (stale_whitelist|is_stale|budget_window|counts_against_budget|into_action|Change::apply|approval_deadline)
MUTANTS_TESTS_policy := --lib --test behaviour --test approval_policy --test policy_races \
  --test readme_policy --test counts --test conflict_guard --test whitelist_config

MUTANTS_FILES_audit := $(addprefix core/src/,actor.rs audit.rs digest.rs identity.rs)
MUTANTS_TESTS_audit := --lib --test audit_tamper --test identity --test approval_policy \
  --test backward_compatibility --test host_conventions --test counts --test readme_policy \
  --test behaviour

MUTANTS_AREAS := rules policy audit
.PHONY: mutants mutants-tool $(addprefix mutants-,$(MUTANTS_AREAS))
mutants-tool:
	@cargo mutants --version 2>/dev/null | grep -qx "cargo-mutants $(CARGO_MUTANTS_VERSION)" || \
	  $(CARGO) install --locked cargo-mutants --version $(CARGO_MUTANTS_VERSION)

# One area after another, even under `make -j`: they would only compete
# for the same cores.
mutants: mutants-tool
	@set -e; for area in $(MUTANTS_GROUPS); do $(MAKE) --no-print-directory mutants-$$area; done

$(addprefix mutants-,$(MUTANTS_AREAS)): mutants-%: mutants-tool
	mkdir -p $(MUTANTS_OUT)/$*
	$(CARGO) mutants --package actionq --test-package actionq --profile mutants \
	  $(foreach f,$(MUTANTS_FILES_$*),--file $(f)) \
	  $(if $(MUTANTS_RE_$*),--re '$(MUTANTS_RE_$*)') \
	  --timeout 180 --output $(MUTANTS_OUT)/$* $(MUTANTS_ARGS) -- $(MUTANTS_TESTS_$*)
