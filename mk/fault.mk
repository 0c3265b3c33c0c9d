# Fault, crash, race, differential and fuzz testing (owned by the fault work).
.PHONY: test-fault
test-fault:
	@echo "test-fault: not yet built"
soak:
	@echo "soak: not yet built"
