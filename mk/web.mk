# The approvers' web page (actionq/server/static), tested in a real headless
# Chromium: Debian's chromium and chromium-driver (/usr/bin/chromedriver), driven
# by selenium from .venv. Nothing downloads a browser.
.PHONY: web-tools test-web

web-tools:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	[ -x /usr/bin/chromedriver ] || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
	  echo "web-tools: installing$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y $$missing || { apt-get update && apt-get install -y $$missing; }; \
	fi

# The browser tests are part of the Python suite (make test-python runs them);
# this target runs only them. Screenshots land in target/web/.
test-web: web-tools python-develop
	$(VPY) -m pytest bindings-python/tests/browser

# The Python suite collects the browser tests: it needs the browser first.
test-python: web-tools
