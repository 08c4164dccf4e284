/* tls_seen.h — is a TLS library llmmeter can see loaded into this process?
 *
 * "See" means meter: libcurl (any build: src/hook/) and OpenSSL's libssl
 * (the OpenSSL transport, src/tls/). A process with neither that still
 * reaches an LLM host does its TLS where llmmeter cannot look (linked in
 * statically, or a library llmmeter does not hook). Never allocates, never
 * prints; thread-safe.
 */
#ifndef LM_TLS_SEEN_H
#define LM_TLS_SEEN_H

#include <stdbool.h>

/* Whether a libssl.so* or libcurl*.so* object is loaded now. Remembered
 * until the set of loaded objects changes (a dlopen or dlclose), so asking
 * again costs one step of dl_iterate_phdr. */
bool lm_tls_seen(void);

#endif
