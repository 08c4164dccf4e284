/* tls_seen.c — is a TLS library llmmeter can see loaded (tls_seen.h)?
 *
 * Asked only when a process resolves an LLM API host, which is rare, but a
 * program may resolve the same host for every request. The loaded objects
 * are walked with dl_iterate_phdr (no allocation, no lock of ours held
 * while the loader holds its own), and the answer is kept with the
 * loader's load and unload counts (dlpi_adds, dlpi_subs): while those are
 * unchanged the answer is, and the walk stops at its first object.
 * Python's `ssl` module loads libssl late, with dlopen: the counts change
 * and the next question walks again.
 */
#include "tls_seen.h"

#include <link.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>

/* The remembered answer and the loader counts it was true for. */
static pthread_mutex_t memo_lock = PTHREAD_MUTEX_INITIALIZER;
static bool memo_valid, memo_seen;
static unsigned long long memo_adds, memo_subs;

struct walk {
  bool first, have_counts, valid, memo, hit, seen;
  unsigned long long adds, subs, memo_adds, memo_subs;
};

/* libssl.so, libssl.so.3 (not NSS's libssl3.so); libcurl.so.4,
 * libcurl-gnutls.so.4. */
static bool visible_object(const char *path) {
  if (!path || !*path)
    return false;
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  if (strncmp(base, "libssl.so", 9) == 0)
    return true;
  return strncmp(base, "libcurl", 7) == 0 && strstr(base + 7, ".so") != NULL;
}

static int visit(struct dl_phdr_info *info, size_t size, void *arg) {
  struct walk *w = arg;
  if (w->first) {
    w->first = false;
    if (size >=
        offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) {
      w->have_counts = true;
      w->adds = info->dlpi_adds;
      w->subs = info->dlpi_subs;
      if (w->valid && w->adds == w->memo_adds && w->subs == w->memo_subs) {
        w->hit = true;
        return 1;
      }
    }
  }
  if (visible_object(info->dlpi_name)) {
    w->seen = true;
    return 1;
  }
  return 0;
}

bool lm_tls_seen(void) {
  struct walk w = {.first = true};
  pthread_mutex_lock(&memo_lock);
  w.valid = memo_valid;
  w.memo = memo_seen;
  w.memo_adds = memo_adds;
  w.memo_subs = memo_subs;
  pthread_mutex_unlock(&memo_lock);
  dl_iterate_phdr(visit, &w);
  if (w.hit)
    return w.memo;
  if (w.have_counts) {
    pthread_mutex_lock(&memo_lock);
    memo_valid = true;
    memo_seen = w.seen;
    memo_adds = w.adds;
    memo_subs = w.subs;
    pthread_mutex_unlock(&memo_lock);
  }
  return w.seen;
}
