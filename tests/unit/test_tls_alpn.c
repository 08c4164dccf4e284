/* test_tls_alpn.c — h2 leaves a recorded ALPN offer (src/tls/tls_alpn.c).
 *
 * No OpenSSL: the table handed to tls_alpn.c is a fake whose SSL and
 * SSL_CTX are plain structs carrying their ex_data slots, freed through
 * the callbacks tls_alpn.c registered (so ASan sees every record freed).
 * Checked: the list arithmetic (h2 anywhere, h2 alone, malformed lists
 * left alone), the context's offer reaching a connection, a connection's
 * own offer winning over its context's, one answer per connection.
 */
#include <stdlib.h>
#include <string.h>

#include "lm_test.h"
#include "tls_alpn.h"

#define SLOTS 4
struct fake_obj {
  void *ex[SLOTS];
  struct fake_obj *ctx; /* for a connection: its context */
};
static CRYPTO_EX_free *frees[2][SLOTS]; /* [class == SSL_CTX][index] */
static int n_index[2];

static int fake_new_index(int cls, long argl, void *argp, CRYPTO_EX_new *nf,
                          CRYPTO_EX_dup *df, CRYPTO_EX_free *ff) {
  (void)argl, (void)argp, (void)nf, (void)df;
  int c = cls == CRYPTO_EX_INDEX_SSL_CTX;
  frees[c][n_index[c]] = ff;
  return n_index[c]++;
}
static void *fake_get(const SSL *s, int i) {
  return ((struct fake_obj *)(void *)s)->ex[i];
}
static int fake_set(SSL *s, int i, void *p) {
  ((struct fake_obj *)(void *)s)->ex[i] = p;
  return 1;
}
static void *fake_ctx_get(const SSL_CTX *s, int i) {
  return ((struct fake_obj *)(void *)s)->ex[i];
}
static int fake_ctx_set(SSL_CTX *s, int i, void *p) {
  ((struct fake_obj *)(void *)s)->ex[i] = p;
  return 1;
}
static SSL_CTX *fake_get_ctx(const SSL *s) {
  return (SSL_CTX *)(void *)((struct fake_obj *)(void *)s)->ctx;
}
static int fake_set_alpn(SSL *s, const unsigned char *p, unsigned n) {
  (void)s, (void)p, (void)n;
  return 0;
}

static struct lm_tls_real R = {
    .get_ex_new_index = fake_new_index,
    .get_ex_data = fake_get,
    .set_ex_data = fake_set,
    .ctx_get_ex_data = fake_ctx_get,
    .ctx_set_ex_data = fake_ctx_set,
    .get_ssl_ctx = fake_get_ctx,
    .set_alpn_protos = fake_set_alpn,
};

static void fake_free(struct fake_obj *o, int is_ctx) {
  for (int i = 0; i < n_index[is_ctx]; i++)
    if (frees[is_ctx][i])
      frees[is_ctx][i](o, o->ex[i], NULL, i, 0, NULL);
  memset(o, 0, sizeof(*o));
}

#define L(s) ((const unsigned char *)(s)), (sizeof(s) - 1)

static long strip(const unsigned char *p, size_t n, unsigned char *out,
                  int *had) {
  return lm_tls_alpn_strip_h2(p, n, out, had);
}

LM_TEST(test_the_list_loses_h2_wherever_it_stands) {
  unsigned char out[64];
  int had = 0;
  long k = strip(L("\x02h2\x08http/1.1"), out, &had);
  CHECK(had);
  CHECK_EQ_I64(k, 9);
  CHECK(memcmp(out, "\x08http/1.1", 9) == 0);
  k = strip(L("\x08http/1.1\x02h2\x06spdy/3"), out, &had);
  CHECK(had);
  CHECK_EQ_I64(k, 16);
  CHECK(memcmp(out, "\x08http/1.1\x06spdy/3", 16) == 0);
  k = strip(L("\x02h2"), out, &had);
  CHECK(had);
  CHECK_EQ_I64(k, 0);
  /* h2c and h3 are other protocols */
  k = strip(L("\x03h2c\x02h3"), out, &had);
  CHECK(!had);
  CHECK_EQ_I64(k, 7);
}

LM_TEST(test_a_malformed_list_is_left_to_the_program) {
  unsigned char out[64];
  int had = 0;
  CHECK_EQ_I64(strip(L("\x09http/1.1"), out, &had), -1); /* overruns */
  CHECK_EQ_I64(strip(L("\x02h2\x00"), out, &had), -1);   /* empty entry */
  CHECK_EQ_I64(strip(L(""), out, &had), 0);
  CHECK(!had);
}

LM_TEST(test_a_contexts_offer_reaches_its_connections_once) {
  struct fake_obj ctx = {0}, a = {.ctx = &ctx}, b = {.ctx = &ctx};
  lm_tls_alpn_ctx_set(&R, (SSL_CTX *)(void *)&ctx, L("\x02h2\x08http/1.1"));
  unsigned n = 99;
  unsigned char *o = lm_tls_alpn_take_h2(&R, (SSL *)(void *)&a, &n);
  CHECK(o != NULL);
  CHECK_EQ_I64(n, 9);
  CHECK(o && memcmp(o, "\x08http/1.1", 9) == 0);
  free(o);
  CHECK(lm_tls_alpn_take_h2(&R, (SSL *)(void *)&a, &n) == NULL);
  o = lm_tls_alpn_take_h2(&R, (SSL *)(void *)&b, &n);
  CHECK(o != NULL);
  free(o);
  /* the context's offer replaced by one without h2: nothing to strip */
  struct fake_obj c = {.ctx = &ctx};
  lm_tls_alpn_ctx_set(&R, (SSL_CTX *)(void *)&ctx, L("\x08http/1.1"));
  CHECK(lm_tls_alpn_take_h2(&R, (SSL *)(void *)&c, &n) == NULL);
  fake_free(&a, 0);
  fake_free(&b, 0);
  fake_free(&c, 0);
  fake_free(&ctx, 1);
}

LM_TEST(test_a_connections_own_offer_wins_over_its_contexts) {
  struct fake_obj ctx = {0}, a = {.ctx = &ctx}, b = {.ctx = &ctx};
  unsigned n = 0;
  lm_tls_alpn_ctx_set(&R, (SSL_CTX *)(void *)&ctx, L("\x02h2\x08http/1.1"));
  lm_tls_alpn_ssl_set(&R, (SSL *)(void *)&a, L("\x08http/1.1"));
  CHECK(lm_tls_alpn_take_h2(&R, (SSL *)(void *)&a, &n) == NULL);
  /* and the other way round: h2 on the connection, none on the context */
  struct fake_obj plain = {0}, c = {.ctx = &plain};
  lm_tls_alpn_ssl_set(&R, (SSL *)(void *)&c, L("\x02h2\x08http/1.1"));
  unsigned char *o = lm_tls_alpn_take_h2(&R, (SSL *)(void *)&c, &n);
  CHECK(o != NULL);
  CHECK_EQ_I64(n, 9);
  free(o);
  /* h2 alone (gRPC) is left as it is: the client could not talk without
   * it, and the stream then sees HTTP/2 and applies the policy */
  struct fake_obj d = {.ctx = &plain};
  lm_tls_alpn_ssl_set(&R, (SSL *)(void *)&d, L("\x02h2"));
  CHECK(lm_tls_alpn_take_h2(&R, (SSL *)(void *)&d, &n) == NULL);
  /* an offer set once the handshake began is not recorded */
  lm_tls_alpn_ssl_set(&R, (SSL *)(void *)&c, L("\x02h2"));
  CHECK(lm_tls_alpn_take_h2(&R, (SSL *)(void *)&c, &n) == NULL);
  /* a connection set twice keeps the last */
  lm_tls_alpn_ssl_set(&R, (SSL *)(void *)&b, L("\x08http/1.1"));
  lm_tls_alpn_ssl_set(&R, (SSL *)(void *)&b, L("\x02h2\x08http/1.1"));
  o = lm_tls_alpn_take_h2(&R, (SSL *)(void *)&b, &n);
  CHECK(o != NULL);
  CHECK_EQ_I64(n, 9);
  free(o);
  fake_free(&a, 0);
  fake_free(&b, 0);
  fake_free(&c, 0);
  fake_free(&d, 0);
  fake_free(&ctx, 1);
  fake_free(&plain, 1);
}

int main(void) {
  LM_RUN(test_the_list_loses_h2_wherever_it_stands);
  LM_RUN(test_a_malformed_list_is_left_to_the_program);
  LM_RUN(test_a_contexts_offer_reaches_its_connections_once);
  LM_RUN(test_a_connections_own_offer_wins_over_its_contexts);
  LM_TEST_END();
}
