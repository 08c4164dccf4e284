/* bench_paired.c — the CPU the library adds to a libcurl request, measured
 * side by side in one process (make bench: scripts/bench.sh runs it under
 * LD_PRELOAD=libllmmeter.so, and without it for the method's own noise).
 *
 * usage: bench_paired KIND BASE-URL THREADS BLOCK REPS
 *   KIND  hello | json | stream   (as bench_client's)
 *
 * Two libcurls in this one process: A is the one the program links, whose
 * curl_* calls reach the library's hooks under the preload; B is the same
 * libcurl.so.4 loaded again with dlmopen into a namespace of its own, where
 * no preload is and nothing of the library can see it. Each of THREADS
 * threads has one easy handle of each, reused (keep-alive), and runs REPS
 * pairs of blocks of BLOCK requests, A then B, or B then A on odd pairs;
 * each block's cost is the thread's own CPU time (CLOCK_THREAD_CPUTIME_ID:
 * user and system, so the socket calls count on both sides). A pair gives
 * (A - B) / BLOCK. Both halves of a pair run within milliseconds of each
 * other on the same thread, with the other threads doing the same, so the
 * drift between separate on/off processes cancels. Without the preload A
 * and B are the same code (each with its own copy of libc, B's heap not on
 * brk), and the figure measures what the method itself adds.
 *
 * Prints one line:
 *   paired kind=K threads=T block=N reps=R added_us_per_req=X
 *     added_q1=Q1 added_q3=Q3 base_us_per_req=B pairs=P errors=E
 * X: the median pair over all threads and repetitions (q1, q3: quartiles);
 * B: the median B block per request. Exit 1 if a request failed.
 */
#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_requests.h"
#include "bench_util.h"

struct api {
  CURL *(*init)(void);
  CURLcode (*setopt)(CURL *, CURLoption, ...);
  CURLcode (*perform)(CURL *);
  CURLcode (*getinfo)(CURL *, CURLINFO, ...);
  void (*cleanup)(CURL *);
  struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
  void (*slist_free_all)(struct curl_slist *);
  CURLcode (*global_init)(long);
};

static struct api side[2]; /* 0: A (by name, hooked), 1: B (dlmopen) */
static const char *kind, *base;
static long threads, block, reps;
static double *added, *based; /* [threads * reps] */
static long errors;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static int load_b(void) {
  void *h = dlmopen(LM_ID_NEWLM, "libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    fprintf(stderr, "bench_paired: dlmopen libcurl.so.4: %s\n", dlerror());
    return -1;
  }
  struct api *b = &side[1];
  *(void **)&b->init = dlsym(h, "curl_easy_init");
  *(void **)&b->setopt = dlsym(h, "curl_easy_setopt");
  *(void **)&b->perform = dlsym(h, "curl_easy_perform");
  *(void **)&b->getinfo = dlsym(h, "curl_easy_getinfo");
  *(void **)&b->cleanup = dlsym(h, "curl_easy_cleanup");
  *(void **)&b->slist_append = dlsym(h, "curl_slist_append");
  *(void **)&b->slist_free_all = dlsym(h, "curl_slist_free_all");
  *(void **)&b->global_init = dlsym(h, "curl_global_init");
  if (!b->init || !b->setopt || !b->perform || !b->getinfo || !b->cleanup ||
      !b->slist_append || !b->slist_free_all || !b->global_init)
    return -1;
  return 0;
}

struct handle {
  const struct api *a;
  CURL *h;
  struct curl_slist *hd;
  unsigned long long count;
};

static void open_handle(struct handle *k, const struct api *a) {
  char url[1024];
  k->a = a;
  k->count = 0;
  k->hd = NULL;
  k->h = a->init();
  if (!k->h) {
    fprintf(stderr, "bench_paired: curl_easy_init failed\n");
    exit(1);
  }
  if (strcmp(kind, "hello")) {
    k->hd = a->slist_append(k->hd, "Content-Type: application/json");
    k->hd = a->slist_append(k->hd, "Authorization: Bearer sk-bench");
  }
  snprintf(url, sizeof url, "%s%s", base,
           strcmp(kind, "hello") ? "/v1/chat/completions" : "/hello");
  a->setopt(k->h, CURLOPT_URL, url);
  a->setopt(k->h, CURLOPT_WRITEFUNCTION, bench_sink);
  a->setopt(k->h, CURLOPT_WRITEDATA, &k->count);
  a->setopt(k->h, CURLOPT_HTTPHEADER, k->hd);
  a->setopt(k->h, CURLOPT_NOSIGNAL, 1L);
  a->setopt(k->h, CURLOPT_TCP_NODELAY, 1L);
  if (!strcmp(kind, "json"))
    a->setopt(k->h, CURLOPT_POSTFIELDS, body_json);
  else if (!strcmp(kind, "stream"))
    a->setopt(k->h, CURLOPT_POSTFIELDS, body_stream);
  else
    a->setopt(k->h, CURLOPT_HTTPGET, 1L);
}

static long run_block(struct handle *k, long n) {
  long errs = 0;
  for (long i = 0; i < n; i++) {
    long code = 0;
    CURLcode rc = k->a->perform(k->h);
    k->a->getinfo(k->h, CURLINFO_RESPONSE_CODE, &code);
    if (rc != CURLE_OK || code != 200)
      errs++;
  }
  return errs;
}

static void *worker(void *arg) {
  long t = (long)arg;
  struct handle a, b;
  open_handle(&a, &side[0]);
  open_handle(&b, &side[1]);
  long errs = run_block(&a, 2) + run_block(&b, 2); /* connect, warm up */
  struct handle *ab[2] = {&a, &b};
  for (long r = 0; r < reps; r++) {
    double took[2];
    for (int i = 0; i < 2; i++) { /* A then B, or B then A on odd pairs */
      int w = (int)(r % 2) ^ i;
      double t0 = bench_clock_us(CLOCK_THREAD_CPUTIME_ID);
      errs += run_block(ab[w], block);
      took[w] = bench_clock_us(CLOCK_THREAD_CPUTIME_ID) - t0;
    }
    added[t * reps + r] = (took[0] - took[1]) / (double)block;
    based[t * reps + r] = took[1] / (double)block;
  }
  a.a->cleanup(a.h);
  a.a->slist_free_all(a.hd);
  b.a->cleanup(b.h);
  b.a->slist_free_all(b.hd);
  pthread_mutex_lock(&mu);
  errors += errs;
  pthread_mutex_unlock(&mu);
  return NULL;
}

static int cmp_d(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return a < b ? -1 : a > b;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: bench_paired KIND BASE-URL THREADS BLOCK REPS\n");
    return 2;
  }
  kind = argv[1];
  base = argv[2];
  threads = atol(argv[3]);
  block = atol(argv[4]);
  reps = atol(argv[5]);
  if ((strcmp(kind, "hello") && strcmp(kind, "json") &&
       strcmp(kind, "stream")) ||
      threads < 1 || threads > 256 || block < 1 || reps < 1)
    return 2;
  side[0] = (struct api){curl_easy_init,      curl_easy_setopt,
                         curl_easy_perform,   curl_easy_getinfo,
                         curl_easy_cleanup,   curl_slist_append,
                         curl_slist_free_all, curl_global_init};
  if (load_b() != 0)
    return 1;
  side[0].global_init(CURL_GLOBAL_DEFAULT);
  side[1].global_init(CURL_GLOBAL_DEFAULT);
  size_t pairs = (size_t)(threads * reps);
  added = calloc(pairs, sizeof *added);
  based = calloc(pairs, sizeof *based);
  if (!added || !based)
    return 1;
  pthread_t th[256];
  for (long t = 0; t < threads; t++)
    pthread_create(&th[t], NULL, worker, (void *)t);
  for (long t = 0; t < threads; t++)
    pthread_join(th[t], NULL);
  qsort(added, pairs, sizeof *added, cmp_d);
  qsort(based, pairs, sizeof *based, cmp_d);
  printf("paired kind=%s threads=%ld block=%ld reps=%ld added_us_per_req=%.3f "
         "added_q1=%.3f added_q3=%.3f base_us_per_req=%.3f pairs=%zu "
         "errors=%ld\n",
         kind, threads, block, reps, added[pairs / 2], added[pairs / 4],
         added[pairs * 3 / 4], based[pairs / 2], pairs, errors);
  return errors ? 1 : 0;
}
