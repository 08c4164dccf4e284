/* test_decode.c — Content-Encoding decoders (src/http/decode.c).
 *
 * The test links the encoders (zlib, libbrotlienc, libzstd) to make
 * compressed bodies; the decoders under test still find their libraries
 * with dlopen, as they do when preloaded. Each coding is checked by round
 * trip at random feed sizes, against corrupt and truncated input, and
 * with a 100 MB-decoded bomb that must stream through the decoder's fixed
 * buffer while the library's allocations stay the few it made at the
 * start (the decoder counts every one of them).
 */
#include "lm_test.h"
#include "lm_slurp.h"
#include "decode.h"

#include <dirent.h>
#include <pthread.h>
#include <stdint.h>

#include <zlib.h>
#include <brotli/encode.h>
#include <zstd.h>

/* ---- growable byte buffers (test side only) ----------------------------- */

struct buf {
  unsigned char *b;
  size_t len, cap;
};

static void buf_put(struct buf *w, const void *p, size_t n) {
  if (w->len + n > w->cap) {
    size_t cap = (w->len + n) * 2 + 64;
    unsigned char *o = realloc(w->b, cap);
    if (!o)
      abort();
    w->b = o;
    w->cap = cap;
  }
  memcpy(w->b + w->len, p, n);
  w->len += n;
}

static uint32_t rnd_state = 0x2545f491u;
static uint32_t rnd(void) {
  rnd_state ^= rnd_state << 13;
  rnd_state ^= rnd_state >> 17;
  rnd_state ^= rnd_state << 5;
  return rnd_state;
}

/* The payload: every recorded fixture response, then text that repeats,
 * then random bytes (incompressible), so that every block kind occurs. */
static struct buf payload(void) {
  struct buf w = {0};
  const char *root = getenv("LM_ROOT");
  char dir[512];
  snprintf(dir, sizeof dir, "%s/tests/fixtures", root ? root : ".");
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) {
    size_t nl = strlen(e->d_name);
    if (nl < 9 || strcmp(e->d_name + nl - 9, ".response") != 0)
      continue;
    char path[1024];
    size_t n = 0;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    char *f = lm_slurp(path, &n);
    if (f)
      buf_put(&w, f, n);
    free(f);
  }
  if (d)
    closedir(d);
  for (int i = 0; i < 2000; i++)
    buf_put(&w, "data: {\"usage\":{\"input_tokens\":12}}\n\n", 38);
  for (int i = 0; i < 50000; i++) {
    uint32_t r = rnd();
    buf_put(&w, &r, sizeof r);
  }
  return w;
}

/* ---- encoders ------------------------------------------------------------- */

/* windowBits: 15 + 16 gzip, 15 zlib, -15 raw deflate. */
static struct buf zlib_encode(const void *in, size_t n, int window_bits) {
  struct buf w = {0};
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  if (deflateInit2(&zs, 6, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY))
    abort();
  zs.next_in = (Bytef *)(uintptr_t)in;
  zs.avail_in = (uInt)n;
  unsigned char out[65536];
  int rc;
  do {
    zs.next_out = out;
    zs.avail_out = sizeof out;
    rc = deflate(&zs, Z_FINISH);
    buf_put(&w, out, sizeof out - zs.avail_out);
  } while (rc == Z_OK);
  if (rc != Z_STREAM_END)
    abort();
  deflateEnd(&zs);
  return w;
}

static struct buf br_encode(const void *in, size_t n, int quality) {
  struct buf w = {0};
  size_t cap = BrotliEncoderMaxCompressedSize(n);
  w.b = malloc(cap);
  w.cap = cap;
  w.len = cap;
  if (!BrotliEncoderCompress(quality, BROTLI_DEFAULT_WINDOW,
                             BROTLI_MODE_GENERIC, n, in, &w.len, w.b))
    abort();
  return w;
}

static struct buf zstd_encode(const void *in, size_t n) {
  struct buf w = {0};
  size_t cap = ZSTD_compressBound(n);
  w.b = malloc(cap);
  w.cap = cap;
  w.len = ZSTD_compress(w.b, cap, in, n, 3);
  if (ZSTD_isError(w.len))
    abort();
  return w;
}

static struct buf encode(enum lm_http_coding c, const void *in, size_t n) {
  switch (c) {
  case LM_CODING_GZIP:
    return zlib_encode(in, n, 15 + 16);
  case LM_CODING_DEFLATE:
    return zlib_encode(in, n, 15);
  case LM_CODING_BR:
    return br_encode(in, n, 5);
  case LM_CODING_ZSTD:
    return zstd_encode(in, n);
  default: {
    struct buf w = {0};
    buf_put(&w, in, n);
    return w;
  }
  }
}

/* ---- a recording consumer ------------------------------------------------- */

struct sink {
  struct buf got;
  bool keep;     /* keep the bytes (else only count them) */
  size_t pieces; /* callbacks */
  size_t max_piece;
  uint64_t total;
  uint64_t stop_after;         /* stop once total reaches this (0: never) */
  unsigned char first_nonzero; /* bomb: any nonzero byte seen */
};

static int sink_out(void *ctx, const char *p, size_t n) {
  struct sink *s = ctx;
  s->pieces++;
  if (n > s->max_piece)
    s->max_piece = n;
  s->total += n;
  if (s->keep)
    buf_put(&s->got, p, n);
  else
    for (size_t i = 0; i < n && !s->first_nonzero; i++)
      s->first_nonzero = (unsigned char)p[i];
  return s->stop_after && s->total >= s->stop_after;
}

/* Feeds in at random piece sizes (1 byte to 64 KiB, mostly small). */
static enum lm_decode_status feed_random(struct lm_decode *d, const void *in,
                                         size_t n) {
  const char *p = in;
  size_t off = 0;
  enum lm_decode_status s = LM_DECODE_OK;
  while (off < n && (s == LM_DECODE_OK || s == LM_DECODE_DONE)) {
    size_t k = rnd() % 4 == 0 ? 1 + rnd() % 65536 : 1 + rnd() % 300;
    if (k > n - off)
      k = n - off;
    s = lm_decode_feed(d, p + off, k);
    off += k;
  }
  return s;
}

static const enum lm_http_coding codings[] = {LM_CODING_IDENTITY,
                                              LM_CODING_GZIP, LM_CODING_DEFLATE,
                                              LM_CODING_BR, LM_CODING_ZSTD};

static struct lm_decode D;

/* ---- loading the libraries ---------------------------------------------- */

struct racer {
  struct buf z[5];
  int ok;
};

static void *race_one(void *arg) {
  struct racer *r = arg;
  static const char text[] = "the same text in every coding";
  struct lm_decode *d = malloc(sizeof *d);
  for (int c = 4; c >= 0; c--) {
    struct sink s = {.keep = true};
    if (lm_decode_init(d, codings[c], sink_out, &s) == 0 &&
        lm_decode_feed(d, (const char *)r->z[c].b, r->z[c].len) !=
            LM_DECODE_ERROR &&
        lm_decode_finish(d) == LM_DECODE_DONE && s.got.len == sizeof text - 1 &&
        memcmp(s.got.b, text, sizeof text - 1) == 0)
      r->ok++;
    lm_decode_free(d);
    free(s.got.b);
  }
  free(d);
  return NULL;
}

/* Run first, so that the first decoder of each kind is made by eight
 * threads at once: each library's table is filled once, and every thread
 * finds it whole. (This binary links the libraries, so dlopen finds them
 * loaded; the fuzz target, which does not, loads them for real.) */
LM_TEST(test_threads_starting_decoders_at_once_all_get_the_libraries) {
  static const char text[] = "the same text in every coding";
  struct racer r[8];
  pthread_t t[8];
  for (int i = 0; i < 8; i++) {
    r[i].ok = 0;
    for (int c = 0; c < 5; c++)
      r[i].z[c] = encode(codings[c], text, sizeof text - 1);
  }
  for (int i = 0; i < 8; i++)
    CHECK(pthread_create(&t[i], NULL, race_one, &r[i]) == 0);
  for (int i = 0; i < 8; i++) {
    pthread_join(t[i], NULL);
    CHECK_EQ_I64(r[i].ok, 5);
    for (int c = 0; c < 5; c++)
      free(r[i].z[c].b);
  }
}

/* ---- round trips ---------------------------------------------------------- */

LM_TEST(test_every_coding_round_trips_at_random_splits) {
  struct buf plain = payload();
  for (size_t c = 0; c < sizeof codings / sizeof codings[0]; c++) {
    struct buf z = encode(codings[c], plain.b, plain.len);
    for (int round = 0; round < 6; round++) {
      struct sink s = {.keep = true};
      CHECK(lm_decode_init(&D, codings[c], sink_out, &s) == 0);
      enum lm_decode_status st = feed_random(&D, z.b, z.len);
      CHECK(st == LM_DECODE_OK || st == LM_DECODE_DONE);
      CHECK(lm_decode_finish(&D) == LM_DECODE_DONE);
      if (s.got.len != plain.len || memcmp(s.got.b, plain.b, plain.len)) {
        fprintf(stderr, "  %s round %d: %zu of %zu bytes back (%s)\n",
                lm_http_coding_name(codings[c]), round, s.got.len, plain.len,
                lm_decode_error(&D) ? lm_decode_error(&D) : "no error");
        lm_t_cur_failed = 1;
      }
      CHECK(s.max_piece <= LM_DECODE_OUT_MAX);
      CHECK_EQ_U64(D.in_total, z.len);
      CHECK_EQ_U64(D.out_total, plain.len);
      lm_decode_free(&D);
      CHECK_EQ_U64(D.mem, 0); /* the library gave back all it took */
      free(s.got.b);
    }
    free(z.b);
  }
  free(plain.b);
}

LM_TEST(test_deflate_is_decoded_zlib_wrapped_and_raw) {
  static const char text[] = "{\"usage\":{\"prompt_tokens\":7,\"completion_"
                             "tokens\":87}} {\"usage\":{\"prompt_tokens\":7}}";
  for (int raw = 0; raw < 2; raw++) {
    struct buf z = zlib_encode(text, sizeof text - 1, raw ? -15 : 15);
    /* Every cut, so that the two bytes that decide are split too. */
    for (size_t cut = 0; cut <= z.len; cut++) {
      struct sink s = {.keep = true};
      CHECK(lm_decode_init(&D, LM_CODING_DEFLATE, sink_out, &s) == 0);
      lm_decode_feed(&D, (const char *)z.b, cut);
      lm_decode_feed(&D, (const char *)z.b + cut, z.len - cut);
      if (lm_decode_finish(&D) != LM_DECODE_DONE ||
          s.got.len != sizeof text - 1 ||
          memcmp(s.got.b, text, sizeof text - 1) != 0) {
        fprintf(stderr, "  %s, cut %zu: %s\n", raw ? "raw" : "zlib", cut,
                lm_decode_error(&D) ? lm_decode_error(&D) : "wrong bytes");
        lm_t_cur_failed = 1;
      }
      lm_decode_free(&D);
      free(s.got.b);
    }
    free(z.b);
  }
}

LM_TEST(test_gzip_members_back_to_back_are_one_body) {
  struct buf a = zlib_encode("first,", 6, 31);
  struct buf b = zlib_encode("second", 6, 31);
  buf_put(&a, b.b, b.len);
  struct sink s = {.keep = true};
  CHECK(lm_decode_init(&D, LM_CODING_GZIP, sink_out, &s) == 0);
  feed_random(&D, a.b, a.len);
  CHECK(lm_decode_finish(&D) == LM_DECODE_DONE);
  CHECK_EQ_U64(s.got.len, 12);
  CHECK(s.got.b && memcmp(s.got.b, "first,second", 12) == 0);
  lm_decode_free(&D);
  free(s.got.b);
  /* Bytes after the end that start no member are ignored. */
  buf_put(&b, "\r\n", 2);
  struct sink t = {.keep = true};
  CHECK(lm_decode_init(&D, LM_CODING_GZIP, sink_out, &t) == 0);
  CHECK(lm_decode_feed(&D, (const char *)b.b, b.len) == LM_DECODE_DONE);
  CHECK(lm_decode_finish(&D) == LM_DECODE_DONE);
  CHECK_EQ_U64(t.got.len, 6);
  lm_decode_free(&D);
  free(t.got.b);
  free(a.b);
  free(b.b);
}

LM_TEST(test_identity_passes_bytes_through_in_bounded_pieces) {
  static char big[LM_DECODE_OUT_MAX * 3 + 5];
  memset(big, 'x', sizeof big);
  struct sink s = {0};
  CHECK(lm_decode_init(&D, LM_CODING_IDENTITY, sink_out, &s) == 0);
  CHECK(lm_decode_feed(&D, big, sizeof big) == LM_DECODE_OK);
  CHECK_EQ_U64(s.total, sizeof big);
  CHECK_EQ_U64(s.pieces, 4);
  CHECK_EQ_U64(s.max_piece, LM_DECODE_OUT_MAX);
  CHECK(lm_decode_finish(&D) == LM_DECODE_DONE);
  lm_decode_free(&D);
}

LM_TEST(test_an_empty_body_is_whole_in_every_coding) {
  for (size_t c = 0; c < sizeof codings / sizeof codings[0]; c++) {
    struct sink s = {0};
    CHECK(lm_decode_init(&D, codings[c], sink_out, &s) == 0);
    CHECK(lm_decode_finish(&D) == LM_DECODE_DONE);
    CHECK_EQ_U64(s.total, 0);
    lm_decode_free(&D);
  }
}

LM_TEST(test_unsupported_codings_fail_init_with_a_reason) {
  struct sink s = {0};
  CHECK(lm_decode_init(&D, LM_CODING_MULTIPLE, sink_out, &s) == -1);
  CHECK(lm_decode_error(&D) && strstr(lm_decode_error(&D), "unsupported"));
  CHECK(lm_decode_feed(&D, "x", 1) == LM_DECODE_ERROR);
  lm_decode_free(&D);
  lm_decode_free(&D);
  CHECK(lm_decode_init(&D, LM_CODING_OTHER, sink_out, &s) == -1);
  CHECK(lm_decode_finish(&D) == LM_DECODE_ERROR);
  lm_decode_free(&D);
  CHECK_EQ_U64(s.pieces, 0);
}

LM_TEST(test_a_stop_from_the_consumer_is_sticky) {
  struct buf plain = payload();
  for (size_t c = 0; c < sizeof codings / sizeof codings[0]; c++) {
    struct buf z = encode(codings[c], plain.b, plain.len);
    struct sink s = {.stop_after = 1000};
    CHECK(lm_decode_init(&D, codings[c], sink_out, &s) == 0);
    CHECK(lm_decode_feed(&D, (const char *)z.b, z.len) == LM_DECODE_STOPPED);
    size_t pieces = s.pieces;
    CHECK(lm_decode_feed(&D, (const char *)z.b, z.len) == LM_DECODE_STOPPED);
    CHECK(lm_decode_finish(&D) == LM_DECODE_STOPPED);
    CHECK_EQ_U64(s.pieces, pieces);
    lm_decode_free(&D);
    free(z.b);
  }
  free(plain.b);
}

/* ---- corrupt and truncated input ----------------------------------------- */

/* Decodes z (whole) and finishes: the outcome must be an error with a
 * one-line reason mentioning `why`, and the decoder must stay in it. */
static void expect_error(enum lm_http_coding c, const unsigned char *z,
                         size_t n, const char *why) {
  struct sink s = {0};
  CHECK(lm_decode_init(&D, c, sink_out, &s) == 0);
  enum lm_decode_status st = lm_decode_feed(&D, (const char *)z, n);
  if (st != LM_DECODE_ERROR)
    st = lm_decode_finish(&D);
  const char *e = lm_decode_error(&D);
  if (st != LM_DECODE_ERROR || !e || !strstr(e, why) || strchr(e, '\n')) {
    fprintf(stderr, "  %s: status %d, reason \"%s\", want \"%s\"\n",
            lm_http_coding_name(c), st, e ? e : "(none)", why);
    lm_t_cur_failed = 1;
  }
  CHECK(lm_decode_feed(&D, "abc", 3) == LM_DECODE_ERROR);
  CHECK(lm_decode_finish(&D) == LM_DECODE_ERROR);
  lm_decode_free(&D);
}

LM_TEST(test_corrupt_data_is_an_error_in_every_coding) {
  struct buf plain = payload();
  for (size_t c = 1; c < sizeof codings / sizeof codings[0]; c++) {
    /* Garbage from the first byte. */
    static const unsigned char junk[] = "this is not compressed at all....";
    expect_error(codings[c], junk, sizeof junk - 1, "");
    /* Bytes flipped in the middle. gzip and zlib carry a check value, and
     * zstd one when the encoder adds it (made so here): those notice
     * whichever bytes were hit. Brotli has none: flipped bytes may decode
     * to other bytes, and only never crashing is asked of it (ASan run). */
    struct buf z;
    if (codings[c] == LM_CODING_ZSTD) {
      z.cap = ZSTD_compressBound(plain.len);
      z.b = malloc(z.cap);
      ZSTD_CCtx *cc = ZSTD_createCCtx();
      ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
      z.len = ZSTD_compress2(cc, z.b, z.cap, plain.b, plain.len);
      ZSTD_freeCCtx(cc);
    } else {
      z = encode(codings[c], plain.b, plain.len);
    }
    for (int k = 0; k < 64; k++)
      z.b[z.len / 3 + (size_t)k * 7] ^= 0x5a;
    if (codings[c] != LM_CODING_BR) {
      expect_error(codings[c], z.b, z.len, "corrupt");
    } else {
      struct sink s = {0};
      CHECK(lm_decode_init(&D, codings[c], sink_out, &s) == 0);
      feed_random(&D, z.b, z.len);
      lm_decode_finish(&D);
      lm_decode_free(&D);
    }
    free(z.b);
  }
  free(plain.b);
}

LM_TEST(test_a_truncated_stream_is_an_error_at_finish) {
  static const char text[] = "a body that ends before its compressed end";
  for (size_t c = 1; c < sizeof codings / sizeof codings[0]; c++) {
    struct buf z = encode(codings[c], text, sizeof text - 1);
    for (size_t cut = 1; cut < z.len; cut++)
      expect_error(codings[c], z.b, cut, "truncated");
    free(z.b);
  }
}

LM_TEST(test_a_zstd_window_over_the_cap_is_refused) {
  /* A streamed frame (no content size) asking for a 2^25 window. */
  size_t n = 1 << 20;
  unsigned char *in = malloc(n);
  for (size_t i = 0; i < n; i++)
    in[i] = (unsigned char)(rnd() % 16);
  ZSTD_CCtx *cc = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, 25);
  struct buf w = {0};
  unsigned char out[1 << 16];
  ZSTD_inBuffer zin = {in, n, 0};
  size_t left;
  do {
    ZSTD_outBuffer zout = {out, sizeof out, 0};
    ZSTD_compressStream2(cc, &zout, &zin, ZSTD_e_continue);
    buf_put(&w, out, zout.pos);
  } while (zin.pos < zin.size);
  do {
    ZSTD_outBuffer zout = {out, sizeof out, 0};
    left = ZSTD_compressStream2(cc, &zout, &zin, ZSTD_e_end);
    buf_put(&w, out, zout.pos);
  } while (left > 0);
  ZSTD_freeCCtx(cc);
  expect_error(LM_CODING_ZSTD, w.b, w.len, "");
  struct sink s = {0};
  CHECK(lm_decode_init(&D, LM_CODING_ZSTD, sink_out, &s) == 0);
  lm_decode_feed(&D, (const char *)w.b, w.len);
  CHECK(D.mem_peak < (1u << 20)); /* refused before any window is taken */
  CHECK_EQ_U64(s.total, 0);
  lm_decode_free(&D);
  free(w.b);
  free(in);
}

/* ---- the bomb -------------------------------------------------------------- */

#define BOMB_BYTES (100ull << 20)

/* 100 MB of zeros compressed by streaming (never 100 MB in memory). */
static struct buf bomb(enum lm_http_coding c) {
  static unsigned char zeros[1 << 20];
  unsigned char out[1 << 16];
  struct buf w = {0};
  if (c == LM_CODING_GZIP) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    deflateInit2(&zs, 9, Z_DEFLATED, 31, 9, Z_DEFAULT_STRATEGY);
    for (uint64_t done = 0; done < BOMB_BYTES; done += sizeof zeros) {
      int flush = done + sizeof zeros >= BOMB_BYTES ? Z_FINISH : Z_NO_FLUSH;
      zs.next_in = zeros;
      zs.avail_in = sizeof zeros;
      do {
        zs.next_out = out;
        zs.avail_out = sizeof out;
        deflate(&zs, flush);
        buf_put(&w, out, sizeof out - zs.avail_out);
      } while (zs.avail_out == 0);
    }
    deflateEnd(&zs);
  } else if (c == LM_CODING_BR) {
    BrotliEncoderState *e = BrotliEncoderCreateInstance(NULL, NULL, NULL);
    BrotliEncoderSetParameter(e, BROTLI_PARAM_QUALITY, 1);
    for (uint64_t done = 0; done < BOMB_BYTES; done += sizeof zeros) {
      BrotliEncoderOperation op = done + sizeof zeros >= BOMB_BYTES
                                      ? BROTLI_OPERATION_FINISH
                                      : BROTLI_OPERATION_PROCESS;
      size_t avail_in = sizeof zeros;
      const uint8_t *next_in = zeros;
      do {
        size_t avail_out = sizeof out;
        uint8_t *next_out = out;
        BrotliEncoderCompressStream(e, op, &avail_in, &next_in, &avail_out,
                                    &next_out, NULL);
        buf_put(&w, out, sizeof out - avail_out);
      } while (avail_in > 0 || BrotliEncoderHasMoreOutput(e) ||
               (op == BROTLI_OPERATION_FINISH && !BrotliEncoderIsFinished(e)));
    }
    BrotliEncoderDestroyInstance(e);
  } else {
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    for (uint64_t done = 0; done < BOMB_BYTES; done += sizeof zeros) {
      ZSTD_EndDirective op = done + sizeof zeros >= BOMB_BYTES
                                 ? ZSTD_e_end
                                 : ZSTD_e_continue;
      ZSTD_inBuffer zin = {zeros, sizeof zeros, 0};
      size_t left;
      do {
        ZSTD_outBuffer zout = {out, sizeof out, 0};
        left = ZSTD_compressStream2(cc, &zout, &zin, op);
        buf_put(&w, out, zout.pos);
      } while (zin.pos < zin.size || (op == ZSTD_e_end && left > 0));
    }
    ZSTD_freeCCtx(cc);
  }
  return w;
}

/* The decoder holds the library's state and its own 16 KiB buffer; what a
 * 100 MB output costs must be what its first feed cost: no allocation
 * after setup (zlib, zstd), and a peak under a small ceiling (all). */
LM_TEST(test_a_100_mb_bomb_streams_in_fixed_memory) {
  static const enum lm_http_coding kinds[] = {LM_CODING_GZIP, LM_CODING_BR,
                                              LM_CODING_ZSTD};
  /* Ceilings: zlib's state and 32 KiB window; brotli and zstd the window
   * the stream declares (brotli quality 1: 4 MiB, held 1.5 times while
   * its ring buffer grows; zstd level 3 on 100 MB: 2 MiB) and tables. */
  static const size_t ceiling[] = {64u << 10, 7u << 20, 3u << 20};
  for (size_t k = 0; k < 3; k++) {
    struct buf z = bomb(kinds[k]);
    struct sink s = {0};
    CHECK(lm_decode_init(&D, kinds[k], sink_out, &s) == 0);
    /* The first 4 KiB of input set the decoder up; the rest must not
     * allocate at all. */
    size_t head = z.len < 4096 ? z.len / 2 : 4096;
    lm_decode_feed(&D, (const char *)z.b, head);
    uint64_t allocs = D.allocs;
    enum lm_decode_status st = feed_random(&D, z.b + head, z.len - head);
    CHECK(st == LM_DECODE_OK || st == LM_DECODE_DONE);
    CHECK(lm_decode_finish(&D) == LM_DECODE_DONE);
    /* Brotli takes and frees each metablock's tables (decode.h): its
     * count may grow, its peak may not. */
    bool per_block = kinds[k] == LM_CODING_BR;
    if (s.total != BOMB_BYTES || (!per_block && D.allocs != allocs) ||
        D.mem_peak > ceiling[k] || s.max_piece > LM_DECODE_OUT_MAX ||
        s.first_nonzero) {
      fprintf(stderr,
              "  %s: %zu compressed -> %llu out in %zu pieces (max %zu),"
              " allocations %llu after setup %llu, peak %zu bytes\n",
              lm_http_coding_name(kinds[k]), z.len, (unsigned long long)s.total,
              s.pieces, s.max_piece, (unsigned long long)D.allocs,
              (unsigned long long)allocs, D.mem_peak);
      lm_t_cur_failed = 1;
    }
    lm_decode_free(&D);
    CHECK_EQ_U64(D.mem, 0);
    free(z.b);
  }
}

int main(void) {
  LM_RUN(test_threads_starting_decoders_at_once_all_get_the_libraries);
  LM_RUN(test_every_coding_round_trips_at_random_splits);
  LM_RUN(test_deflate_is_decoded_zlib_wrapped_and_raw);
  LM_RUN(test_gzip_members_back_to_back_are_one_body);
  LM_RUN(test_identity_passes_bytes_through_in_bounded_pieces);
  LM_RUN(test_an_empty_body_is_whole_in_every_coding);
  LM_RUN(test_unsupported_codings_fail_init_with_a_reason);
  LM_RUN(test_a_stop_from_the_consumer_is_sticky);
  LM_RUN(test_corrupt_data_is_an_error_in_every_coding);
  LM_RUN(test_a_truncated_stream_is_an_error_at_finish);
  LM_RUN(test_a_zstd_window_over_the_cap_is_refused);
  LM_RUN(test_a_100_mb_bomb_streams_in_fixed_memory);
  LM_TEST_END();
}
