# llmmeter — build, test, install.
#
# Layout: the folders of src/ are the layers, and each is compiled with the
# include paths of the layers it may use, so that a layering break is a
# build error:
#
#   base/    usage and exact money: the vocabulary every layer shares
#   parse/   JSON scanner, SSE/NDJSON/JSON-array framers, extractors  (base)
#   price/   price lookup, overrides, the generated table             (base)
#   budget/  the engine interface and the shared-memory backend       (base)
#   http/    HTTP/1.1 framing (llhttp) and content decoding for
#            transports that see raw bytes (TLS)                       (base)
#   meter/   the transport-neutral call lifecycle and its policy      (all above)
#   hook/    the libcurl transport: only meter/lifecycle/ of the above
#   tls/     the OpenSSL transport: meter/lifecycle/ and http/ only
#   resolve/ the leak guard's getaddrinfo: only meter/lifecycle/
#   cli/     the llmmeter command                                     (meter and below)
#
# base..meter are built once as a static archive of PIC objects (the core)
# and linked into libllmmeter.so (with hook/), the llmmeter binary (with
# cli/) and the tests. The core also holds llhttp, compiled from Debian's
# node-llhttp sources in place (/usr/share/llhttp, never copied here).
#
#   make                 build/libllmmeter.so and build/llmmeter
#   make test            build and run every test (unit + integration)
#   make test SAN=1      the same suite under ASan+UBSan (build-san/), with
#                        the budget's invariants checked after every step
#   make asan            shorthand for the line above
#   make test DEBUG=1    the suite with the invariant checks, no sanitizers
#                        (build-debug/)
#   make crashtest       the budget killed at every crash point (full sweep)
#   make bench           benchmarks (see scripts/bench.sh)
#   make install PREFIX=/usr/local

CC      ?= cc
PREFIX  ?= /usr/local
SAN     ?= 0
DEBUG   ?= 0

CSTD     = -std=c11 -D_GNU_SOURCE
WARN     = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
OPT      = -O2 -g
CFLAGS_BASE = $(CSTD) $(WARN) $(OPT) -fPIC -fvisibility=hidden -MMD -MP

ifeq ($(SAN),1)
BUILD    = build-san
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else ifeq ($(DEBUG),1)
BUILD    = build-debug
SANFLAGS =
else
BUILD    = build
SANFLAGS =
endif
# Debug builds check the budget's invariants after every step that changes
# it (src/budget/shm_journal.c) and abort on a violation.
ifneq ($(SAN)$(DEBUG),00)
DBGFLAGS = -DLM_DEBUG_INVARIANTS
endif

CFLAGS  += $(CFLAGS_BASE) $(SANFLAGS) $(DBGFLAGS)
LDFLAGS += $(SANFLAGS)
LIBS_CORE = -lcjson -lpthread
LIBS_LIB  = $(LIBS_CORE) -ldl

# Include paths per layer: what each may see.
INC_base   = -Isrc/base
INC_parse  = -Isrc/parse -Isrc/base
INC_price  = -Isrc/price -Isrc/base
INC_budget = -Isrc/budget -Isrc/base -I$(BUILD)/gen
INC_http   = -Isrc/http -Isrc/base -I$(LLHTTP_INC)
INC_meter  = -Isrc/meter -Isrc/meter/lifecycle -Isrc/parse -Isrc/price \
             -Isrc/budget -Isrc/http -Isrc/base -Iinclude
INC_hook   = -Isrc/hook -Isrc/meter/lifecycle
INC_tls    = -Isrc/tls -Isrc/meter/lifecycle -Isrc/http
INC_resolve = -Isrc/resolve -Isrc/meter/lifecycle
INC_cli    = -Isrc/cli -Isrc/meter -Isrc/budget -Isrc/price -Isrc/base
# Tests see every layer.
INC_TESTS  = -Itests -Iinclude -Isrc/hook -Isrc/http -Isrc/tls $(INC_meter)

# llhttp (HTTP/1.x parser) from Debian's node-llhttp, compiled where it is
# installed. Strict mode: a CR must be followed by LF, chunk data by CRLF,
# and nothing may follow `Connection: close` (see src/http/http1.c for why).
# Its sources are not written to our warning set (unused parameters, no
# prototypes for generated functions): those two warnings are off and no
# warning is an error for these three files only.
LLHTTP_DIR = /usr/share/llhttp
LLHTTP_INC = /usr/share/include/llhttp
LLHTTP_SRC = $(LLHTTP_DIR)/llhttp.c $(LLHTTP_DIR)/api.c $(LLHTTP_DIR)/http.c
LLHTTP_CFLAGS = $(CSTD) -Wall -Wextra -Wno-unused-parameter \
                -Wno-missing-prototypes $(OPT) -fPIC -fvisibility=hidden \
                -MMD -MP -DLLHTTP_STRICT_MODE=1 -I$(LLHTTP_INC) $(SANFLAGS)
LLHTTP_OBJ = $(patsubst $(LLHTTP_DIR)/%.c,$(BUILD)/obj/llhttp/%.o,$(LLHTTP_SRC))

CORE_LAYERS = base parse price budget http meter
CORE_SRC = $(foreach l,$(CORE_LAYERS),$(wildcard src/$(l)/*.c))
LIB_SRC  = $(wildcard src/hook/*.c) $(wildcard src/tls/*.c)
LIB_SRC += $(wildcard src/resolve/*.c)
CLI_SRC  = $(wildcard src/cli/*.c)
ALL_SRC  = $(CORE_SRC) $(LIB_SRC) $(CLI_SRC)
LIB_MAP  = src/hook/libllmmeter.map

CORE_OBJ = $(patsubst src/%.c,$(BUILD)/obj/%.o,$(CORE_SRC))
LIB_OBJ  = $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIB_SRC))
CLI_OBJ  = $(patsubst src/%.c,$(BUILD)/obj/%.o,$(CLI_SRC))
ALL_OBJ  = $(CORE_OBJ) $(LIB_OBJ) $(CLI_OBJ) $(LLHTTP_OBJ)

CORE_A   = $(BUILD)/libllmmeter_core.a
SO       = $(BUILD)/libllmmeter.so
CLI      = $(BUILD)/llmmeter

UNIT_SRC = $(wildcard tests/unit/test_*.c)
UNIT_BIN = $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
TOOL_SRC = $(wildcard tests/tools/*.c)
TOOL_BIN = $(patsubst tests/tools/%.c,$(BUILD)/tests/%,$(TOOL_SRC))

.PHONY: all test asan bench bench-quick fuzz install clean check-lockfree

all: $(SO) $(CLI)

# V=1 shows the full command lines.
ifeq ($(V),1)
Q =
else
Q = @
endif

# The layer is the first folder under src/; its include paths apply.
$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) $(INC_$(firstword $(subst /, ,$*))) -c -o $@ $<

$(BUILD)/obj/llhttp/%.o: $(LLHTTP_DIR)/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(LLHTTP_CFLAGS) -c -o $@ $<

# The Redis backend's server-side script, as a C string.
$(BUILD)/gen/budget_redis_lua.h: src/budget/budget_redis.lua
	@mkdir -p $(dir $@)
	@echo "  GEN     $@"
	$(Q){ echo '/* generated from $< by the Makefile: do not edit */'; \
	  echo 'static const char lm_redis_lua[] ='; \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $<; \
	  echo ';'; } > $@.tmp && mv $@.tmp $@
$(BUILD)/obj/budget/redis_conn.o: $(BUILD)/gen/budget_redis_lua.h

-include $(ALL_OBJ:.o=.d) $(UNIT_BIN:=.d) $(TOOL_BIN:=.d)

$(BUILD)/tests:
	mkdir -p $@

$(CORE_A): $(CORE_OBJ) $(LLHTTP_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

# The public API (include/llmmeter.h) is linked as an object, not left to
# the archive: nothing in hook/ references it, so the archive would never
# pull it in.
API_OBJ  = $(BUILD)/obj/meter/api.o

$(SO): $(LIB_OBJ) $(API_OBJ) $(CORE_A) $(LIB_MAP)
	@echo "  LD      $@"
	$(Q)$(CC) -shared $(LDFLAGS) -Wl,--version-script=$(LIB_MAP) \
	  -Wl,-z,now -Wl,-z,relro -o $@ $(LIB_OBJ) $(API_OBJ) $(CORE_A) $(LIBS_LIB)

$(CLI): $(CLI_OBJ) $(CORE_A)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(CORE_A) $(LIBS_CORE) -lrt

$(BUILD)/tests/test_%: tests/unit/test_%.c tests/lm_test.h $(CORE_A) | $(BUILD)/tests
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS) $(INC_TESTS) -o $@ $< $(CORE_A) $(LDFLAGS) $(LIBS_CORE) -lrt

# Test tools (clients, helpers) link libcurl the ordinary way.
$(BUILD)/tests/%: tests/tools/%.c $(CORE_A) | $(BUILD)/tests
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS) $(INC_TESTS) -o $@ $< $(CORE_A) $(LDFLAGS) $(LIBS_CORE) -lcurl -lrt

# Test fragments owned by individual modules (extra fixtures, modules).
-include tests/mk/*.mk

test: all $(UNIT_BIN) $(TOOL_BIN) $(TEST_EXTRA)
	BUILD=$(BUILD) SAN=$(SAN) bash tests/run.sh

asan: all
	$(MAKE) --no-print-directory SAN=1 test

bench: all $(TOOL_BIN)
	BUILD=$(BUILD) bash scripts/bench.sh

bench-quick: all $(TOOL_BIN)
	BUILD=$(BUILD) QUICK=1 bash scripts/bench.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/bin \
	  $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/share/man/man1 \
	  $(DESTDIR)$(PREFIX)/share/man/man3
	install -m 0755 $(SO) $(DESTDIR)$(PREFIX)/lib/libllmmeter.so
	install -m 0755 $(CLI) $(DESTDIR)$(PREFIX)/bin/llmmeter
	install -m 0644 include/llmmeter.h $(DESTDIR)$(PREFIX)/include/llmmeter.h
	install -m 0644 docs/llmmeter.1 $(DESTDIR)$(PREFIX)/share/man/man1/llmmeter.1
	install -m 0644 docs/libllmmeter.3 \
	  $(DESTDIR)$(PREFIX)/share/man/man3/libllmmeter.3

clean:
	rm -rf build build-san build-debug
