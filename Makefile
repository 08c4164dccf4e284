# llmmeter — build, test, install.
#
# Layout: src/*.c is split three ways. The library's hook layer (hook*.c,
# interpose*.c) goes only into libllmmeter.so; the CLI (cli*.c) only into
# the llmmeter binary; everything else is the libcurl-free core, built once
# as a static archive of PIC objects and linked into both and into the tests.
#
#   make                 build/libllmmeter.so and build/llmmeter
#   make test            build and run every test (unit + integration)
#   make test SAN=1      the same suite under ASan+UBSan (build-san/)
#   make asan            shorthand for the line above
#   make bench           benchmarks (see scripts/bench.sh)
#   make install PREFIX=/usr/local

CC      ?= cc
PREFIX  ?= /usr/local
SAN     ?= 0

CSTD     = -std=c11 -D_GNU_SOURCE
WARN     = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
OPT      = -O2 -g
CFLAGS_BASE = $(CSTD) $(WARN) $(OPT) -fPIC -fvisibility=hidden -Iinclude -Isrc

ifeq ($(SAN),1)
BUILD    = build-san
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD    = build
SANFLAGS =
endif

CFLAGS  += $(CFLAGS_BASE) $(SANFLAGS)
LDFLAGS += $(SANFLAGS)
LIBS_CORE = -lcjson -lpthread
LIBS_LIB  = $(LIBS_CORE) -ldl

ALL_SRC  = $(wildcard src/*.c)
LIB_SRC  = $(filter src/hook%.c src/interpose%.c,$(ALL_SRC))
CLI_SRC  = $(filter src/cli%.c,$(ALL_SRC))
CORE_SRC = $(filter-out $(LIB_SRC) $(CLI_SRC),$(ALL_SRC))

CORE_OBJ = $(patsubst src/%.c,$(BUILD)/obj/%.o,$(CORE_SRC))
LIB_OBJ  = $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIB_SRC))
CLI_OBJ  = $(patsubst src/%.c,$(BUILD)/obj/%.o,$(CLI_SRC))

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

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h include/*.h) | $(BUILD)/obj
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj $(BUILD)/tests:
	mkdir -p $@

$(CORE_A): $(CORE_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

$(SO): $(LIB_OBJ) $(CORE_A) src/libllmmeter.map
	@echo "  LD      $@"
	$(Q)$(CC) -shared $(LDFLAGS) -Wl,--version-script=src/libllmmeter.map \
	  -Wl,-z,now -Wl,-z,relro -o $@ $(LIB_OBJ) $(CORE_A) $(LIBS_LIB)

$(CLI): $(CLI_OBJ) $(CORE_A)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(CORE_A) $(LIBS_CORE) -lrt

$(BUILD)/tests/test_%: tests/unit/test_%.c tests/lm_test.h $(CORE_A) | $(BUILD)/tests
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS) -Itests -o $@ $< $(CORE_A) $(LDFLAGS) $(LIBS_CORE) -lrt

# Test tools (clients, helpers) link libcurl the ordinary way.
$(BUILD)/tests/%: tests/tools/%.c $(CORE_A) | $(BUILD)/tests
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS) -Itests -o $@ $< $(CORE_A) $(LDFLAGS) $(LIBS_CORE) -lcurl -lrt

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
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(SO) $(DESTDIR)$(PREFIX)/lib/libllmmeter.so
	install -m 0755 $(CLI) $(DESTDIR)$(PREFIX)/bin/llmmeter

clean:
	rm -rf build build-san
