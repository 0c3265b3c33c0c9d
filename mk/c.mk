# C ABI (owned by the C work).
.PHONY: test-c
test-c:
	@echo "test-c: not yet built"
