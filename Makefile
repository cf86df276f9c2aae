# prmcast - build, test, demo.  `make demo` and `make test` are the two
# commands the README gives; `make deps` installs Debian packages when
# pkg-config cannot find them.

CC      ?= cc
PKGS    := lua5.4 sqlite3 libcurl libcrypto libmicrohttpd
MULTI   := $(shell gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
CJSON_A ?= /usr/lib/$(MULTI)/liblua5.4-cjson.a
DEB_PKGS := build-essential pkg-config liblua5.4-dev lua-cjson-dev libcsv-dev \
            libsqlite3-dev libcurl4-openssl-dev libssl-dev libmicrohttpd-dev sqlite3 \
            python3 curl

HAVE_DEPS := $(shell pkg-config --exists $(PKGS) 2>/dev/null && [ -f $(CJSON_A) ] \
               && [ -f /usr/include/csv.h ] && echo yes)
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
VERSION    := $(shell git describe --always --dirty 2>/dev/null || echo unknown)

# CFLAGS is the user's (make CFLAGS=-O0 works); what the build needs is added
# in ALL_CFLAGS and cannot be lost that way.
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Wshadow -Wundef -Wwrite-strings -Wmissing-prototypes \
           -Wstrict-prototypes -Wold-style-definition -Werror
BASE_CFLAGS := -std=c11 -D_DEFAULT_SOURCE -D_GNU_SOURCE $(WARN) -Iengine -Ibuild/gen
ALL_CFLAGS  := $(BASE_CFLAGS) $(PKG_CFLAGS) $(CFLAGS)
# The numeric core is compiled without the Lua/SQLite/curl include paths and
# with headers of those names that #error first on the path: including one
# fails the build, and libcore.a links into its tests with -lm alone.
CORE_TEST_CFLAGS := $(BASE_CFLAGS) -Ibuild/poison $(CFLAGS)
CORE_CFLAGS := $(CORE_TEST_CFLAGS) -Wconversion -Wno-sign-conversion
LDLIBS  += $(CJSON_A) $(PKG_LIBS) -lcsv -lm -lpthread
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

# The numeric core: plain arrays and structs, no Lua, no SQLite.
CORE_SRC := $(sort $(wildcard engine/ts*.c engine/model*.c engine/mc*.c) engine/metrics.c \
              engine/clsmetrics.c engine/rng.c engine/error.c)
SRC      := $(filter-out engine/main.c $(CORE_SRC),$(wildcard engine/*.c))
OBJ      := $(SRC:engine/%.c=build/obj/%.o)
CORE_OBJ := $(CORE_SRC:engine/%.c=build/core/%.o)
ASAN_OBJ := $(SRC:engine/%.c=build/asan/%.o)
ASAN_CORE_OBJ := $(CORE_SRC:engine/%.c=build/asan-core/%.o)
LUALIB   := $(sort $(wildcard engine/lib/prm/*.lua))
# Unit tests of the core link libcore.a only; the others the whole engine.
CORE_TESTS := $(filter $(patsubst engine/%.c,tests/unit/test_%.c,$(CORE_SRC)) tests/unit/test_ts.c \
                tests/unit/test_model.c,$(wildcard tests/unit/test_*.c))
UNIT     := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT:tests/unit/%.c=build/tests/%)
ASAN_BIN := $(UNIT:tests/unit/%.c=build/asan-tests/%)
POISON   := build/poison/lua.h build/poison/lauxlib.h build/poison/sqlite3.h \
            build/poison/curl/curl.h build/poison/microhttpd.h

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps check-deps demo test unit asan-unit clean bench core
all: prmcast

deps:
	@if pkg-config --exists $(PKGS) && [ -f $(CJSON_A) ] && [ -f /usr/include/csv.h ] \
	   && command -v sqlite3 >/dev/null && [ -x /usr/bin/python3 ] \
	   && command -v curl >/dev/null; then :; else \
	  echo "make deps: installing $(DEB_PKGS)"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(DEB_PKGS); fi

check-deps:
ifneq ($(HAVE_DEPS),yes)
	@echo "prmcast: build packages are missing (pkg-config: $(PKGS), libcsv, lua-cjson)."; \
	 echo "Run 'make deps' first (it installs: $(DEB_PKGS)), or 'make demo' / 'make test',"; \
	 echo "which do it for you."; exit 1
endif

build/embed: engine/tools/embed.c
	@mkdir -p build
	@$(CC) -O1 -o $@ $<

build/gen/embedded_lua.h: $(LUALIB) build/embed
	@mkdir -p build/gen
	@build/embed $(LUALIB) > $@.tmp && mv $@.tmp $@

# Rewritten only when the version changes, so a commit rebuilds one file.
build/gen/version.h: FORCE
	@mkdir -p build/gen
	@echo '#define PRM_VERSION "$(VERSION)"' > $@.tmp
	@cmp -s $@.tmp $@ 2>/dev/null && rm -f $@.tmp || mv $@.tmp $@
FORCE:

$(POISON):
	@mkdir -p $(dir $@)
	@echo '#error "the numeric core must not include $(notdir $@)"' > $@

# -MMD: each object depends on the headers it includes, and nothing else.
build/obj/%.o: engine/%.c build/gen/embedded_lua.h | check-deps build/gen/version.h
	@mkdir -p build/obj
	@echo "CC $<"
	@$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

build/core/%.o: engine/%.c $(POISON)
	@mkdir -p build/core
	@echo "CC (core) $<"
	@$(CC) $(CORE_CFLAGS) -MMD -MP -c $< -o $@

build/asan/%.o: engine/%.c build/gen/embedded_lua.h | check-deps build/gen/version.h
	@mkdir -p build/asan
	@echo "CC (asan) $<"
	@$(CC) $(ALL_CFLAGS) $(SAN) -MMD -MP -c $< -o $@

build/asan-core/%.o: engine/%.c $(POISON)
	@mkdir -p build/asan-core
	@echo "CC (asan core) $<"
	@$(CC) $(CORE_CFLAGS) $(SAN) -MMD -MP -c $< -o $@

-include $(wildcard build/obj/*.d build/core/*.d build/asan/*.d build/asan-core/*.d)

build/libcore.a: $(CORE_OBJ)
	@echo "AR $@"
	@rm -f $@ && ar rcs $@ $^

build/libcore-asan.a: $(ASAN_CORE_OBJ)
	@rm -f $@ && ar rcs $@ $^

core: build/libcore.a

prmcast: build/obj/main.o $(OBJ) build/libcore.a
	@echo "LD $@"
	@$(CC) $(ALL_CFLAGS) -o $@ build/obj/main.o $(OBJ) build/libcore.a $(LDLIBS)

# The test build: the same engine with the fault-injection hook
# (prm.engine.fault) that the kill-and-rerun tests use; never installed.
build/fault/lprmlib.o: engine/lprmlib.c build/gen/embedded_lua.h | check-deps build/gen/version.h
	@mkdir -p build/fault
	@echo "CC (fault) $<"
	@$(CC) $(ALL_CFLAGS) -DPRM_FAULT_INJECTION -c $< -o $@

build/prmcast-fault: build/obj/main.o $(filter-out build/obj/lprmlib.o,$(OBJ)) build/fault/lprmlib.o build/libcore.a
	@echo "LD $@"
	@$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

# The whole engine under ASan+UBSan: the Lua tests run in it too, so the
# bindings are checked as scripts drive them.
build/asan/main.o: engine/main.c build/gen/embedded_lua.h | check-deps build/gen/version.h
build/prmcast-asan: build/asan/main.o $(ASAN_OBJ) build/libcore-asan.a
	@echo "LD $@"
	@$(CC) $(ALL_CFLAGS) $(SAN) -o $@ build/asan/main.o $(ASAN_OBJ) build/libcore-asan.a $(LDLIBS)

# The core's tests: no Lua or SQLite on the include path or the link line.
$(CORE_TESTS:tests/unit/%.c=build/tests/%): build/tests/%: tests/unit/%.c tests/unit/tap.h build/libcore.a
	@mkdir -p build/tests
	@echo "CC+LD (core) $@"
	@$(CC) $(CORE_TEST_CFLAGS) -Itests/unit -Itests/fixtures/ts -o $@ $< build/libcore.a -lm

$(CORE_TESTS:tests/unit/%.c=build/asan-tests/%): build/asan-tests/%: tests/unit/%.c tests/unit/tap.h build/libcore-asan.a
	@mkdir -p build/asan-tests
	@echo "CC+LD (asan core) $@"
	@$(CC) $(CORE_TEST_CFLAGS) $(SAN) -Itests/unit -Itests/fixtures/ts -o $@ $< build/libcore-asan.a -lm

build/tests/%: tests/unit/%.c tests/unit/tap.h tests/unit/teststore.h $(OBJ) build/libcore.a
	@mkdir -p build/tests
	@echo "CC+LD $@"
	@$(CC) $(ALL_CFLAGS) -Itests/unit -o $@ $< $(OBJ) build/libcore.a $(LDLIBS)

build/asan-tests/%: tests/unit/%.c tests/unit/tap.h tests/unit/teststore.h $(ASAN_OBJ) build/libcore-asan.a
	@mkdir -p build/asan-tests
	@echo "CC+LD (asan) $@"
	@$(CC) $(ALL_CFLAGS) $(SAN) -Itests/unit -o $@ $< $(ASAN_OBJ) build/libcore-asan.a $(LDLIBS)

unit: $(UNIT_BIN)
asan-unit: $(ASAN_BIN)

# Every suite: C unit tests, the same under ASan+UBSan, Lua tests inside the
# real binary, end-to-end shell tests.  The last line is "N passed, N failed".
test: deps
	@mkdir -p build
	@$(MAKE) --no-print-directory prmcast build/prmcast-fault build/prmcast-asan unit asan-unit >build/build.log 2>&1 || { cat build/build.log; exit 1; }
	@sh tests/run.sh

demo: deps
	@$(MAKE) --no-print-directory prmcast
	rm -f prmcast.db prmcast.db-wal prmcast.db-shm
	rm -rf build/sample
	./prmcast init
	./prmcast sample --out build/sample
	./prmcast run scripts/nightly.lua build/sample

# The benchmarks with their peers (R forecast, scikit-learn, pandas; each
# script installs its Debian peer when missing). Long: see bench/RESULTS.md.
bench: deps
	@$(MAKE) --no-print-directory prmcast
	sh bench/ingest.sh
	sh bench/scoring/pipeline.sh
	sh bench/scoring/ibm.sh
	sh bench/m3/run.sh
	sh bench/montecarlo/run.sh

clean:
	rm -rf build prmcast
