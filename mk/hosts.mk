# Cross-host scenarios (tests/): every scenario of tests/scenarios through the
# Rust, Python and HTTP drivers on every store; the transcripts must agree.
.PHONY: test-hosts

test-hosts: python-develop
	$(CARGO) build -p actionq-scenarios
	$(VPY) -m pytest tests
