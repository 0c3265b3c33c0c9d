# The book (docs/, mdBook): `make docs` builds it into target/book/ and runs
# its examples (tests/test_book.py: every fenced block of the README and the
# guide run, compiled or parsed; the Rust chapter as doctests of the crate).
# mdbook is installed from crates.io at the pinned version when missing.
.PHONY: docs docs-tools

MDBOOK_VERSION := 0.5.4
MDBOOK_ROOT := $(HOME)/.cargo
MDBOOK := $(MDBOOK_ROOT)/bin/mdbook

docs-tools:
	@$(MDBOOK) --version 2>/dev/null | grep -qx "mdbook v$(MDBOOK_VERSION)" \
	  || $(CARGO) install mdbook --locked --version $(MDBOOK_VERSION) --root $(MDBOOK_ROOT)

docs: docs-tools python-develop
	$(MDBOOK) build docs
	$(CARGO) test -p actionq --doc BookGuide
	$(VPY) -m pytest -p no:cacheprovider tests/test_book.py tests/test_docs_citations.py
