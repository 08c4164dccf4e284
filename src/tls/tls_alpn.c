/* tls_alpn.c — recorded ALPN offers and the h2 filter (see tls_alpn.h).
 *
 * A record is { had_h2, len, the offer without h2 }: computed once when
 * the program sets the offer, so the handshake path only copies it. A
 * connection's own record (SSL_set_alpn_protos) wins over its context's,
 * as in OpenSSL; once a connection has been asked about, its slot holds
 * DONE and every later ask is one lookup.
 */
#include "tls_alpn.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct alpn_rec {
  int had_h2;
  unsigned len;
  unsigned char p[];
};

static char done_mark;
#define DONE ((struct alpn_rec *)(void *)&done_mark)

static atomic_int ssl_idx = -1, ctx_idx = -1;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static const struct lm_tls_real *real_for_once;

static void free_rec(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                     long argl, void *argp) {
  (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
  if (ptr && ptr != DONE)
    free(ptr);
}

static void make_indexes(void) {
  const struct lm_tls_real *r = real_for_once;
  if (!r->get_ex_new_index || !r->get_ex_data || !r->set_ex_data ||
      !r->ctx_get_ex_data || !r->ctx_set_ex_data || !r->get_ssl_ctx ||
      !r->set_alpn_protos)
    return;
  atomic_store(&ssl_idx, r->get_ex_new_index(CRYPTO_EX_INDEX_SSL, 0, NULL, NULL,
                                             NULL, free_rec));
  atomic_store(&ctx_idx, r->get_ex_new_index(CRYPTO_EX_INDEX_SSL_CTX, 0, NULL,
                                             NULL, NULL, free_rec));
}

static int indexes(const struct lm_tls_real *r, int *si, int *ci) {
  if (atomic_load_explicit(&ctx_idx, memory_order_acquire) < 0) {
    real_for_once = r;
    pthread_once(&once, make_indexes);
  }
  *si = atomic_load(&ssl_idx);
  *ci = atomic_load(&ctx_idx);
  return *si >= 0 && *ci >= 0;
}

long lm_tls_alpn_strip_h2(const unsigned char *p, size_t n, unsigned char *out,
                          int *had_h2) {
  size_t i = 0, k = 0;
  *had_h2 = 0;
  while (i < n) {
    size_t len = p[i];
    if (len == 0 || len > n - i - 1)
      return -1;
    if (len == 2 && p[i + 1] == 'h' && p[i + 2] == '2') {
      *had_h2 = 1;
    } else {
      memmove(out + k, p + i, len + 1);
      k += len + 1;
    }
    i += len + 1;
  }
  return (long)k;
}

/* A record for p[0..n), or NULL (no h2 and not wanted, malformed, or out
 * of memory: then the offer stands as the program set it). */
static struct alpn_rec *record(const unsigned char *p, unsigned n,
                               int keep_plain) {
  struct alpn_rec *rec = malloc(sizeof(*rec) + (n ? n : 1));
  if (!rec)
    return NULL;
  rec->had_h2 = 0;
  long k = p ? lm_tls_alpn_strip_h2(p, n, rec->p, &rec->had_h2) : 0;
  if (k < 0 || (!rec->had_h2 && !keep_plain)) {
    free(rec);
    return NULL;
  }
  rec->len = (unsigned)k;
  return rec;
}

void lm_tls_alpn_ctx_set(const struct lm_tls_real *r, SSL_CTX *ctx,
                         const unsigned char *p, unsigned n) {
  int si, ci;
  if (!ctx || !indexes(r, &si, &ci))
    return;
  struct alpn_rec *old = r->ctx_get_ex_data(ctx, ci);
  struct alpn_rec *rec = record(p, n, 0);
  if (r->ctx_set_ex_data(ctx, ci, rec))
    free(old);
  else
    free(rec);
}

void lm_tls_alpn_ssl_set(const struct lm_tls_real *r, SSL *ssl,
                         const unsigned char *p, unsigned n) {
  int si, ci;
  if (!ssl || !indexes(r, &si, &ci))
    return;
  struct alpn_rec *old = r->get_ex_data(ssl, si);
  if (old == DONE)
    return; /* set after the handshake began: it no longer goes out */
  /* kept even without h2: it overrides the context's offer */
  struct alpn_rec *rec = record(p, n, 1);
  if (!rec)
    return;
  if (r->set_ex_data(ssl, si, rec))
    free(old);
  else
    free(rec);
}

unsigned char *lm_tls_alpn_take_h2(const struct lm_tls_real *r, SSL *ssl,
                                   unsigned *len) {
  int si, ci;
  if (!indexes(r, &si, &ci))
    return NULL;
  struct alpn_rec *rec = r->get_ex_data(ssl, si);
  if (rec == DONE)
    return NULL;
  int own = rec != NULL;
  if (!rec) {
    SSL_CTX *ctx = r->get_ssl_ctx(ssl);
    rec = ctx ? r->ctx_get_ex_data(ctx, ci) : NULL;
  }
  unsigned char *out = NULL;
  /* An offer of h2 alone (gRPC) keeps it: without h2 such a client cannot
   * talk at all, and with it the stream sees HTTP/2, which the policy
   * refuses or warns about like any traffic it cannot follow. */
  if (rec && rec->had_h2 && rec->len > 0 && (out = malloc(rec->len))) {
    memcpy(out, rec->p, rec->len);
    *len = rec->len;
  }
  if (r->set_ex_data(ssl, si, DONE) && own)
    free(rec);
  return out;
}
