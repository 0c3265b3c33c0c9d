# C ABI. libactionq (shared + static), its cbindgen header,
# a pkg-config file, the C API test and the C/C++ examples, plain and under valgrind.
#
#   make test-c        everything below, then the programs under ASan/UBSan and valgrind
#   make c-lib         build the crate actionq-c, install target/c/lib/libactionq.{so,a}
#   make c-header      regenerate bindings-c/include/actionq.h (commit the result)
#   make c-pkgconfig   write target/pkgconfig/actionq.pc (and actionq-static.pc)
.PHONY: test-c c-tools c-lib c-header c-header-check c-pkgconfig c-programs

C_TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
C_OUT := $(C_TARGET_DIR)/c
# The crate's lib is `actionq_c` (the core is `actionq`); its C artifacts are
# installed here under the name C hosts link.
C_LIBDIR := $(C_OUT)/lib
C_PCDIR := $(C_TARGET_DIR)/pkgconfig
# The package version, as Cargo resolves it (path+file:///...#actionq-c@0.1.0).
C_VERSION = $(lastword $(subst @, ,$(subst \#, ,$(shell $(CARGO) pkgid -p actionq-c))))

# Pinned: the committed header must be exactly what this version writes.
CBINDGEN_VERSION := 0.29.4
C_CBINDGEN := $(C_TARGET_DIR)/tools/bin/cbindgen
C_CBINDGEN_ARGS := --config cbindgen.toml --crate actionq-c --output include/actionq.h

C_CFLAGS := -std=c11 -Wall -Wextra -Werror -pedantic -g -O1
C_CXXFLAGS := -std=c++17 -Wall -Wextra -Werror -pedantic -g -O1
# AddressSanitizer (with LeakSanitizer) and UBSan on the C side, besides valgrind.
C_SANITIZE := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
C_PKG := PKG_CONFIG_PATH=$(C_PCDIR) pkg-config
C_VALGRIND := valgrind --error-exitcode=1 --leak-check=full \
	--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect

## Tools a fresh machine may lack: pkg-config, valgrind, a C/C++ compiler (apt),
## and cbindgen at the pinned version (cargo install, into target/tools).
c-tools:
	@missing=""; \
	command -v pkg-config >/dev/null || missing="$$missing pkg-config"; \
	command -v valgrind >/dev/null || missing="$$missing valgrind"; \
	command -v gcc >/dev/null || missing="$$missing gcc"; \
	command -v g++ >/dev/null || missing="$$missing g++"; \
	if [ -n "$$missing" ]; then \
	  echo "c-tools: installing$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y $$missing || { apt-get update && apt-get install -y $$missing; }; \
	fi
	@if ! "$(C_CBINDGEN)" --version 2>/dev/null | grep -qx "cbindgen $(CBINDGEN_VERSION)"; then \
	  mkdir -p "$(dir $(C_CBINDGEN))"; \
	  if command -v cbindgen >/dev/null && cbindgen --version | grep -qx "cbindgen $(CBINDGEN_VERSION)"; then \
	    ln -sf "$$(command -v cbindgen)" "$(C_CBINDGEN)"; \
	  else \
	    $(CARGO) install cbindgen --version $(CBINDGEN_VERSION) --locked --root "$(C_TARGET_DIR)/tools"; \
	  fi; \
	fi

# rustc prints the system libraries the static library needs (replayed when
# the build is fresh); c-pkgconfig puts them in actionq-static.pc.
C_NATIVE_LIBS_FILE := $(C_OUT)/native-static-libs
c-lib:
	@mkdir -p $(C_OUT)
	$(CARGO) rustc --release -p actionq-c -- --print native-static-libs 2>&1 \
	  | tee $(C_OUT)/build.log | sed -n 's/^note: native-static-libs: //p' > $(C_NATIVE_LIBS_FILE)
	@test -s $(C_NATIVE_LIBS_FILE) || { cat $(C_OUT)/build.log; echo "c-lib: rustc printed no native-static-libs"; exit 1; }
	install -D -m 644 $(C_TARGET_DIR)/release/libactionq_c.a $(C_LIBDIR)/libactionq.a
	install -D -m 755 $(C_TARGET_DIR)/release/libactionq_c.so $(C_LIBDIR)/libactionq.so

c-header: c-tools
	cd bindings-c && "$(C_CBINDGEN)" $(C_CBINDGEN_ARGS)

## Fails when the committed header drifts from the code, its version macros
## from Cargo.toml, or its functions from the core's operations: the crate's
## header tests (bindings-c/tests/header.rs, which run the pinned cbindgen as a
## library) and bindings-c/tests/operations.rs.
c-header-check:
	$(CARGO) test -p actionq-c --test header --test operations

## pkg-config files for the build tree, from the templates bindings-c/*.pc.in.
## actionq.pc links the shared library (with an rpath, so programs run in place);
## actionq-static.pc links libactionq.a and the system libraries rustc named.
C_PC_SUBST = -e 's|@PREFIX@|$(CURDIR)|' -e 's|@INCLUDEDIR@|$(CURDIR)/bindings-c/include|' \
	-e 's|@LIBDIR@|$(C_LIBDIR)|' -e 's|@VERSION@|$(C_VERSION)|' \
	-e "s|@NATIVE_STATIC_LIBS@|$$(cat $(C_NATIVE_LIBS_FILE))|"
c-pkgconfig: c-lib
	@mkdir -p $(C_PCDIR)
	sed $(C_PC_SUBST) bindings-c/actionq.pc.in > $(C_PCDIR)/actionq.pc
	sed $(C_PC_SUBST) bindings-c/actionq-static.pc.in > $(C_PCDIR)/actionq-static.pc

## The C test (shared, static, and with sanitizers), the C example and the C++ example, built
## with plain gcc/g++ and nothing but the pkg-config line.
c-programs: c-tools c-lib c-pkgconfig
	@mkdir -p $(C_OUT)
	gcc $(C_CFLAGS) bindings-c/tests/test_api.c -o $(C_OUT)/test_api $$($(C_PKG) --cflags --libs actionq) -lpthread
	gcc $(C_CFLAGS) bindings-c/tests/test_api.c -o $(C_OUT)/test_api_static $$($(C_PKG) --cflags --libs actionq-static) -lpthread
	gcc $(C_CFLAGS) $(C_SANITIZE) bindings-c/tests/test_api.c -o $(C_OUT)/test_api_asan $$($(C_PKG) --cflags --libs actionq) -lpthread
	gcc $(C_CFLAGS) examples/c/main.c -o $(C_OUT)/example_c $$($(C_PKG) --cflags --libs actionq)
	g++ $(C_CXXFLAGS) examples/cpp/main.cpp -o $(C_OUT)/example_cpp $$($(C_PKG) --cflags --libs actionq)

# RUST_BACKTRACE=0: the test's deliberate panic then prints one line, and no
# symbolizer cache stays reachable at exit.
test-c: export RUST_BACKTRACE = 0
test-c: c-header-check c-programs
	@rm -rf $(C_OUT)/run && mkdir -p $(C_OUT)/run/plain $(C_OUT)/run/static $(C_OUT)/run/asan $(C_OUT)/run/vg
	$(C_OUT)/test_api $(C_OUT)/run/plain
	$(C_OUT)/test_api_static $(C_OUT)/run/static
	$(C_OUT)/test_api_asan $(C_OUT)/run/asan
	$(C_OUT)/example_c $(C_OUT)/run/plain/example-c.sqlite3
	$(C_OUT)/example_cpp $(C_OUT)/run/plain/example-cpp.sqlite3
	$(C_VALGRIND) $(C_OUT)/test_api $(C_OUT)/run/vg
	$(C_VALGRIND) $(C_OUT)/example_c $(C_OUT)/run/vg/example-c.sqlite3
	$(C_VALGRIND) $(C_OUT)/example_cpp $(C_OUT)/run/vg/example-cpp.sqlite3
	@echo "test-c: C API test (shared, static, ASan+UBSan), C and C++ examples passed; valgrind clean"
