# tests/mk/resolve.mk — the leak guard's test program (included by
# Makefile).
#
# resolve_probe must link no TLS library llmmeter can see (not libcurl, as
# the tools under tests/tools/ do, nor the core archive): it plays a
# program whose TLS is linked in statically. Under SAN=1 it is sanitized.
# tests/integration/test_leak_guard.sh runs it.

RESOLVE_PROBE = $(BUILD)/tests/resolve_probe

TEST_EXTRA += $(RESOLVE_PROBE)

$(RESOLVE_PROBE): tests/resolve/resolve_probe.c | $(BUILD)/tests
	@echo "  CC      $@"
	$(Q)$(CC) $(CSTD) $(WARN) $(OPT) $(SANFLAGS) -o $@ $< -lpthread -ldl
