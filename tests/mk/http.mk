# tests/mk/http.mk — the src/http/ unit tests' extra link flags (included
# by Makefile).
#
# test_decode makes its compressed bodies with the encoders, so it links
# zlib, libbrotlienc and libzstd (and libbrotlidec beside them, the same
# library its decoder dlopens). The library under test never links them:
# decode.c dlopens them at the first decoder (see src/http/decode.h). This
# explicit rule replaces the pattern rule for $(BUILD)/tests/test_decode
# only, with the same flags.

TEST_DECODE_LIBS = -lz -lbrotlienc -lbrotlidec -lzstd

$(BUILD)/tests/test_decode: tests/unit/test_decode.c tests/lm_test.h \
                            tests/lm_slurp.h $(CORE_A) | $(BUILD)/tests
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS) $(INC_TESTS) -o $@ $< $(CORE_A) $(LDFLAGS) \
	  $(LIBS_CORE) $(TEST_DECODE_LIBS) -lrt
