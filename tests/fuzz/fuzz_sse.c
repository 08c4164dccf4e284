/* fuzz_sse.c — libFuzzer target for the SSE parser.
 *
 * Input: [split seed] stream...
 * Checks: no crash/UB, and the dispatched events (data bytes, event names,
 * boundaries) are identical whether the stream is fed whole or in pieces.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_split.h"
#include "sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct digest {
  uint64_t h;
  uint64_t events, begins, bytes;
};

static void mix(struct digest *d, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    d->h = (d->h ^ (unsigned char)p[i]) * 1099511628211ull;
}

static void on_begin(void *ctx) {
  struct digest *d = ctx;
  d->begins++;
  mix(d, "\x01", 1);
}
static void on_data(void *ctx, const char *p, size_t n) {
  struct digest *d = ctx;
  d->bytes += n;
  mix(d, p, n);
}
static void on_end(void *ctx, const char *name, size_t len, bool trunc) {
  struct digest *d = ctx;
  if (len >= LM_SSE_EVENT_MAX)
    abort();
  d->events++;
  mix(d, "\x02", 1);
  mix(d, name, len);
  mix(d, trunc ? "T" : "F", 1);
}

static const struct lm_sse_handler handler = {on_begin, on_data, on_end};

static void run(struct digest *d, const char *p, size_t n, uint32_t seed) {
  struct lm_sse s;
  memset(d, 0, sizeof *d);
  d->h = 1469598103934665603ull;
  lm_sse_init(&s, &handler, d);
  struct fuzz_split sp = {seed};
  size_t at = 0;
  while (at < n) {
    size_t k = fuzz_next_piece(&sp, n - at);
    lm_sse_feed(&s, p + at, k);
    at += k;
  }
  lm_sse_finish(&s);
  if (s.events != d->events)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  uint32_t seed = 1 + data[0] * 2654435761u;
  struct digest a, b, c;
  run(&a, (const char *)data + 1, size - 1, 0);
  run(&b, (const char *)data + 1, size - 1, seed);
  if (memcmp(&a, &b, sizeof a) != 0)
    abort();
  if (size < 4096) { /* byte at a time */
    struct lm_sse s;
    memset(&c, 0, sizeof c);
    c.h = 1469598103934665603ull;
    lm_sse_init(&s, &handler, &c);
    for (size_t i = 1; i < size; i++)
      lm_sse_feed(&s, (const char *)data + i, 1);
    lm_sse_finish(&s);
    if (memcmp(&a, &c, sizeof a) != 0)
      abort();
  }
  return 0;
}
