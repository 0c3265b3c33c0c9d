# Benchmarks (owned by the bench work).
bench:
	@echo "bench: not yet built"
