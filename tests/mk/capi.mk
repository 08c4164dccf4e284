# tests/mk/capi.mk — the public C API's test client (included by Makefile).
#
# capi_client is built as a program outside the tree would be: the public
# header alone (-Iinclude) and libllmmeter.so (found through its rpath),
# never the core archive, so it can use only what the library exports.
# Under SAN=1 it is sanitized and links build-san/libllmmeter.so.
# tests/integration/test_capi.sh runs it.

CAPI_CLIENT = $(BUILD)/tests/capi_client

TEST_EXTRA += $(CAPI_CLIENT)

$(CAPI_CLIENT): tests/capi/capi_client.c include/llmmeter.h $(SO) | $(BUILD)/tests
	@echo "  CC      $@"
	$(Q)$(CC) $(CSTD) $(WARN) $(OPT) $(SANFLAGS) -Iinclude -o $@ $< \
	  -L$(BUILD) -lllmmeter -Wl,-rpath,'$$ORIGIN/..'
