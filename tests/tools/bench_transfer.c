/* bench_transfer.c — the library's own CPU per LLM request, in-process.
 *
 * usage: bench_transfer RESPONSE-FILE CONTENT-TYPE [N] [REPS]
 *
 * Runs the whole metered path that a hook drives for one call — begin
 * (endpoint detection, request scan, price, admission on the real shared-memory budget
 * named by LLMMETER_BUDGET), the status and Content-Type header lines, the
 * response body in one piece (framing, extraction, pricing, charging), end
 * (settlement) — N times (default 20000) per repetition, REPS repetitions
 * (default 5), on the request bench_client sends and the response file
 * bench_server sends. No network, no libcurl: the figure is the path's
 * CPU alone, without the hook layer and without the noise of two processes
 * and a socket. Checks that every call was admitted and charged the
 * response's usage (exit 1 otherwise).
 *
 * Prints: transfer us_median=X us_min=Y us_max=Z bytes=B
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_requests.h"
#include "lm_slurp.h"
#include "call.h"

static const char url[] = "http://127.0.0.1:8080/v1/chat/completions";
static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static struct lm_meter_call *t;

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr,
            "usage: bench_transfer RESPONSE-FILE CONTENT-TYPE [N] [REPS]\n");
    return 2;
  }
  size_t blen;
  char *body = lm_slurp(argv[1], &blen);
  if (!body) {
    perror(argv[1]);
    return 2;
  }
  const char *ct = argv[2];
  long n = argc > 3 ? atol(argv[3]) : 20000;
  int reps = argc > 4 ? atoi(argv[4]) : 5;
  if (n < 1)
    n = 20000;
  if (reps < 1 || reps > 50)
    reps = 5;
  bool stream = strstr(ct, "event-stream") != NULL;
  const char *req = stream ? body_stream : body_json;
  char ctl[160];
  snprintf(ctl, sizeof ctl, "Content-Type: %s\r\n", ct);
  static const char status[] = "HTTP/1.1 200 OK\r\n";
  double us[50];
  for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
      struct lm_meter_request rq = {
          .url = url, .body = req, .body_len = strlen(req)};
      struct lm_verdict v;
      if (lm_meter_begin(&t, &rq, &v) != LM_VERDICT_METER) {
        fprintf(stderr, "bench_transfer: not admitted: %s\n",
                lm_meter_reason(t));
        return 1;
      }
      lm_meter_header(t, status, sizeof status - 1);
      lm_meter_header(t, ctl, strlen(ctl));
      lm_meter_body(t, body, blen);
      if (!lm_extract_has_usage(&t->x) || t->charged_pusd <= 0) {
        fprintf(stderr, "bench_transfer: the response was not charged\n");
        return 1;
      }
      lm_meter_end(t, true);
    }
    if (r >= 0)
      us[r] = (now_s() - t0) / (double)n * 1e6;
  }
  qsort(us, (size_t)reps, sizeof us[0], cmp_d);
  printf("transfer us_median=%.3f us_min=%.3f us_max=%.3f bytes=%zu\n",
         us[reps / 2], us[0], us[reps - 1], blen);
  free(body);
  return 0;
}
