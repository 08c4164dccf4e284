# tests/mk/interpose.mk — fixtures for src/hook/interpose.c and
# src/hook/elf_got.c (included by Makefile).
#
# libinterpose_test.so: the interposer (interpose.c and the ELF/GOT code of
# elf_got.c it uses) plus a counting stand-in hook layer,
# preloaded into real hosts (curl, python3+pycurl, php, perl) and into the
# synthetic host_dlopen by tests/integration/test_interpose.sh. The library
# is built with the suite's flags (sanitizers under SAN=1); the hosts and
# modules are fixtures and are built plain, so that a sanitized preload
# needs only libasan ahead of it in LD_PRELOAD.

IP_DIR   = $(BUILD)/tests/interpose
IP_LIB   = $(BUILD)/tests/libinterpose_test.so
IP_SRC   = src/hook/interpose.c src/hook/elf_got.c
IP_HOST  = $(IP_DIR)/host_dlopen
IP_MODS  = $(IP_DIR)/mod_lazy.so $(IP_DIR)/mod_now.so $(IP_DIR)/mod_noplt.so \
           $(IP_DIR)/mod_gnutls.so $(IP_DIR)/mod_outer.so
IP_PLAIN = $(CSTD) $(WARN) $(OPT) -Itests/interpose
IP_GNUTLS_SO = /usr/lib/x86_64-linux-gnu/libcurl-gnutls.so.4

TEST_EXTRA += $(IP_LIB) $(IP_HOST) $(IP_MODS)

$(IP_DIR):
	mkdir -p $@

$(IP_LIB): $(IP_SRC) src/hook/interpose.h src/hook/elf_got.h \
           src/hook/curl_vt.h src/hook/libllmmeter.map \
           tests/interpose/counting_hooks.c tests/interpose/got_probe.h | $(IP_DIR)
	$(CC) $(CFLAGS) -Isrc/hook -Itests/interpose -shared \
	  -Wl,--version-script=src/hook/libllmmeter.map -Wl,-z,now -Wl,-z,relro \
	  -o $@ $(IP_SRC) tests/interpose/counting_hooks.c $(LDFLAGS) -ldl -lpthread

$(IP_HOST): tests/interpose/host_dlopen.c tests/interpose/got_probe.h | $(IP_DIR)
	$(CC) $(IP_PLAIN) -o $@ $< -ldl -lpthread

$(IP_DIR)/mod_lazy.so: tests/interpose/mod_fetch.c | $(IP_DIR)
	$(CC) $(IP_PLAIN) -fPIC -shared -Wl,-z,lazy -o $@ $< -lcurl

$(IP_DIR)/mod_now.so: tests/interpose/mod_fetch.c | $(IP_DIR)
	$(CC) $(IP_PLAIN) -fPIC -shared -Wl,-z,now -Wl,-z,relro -o $@ $< -lcurl

$(IP_DIR)/mod_noplt.so: tests/interpose/mod_fetch.c | $(IP_DIR)
	$(CC) $(IP_PLAIN) -fPIC -fno-plt -shared -Wl,-z,now -Wl,-z,relro -o $@ $< -lcurl

$(IP_DIR)/mod_gnutls.so: tests/interpose/mod_fetch.c | $(IP_DIR)
	$(CC) $(IP_PLAIN) -fPIC -shared -Wl,-z,now -Wl,-z,relro -o $@ $< $(IP_GNUTLS_SO)

$(IP_DIR)/mod_outer.so: tests/interpose/mod_outer.c | $(IP_DIR)
	$(CC) $(IP_PLAIN) -fPIC -shared -Wl,-z,now -Wl,-z,relro -o $@ $<
