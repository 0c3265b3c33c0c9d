# Python package and FastAPI backend (owned by the Python work).
.PHONY: test-python
test-python:
	@echo "test-python: not yet built"
run: run-rust-example
