/* bench_client.c — the per-request benchmark client: libcurl, keep-alive,
 * one easy handle per thread reused for every request, a write callback
 * that only counts bytes (so the library's wrapper is on the path).
 *
 * usage: bench_client KIND BASE-URL REQUESTS THREADS [BYTES]
 *   KIND  hello     GET  BASE/hello                 (not an LLM call)
 *         json      POST BASE/v1/chat/completions    (LLM, not streamed)
 *         stream    POST BASE/v1/chat/completions    (LLM, SSE stream)
 *         download  GET  BASE/download?bytes=BYTES   (one transfer)
 *         bigstream POST ... X-Mock-Stream-Bytes: BYTES (one transfer)
 *   BASE-URL may name a gateway path prefix; $BENCH_HEADERS adds request
 *   headers ("Name: value" lines separated by '|').
 *
 * Prints one line:
 *   wall_s=W cpu_s=C reqs=N p50_us=X p99_us=Y bytes=B rss_kb=R rss_base_kb=R0 errors=E
 * cpu_s is user+sys of the whole process (getrusage); rss_kb is the peak
 * RSS (ru_maxrss) after the run, rss_base_kb the peak after one small
 * warm-up request of the same kind (download/bigstream only), so their
 * difference is what the transfer itself added. Every kind makes one
 * warm-up request before the clock starts (one-time costs such as the
 * library's first-call configuration are the process-start figure's). Exit 1 if any request
 * failed or did not return 200.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_requests.h"
#include "bench_util.h"

static const char *kind, *base;
static long total, per_thread, threads;
static unsigned long long big;
static double *lat; /* µs per request, [threads][per_thread] */
static unsigned long long bytes_total;
static long errors;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static struct curl_slist *headers_for(const char *k, unsigned long long bytes) {
  struct curl_slist *h = NULL;
  const char *extra = getenv("BENCH_HEADERS");
  if (extra && *extra) {
    char *copy = strdup(extra), *save = NULL;
    for (char *t = strtok_r(copy, "|", &save); t;
         t = strtok_r(NULL, "|", &save))
      h = curl_slist_append(h, t);
    free(copy);
  }
  if (strcmp(k, "hello") && strcmp(k, "download")) {
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Authorization: Bearer sk-bench");
  }
  if (!strcmp(k, "bigstream")) {
    char line[64];
    snprintf(line, sizeof line, "X-Mock-Stream-Bytes: %llu", bytes);
    h = curl_slist_append(h, line);
  }
  return h;
}

/* Sets up h for one request of kind k (bytes for download/bigstream). */
static void setup(CURL *h, const char *k, unsigned long long bytes,
                  struct curl_slist *hd, unsigned long long *count) {
  char url[1024];
  if (!strcmp(k, "hello"))
    snprintf(url, sizeof url, "%s/hello", base);
  else if (!strcmp(k, "download"))
    snprintf(url, sizeof url, "%s/download?bytes=%llu", base, bytes);
  else
    snprintf(url, sizeof url, "%s/v1/chat/completions", base);
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, bench_sink);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, count);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
  if (!strcmp(k, "json"))
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body_json);
  else if (strcmp(k, "hello") && strcmp(k, "download"))
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body_stream);
  else
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
}

static int perform(CURL *h) {
  CURLcode rc = curl_easy_perform(h);
  long code = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  if (rc != CURLE_OK || code != 200) {
    static int said;
    if (!said++)
      fprintf(stderr, "bench_client: curl=%d (%s) http=%ld\n", rc,
              curl_easy_strerror(rc), code);
    return -1;
  }
  return 0;
}

static void *worker(void *arg) {
  long t = (long)arg;
  CURL *h = curl_easy_init();
  unsigned long long count = 0;
  struct curl_slist *hd = headers_for(kind, big);
  setup(h, kind, big, hd, &count);
  long errs = 0;
  for (long i = 0; i < per_thread; i++) {
    double t0 = bench_clock_us(CLOCK_MONOTONIC);
    if (perform(h))
      errs++;
    lat[t * per_thread + i] = bench_clock_us(CLOCK_MONOTONIC) - t0;
  }
  curl_easy_cleanup(h);
  curl_slist_free_all(hd);
  pthread_mutex_lock(&mu);
  bytes_total += count;
  errors += errs;
  pthread_mutex_unlock(&mu);
  return NULL;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static long maxrss_kb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr,
            "usage: bench_client KIND BASE-URL REQUESTS THREADS [BYTES]\n");
    return 2;
  }
  kind = argv[1];
  base = argv[2];
  total = atol(argv[3]);
  threads = atol(argv[4]);
  big = argc > 5 ? strtoull(argv[5], NULL, 10) : 0;
  if (threads < 1 || threads > 256 || total < threads)
    return 2;
  per_thread = total / threads;
  total = per_thread * threads;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  lat = calloc((size_t)total, sizeof *lat);
  int single = !strcmp(kind, "download") || !strcmp(kind, "bigstream");
  long rss_base = 0;
  if (single) { /* warm-up: a small transfer of the same kind */
    CURL *h = curl_easy_init();
    unsigned long long count = 0;
    struct curl_slist *hd = headers_for(kind, 4096);
    setup(h, kind, 4096, hd, &count);
    if (perform(h))
      errors++;
    curl_easy_cleanup(h);
    curl_slist_free_all(hd);
    rss_base = maxrss_kb();
  }
  if (!single) { /* warm-up: one request of the kind, so one-time costs
                    (first-call configuration, budget attach) stay out */
    CURL *h = curl_easy_init();
    unsigned long long count = 0;
    struct curl_slist *hd = headers_for(kind, 0);
    setup(h, kind, 0, hd, &count);
    if (perform(h))
      errors++;
    curl_easy_cleanup(h);
    curl_slist_free_all(hd);
  }
  double c0 = cpu_s(), t0 = bench_clock_us(CLOCK_MONOTONIC);
  pthread_t th[256];
  for (long t = 0; t < threads; t++)
    pthread_create(&th[t], NULL, worker, (void *)t);
  for (long t = 0; t < threads; t++)
    pthread_join(th[t], NULL);
  double wall = (bench_clock_us(CLOCK_MONOTONIC) - t0) / 1e6,
         cpu = cpu_s() - c0;
  qsort(lat, (size_t)total, sizeof *lat, cmp_d);
  printf("wall_s=%.6f cpu_s=%.6f reqs=%ld p50_us=%.1f p99_us=%.1f bytes=%llu "
         "rss_kb=%ld rss_base_kb=%ld errors=%ld\n",
         wall, cpu, total, lat[total / 2], lat[(total * 99) / 100], bytes_total,
         maxrss_kb(), rss_base, errors);
  curl_global_cleanup();
  return errors ? 1 : 0;
}
