/* fuzz_http1.c — libFuzzer target for HTTP/1.1 framing and body decoding.
 *
 * Input: [mode] [split seed] stream...
 *   mode bit 0   0: a request stream, 1: a response stream
 *   mode bit 1   (responses) the first request was a HEAD
 *   mode bit 2   (responses) the first request was a CONNECT
 *   mode bit 3   the stream is a body alone, decoded with coding
 *                (mode >> 4) % 5 (identity, gzip, deflate, br, zstd)
 * Every message body is also run through the decoder its
 * Content-Encoding names. Checks: no crash/UB; every pointer and offset
 * an event gives lies inside the buffer being fed; heads are within their
 * bounds; an error has a one-line reason and stays; and the events (heads,
 * body bytes, ends and their stream offsets, decoded bytes, final status)
 * are identical fed whole, in random pieces with a stop at every event
 * taken up again, and one byte at a time — and fed whole with http1.c's
 * fast path off, so that every head it reads is read as llhttp reads it
 * (the byte-at-a-time run never takes the fast path: a head must be
 * whole in one feed), error reasons included.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "fuzz_split.h"
#include "http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_DECODED_MAX (8u << 20)

struct digest {
  uint64_t h, dh; /* events; decoded bytes */
  uint64_t eh;    /* the error reasons (compared with the fast path off) */
  uint64_t heads, dones, body, decoded;
  int status, finish_status;
};

struct run {
  struct digest d;
  uint64_t msg_dh, msg_decoded; /* the current decoder's output */
  struct lm_http1 p;
  struct lm_decode dec;
  bool dec_on;
  bool stop;
  const char *buf; /* the buffer being fed */
  size_t len;
  uint64_t abs; /* its stream offset */
};

static struct run runs[4];

static void mix(uint64_t *h, const void *p, size_t n) {
  const unsigned char *u = p;
  for (size_t i = 0; i < n; i++)
    *h = (*h ^ u[i]) * 1099511628211ull;
}

static int dec_out(void *ctx, const char *p, size_t n) {
  struct run *r = ctx;
  if (n == 0 || n > LM_DECODE_OUT_MAX)
    abort();
  r->msg_decoded += n;
  mix(&r->msg_dh, p, n);
  /* A small input may decode to gigabytes (brotli and zstd more than a
   * thousandfold): enough of it is checked, then the consumer stops. */
  return r->msg_decoded >= FUZZ_DECODED_MAX;
}

static void dec_end(struct run *r) {
  if (!r->dec_on)
    return;
  int s = lm_decode_finish(&r->dec);
  const char *e = lm_decode_error(&r->dec);
  if ((s == LM_DECODE_ERROR) != (e != NULL) || (e && strchr(e, '\n')))
    abort();
  /* What a decoder put out before finding an error depends on where the
   * input was cut (brotli and zlib flush as they go), and so does whether
   * it reached FUZZ_DECODED_MAX first: only a whole stream's output must
   * be the same every way. */
  bool whole = s == LM_DECODE_DONE;
  mix(&r->d.dh, &whole, sizeof whole);
  if (whole) {
    r->d.decoded += r->msg_decoded;
    mix(&r->d.dh, &r->msg_dh, sizeof r->msg_dh);
  }
  lm_decode_free(&r->dec);
  if (r->dec.mem != 0)
    abort();
  r->dec_on = false;
}

static int on_head(void *ctx, const struct lm_http1_head *h) {
  struct run *r = ctx;
  if (h->head_end_off > r->len || h->head_len > LM_HTTP1_HEAD_MAX ||
      h->n_headers > LM_HTTP1_HEADERS_MAX)
    abort();
  r->d.heads++;
  mix(&r->d.h, "H", 1);
  uint64_t end = r->abs + h->head_end_off;
  mix(&r->d.h, &end, sizeof end);
  mix(&r->d.h, &h->status, sizeof h->status);
  mix(&r->d.h, &h->body, sizeof h->body);
  mix(&r->d.h, &h->content_length, sizeof h->content_length);
  mix(&r->d.h, &h->head_len, sizeof h->head_len);
  mix(&r->d.h, &h->n_headers, sizeof h->n_headers);
  mix(&r->d.h, &h->content_encoding, sizeof h->content_encoding);
  int flags = h->http_major * 1000 + h->http_minor * 100 + h->chunked * 1 +
              h->keep_alive * 2 + h->upgrade * 4 + h->informational * 8;
  mix(&r->d.h, &flags, sizeof flags);
  if (h->content_type)
    mix(&r->d.h, h->content_type, strlen(h->content_type) + 1);
  if (h->method)
    mix(&r->d.h, h->method, strlen(h->method));
  if (h->target) {
    if (strlen(h->target) != h->target_len)
      abort();
    mix(&r->d.h, h->target, h->target_len);
  }
  for (size_t i = 0; i < h->n_headers; i++) {
    const char *l = h->headers[i];
    if (!strstr(l, ": ") || strchr(l, '\r') || strchr(l, '\n'))
      abort();
    mix(&r->d.h, l, strlen(l) + 1);
  }
  dec_end(r);
  r->msg_dh = 1469598103934665603ull;
  r->msg_decoded = 0;
  if (lm_decode_init(&r->dec, h->content_encoding, dec_out, r) == 0)
    r->dec_on = true;
  else
    lm_decode_free(&r->dec);
  return r->stop;
}

static int on_body(void *ctx, const char *p, size_t n) {
  struct run *r = ctx;
  if (n == 0 || p < r->buf || p + n > r->buf + r->len)
    abort();
  r->d.body += n;
  mix(&r->d.h, p, n);
  if (r->dec_on)
    lm_decode_feed(&r->dec, p, n);
  return r->stop;
}

static int on_done(void *ctx, size_t end_off) {
  struct run *r = ctx;
  if (end_off > r->len)
    abort();
  r->d.dones++;
  uint64_t end = r->abs + end_off;
  mix(&r->d.h, "D", 1);
  mix(&r->d.h, &end, sizeof end);
  dec_end(r);
  return r->stop;
}

static const struct lm_http1_events events = {on_head, on_body, on_done};

/* Feeds one buffer, taking up every stop again at *used. */
static int feed(struct run *r, const char *p, size_t n) {
  int s;
  do {
    size_t used = 0;
    r->buf = p;
    r->len = n;
    s = lm_http1_feed(&r->p, p, n, &used);
    if (used > n || (s == LM_HTTP1_OK && used != n))
      abort();
    r->abs += used;
    p += used;
    n -= used;
  } while (s == LM_HTTP1_STOPPED);
  return s;
}

static void check_error_state(struct run *r) {
  const char *e = lm_http1_error(&r->p);
  if (!e || strchr(e, '\n'))
    abort();
  size_t used = 1;
  if (lm_http1_feed(&r->p, "GET / HTTP/1.1\r\n\r\n", 18, &used) !=
          LM_HTTP1_ERROR ||
      used != 0)
    abort();
}

/* piece: 0 whole, 1 byte at a time, else a split seed. */
static void run_http(struct run *r, int mode, const char *p, size_t n,
                     uint32_t piece, bool stop, bool fast) {
  memset(&r->d, 0, sizeof r->d);
  r->d.h = r->d.dh = 1469598103934665603ull;
  r->dec_on = false;
  r->stop = stop;
  r->abs = 0;
  bool response = mode & 1;
  lm_http1_init(&r->p, response ? LM_HTTP1_RESPONSE : LM_HTTP1_REQUEST, &events,
                r);
  lm_http1_set_fast(&r->p, fast);
  if (response && (mode & 2))
    lm_http1_expect(&r->p, "HEAD");
  if (response && (mode & 4))
    lm_http1_expect(&r->p, "CONNECT");
  int s = LM_HTTP1_OK;
  struct fuzz_split sp = {piece};
  size_t at = 0;
  while (at < n && s == LM_HTTP1_OK) {
    size_t k = piece == 1 ? 1 : fuzz_next_piece(&sp, n - at);
    s = feed(r, p + at, k);
    at += k;
  }
  r->d.status = s;
  if (s == LM_HTTP1_ERROR)
    check_error_state(r);
  const char *e = lm_http1_error(&r->p);
  if (e)
    mix(&r->d.eh, e, strlen(e));
  r->d.finish_status = lm_http1_finish(&r->p);
  if (r->d.finish_status == LM_HTTP1_ERROR) {
    check_error_state(r);
    if (!e)
      mix(&r->d.eh, lm_http1_error(&r->p), strlen(lm_http1_error(&r->p)));
  }
  dec_end(r);
}

static void run_decode(struct run *r, int mode, const char *p, size_t n,
                       uint32_t piece) {
  static const enum lm_http_coding coding[5] = {
      LM_CODING_IDENTITY, LM_CODING_GZIP, LM_CODING_DEFLATE, LM_CODING_BR,
      LM_CODING_ZSTD};
  memset(&r->d, 0, sizeof r->d);
  r->d.h = r->d.dh = 1469598103934665603ull;
  r->msg_dh = 1469598103934665603ull;
  r->msg_decoded = 0;
  if (lm_decode_init(&r->dec, coding[(mode >> 4) % 5], dec_out, r) != 0)
    abort(); /* every library is installed where the fuzzer runs */
  r->dec_on = true;
  struct fuzz_split sp = {piece};
  size_t at = 0;
  while (at < n) {
    size_t k = piece == 1 ? 1 : fuzz_next_piece(&sp, n - at);
    int s = lm_decode_feed(&r->dec, p + at, k);
    if (s == LM_DECODE_ERROR && !lm_decode_error(&r->dec))
      abort();
    at += k;
  }
  dec_end(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  int mode = data[0];
  uint32_t seed = 2 + data[1] * 2654435761u;
  const char *p = (const char *)data + 2;
  size_t n = size - 2;
  /* way 0 whole, 1 random pieces with stops, 2 one byte at a time (small
   * inputs), 3 whole without the fast path (HTTP only) */
  int ways = mode & 8 ? (n < 4096 ? 3 : 2) : 4;
  for (int w = 0; w < ways; w++) {
    uint32_t piece = w == 0 || w == 3 ? 0 : w == 1 ? seed : 1;
    if (w == 2 && n >= 4096)
      continue;
    if (mode & 8)
      run_decode(&runs[w], mode, p, n, piece);
    else
      run_http(&runs[w], mode, p, n, piece, w == 1, w != 3);
    if (w == 1 || w == 2)
      runs[w].d.eh = runs[0].d.eh; /* where a split head fails may differ */
    if (w > 0 && memcmp(&runs[0].d, &runs[w].d, sizeof runs[0].d) != 0) {
      for (int k = 0; k <= w; k += w) {
        const struct digest *d = &runs[k].d;
        fprintf(stderr,
                "way %d: heads %llu dones %llu body %llu decoded %llu "
                "status %d finish %d h %016llx dh %016llx (%s)\n",
                k, (unsigned long long)d->heads, (unsigned long long)d->dones,
                (unsigned long long)d->body, (unsigned long long)d->decoded,
                d->status, d->finish_status, (unsigned long long)d->h,
                (unsigned long long)d->dh,
                lm_http1_error(&runs[k].p) ? lm_http1_error(&runs[k].p) : "");
      }
      abort();
    }
  }
  return 0;
}
