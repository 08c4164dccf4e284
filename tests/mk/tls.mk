# tests/mk/tls.mk — the OpenSSL transport's stream and ALPN filter in unit
# tests, and its benchmark tool (included by Makefile).
#
# tls_stream.c belongs to the library, not the core archive; this explicit
# rule replaces the pattern rule for $(BUILD)/tests/test_tls_stream only to
# link that one object beside the core (it needs no OpenSSL: the real write
# is a function it is handed). zlib makes the test's gzip bodies.

TLS_STREAM_OBJ = $(BUILD)/obj/tls/tls_stream.o

$(BUILD)/tests/test_tls_stream: tests/unit/test_tls_stream.c tests/lm_test.h \
                                $(TLS_STREAM_OBJ) $(CORE_A) | $(BUILD)/tests
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS) $(INC_TESTS) -o $@ $< $(TLS_STREAM_OBJ) \
	  $(CORE_A) $(LDFLAGS) $(LIBS_CORE) -lrt -ldl -lz

# tls_alpn.c over a fake OpenSSL table (no libssl either).
TLS_ALPN_OBJ = $(BUILD)/obj/tls/tls_alpn.o

$(BUILD)/tests/test_tls_alpn: tests/unit/test_tls_alpn.c tests/lm_test.h \
                              $(TLS_ALPN_OBJ) | $(BUILD)/tests
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS) $(INC_TESTS) -o $@ $< $(TLS_ALPN_OBJ) $(LDFLAGS) -lpthread

# The OpenSSL transport's benchmark tool (scripts/bench.sh) calls OpenSSL
# itself, and needs no libcurl and no core: libssl, and dlsym for libssl's
# own functions on the server side.
$(BUILD)/tests/bench_tls: tests/tools/bench_tls.c tests/tools/bench_requests.h \
                          | $(BUILD)/tests
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS) $(INC_TESTS) -o $@ $< $(LDFLAGS) -lssl -lcrypto -ldl
