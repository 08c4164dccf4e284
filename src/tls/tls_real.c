/* tls_real.c — finds the loaded libssl and fills the table of its real
 * functions (see tls_real.h).
 *
 * Why not dlsym(RTLD_NEXT): the library's exported SSL_* hooks are reached
 * by every module that binds to SSL_* through the global scope, including
 * modules loaded with RTLD_LOCAL (the preload comes first in every lookup
 * scope). But a libssl that arrived with such a module — CPython's _ssl
 * extension is dlopen()ed late, RTLD_LOCAL — is not on the global search
 * list, so RTLD_NEXT finds nothing. The loader's list of objects
 * (dl_iterate_phdr) holds every object however it was loaded: the first
 * libssl.so.* there is opened again with RTLD_NOLOAD (no new load; a
 * handle on the loaded object) and RTLD_NODELETE (our table must outlive
 * the program's dlclose), and its functions are looked up on that handle,
 * which also searches its dependencies (libcrypto's ex_data index).
 *
 * One libssl per process is assumed: a second, different libssl (1.1 and 3
 * both loaded) is not looked at; SSL objects of the second would reach the
 * first's functions. Never seen in the runtimes we meter; said here so it
 * is a known limit.
 */
#include "tls_real.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static struct lm_tls_real table;
_Atomic(const struct lm_tls_real *) lm_tls_real_published;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const char *_Atomic last_error;

struct found {
  char path[4096];
};

/* Whether an object's file name is a libssl ("/usr/lib/.../libssl.so.3"). */
static int is_libssl(const char *name) {
  const char *base = strrchr(name, '/');
  base = base ? base + 1 : name;
  return strncmp(base, "libssl.so", 9) == 0;
}

static int find_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  struct found *f = arg;
  if (!info->dlpi_name || !info->dlpi_name[0] || !is_libssl(info->dlpi_name))
    return 0;
  snprintf(f->path, sizeof(f->path), "%s", info->dlpi_name);
  return 1;
}

#define GET(member, name) (*(void **)&t->member = dlsym(h, name))

static int fill(struct lm_tls_real *t, void *h) {
  GET(read, "SSL_read");
  GET(read_ex, "SSL_read_ex");
  GET(peek, "SSL_peek");
  GET(peek_ex, "SSL_peek_ex");
  GET(write, "SSL_write");
  GET(write_ex, "SSL_write_ex");
  GET(get_error, "SSL_get_error");
  GET(do_handshake, "SSL_do_handshake");
  GET(connect, "SSL_connect");
  GET(shutdown, "SSL_shutdown");
  GET(get_ex_data, "SSL_get_ex_data");
  GET(set_ex_data, "SSL_set_ex_data");
  GET(get_ex_new_index, "CRYPTO_get_ex_new_index");
  GET(get_servername, "SSL_get_servername");
  GET(get_fd, "SSL_get_fd");
  GET(is_server, "SSL_is_server");
  GET(in_init, "SSL_in_init");
  GET(in_before, "SSL_in_before");
  GET(get_shutdown, "SSL_get_shutdown");
  GET(set_alpn_protos, "SSL_set_alpn_protos");
  GET(ctx_set_alpn_protos, "SSL_CTX_set_alpn_protos");
  GET(get_ssl_ctx, "SSL_get_SSL_CTX");
  GET(ctx_get_ex_data, "SSL_CTX_get_ex_data");
  GET(ctx_set_ex_data, "SSL_CTX_set_ex_data");
  return t->read && t->read_ex && t->peek && t->peek_ex && t->write &&
         t->write_ex && t->get_error && t->do_handshake && t->connect;
}

const struct lm_tls_real *lm_tls_real_find(void) {
  pthread_mutex_lock(&lock);
  const struct lm_tls_real *t = atomic_load_explicit(&lm_tls_real_published,
                                                     memory_order_relaxed);
  if (!t) {
    struct found f = {{0}};
    dl_iterate_phdr(find_cb, &f);
    /* No libssl.so: the SSL_* functions may still be defined by the program
     * itself (OpenSSL linked in statically, symbols exported for addons, as
     * NodeSource's node does), which RTLD_NEXT finds. */
    void *h = f.path[0] ? dlopen(f.path, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE)
                        : RTLD_NEXT;
    if (!h)
      atomic_store(&last_error, "the loaded libssl could not be opened again");
    else if (!fill(&table, h))
      atomic_store(&last_error, f.path[0]
                                    ? "the loaded libssl lacks SSL_read_ex or "
                                      "SSL_write_ex (OpenSSL older than 1.1.1)"
                                    : "no libssl.so is loaded in this process");
    else {
      t = &table;
      atomic_store_explicit(&lm_tls_real_published, t, memory_order_release);
    }
  }
  pthread_mutex_unlock(&lock);
  return t;
}

const char *lm_tls_real_error(void) { return atomic_load(&last_error); }
