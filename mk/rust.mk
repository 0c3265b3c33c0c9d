# The Rust example (run target until the FastAPI backend takes over `make run`).
.PHONY: run-rust-example
run-rust-example:
	$(CARGO) run --release -p actionq-example -- data/example.sqlite3
