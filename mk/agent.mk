# The executor agent (agent/, crate actionq-agent).
#   make test-agent   its end-to-end tests: actionq-server (from .venv) on
#                     loopback, the agent binary, real commands
#   make agent        the release binary, target/release/actionq-agent
.PHONY: test-agent agent

agent:
	$(CARGO) build --release -p actionq-agent

# Unit tests and the fake-server digest test also run in test-rust; the
# e2e target (test = false) needs the venv's actionq-server, hence here.
test-agent: python-develop
	@# `lint`'s clippy --all-targets skips a test = false target: check it here.
	$(CARGO) clippy -p actionq-agent --test e2e -- -D warnings
	ACTIONQ_SERVER=$(VENV)/bin/actionq-server $(CARGO) test -p actionq-agent --test e2e -- --test-threads=2
