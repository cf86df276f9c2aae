# prmcast - build, test, demo.  `make demo` and `make test` are the two
# commands the README gives; `make deps` installs Debian packages when
# pkg-config cannot find them.

CC      ?= cc
PKGS    := lua5.4 sqlite3 libcurl libcrypto libmicrohttpd
MULTI   := $(shell gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
CJSON_A ?= /usr/lib/$(MULTI)/liblua5.4-cjson.a
DEB_PKGS := build-essential pkg-config liblua5.4-dev lua-cjson-dev libcsv-dev \
            libsqlite3-dev libcurl4-openssl-dev libssl-dev libmicrohttpd-dev sqlite3

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_DEFAULT_SOURCE -D_GNU_SOURCE -Wall -Wextra -Werror \
           -Iengine -Ibuild/gen $(PKG_CFLAGS)
LDLIBS  += $(CJSON_A) $(PKG_LIBS) -lcsv -lm -lpthread
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

SRC      := $(filter-out engine/main.c,$(wildcard engine/*.c))
OBJ      := $(SRC:engine/%.c=build/obj/%.o)
ASAN_OBJ := $(SRC:engine/%.c=build/asan/%.o)
LUALIB   := $(sort $(wildcard engine/lib/prm/*.lua))
UNIT     := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT:tests/unit/%.c=build/tests/%)
ASAN_BIN := $(UNIT:tests/unit/%.c=build/asan-tests/%)

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps demo test unit asan-unit clean bench
all: prmcast

deps:
	@if pkg-config --exists $(PKGS) && [ -f $(CJSON_A) ] && [ -f /usr/include/csv.h ] \
	   && command -v sqlite3 >/dev/null; then :; else \
	  echo "make deps: installing $(DEB_PKGS)"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(DEB_PKGS); fi

build/embed: engine/tools/embed.c
	@mkdir -p build
	$(CC) -O1 -o $@ $<

build/gen/embedded_lua.h: $(LUALIB) build/embed
	@mkdir -p build/gen
	build/embed $(LUALIB) > $@.tmp && mv $@.tmp $@

# -MMD: each object depends on the headers it includes, and nothing else.
build/obj/%.o: engine/%.c build/gen/embedded_lua.h
	@mkdir -p build/obj
	@echo "CC $<"
	@$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

build/asan/%.o: engine/%.c build/gen/embedded_lua.h
	@mkdir -p build/asan
	@echo "CC (asan) $<"
	@$(CC) $(CFLAGS) $(SAN) -MMD -MP -c $< -o $@

-include $(wildcard build/obj/*.d build/asan/*.d)

prmcast: build/obj/main.o $(OBJ)
	@echo "LD $@"
	@$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

build/tests/%: tests/unit/%.c tests/unit/tap.h $(OBJ)
	@mkdir -p build/tests
	@echo "CC+LD $@"
	@$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(OBJ) $(LDLIBS)

build/asan-tests/%: tests/unit/%.c tests/unit/tap.h $(ASAN_OBJ)
	@mkdir -p build/asan-tests
	@echo "CC+LD (asan) $@"
	@$(CC) $(CFLAGS) $(SAN) -Itests/unit -o $@ $< $(ASAN_OBJ) $(LDLIBS)

unit: $(UNIT_BIN)
asan-unit: $(ASAN_BIN)

# Every suite: C unit tests, the same under ASan+UBSan, Lua tests inside the
# real binary, end-to-end shell tests.  The last line is "N passed, N failed".
test: deps
	@mkdir -p build
	@$(MAKE) --no-print-directory prmcast unit asan-unit >build/build.log 2>&1 || { cat build/build.log; exit 1; }
	@sh tests/run.sh

demo: deps
	@$(MAKE) --no-print-directory prmcast
	rm -f prmcast.db prmcast.db-wal prmcast.db-shm
	rm -rf build/sample
	./prmcast init
	./prmcast sample --out build/sample
	./prmcast run scripts/nightly.lua build/sample

clean:
	rm -rf build prmcast
