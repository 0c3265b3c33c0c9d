# PostgreSQL for the tests and benches: mk/with-postgres.sh installs Debian's
# postgresql when missing, starts a throwaway cluster (initdb as `postgres`,
# 127.0.0.1, a free port), exports ACTIONQ_TEST_PG_URL (and ACTIONQ_TEST_PG_BIN)
# to the command it wraps, and stops the cluster when that command ends, on
# failure too. Under `make test` every PostgreSQL test runs; outside it, tests
# without ACTIONQ_TEST_PG_URL skip with a message, except under CI=true, where
# they fail.
#   make pg-shell     a shell with a cluster (for running single tests by hand)
.PHONY: pg-shell

WITH_POSTGRES := bash $(CURDIR)/mk/with-postgres.sh

pg-shell:
	$(WITH_POSTGRES) bash
