/* bench_parse.c — usage-extraction throughput on large recorded streams.
 *
 * usage: bench_parse FIXTURE-DIR [MB] [REPS]
 *
 * Builds one large body per wire format from the real recorded events in
 * tests/fixtures: the first event, the middle events repeated until the
 * body is about MB megabytes (default 16), then the last two events (the
 * usage and the end marker), so the usage the extractor must find is the
 * fixture's own. The body goes through lm_extract_feed — the function the
 * write-callback wrapper calls with the bytes the program accepted, after
 * one branch — in 1-byte, 100-byte and 16 KiB chunks, REPS times each
 * (default 5), and each run's usage is checked against the usage of the
 * original fixture (exit 1 on a mismatch). 1-byte chunks run on a body of
 * MB/16 to keep the run short.
 *
 * Absolute MB/s differ about 2x between machine kinds, so every repetition
 * of the parser is paired with a repetition of a physical reference over
 * exactly the same bytes in exactly the same chunks: a memchr loop that
 * counts the '\n' of each chunk (see line_scan), repeated over the body
 * for as long as the parser's run took. The order of the two alternates
 * between repetitions, and the ratio parser/reference is taken per
 * repetition, so a load change hits both sides of one ratio.
 *
 * BENCH_PARSE_ONLY=STREAM runs one stream (for perf).
 *
 * Prints one line per (stream, chunk size):
 *   parse STREAM CHUNK MBPS_MEDIAN MBPS_MIN MBPS_MAX BYTES
 *         MEMCHR_MBPS_MEDIAN RATIO_MEDIAN RATIO_MIN RATIO_MAX
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "extract.h"

struct buf {
  char *p;
  size_t n, cap;
};

static void put(struct buf *b, const char *p, size_t n) {
  if (b->n + n > b->cap) {
    b->cap = (b->n + n) * 2 + 4096;
    b->p = realloc(b->p, b->cap);
    if (!b->p) {
      perror("realloc");
      exit(2);
    }
  }
  memcpy(b->p + b->n, p, n);
  b->n += n;
}

static struct buf slurp(const char *dir, const char *name) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s.response", dir, name);
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    exit(2);
  }
  struct buf b = {0};
  char tmp[65536];
  size_t r;
  while ((r = fread(tmp, 1, sizeof tmp, f)) > 0)
    put(&b, tmp, r);
  fclose(f);
  return b;
}

/* Splits a body into records ending with sep (the separator stays with
 * the record it ends). At most 256 records. */
static size_t split(const struct buf *b, const char *sep, const char **rec,
                    size_t *len) {
  size_t n = 0, sl = strlen(sep);
  const char *p = b->p, *end = b->p + b->n;
  while (p < end && n < 256) {
    const char *q = memmem(p, (size_t)(end - p), sep, sl);
    const char *stop = q ? q + sl : end;
    rec[n] = p;
    len[n] = (size_t)(stop - p);
    n++;
    p = stop;
  }
  return n;
}

/* head, middle × k, the last one or two: about target bytes. */
static struct buf grow(const char **rec, const size_t *len, size_t n,
                       size_t target) {
  struct buf o = {0};
  if (n < 3) {
    fprintf(stderr, "bench_parse: a fixture with fewer than 3 events\n");
    exit(2);
  }
  size_t tail = n >= 6 ? 2 : 1; /* the usage event (and an end marker) */
  put(&o, rec[0], len[0]);
  size_t mid = 0;
  for (size_t i = 1; i + tail < n; i++)
    mid += len[i];
  while (o.n + mid < target)
    for (size_t i = 1; i + tail < n; i++)
      put(&o, rec[i], len[i]);
  for (size_t i = n - tail; i < n; i++)
    put(&o, rec[i], len[i]);
  return o;
}

static const char *sse_sep(const struct buf *b) {
  return memmem(b->p, b->n, "\r\n\r\n", 4) ? "\r\n\r\n" : "\n\n";
}

static struct buf grow_sse(const struct buf *b, size_t target) {
  const char *rec[256];
  size_t len[256];
  size_t n = split(b, sse_sep(b), rec, len);
  return grow(rec, len, n, target);
}

static struct buf grow_ndjson(const struct buf *b, size_t target) {
  const char *rec[256];
  size_t len[256];
  size_t n = split(b, "\n", rec, len);
  return grow(rec, len, n, target);
}

/* Gemini streamGenerateContent without alt=sse: the SSE events' data as a
 * JSON array, "[{...}\r\n,\r\n{...}]" as the API sends it. */
static struct buf grow_json_array(const struct buf *sse, size_t target) {
  const char *rec[256];
  size_t len[256];
  size_t n = split(sse, sse_sep(sse), rec, len);
  struct buf elems[256];
  for (size_t i = 0; i < n; i++) {
    elems[i] = (struct buf){0};
    const char *d = rec[i] + 6; /* "data: " */
    size_t dl = len[i] - 6;
    while (dl && (d[dl - 1] == '\n' || d[dl - 1] == '\r'))
      dl--;
    put(&elems[i], i ? "\r\n,\r\n" : "[", i ? 5 : 1);
    put(&elems[i], d, dl);
  }
  put(&elems[n - 1], "]", 1);
  /* head = [first, middle repeated, last two */
  const char *er[256] = {0};
  size_t el[256] = {0};
  for (size_t i = 0; i < n; i++) {
    er[i] = elems[i].p;
    el[i] = elems[i].n;
  }
  /* grow() wants n >= 3 and keeps the last two: the repeats begin with
   * the "\r\n,\r\n" separator, so the array stays well formed. */
  struct buf o = grow(er, el, n, target);
  for (size_t i = 0; i < n; i++)
    free(elems[i].p);
  return o;
}

struct stream {
  const char *name;
  enum lm_api api;
  const char *ct;
  struct buf body;      /* full size */
  struct buf small;     /* for 1-byte chunks */
  struct lm_usage want; /* the fixture's usage */
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct lm_extract x;

static void run_once(const struct stream *s, const struct buf *b, size_t chunk,
                     struct lm_usage *got, bool *has) {
  lm_extract_init(&x, s->api);
  lm_extract_set_content_type(&x, s->ct, strlen(s->ct));
  const char *p = b->p, *end = b->p + b->n;
  while (p < end) {
    size_t k = (size_t)(end - p) < chunk ? (size_t)(end - p) : chunk;
    lm_extract_feed(&x, p, k);
    p += k;
  }
  lm_extract_finish(&x);
  *has = lm_extract_has_usage(&x);
  *got = *lm_extract_usage(&x);
}

/* The reference: count the '\n' of each chunk with memchr, chunk by chunk
 * as the parser is fed, never looking across a chunk boundary. Why this
 * and not a memchr for a byte that never occurs: both read every byte, but
 * a search that never hits is one long vector loop at memory bandwidth,
 * while the parser, like any line framer (SSE and NDJSON records end in
 * '\n', JSON-array elements here are separated by "\r\n,\r\n"), has to
 * stop at every line end and start again, and pays a call per chunk. The
 * newline count is the least work a streaming framer of these bodies can
 * do, so the ratio says how much the parser does beyond finding records,
 * on the machine at hand. Returns the count (checked by the caller, so
 * the loop cannot be optimised away). */
static size_t line_scan(const struct buf *b, size_t chunk) {
  size_t lines = 0;
  const char *p = b->p, *end = b->p + b->n;
  while (p < end) {
    size_t k = (size_t)(end - p) < chunk ? (size_t)(end - p) : chunk;
    const char *q = p, *stop = p + k;
    while ((q = memchr(q, '\n', (size_t)(stop - q))) != NULL) {
      lines++;
      if (++q == stop)
        break;
    }
    p = stop;
  }
  return lines;
}

/* A bound on the reference's passes per repetition. */
#define REF_PASSES_MAX 1000

static int cmp_d(const void *a, const void *b) {
  double x1 = *(const double *)a, x2 = *(const double *)b;
  return x1 < x2 ? -1 : x1 > x2;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_parse FIXTURE-DIR [MB] [REPS]\n");
    return 2;
  }
  const char *dir = argv[1];
  size_t mb = argc > 2 ? (size_t)atol(argv[2]) : 16;
  int reps = argc > 3 ? atoi(argv[3]) : 5;
  if (mb < 1)
    mb = 1;
  if (reps < 1 || reps > 100)
    reps = 5;
  size_t target = mb << 20, small = target / 16;

  struct buf oc = slurp(dir, "openai_chat_stream_include_usage");
  struct buf an = slurp(dir, "anthropic_messages_stream_padded_cumulative");
  struct buf ge = slurp(dir, "gemini_stream_sse");
  struct buf ol = slurp(dir, "ollama_chat_stream_ndjson");
  struct buf rs = slurp(dir, "openai_responses_stream");
  struct stream st[] = {
      {"openai-chat-sse",
       LM_API_OPENAI_CHAT,
       "text/event-stream",
       {0},
       {0},
       {0}},
      {"anthropic-sse",
       LM_API_ANTHROPIC_MESSAGES,
       "text/event-stream",
       {0},
       {0},
       {0}},
      {"gemini-sse", LM_API_GEMINI_STREAM, "text/event-stream", {0}, {0}, {0}},
      {"ollama-ndjson",
       LM_API_OLLAMA_CHAT,
       "application/x-ndjson",
       {0},
       {0},
       {0}},
      {"gemini-json-array",
       LM_API_GEMINI_STREAM,
       "application/json",
       {0},
       {0},
       {0}},
      {"openai-responses-sse",
       LM_API_OPENAI_RESPONSES,
       "text/event-stream",
       {0},
       {0},
       {0}},
  };
  const struct buf *src[] = {&oc, &an, &ge, &ol, &ge, &rs};
  int rc = 0;
  for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) {
    struct stream *s = &st[i];
    if (i == 3) {
      s->body = grow_ndjson(src[i], target);
      s->small = grow_ndjson(src[i], small);
    } else if (i == 4) {
      s->body = grow_json_array(src[i], target);
      s->small = grow_json_array(src[i], small);
    } else {
      s->body = grow_sse(src[i], target);
      s->small = grow_sse(src[i], small);
    }
    /* The expected usage: the original fixture, in one piece. */
    bool has;
    struct buf orig = *src[i];
    struct buf arr = {0};
    if (i == 4) {
      arr = grow_json_array(src[i], 0);
      orig = arr;
    }
    run_once(s, &orig, orig.n, &s->want, &has);
    free(arr.p);
    if (!has) {
      fprintf(stderr, "bench_parse: %s: the fixture gives no usage\n", s->name);
      return 1;
    }
  }
  static const size_t chunks[] = {1, 100, 16384};
  const char *only = getenv("BENCH_PARSE_ONLY"); /* one stream, to profile */
  for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) {
    const struct stream *s = &st[i];
    if (only && strcmp(only, s->name) != 0)
      continue;
    for (size_t c = 0; c < 3; c++) {
      const struct buf *b = chunks[c] == 1 ? &s->small : &s->body;
      double mbps[100], ref_mbps[100], ratio[100];
      size_t want_lines = line_scan(b, b->n);
      for (int r = 0; r < reps; r++) {
        struct lm_usage got = {0};
        bool has = false;
        double dt = 0, ref_dt = 0;
        int passes = 0;
        for (int side = 0; side < 2; side++) {
          double t0 = now_s();
          if ((side + r) % 2 == 0) {
            run_once(s, b, chunks[c], &got, &has);
            dt = now_s() - t0;
            continue;
          }
          /* The scan is 5-50x faster than the parser: repeat it until it
           * has run as long as the parser's last run (rep 0 parses first),
           * so that a preemption weighs alike on both sides. */
          passes = 0;
          do {
            size_t lines = line_scan(b, chunks[c]);
            if (lines != want_lines) {
              fprintf(stderr,
                      "bench_parse: %s chunk %zu: memchr counted "
                      "%zu lines, want %zu\n",
                      s->name, chunks[c], lines, want_lines);
              rc = 1;
            }
            ref_dt = now_s() - t0;
          } while (++passes < REF_PASSES_MAX && ref_dt < dt);
        }
        mbps[r] = (double)b->n / dt / 1e6;
        ref_mbps[r] = (double)b->n * passes / ref_dt / 1e6;
        ratio[r] = mbps[r] / ref_mbps[r];
        if (!has || memcmp(&got, &s->want, sizeof got) != 0) {
          fprintf(
              stderr,
              "bench_parse: %s chunk %zu: usage %llu/%llu, want %llu/%llu\n",
              s->name, chunks[c], (unsigned long long)got.input,
              (unsigned long long)got.output, (unsigned long long)s->want.input,
              (unsigned long long)s->want.output);
          rc = 1;
        }
      }
      qsort(mbps, (size_t)reps, sizeof mbps[0], cmp_d);
      qsort(ref_mbps, (size_t)reps, sizeof ref_mbps[0], cmp_d);
      qsort(ratio, (size_t)reps, sizeof ratio[0], cmp_d);
      printf("parse %s %zu %.0f %.0f %.0f %zu %.0f %.4f %.4f %.4f\n", s->name,
             chunks[c], mbps[reps / 2], mbps[0], mbps[reps - 1], b->n,
             ref_mbps[reps / 2], ratio[reps / 2], ratio[0], ratio[reps - 1]);
      fflush(stdout);
    }
  }
  return rc;
}
