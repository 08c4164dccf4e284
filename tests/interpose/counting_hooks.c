/* counting_hooks.c — a stand-in hook layer for testing src/interpose.c.
 *
 * Linked with src/interpose.c into build/tests/libinterpose_test.so and
 * preloaded into real and synthetic hosts. It exports the curl_* entry
 * points of struct lm_curl_vt, builds one table of per-instance hook
 * functions for each slot k, counts every call per instance and forwards it
 * to lm_interpose_real(k). Handles are mapped to the instance that created
 * them, so handle calls reach their own libcurl.
 *
 * If LM_IP_COUNT_FILE is set, every curl_easy_perform and
 * curl_multi_add_handle that reaches a hook appends, at once (hosts such as
 * PHP leave with _exit and run no destructor):
 *   event pid=P fn=easy_perform|multi_add_handle k=K via=export|patch
 *         lib=PATH version=STRING
 *   got patched=N relro=N relro_writable=N
 * and at a normal exit it appends a report (one write per line):
 *   proc pid=P init=0|1 instances=N
 *   instance k=K lib=PATH version=STRING easy_init=N easy_perform=N
 *            multi_add_handle=N multi_perform=N via_export=N via_patch=N
 *   got patched=N relro=N relro_writable=N
 *   error TEXT                    (lm_interpose_last_error, if any)
 * "got" counts curl_* slots, in every loaded object, that hold one of our
 * per-instance hooks, those of them inside PT_GNU_RELRO, and those of the
 * latter whose page is writable in /proc/self/maps (must be 0).
 */
#define CURL_DISABLE_TYPECHECK 1 /* we define curl_easy_setopt itself */
#include "interpose.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "got_probe.h"

#define EXPORT __attribute__((visibility("default")))

enum {
  I_EASY_INIT,
  I_EASY_SETOPT,
  I_EASY_PERFORM,
  I_EASY_DUPHANDLE,
  I_EASY_RESET,
  I_EASY_CLEANUP,
  I_EASY_GETINFO,
  I_EASY_PAUSE,
  I_MULTI_INIT,
  I_MULTI_ADD,
  I_MULTI_REMOVE,
  I_MULTI_PERFORM,
  I_MULTI_SOCKET_ACTION,
  I_MULTI_INFO_READ,
  I_MULTI_CLEANUP
};

static unsigned long g_calls[LM_MAX_CURL_INSTANCES][LM_CURL_VT_COUNT];
static unsigned long g_via[LM_MAX_CURL_INSTANCES][2]; /* [0] export [1] patch */
static int g_inited;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static struct lm_curl_vt g_hook_tables[LM_MAX_CURL_INSTANCES];
static struct lm_curl_vt g_export_table;

/* ---- handle -> instance ---------------------------------------------- */

#define MAP_SIZE 1024
static pthread_mutex_t g_map_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
  const void *h;
  int k;
} g_map[MAP_SIZE];

static void map_put(const void *h, int k) {
  if (!h)
    return;
  pthread_mutex_lock(&g_map_lock);
  int free_i = -1;
  for (int i = 0; i < MAP_SIZE; i++) {
    if (g_map[i].h == h) {
      free_i = i;
      break;
    }
    if (!g_map[i].h && free_i < 0)
      free_i = i;
  }
  if (free_i >= 0) {
    g_map[free_i].h = h;
    g_map[free_i].k = k;
  }
  pthread_mutex_unlock(&g_map_lock);
}

static int map_get(const void *h) {
  int k = -1;
  pthread_mutex_lock(&g_map_lock);
  for (int i = 0; i < MAP_SIZE; i++)
    if (g_map[i].h == h) {
      k = g_map[i].k;
      break;
    }
  pthread_mutex_unlock(&g_map_lock);
  return k;
}

static void map_del(const void *h) {
  pthread_mutex_lock(&g_map_lock);
  for (int i = 0; i < MAP_SIZE; i++)
    if (g_map[i].h == h)
      g_map[i].h = NULL;
  pthread_mutex_unlock(&g_map_lock);
}

/* ---- init ------------------------------------------------------------- */

static void build_tables(void);

static void do_init(void) {
  build_tables();
  lm_interpose_init(g_hook_tables, &g_export_table);
  __atomic_store_n(&g_inited, 1, __ATOMIC_RELEASE);
}

void lm_hook_ensure_init(void) { pthread_once(&g_once, do_init); }

/* The instance for a call: kk >= 0 is a per-instance hook's own slot; for
 * an export (kk < 0) the handle's recorded instance, else the caller's. */
static int route(int kk, const void *h, const void *ret, const char *name) {
  lm_hook_ensure_init();
  int k = h ? map_get(h) : -1;
  if (k < 0)
    k = kk;
  if (k < 0)
    k = lm_interpose_instance_for_caller(ret, name);
  return k;
}

static void count(int k, int idx, int kk) {
  if (k < 0 || k >= LM_MAX_CURL_INSTANCES)
    return;
  __atomic_fetch_add(&g_calls[k][idx], 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(&g_via[k][kk >= 0], 1, __ATOMIC_RELAXED);
}

static void event(int k, const char *fn, int kk);

#define REAL(k, member) \
  (lm_interpose_real(k) ? lm_interpose_real(k)->member : NULL)

/* ---- the forwarding bodies, shared by exports and per-instance hooks --- */

static CURL *do_easy_init(int kk, const void *ret) {
  int k = route(kk, NULL, ret, "curl_easy_init");
  CURL *(*fn)(void) = REAL(k, easy_init);
  count(k, I_EASY_INIT, kk);
  CURL *h = fn ? fn() : NULL;
  map_put(h, k);
  return h;
}

static CURLcode do_easy_setopt(int kk, const void *ret, CURL *h, CURLoption o,
                               va_list ap) {
  int k = route(kk, h, ret, "curl_easy_setopt");
  CURLcode (*fn)(CURL *, CURLoption, ...) = REAL(k, easy_setopt);
  count(k, I_EASY_SETOPT, kk);
  if (!fn)
    return CURLE_FAILED_INIT;
  switch (o / 10000) {
  case 0:
    return fn(h, o, va_arg(ap, long));
  case 2:
    return fn(h, o, va_arg(ap, void (*)(void)));
  case 3:
    return fn(h, o, va_arg(ap, curl_off_t));
  default:
    return fn(h, o, va_arg(ap, void *)); /* object pointer, blob */
  }
}

static CURLcode do_easy_perform(int kk, const void *ret, CURL *h) {
  int k = route(kk, h, ret, "curl_easy_perform");
  CURLcode (*fn)(CURL *) = REAL(k, easy_perform);
  count(k, I_EASY_PERFORM, kk);
  event(k, "easy_perform", kk);
  return fn ? fn(h) : CURLE_FAILED_INIT;
}

static CURL *do_easy_duphandle(int kk, const void *ret, CURL *h) {
  int k = route(kk, h, ret, "curl_easy_duphandle");
  CURL *(*fn)(CURL *) = REAL(k, easy_duphandle);
  count(k, I_EASY_DUPHANDLE, kk);
  CURL *d = fn ? fn(h) : NULL;
  map_put(d, k);
  return d;
}

static void do_easy_reset(int kk, const void *ret, CURL *h) {
  int k = route(kk, h, ret, "curl_easy_reset");
  void (*fn)(CURL *) = REAL(k, easy_reset);
  count(k, I_EASY_RESET, kk);
  if (fn)
    fn(h);
}

static void do_easy_cleanup(int kk, const void *ret, CURL *h) {
  int k = route(kk, h, ret, "curl_easy_cleanup");
  void (*fn)(CURL *) = REAL(k, easy_cleanup);
  count(k, I_EASY_CLEANUP, kk);
  map_del(h);
  if (fn)
    fn(h);
}

static CURLcode do_easy_getinfo(int kk, const void *ret, CURL *h, CURLINFO i,
                                va_list ap) {
  int k = route(kk, h, ret, "curl_easy_getinfo");
  CURLcode (*fn)(CURL *, CURLINFO, ...) = REAL(k, easy_getinfo);
  count(k, I_EASY_GETINFO, kk);
  return fn ? fn(h, i, va_arg(ap, void *)) : CURLE_FAILED_INIT;
}

static CURLcode do_easy_pause(int kk, const void *ret, CURL *h, int bits) {
  int k = route(kk, h, ret, "curl_easy_pause");
  CURLcode (*fn)(CURL *, int) = REAL(k, easy_pause);
  count(k, I_EASY_PAUSE, kk);
  return fn ? fn(h, bits) : CURLE_FAILED_INIT;
}

static CURLM *do_multi_init(int kk, const void *ret) {
  int k = route(kk, NULL, ret, "curl_multi_init");
  CURLM *(*fn)(void) = REAL(k, multi_init);
  count(k, I_MULTI_INIT, kk);
  CURLM *m = fn ? fn() : NULL;
  map_put(m, k);
  return m;
}

static CURLMcode do_multi_add(int kk, const void *ret, CURLM *m, CURL *e) {
  int k = route(kk, m, ret, "curl_multi_add_handle");
  CURLMcode (*fn)(CURLM *, CURL *) = REAL(k, multi_add_handle);
  count(k, I_MULTI_ADD, kk);
  event(k, "multi_add_handle", kk);
  return fn ? fn(m, e) : CURLM_INTERNAL_ERROR;
}

static CURLMcode do_multi_remove(int kk, const void *ret, CURLM *m, CURL *e) {
  int k = route(kk, m, ret, "curl_multi_remove_handle");
  CURLMcode (*fn)(CURLM *, CURL *) = REAL(k, multi_remove_handle);
  count(k, I_MULTI_REMOVE, kk);
  return fn ? fn(m, e) : CURLM_INTERNAL_ERROR;
}

static CURLMcode do_multi_perform(int kk, const void *ret, CURLM *m, int *r) {
  int k = route(kk, m, ret, "curl_multi_perform");
  CURLMcode (*fn)(CURLM *, int *) = REAL(k, multi_perform);
  count(k, I_MULTI_PERFORM, kk);
  return fn ? fn(m, r) : CURLM_INTERNAL_ERROR;
}

static CURLMcode do_multi_socket_action(int kk, const void *ret, CURLM *m,
                                        curl_socket_t s, int ev, int *r) {
  int k = route(kk, m, ret, "curl_multi_socket_action");
  CURLMcode (*fn)(CURLM *, curl_socket_t, int,
                  int *) = REAL(k, multi_socket_action);
  count(k, I_MULTI_SOCKET_ACTION, kk);
  return fn ? fn(m, s, ev, r) : CURLM_INTERNAL_ERROR;
}

static CURLMsg *do_multi_info_read(int kk, const void *ret, CURLM *m, int *q) {
  int k = route(kk, m, ret, "curl_multi_info_read");
  CURLMsg *(*fn)(CURLM *, int *) = REAL(k, multi_info_read);
  count(k, I_MULTI_INFO_READ, kk);
  return fn ? fn(m, q) : NULL;
}

static CURLMcode do_multi_cleanup(int kk, const void *ret, CURLM *m) {
  int k = route(kk, m, ret, "curl_multi_cleanup");
  CURLMcode (*fn)(CURLM *) = REAL(k, multi_cleanup);
  count(k, I_MULTI_CLEANUP, kk);
  map_del(m);
  return fn ? fn(m) : CURLM_INTERNAL_ERROR;
}

/* ---- one set of functions per entry: exports (K = -1) and hooks K ---- */

#define RA __builtin_return_address(0)
#define DEFINE_SET(P, K, ATTR)                                                 \
  ATTR CURL *P##easy_init(void) { return do_easy_init(K, RA); }                \
  ATTR CURLcode P##easy_setopt(CURL *h, CURLoption o, ...) {                   \
    va_list ap;                                                                \
    va_start(ap, o);                                                           \
    CURLcode rc = do_easy_setopt(K, RA, h, o, ap);                             \
    va_end(ap);                                                                \
    return rc;                                                                 \
  }                                                                            \
  ATTR CURLcode P##easy_perform(CURL *h) { return do_easy_perform(K, RA, h); } \
  ATTR CURL *P##easy_duphandle(CURL *h) {                                      \
    return do_easy_duphandle(K, RA, h);                                        \
  }                                                                            \
  ATTR void P##easy_reset(CURL *h) { do_easy_reset(K, RA, h); }                \
  ATTR void P##easy_cleanup(CURL *h) { do_easy_cleanup(K, RA, h); }            \
  ATTR CURLcode P##easy_getinfo(CURL *h, CURLINFO i, ...) {                    \
    va_list ap;                                                                \
    va_start(ap, i);                                                           \
    CURLcode rc = do_easy_getinfo(K, RA, h, i, ap);                            \
    va_end(ap);                                                                \
    return rc;                                                                 \
  }                                                                            \
  ATTR CURLcode P##easy_pause(CURL *h, int b) {                                \
    return do_easy_pause(K, RA, h, b);                                         \
  }                                                                            \
  ATTR CURLM *P##multi_init(void) { return do_multi_init(K, RA); }             \
  ATTR CURLMcode P##multi_add_handle(CURLM *m, CURL *e) {                      \
    return do_multi_add(K, RA, m, e);                                          \
  }                                                                            \
  ATTR CURLMcode P##multi_remove_handle(CURLM *m, CURL *e) {                   \
    return do_multi_remove(K, RA, m, e);                                       \
  }                                                                            \
  ATTR CURLMcode P##multi_perform(CURLM *m, int *r) {                          \
    return do_multi_perform(K, RA, m, r);                                      \
  }                                                                            \
  ATTR CURLMcode P##multi_socket_action(CURLM *m, curl_socket_t s, int ev,     \
                                        int *r) {                              \
    return do_multi_socket_action(K, RA, m, s, ev, r);                         \
  }                                                                            \
  ATTR CURLMsg *P##multi_info_read(CURLM *m, int *q) {                         \
    return do_multi_info_read(K, RA, m, q);                                    \
  }                                                                            \
  ATTR CURLMcode P##multi_cleanup(CURLM *m) {                                  \
    return do_multi_cleanup(K, RA, m);                                         \
  }

#define TABLE(P)                                                        \
  {                                                                     \
    P##easy_init, P##easy_setopt, P##easy_perform, P##easy_duphandle,   \
        P##easy_reset, P##easy_cleanup, P##easy_getinfo, P##easy_pause, \
        P##multi_init, P##multi_add_handle, P##multi_remove_handle,     \
        P##multi_perform, P##multi_socket_action, P##multi_info_read,   \
        P##multi_cleanup                                                \
  }

DEFINE_SET(curl_, -1, EXPORT)
DEFINE_SET(hk0_, 0, static)
DEFINE_SET(hk1_, 1, static)
DEFINE_SET(hk2_, 2, static)
DEFINE_SET(hk3_, 3, static)

static void build_tables(void) {
  static const struct lm_curl_vt hooks[LM_MAX_CURL_INSTANCES] = {
      TABLE(hk0_), TABLE(hk1_), TABLE(hk2_), TABLE(hk3_)};
  static const struct lm_curl_vt exports = TABLE(curl_);
  memcpy(g_hook_tables, hooks, sizeof hooks);
  g_export_table = exports;
}

/* ---- exit report ------------------------------------------------------ */

struct got_tally {
  int patched, relro, relro_writable;
};

static int is_hook(uintptr_t v) {
  for (int k = 0; k < LM_MAX_CURL_INSTANCES; k++)
    for (int i = 0; i < LM_CURL_VT_COUNT; i++) {
      void *p;
      memcpy(&p, (char *)&g_hook_tables[k] + (size_t)i * sizeof p, sizeof p);
      if ((uintptr_t)p == v)
        return 1;
    }
  return 0;
}

struct got_walk {
  struct got_probe_obj o;
  struct got_tally *t;
};

static void tally_slot(uintptr_t *slot, const char *name, void *arg) {
  struct got_walk *w = arg;
  (void)name;
  if (!is_hook(*slot))
    return;
  w->t->patched++;
  if (!got_probe_in_relro(&w->o, (uintptr_t)slot))
    return;
  w->t->relro++;
  char perms[5];
  got_probe_perms((uintptr_t)slot, perms);
  if (perms[1] != '-')
    w->t->relro_writable++;
}

static int tally_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  struct got_walk w = {{info->dlpi_addr, info->dlpi_phdr, info->dlpi_phnum},
                       arg};
  (void)size;
  got_probe_each(&w.o, "curl_", tally_slot, &w);
  return 0;
}

static void emit(int fd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void emit(int fd, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n > 0)
    (void)!write(fd, line,
                 (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* Library path and curl_version() of instance k. */
static void describe(int k, const char **lib, const char **version) {
  const struct lm_curl_vt *vt = lm_interpose_real(k);
  Dl_info info;
  void *fnp = NULL;
  *lib = "?";
  *version = "?";
  if (vt)
    memcpy(&fnp, &vt->easy_perform, sizeof fnp);
  if (!fnp || !dladdr(fnp, &info) || !info.dli_fname)
    return;
  *lib = info.dli_fname;
  void *h = dlopen(*lib, RTLD_LAZY | RTLD_NOLOAD);
  char *(*ver)(void) = NULL;
  if (h) {
    void *p = dlsym(h, "curl_version");
    memcpy(&ver, &p, sizeof ver);
    dlclose(h);
  }
  if (ver)
    *version = ver();
}

static void emit_got(int fd) {
  struct got_tally t = {0, 0, 0};
  dl_iterate_phdr(tally_cb, &t);
  emit(fd, "got patched=%d relro=%d relro_writable=%d\n", t.patched, t.relro,
       t.relro_writable);
}

static void event(int k, const char *fn, int kk) {
  const char *path = getenv("LM_IP_COUNT_FILE");
  if (!path)
    return;
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return;
  const char *lib, *version;
  describe(k, &lib, &version);
  emit(fd, "event pid=%d fn=%s k=%d via=%s lib=%s version=%s\n", (int)getpid(),
       fn, k, kk >= 0 ? "patch" : "export", lib, version);
  emit_got(fd);
  close(fd);
}

__attribute__((destructor)) static void report(void) {
  const char *path = getenv("LM_IP_COUNT_FILE");
  if (!path)
    return;
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return;
  int inited = __atomic_load_n(&g_inited, __ATOMIC_ACQUIRE);
  int n = inited ? lm_interpose_count() : 0;
  emit(fd, "proc pid=%d init=%d instances=%d\n", (int)getpid(), inited, n);
  for (int k = 0; k < n; k++) {
    const char *lib, *version;
    describe(k, &lib, &version);
    emit(fd,
         "instance k=%d lib=%s version=%s easy_init=%lu easy_perform=%lu "
         "multi_add_handle=%lu multi_perform=%lu via_export=%lu "
         "via_patch=%lu\n",
         k, lib, version, g_calls[k][I_EASY_INIT], g_calls[k][I_EASY_PERFORM],
         g_calls[k][I_MULTI_ADD], g_calls[k][I_MULTI_PERFORM], g_via[k][0],
         g_via[k][1]);
  }
  if (inited)
    emit_got(fd);
  const char *err = lm_interpose_last_error();
  if (err)
    emit(fd, "error %s\n", err);
  close(fd);
}
