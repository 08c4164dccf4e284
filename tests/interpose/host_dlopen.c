/* host_dlopen.c — a host that is not linked against libcurl and reaches it
 * only through a dlopen()ed module, the way PHP, Python and Perl do.
 *
 *   host_dlopen MODE MODULE URL [--multi] [--reopen] [--thread MODULE2]
 *                               [--outer OUTER]
 *
 * MODE: local-now (RTLD_LOCAL|RTLD_NOW), local-lazy (RTLD_LOCAL|RTLD_LAZY),
 * global-deepbind (RTLD_GLOBAL|RTLD_NOW|RTLD_DEEPBIND), local-deepbind-lazy.
 * For each round (two with --reopen: dlclose, then dlopen again) it prints
 *   round=R rc=RC body=BODY
 *   slot=hook|real|stub|other relro=0|1 perms=PERMS
 * where slot classifies what the module's GOT slot for curl_easy_perform
 * (curl_multi_perform with --multi) holds after the call.
 * --thread MODULE2: a second thread loads MODULE2 (RTLD_LOCAL|RTLD_NOW)
 * and fetches in a loop while the main thread loads MODULE; prints
 * "thread fetches=N failures=F".
 * --outer OUTER: load OUTER with RTLD_LOCAL|RTLD_NOW|RTLD_DEEPBIND first and
 * open MODULE through its outer_dlopen(), i.e. from inside a DEEPBIND module.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "got_probe.h"

typedef int (*fetch_fn)(const char *, int, char *, size_t);
typedef void *(*outer_dlopen_fn)(const char *, int);

struct slot_look {
  const char *want;
  uintptr_t *slot;
};

static void find_slot(uintptr_t *slot, const char *name, void *arg) {
  struct slot_look *l = arg;
  if (strcmp(name, l->want) == 0)
    l->slot = slot;
}

static const char *classify(uintptr_t v, const char *module) {
  Dl_info info;
  if (!dladdr((void *)v, &info) || !info.dli_fname)
    return "other";
  if (strstr(info.dli_fname, "libinterpose_test"))
    return "hook";
  if (strstr(info.dli_fname, "libcurl"))
    return "real";
  if (strstr(info.dli_fname, module))
    return "stub";
  return "other";
}

static volatile int g_stop;
static const char *g_url;
static int g_thread_fetches, g_thread_failures;

static void *fetch_loop(void *arg) {
  void *h = dlopen((const char *)arg, RTLD_LOCAL | RTLD_NOW);
  fetch_fn fetch = h ? (fetch_fn)(uintptr_t)dlsym(h, "mod_fetch") : NULL;
  char body[256];
  if (!fetch) {
    g_thread_failures = -1;
    return NULL;
  }
  while (!g_stop || g_thread_fetches < 3) {
    if (fetch(g_url, 0, body, sizeof body) != 0)
      g_thread_failures++;
    g_thread_fetches++;
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr,
            "usage: %s MODE MODULE URL [--multi] [--reopen] "
            "[--thread MODULE2]\n",
            argv[0]);
    return 2;
  }
  const char *mode = argv[1], *module = argv[2], *url = argv[3];
  const char *thread_module = NULL, *outer = NULL;
  int multi = 0, rounds = 1;
  for (int i = 4; i < argc; i++) {
    if (strcmp(argv[i], "--multi") == 0)
      multi = 1;
    else if (strcmp(argv[i], "--reopen") == 0)
      rounds = 2;
    else if (strcmp(argv[i], "--thread") == 0 && i + 1 < argc)
      thread_module = argv[++i];
    else if (strcmp(argv[i], "--outer") == 0 && i + 1 < argc)
      outer = argv[++i];
  }
  outer_dlopen_fn open_module = NULL;
  if (outer) {
    void *oh = dlopen(outer, RTLD_LOCAL | RTLD_NOW | RTLD_DEEPBIND);
    open_module = oh ? (outer_dlopen_fn)(uintptr_t)dlsym(oh, "outer_dlopen")
                     : NULL;
    if (!open_module) {
      printf("outer dlopen failed: %s\n", dlerror());
      return 1;
    }
  }
  int flags;
  if (strcmp(mode, "local-now") == 0)
    flags = RTLD_LOCAL | RTLD_NOW;
  else if (strcmp(mode, "local-lazy") == 0)
    flags = RTLD_LOCAL | RTLD_LAZY;
  else if (strcmp(mode, "global-deepbind") == 0)
    flags = RTLD_GLOBAL | RTLD_NOW | RTLD_DEEPBIND;
  else if (strcmp(mode, "local-deepbind-lazy") == 0)
    flags = RTLD_LOCAL | RTLD_LAZY | RTLD_DEEPBIND;
  else {
    fprintf(stderr, "bad mode %s\n", mode);
    return 2;
  }

  g_url = url;
  pthread_t th;
  if (thread_module &&
      pthread_create(&th, NULL, fetch_loop, (void *)thread_module) != 0)
    return 3;

  const char *base = strrchr(module, '/') ? strrchr(module, '/') + 1 : module;
  for (int round = 0; round < rounds; round++) {
    void *h = open_module ? open_module(module, flags) : dlopen(module, flags);
    if (!h) {
      printf("round=%d dlopen failed: %s\n", round, dlerror());
      return 1;
    }
    fetch_fn fetch = (fetch_fn)(uintptr_t)dlsym(h, "mod_fetch");
    char body[256];
    int rc = fetch ? fetch(url, multi, body, sizeof body) : -100;
    body[strcspn(body, "\n")] = '\0';
    printf("round=%d rc=%d body=%s\n", round, rc, body);

    struct link_map *lm = NULL;
    struct got_probe_obj o;
    struct slot_look look = {multi ? "curl_multi_perform" : "curl_easy_perform",
                             NULL};
    if (dlinfo(h, RTLD_DI_LINKMAP, &lm) == 0 &&
        got_probe_obj_at(lm->l_addr, &o) == 0)
      got_probe_each(&o, "curl_", find_slot, &look);
    if (look.slot) {
      char perms[5];
      got_probe_perms((uintptr_t)look.slot, perms);
      printf("slot=%s relro=%d perms=%s\n", classify(*look.slot, base),
             got_probe_in_relro(&o, (uintptr_t)look.slot), perms);
    } else {
      printf("slot=none\n");
    }
    fflush(stdout);
    dlclose(h);
  }
  if (thread_module) {
    g_stop = 1;
    pthread_join(th, NULL);
    printf("thread fetches=%d failures=%d\n", g_thread_fetches,
           g_thread_failures);
  }
  return 0;
}
