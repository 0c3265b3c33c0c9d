# Python package and FastAPI backend.
.PHONY: python-develop test-python run run-rust-example

# Builds the extension (release) and installs the `actionq` package into the venv
# (editable: the compiled module lands in bindings-python/python/actionq/).
python-develop: venv
	VIRTUAL_ENV=$(VENV) $(VENV)/bin/maturin develop --release

# Every Python suite (pyproject's testpaths): the binding on both stores, the
# FastAPI backend (actionq.server) with TestClient and live under uvicorn,
# the `actionq` command line and /mcp against a live server, stubtest and
# mypy; then the OpenAPI document against the live server (test-openapi).
test-python: python-develop
	$(VPY) -m pytest
	$(MAKE) --no-print-directory test-openapi

# The OpenAPI document tells the truth: schemathesis, every check and every
# phase (the stateful one follows the document's links), 60 examples per
# operation, against `actionq-server` on loopback; any failure fails.
.PHONY: test-openapi
test-openapi: python-develop
	$(VPY) bindings-python/tests/server/schemathesis_run.py

# The main job: the FastAPI backend (`actionq-server`, the package's console
# script) on 127.0.0.1:8080, SQLite file under ./data/.
# Uses ACTIONQ_API_KEY if set, else generates a key and prints it.
run: python-develop
	$(VENV)/bin/actionq-server --host 127.0.0.1 --port 8080 --database $(CURDIR)/data/actionq.sqlite3

# The Rust example.
run-rust-example:
	$(CARGO) run --release -p actionq-example -- data/example.sqlite3

# Per-call cost of the binding: get_action from Python vs from Rust, one process.
.PHONY: bench-python
bench-python: python-develop
	$(VPY) bindings-python/bench/bench_get_action.py
