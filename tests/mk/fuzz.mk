# tests/mk/fuzz.mk — libFuzzer targets for the response/request parsers,
# the HTTP/1.1 framing and hostile budget segments (fuzz_segment).
#
#   make fuzz                 build and run every target for FUZZ_SECONDS (60)
#   make fuzz FUZZ_SECONDS=600 FUZZ_TARGETS=fuzz_extract
#   make fuzz-build           only build them ($(BUILD)/fuzz/)
#
# The targets are built with clang straight from the parser sources (not
# the core archive: they need -fsanitize=fuzzer on every object). `make
# test` builds them through TEST_EXTRA; tests/integration/test_fuzz.sh then
# runs each for 10 s and prints one PASS:/FAIL: line per target.
# Seeds: tests/fuzz/corpus/<target>/ (from the recorded fixtures); new
# inputs go to $(BUILD)/fuzz/corpus/<target>/, crashes to $(BUILD)/fuzz/.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= fuzz_sse fuzz_extract fuzz_json_scan fuzz_reqscan fuzz_http1 \
                fuzz_segment
# llhttp is compiled as the Makefile compiles it (strict mode); its
# generated code leaves parameters unused by the hundred, hence
# -Wno-unused-parameter (the main build keeps that warning for our code).
FUZZ_CFLAGS   = -g -O1 -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=undefined -Wall -Wextra \
                -Wno-unused-parameter -D_GNU_SOURCE -DLLHTTP_STRICT_MODE=1 \
                -Isrc/parse -Isrc/meter -Isrc/http -Isrc/base \
                -I$(LLHTTP_INC) -Itests/fuzz
FUZZ_SRC      = src/parse/json_scan.c src/parse/json_walk.c src/parse/sse.c \
                src/parse/framer.c src/parse/extract.c src/meter/reqscan.c \
                src/meter/detect.c $(wildcard src/http/*.c) $(LLHTTP_SRC)
FUZZ_BIN      = $(patsubst %,$(BUILD)/fuzz/%,$(FUZZ_TARGETS))

.PHONY: fuzz-build

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_split.h $(FUZZ_SRC) \
                      $(wildcard src/*/*.h)
	@mkdir -p $(BUILD)/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_SRC)

# fuzz_segment is built from the budget engine instead (src/budget/, the
# money helpers): attach, reclaim, snapshot, status text, admit/settle.
FUZZ_SEG_SRC  = $(wildcard src/budget/*.c) src/base/money.c
# (the Redis backend among them: its generated script header too)
$(BUILD)/fuzz/fuzz_segment: tests/fuzz/fuzz_segment.c $(FUZZ_SEG_SRC) \
                            $(wildcard src/budget/*.h src/base/*.h) \
                            $(BUILD)/gen/budget_redis_lua.h
	@mkdir -p $(BUILD)/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Isrc/budget -I$(BUILD)/gen -o $@ $< \
	  $(FUZZ_SEG_SRC) -lrt -ldl

fuzz-build: $(FUZZ_BIN)

fuzz: $(FUZZ_BIN)
	BUILD=$(BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) \
	  bash tests/fuzz/run_fuzz.sh $(FUZZ_TARGETS)

TEST_EXTRA += fuzz-build
