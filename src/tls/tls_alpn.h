/* tls_alpn.h — h2 leaves the ALPN offer of a connection to an LLM API host.
 *
 * The transport meters HTTP/1.1: a client that negotiates h2 with an LLM
 * host would send its calls past the meter. OpenSSL has no getter for the
 * offer a client configured, so the offers the program sets (on a context
 * or on one connection) are recorded as they are set, and before a
 * connection's first flight the hook asks here whether the offer carries
 * h2: if so it sets the offer without it on that connection alone.
 * Servers then choose http/1.1 (or no ALPN, where h2 was all there was:
 * the client fails rather than go unmetered).
 *
 * Owns: the records (OpenSSL ex_data, freed with their object) and the
 * list arithmetic. Nothing at load; nothing recorded for an offer without
 * h2 on a context; one ex_data lookup per handshake call after the first.
 */
#ifndef LM_TLS_ALPN_H
#define LM_TLS_ALPN_H

#include <stddef.h>

#include "tls_real.h"

/* The ALPN wire list p[0..n) without its "h2" entries, into out (n bytes
 * at least). Returns the new length, or -1 when p is not a well-formed list
 * (then nothing is changed: such an offer is the program's to fail with).
 * *had_h2 says whether anything was removed. */
long lm_tls_alpn_strip_h2(const unsigned char *p, size_t n, unsigned char *out,
                          int *had_h2);

/* The program set an offer (the real call succeeded). */
void lm_tls_alpn_ctx_set(const struct lm_tls_real *r, SSL_CTX *ctx,
                         const unsigned char *p, unsigned n);
void lm_tls_alpn_ssl_set(const struct lm_tls_real *r, SSL *ssl,
                         const unsigned char *p, unsigned n);

/* A client connection is about to start its handshake: when this is the
 * first ask for ssl and its offer carries h2, returns the offer without it
 * (malloc'd, *len bytes, possibly 0; the caller frees), else NULL. Later
 * asks for the same ssl return NULL at the cost of one lookup. */
unsigned char *lm_tls_alpn_take_h2(const struct lm_tls_real *r, SSL *ssl,
                                   unsigned *len);

#endif
