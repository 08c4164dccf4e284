# test_layers.sh — the layers are what the folders say.
#
# The Makefile compiles each layer with only the include paths it may use
# (a break there is a build error); these checks hold the rest: no source
# file outside a layer folder, the libcurl transport naming nothing of the
# meter's modules (only the lifecycle), the budget engine reading no
# environment, and one reader of the environment in the library.
. tests/integration/lib.sh

check layers_public_header_exists test -f include/llmmeter.h
loose=$(find src -maxdepth 1 -name '*.c' -o -maxdepth 1 -name '*.h' | tr '\n' ' ')
expect_eq layers_no_source_file_directly_in_src "$loose" ""
for d in base parse price budget http meter meter/lifecycle hook cli; do
  check "layers_folder_${d//\//_}_exists" test -d "src/$d"
done

# What the transport includes: libcurl, the interposer, its own private
# header (hook_internal.h, shared by hook.c, hook_multi.c, hook_exports.c),
# the lifecycle.
inc=$(grep -ho '#include "[^"]*"' src/hook/*.c src/hook/*.h | sort -u | tr '\n' ' ')
expect_eq layers_hook_includes_only_lifecycle_and_its_own \
  "$inc" '#include "curl_vt.h" #include "elf_got.h" #include "hook_internal.h" #include "interpose.h" #include "lifecycle.h" '
# What it calls: no function of the JSON, price, budget or meter modules.
calls=$(grep -hoE '\blm_(json|sse|framer|extract|reqscan|detect|price|budget|segment|status|money|window|inject|ledger|notify|config|transfer|deny)_[a-z_]*' \
  src/hook/*.c | sort -u | tr '\n' ' ')
expect_eq layers_hook_calls_nothing_below_the_lifecycle "$calls" ""
# HTTP framing sees base/ and llhttp only: nothing of TLS, libcurl or the
# meter (the OpenSSL transport uses it; it uses no transport).
inc=$(grep -ho '#include "[^"]*"' src/http/*.c src/http/*.h | sort -u | tr '\n' ' ')
expect_eq layers_http_includes_only_its_own_and_llhttp \
  "$inc" '#include "decode.h" #include "http1.h" #include "llhttp.h" '
sys=$(grep -hoE '#include <(curl|openssl)/[^>]*>' src/http/*.c src/http/*.h | tr '\n' ' ')
expect_eq layers_http_includes_no_tls_or_curl "$sys" ""
# The framing's state is the caller's struct: it never allocates.
alloc=$(grep -lE '\b(malloc|calloc|realloc|llhttp_alloc)\(' src/http/http1.c | tr '\n' ' ')
expect_eq layers_http1_never_allocates "$alloc" ""
# The libraries it decodes with are loaded when first needed, never linked.
needed=$(readelf -d "$LIB" 2>/dev/null | grep -oE 'lib(z|brotli[a-z]*|zstd)\.so[.0-9]*' | tr '\n' ' ')
expect_eq layers_library_links_no_decompressor "$needed" ""

# The leak guard's resolver hook is a transport too: its own header, the
# lifecycle headers (lifecycle.h for the printer, resolve.h for the
# verdict), and nothing of the meter's modules.
check layers_folder_resolve_exists test -d src/resolve
inc=$(grep -ho '#include "[^"]*"' src/resolve/*.c src/resolve/*.h | sort -u | tr '\n' ' ')
expect_eq layers_resolve_includes_only_lifecycle_and_its_own \
  "$inc" '#include "lifecycle.h" #include "resolve.h" #include "tls_seen.h" '
calls=$(grep -hoE '\blm_(json|sse|framer|extract|reqscan|detect|price|budget|segment|status|money|window|inject|ledger|notify|config|transfer|deny)_[a-z_]*' \
  src/resolve/*.c | sort -u | tr '\n' ' ')
expect_eq layers_resolve_calls_nothing_below_the_lifecycle "$calls" ""
inc=$(grep -ho '#include "[^"]*"' src/meter/lifecycle/resolve.h | tr '\n' ' ')
expect_eq layers_resolve_header_includes_no_llmmeter_header "$inc" ""

# The OpenSSL transport: its own headers, the lifecycle (lifecycle.h;
# resolve.h for lm_meter_llm_host, the ALPN filter's question) and the
# HTTP framing (http1.h, decode.h), and nothing of the meter's modules; the
# unit of money and policy stays below the lifecycle.
check layers_folder_tls_exists test -d src/tls
inc=$(grep -ho '#include "[^"]*"' src/tls/*.c src/tls/*.h | sort -u | tr '\n' ' ')
expect_eq layers_tls_includes_only_lifecycle_http_and_its_own \
  "$inc" '#include "decode.h" #include "http1.h" #include "lifecycle.h" #include "resolve.h" #include "tls_alpn.h" #include "tls_real.h" #include "tls_stream.h" '
calls=$(grep -hoE '\blm_(json|sse|framer|extract|reqscan|detect|price|budget|segment|status|money|window|inject|ledger|notify|config|transfer|deny)_[a-z_]*' \
  src/tls/*.c | sort -u | tr '\n' ' ')
expect_eq layers_tls_calls_nothing_below_the_lifecycle "$calls" ""

# The lifecycle header stands alone: a transport reaches nothing through it.
inc=$(grep -ho '#include "[^"]*"' src/meter/lifecycle/lifecycle.h | tr '\n' ' ')
expect_eq layers_lifecycle_header_includes_no_llmmeter_header "$inc" ""

# The engine and the parsers read no environment; config.c is the
# library's one reader (the CLI's `run` sets LD_PRELOAD for its child).
env=$(grep -lE '\b(getenv|secure_getenv)\(' src/*/*.c | sort | tr '\n' ' ')
expect_eq layers_one_reader_of_the_environment "$env" "src/cli/cli.c src/meter/config.c "
