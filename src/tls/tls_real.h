/* tls_real.h — the real OpenSSL functions behind the TLS transport's hooks.
 *
 * Owns: finding the libssl a process has loaded however it arrived (a
 * dependency of the program, a late dlopen with RTLD_LOCAL — Python's _ssl —
 * where dlsym(RTLD_NEXT) finds nothing), pinning it, and one table of the
 * functions the transport calls, published once complete.
 *
 * Never: runs at library load, allocates, prints, or returns a table with a
 * NULL among the functions the hooks forward to (SSL_read, SSL_write and
 * their _ex and peek forms): the table is complete or absent.
 */
#ifndef LM_TLS_REAL_H
#define LM_TLS_REAL_H

#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stddef.h>

struct lm_tls_real {
  int (*read)(SSL *, void *, int);
  int (*read_ex)(SSL *, void *, size_t, size_t *);
  int (*peek)(SSL *, void *, int);
  int (*peek_ex)(SSL *, void *, size_t, size_t *);
  int (*write)(SSL *, const void *, int);
  int (*write_ex)(SSL *, const void *, size_t, size_t *);
  int (*get_error)(const SSL *, int);
  int (*do_handshake)(SSL *);
  int (*connect)(SSL *);
  /* Optional (NULL: that feature stands down). */
  int (*shutdown)(SSL *);
  void *(*get_ex_data)(const SSL *, int);
  int (*set_ex_data)(SSL *, int, void *);
  int (*get_ex_new_index)(int, long, void *, CRYPTO_EX_new *, CRYPTO_EX_dup *,
                          CRYPTO_EX_free *);
  const char *(*get_servername)(const SSL *, const int);
  int (*get_fd)(const SSL *);
  int (*is_server)(const SSL *);
  int (*in_init)(const SSL *);
  int (*in_before)(const SSL *);
  int (*get_shutdown)(const SSL *);
  int (*set_alpn_protos)(SSL *, const unsigned char *, unsigned int);
  int (*ctx_set_alpn_protos)(SSL_CTX *, const unsigned char *, unsigned int);
  SSL_CTX *(*get_ssl_ctx)(const SSL *);
  void *(*ctx_get_ex_data)(const SSL_CTX *, int);
  int (*ctx_set_ex_data)(SSL_CTX *, int, void *);
};

/* The table, or NULL when no libssl with the required functions is loaded
 * (yet: a later call looks again). Thread-safe; after the first success a
 * single acquire load, inlined into every hook (a call per SSL_read was a
 * tenth of what a connection we stand aside from costs). */
const struct lm_tls_real *lm_tls_real_find(void);
extern _Atomic(const struct lm_tls_real *) lm_tls_real_published;

static inline const struct lm_tls_real *lm_tls_real(void) {
  const struct lm_tls_real *t = atomic_load_explicit(&lm_tls_real_published,
                                                     memory_order_acquire);
  return t ? t : lm_tls_real_find();
}

/* One line saying why the last lookup failed, or NULL. */
const char *lm_tls_real_error(void);

#endif
