# Cross-host tests (tests/): every scenario of tests/scenarios through the
# Rust, Python, C and HTTP drivers on every store; the transcripts must agree.
# And the interop test: a Python creator, C agents and a Rust events reader on
# one SQLite file at once.
.PHONY: test-hosts hosts-tools

HOSTS_C_DRIVER := $(C_OUT)/c_driver
HOSTS_INTEROP_AGENT := $(C_OUT)/interop_agent

## The C driver reads and writes JSON with cJSON (Debian's libcjson-dev).
hosts-tools: c-tools
	@test -f /usr/include/cjson/cJSON.h || { export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y libcjson-dev || { apt-get update && apt-get install -y libcjson-dev; }; }

test-hosts: python-develop c-lib hosts-tools
	$(CARGO) build -p actionq-scenarios
	gcc $(C_CFLAGS) -Ibindings-c/include tests/drivers/c_driver.c -o $(HOSTS_C_DRIVER) \
	  -L$(C_LIBDIR) -lactionq -lcjson -Wl,-rpath,$(C_LIBDIR)
	gcc $(C_CFLAGS) -Ibindings-c/include tests/interop/agent.c -o $(HOSTS_INTEROP_AGENT) \
	  -L$(C_LIBDIR) -lactionq -lcjson -Wl,-rpath,$(C_LIBDIR)
	@# The book (make docs) and the containers (make test-containers) have targets of their own.
	ACTIONQ_C_DRIVER=$(HOSTS_C_DRIVER) ACTIONQ_INTEROP_AGENT=$(HOSTS_INTEROP_AGENT) $(VPY) -m pytest tests \
	  --ignore=tests/containers --ignore=tests/test_book.py --ignore=tests/test_docs_citations.py
