/* decode.c — Content-Encoding decoders over lazily loaded libraries (see
 * decode.h).
 *
 * Why dlopen and not -lz: the library is preloaded into every process, and
 * a DT_NEEDED entry would load zlib, brotli and zstd into each of them at
 * start (and fail the start of any process on a machine without one). The
 * -dev headers are used for types and prototypes only: each table entry
 * is declared with __typeof__ of the real function, so a prototype that
 * disagrees with ours cannot compile. Tables are filled once per library
 * under pthread_once; a library stays loaded for the life of the process
 * (a decoder may be running in another thread; unloading buys nothing).
 *
 * Every allocation a library makes goes through a counting allocator on
 * the decoder (zalloc for zlib, the alloc/free pair of brotli and zstd's
 * customMem), which caps what one decoder may hold at LM_DECODE_MEM_MAX
 * and lets the tests check that a stream of any length allocates the same
 * few blocks. Decoded bytes go through d->buf, never anywhere larger.
 */
#include "decode.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>
#include <brotli/decode.h>
/* For ZSTD_customMem and ZSTD_createDStream_advanced: libzstd.so.1 has
 * exported them since 1.3 and their layout has not changed; without the
 * symbol a decoder falls back to ZSTD_createDStream (memory then bounded
 * by the window cap alone, not counted). */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

/* zstd: a window of at most 8 MiB, the limit RFC 9659 sets for the "zstd"
 * content coding (libzstd's own default would take 128 MiB). */
#define ZSTD_WINDOW_LOG_MAX 23

/* ---- coding names ----------------------------------------------------- */

static bool token_is(const char *t, size_t n, const char *name) {
  return strlen(name) == n && strncasecmp(t, name, n) == 0;
}

static enum lm_http_coding coding_of(const char *t, size_t n) {
  if (token_is(t, n, "identity"))
    return LM_CODING_IDENTITY;
  if (token_is(t, n, "gzip") || token_is(t, n, "x-gzip"))
    return LM_CODING_GZIP;
  if (token_is(t, n, "deflate"))
    return LM_CODING_DEFLATE;
  if (token_is(t, n, "br"))
    return LM_CODING_BR;
  if (token_is(t, n, "zstd"))
    return LM_CODING_ZSTD;
  return LM_CODING_OTHER;
}

enum lm_http_coding lm_http_coding_add(enum lm_http_coding so_far,
                                       const char *value, size_t len) {
  size_t i = 0;
  while (i < len) {
    while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
      i++;
    size_t start = i;
    while (i < len && value[i] != ',')
      i++;
    size_t end = i;
    while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t'))
      end--;
    if (end == start)
      continue;
    enum lm_http_coding c = coding_of(value + start, end - start);
    if (c == LM_CODING_IDENTITY)
      continue; /* "identity" is no coding at all */
    so_far = so_far == LM_CODING_IDENTITY ? c : LM_CODING_MULTIPLE;
  }
  return so_far;
}

const char *lm_http_coding_name(enum lm_http_coding c) {
  switch (c) {
  case LM_CODING_IDENTITY:
    return "identity";
  case LM_CODING_GZIP:
    return "gzip";
  case LM_CODING_DEFLATE:
    return "deflate";
  case LM_CODING_BR:
    return "br";
  case LM_CODING_ZSTD:
    return "zstd";
  case LM_CODING_OTHER:
    return "other";
  case LM_CODING_MULTIPLE:
    return "multiple";
  }
  return "?";
}

/* ---- the libraries, loaded once --------------------------------------- */

struct zlib_api {
  __typeof__(inflateInit2_) *init2;
  __typeof__(inflate) *inflate;
  __typeof__(inflateReset) *reset;
  __typeof__(inflateEnd) *end;
};

struct brotli_api {
  __typeof__(BrotliDecoderCreateInstance) *create;
  __typeof__(BrotliDecoderDecompressStream) *stream;
  __typeof__(BrotliDecoderGetErrorCode) *error_code;
  __typeof__(BrotliDecoderErrorString) *error_string;
  __typeof__(BrotliDecoderDestroyInstance) *destroy;
};

struct zstd_api {
  __typeof__(ZSTD_createDStream) *create;
  __typeof__(ZSTD_createDStream_advanced) *create_advanced; /* optional */
  __typeof__(ZSTD_DCtx_setParameter) *set_parameter;
  __typeof__(ZSTD_decompressStream) *stream;
  __typeof__(ZSTD_isError) *is_error;
  __typeof__(ZSTD_getErrorName) *error_name;
  __typeof__(ZSTD_freeDStream) *free;
};

/* One library: its table is complete when ok is set (then read-only). */
struct lib {
  pthread_once_t once;
  const char *soname;
  bool ok;
  char reason[112];
};

static struct zlib_api zlib_fn;
static struct brotli_api brotli_fn;
static struct zstd_api zstd_fn;
static struct lib zlib_lib = {PTHREAD_ONCE_INIT, "libz.so.1", false, ""};
static struct lib brotli_lib = {PTHREAD_ONCE_INIT, "libbrotlidec.so.1", false,
                                ""};
static struct lib zstd_lib = {PTHREAD_ONCE_INIT, "libzstd.so.1", false, ""};

/* Looks a symbol up into *slot (a function pointer of any type). */
static bool sym(struct lib *l, void *h, const char *name, void *slot,
                bool required) {
  void *p = dlsym(h, name);
  memcpy(slot, &p, sizeof p);
  if (!p && required) {
    snprintf(l->reason, sizeof l->reason, "%s has no %s", l->soname, name);
    return false;
  }
  return true;
}

static void *lib_open(struct lib *l) {
  void *h = dlopen(l->soname, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *e = dlerror();
    snprintf(l->reason, sizeof l->reason, "cannot load %s: %s", l->soname,
             e ? e : "not found");
  }
  return h;
}

static void load_zlib(void) {
  struct lib *l = &zlib_lib;
  struct zlib_api t;
  void *h = lib_open(l);
  if (h && sym(l, h, "inflateInit2_", &t.init2, true) &&
      sym(l, h, "inflate", &t.inflate, true) &&
      sym(l, h, "inflateReset", &t.reset, true) &&
      sym(l, h, "inflateEnd", &t.end, true)) {
    zlib_fn = t;
    l->ok = true;
  }
}

static void load_brotli(void) {
  struct lib *l = &brotli_lib;
  struct brotli_api t;
  void *h = lib_open(l);
  if (h && sym(l, h, "BrotliDecoderCreateInstance", &t.create, true) &&
      sym(l, h, "BrotliDecoderDecompressStream", &t.stream, true) &&
      sym(l, h, "BrotliDecoderGetErrorCode", &t.error_code, true) &&
      sym(l, h, "BrotliDecoderErrorString", &t.error_string, true) &&
      sym(l, h, "BrotliDecoderDestroyInstance", &t.destroy, true)) {
    brotli_fn = t;
    l->ok = true;
  }
}

static void load_zstd(void) {
  struct lib *l = &zstd_lib;
  struct zstd_api t;
  void *h = lib_open(l);
  if (h && sym(l, h, "ZSTD_createDStream", &t.create, true) &&
      sym(l, h, "ZSTD_createDStream_advanced", &t.create_advanced, false) &&
      sym(l, h, "ZSTD_DCtx_setParameter", &t.set_parameter, true) &&
      sym(l, h, "ZSTD_decompressStream", &t.stream, true) &&
      sym(l, h, "ZSTD_isError", &t.is_error, true) &&
      sym(l, h, "ZSTD_getErrorName", &t.error_name, true) &&
      sym(l, h, "ZSTD_freeDStream", &t.free, true)) {
    zstd_fn = t;
    l->ok = true;
  }
}

/* pthread_once orders the table's writes before every reader's return. */
static bool lib_ready(struct lib *l, void (*load)(void)) {
  pthread_once(&l->once, load);
  return l->ok;
}

/* ---- the counting allocator ------------------------------------------- */

/* Each block carries its size in front, keeping the alignment malloc
 * gives (the header is as aligned, so as long, as max_align_t). */
struct block {
  alignas(max_align_t) size_t size;
};

static void *count_alloc(struct lm_decode *d, size_t n) {
  if (n > LM_DECODE_MEM_MAX - d->mem) {
    if (!d->reason[0])
      snprintf(d->reason, sizeof d->reason,
               "%s decoder would hold over %u MiB (stream asks too much)",
               lm_http_coding_name(d->coding), LM_DECODE_MEM_MAX >> 20);
    return NULL;
  }
  struct block *b = malloc(sizeof *b + n);
  if (!b)
    return NULL;
  b->size = n;
  d->mem += n;
  if (d->mem > d->mem_peak)
    d->mem_peak = d->mem;
  d->allocs++;
  return b + 1;
}

static void count_free(struct lm_decode *d, void *p) {
  if (!p)
    return;
  struct block *b = (struct block *)p - 1;
  d->mem -= b->size;
  free(b);
}

static voidpf z_alloc(voidpf opaque, uInt items, uInt size) {
  /* uInt is 32 bits: the product fits a 64-bit size_t. */
  return count_alloc(opaque, (size_t)items * size);
}
static void z_free(voidpf opaque, voidpf p) { count_free(opaque, p); }
static void *lib_alloc(void *opaque, size_t n) {
  return count_alloc(opaque, n);
}
static void lib_free(void *opaque, void *p) { count_free(opaque, p); }

/* ---- common ----------------------------------------------------------- */

_Static_assert(sizeof(z_stream) <= sizeof(((struct lm_decode *)0)->z),
               "z_stream must fit struct lm_decode's z");
_Static_assert(alignof(z_stream) <= alignof(uint64_t),
               "z_stream must be aligned in struct lm_decode's z");

static z_stream *zs_of(struct lm_decode *d) { return (z_stream *)d->z.bytes; }

static enum lm_decode_status fail(struct lm_decode *d, const char *what,
                                  const char *detail) {
  /* A reason set earlier (the memory cap) is the cause: keep it. */
  if (!d->reason[0])
    snprintf(d->reason, sizeof d->reason, "%s body: %s%s%s",
             lm_http_coding_name(d->coding), what, detail ? ": " : "",
             detail ? detail : "");
  d->status = LM_DECODE_ERROR;
  return LM_DECODE_ERROR;
}

/* Hands n decoded bytes of d->buf (or of p) to the consumer. */
static bool emit(struct lm_decode *d, const char *p, size_t n) {
  if (n == 0)
    return true;
  d->out_total += n;
  if (d->out(d->ctx, p, n) != 0) {
    d->status = LM_DECODE_STOPPED;
    return false;
  }
  return true;
}

int lm_decode_init(struct lm_decode *d, enum lm_http_coding coding,
                   lm_decode_out_fn out, void *ctx) {
  memset(d, 0, offsetof(struct lm_decode, buf));
  d->coding = (uint8_t)coding;
  d->out = out;
  d->ctx = ctx;
  d->status = LM_DECODE_ERROR; /* until the stream is set up */
  switch (coding) {
  case LM_CODING_IDENTITY:
    break;
  case LM_CODING_GZIP:
  case LM_CODING_DEFLATE: {
    if (!lib_ready(&zlib_lib, load_zlib)) {
      fail(d, zlib_lib.reason, NULL);
      return -1;
    }
    z_stream *zs = zs_of(d);
    zs->zalloc = z_alloc;
    zs->zfree = z_free;
    zs->opaque = d;
    /* gzip: 15 + 32 takes a gzip or a zlib header (servers that label
     * zlib data "gzip" exist). deflate waits for its first two bytes to
     * tell zlib-wrapped from raw (decide_deflate). */
    if (coding == LM_CODING_GZIP) {
      int rc = zlib_fn.init2(zs, 15 + 32, ZLIB_VERSION, (int)sizeof *zs);
      if (rc != Z_OK) {
        fail(d, "cannot start zlib", zs->msg);
        return -1;
      }
      d->lib = zs;
      d->started = 1;
    }
    break;
  }
  case LM_CODING_BR: {
    if (!lib_ready(&brotli_lib, load_brotli)) {
      fail(d, brotli_lib.reason, NULL);
      return -1;
    }
    d->lib = brotli_fn.create(lib_alloc, lib_free, d);
    if (!d->lib) {
      fail(d, "cannot start brotli", NULL);
      return -1;
    }
    break;
  }
  case LM_CODING_ZSTD: {
    if (!lib_ready(&zstd_lib, load_zstd)) {
      fail(d, zstd_lib.reason, NULL);
      return -1;
    }
    if (zstd_fn.create_advanced) {
      ZSTD_customMem cm = {lib_alloc, lib_free, d};
      d->lib = zstd_fn.create_advanced(cm);
    } else {
      d->lib = zstd_fn.create();
    }
    if (!d->lib) {
      fail(d, "cannot start zstd", NULL);
      return -1;
    }
    size_t rc = zstd_fn.set_parameter(d->lib, ZSTD_d_windowLogMax,
                                      ZSTD_WINDOW_LOG_MAX);
    if (zstd_fn.is_error(rc)) {
      fail(d, "cannot cap the zstd window", zstd_fn.error_name(rc));
      return -1;
    }
    break;
  }
  case LM_CODING_OTHER:
  case LM_CODING_MULTIPLE:
  default:
    fail(d, "unsupported content coding", NULL);
    return -1;
  }
  d->status = LM_DECODE_OK;
  return 0;
}

void lm_decode_free(struct lm_decode *d) {
  if (!d->lib)
    return;
  switch (d->coding) {
  case LM_CODING_GZIP:
  case LM_CODING_DEFLATE:
    zlib_fn.end(d->lib);
    break;
  case LM_CODING_BR:
    brotli_fn.destroy(d->lib);
    break;
  case LM_CODING_ZSTD:
    zstd_fn.free(d->lib);
    break;
  default:
    break;
  }
  d->lib = NULL;
}

const char *lm_decode_error(const struct lm_decode *d) {
  return d->status == LM_DECODE_ERROR ? d->reason : NULL;
}

/* ---- zlib (gzip, deflate) --------------------------------------------- */

/* A zlib header (RFC 1950): method 8, a window of at most 32 KiB, the
 * check bits right and no preset dictionary (HTTP has no way to name
 * one). Raw deflate data starting with such two bytes would need a stored
 * first block with nonzero padding bits, which encoders do not write. */
static bool zlib_header(const uint8_t b[2]) {
  return (b[0] & 0x0f) == 8 && (b[0] >> 4) <= 7 &&
         ((unsigned)b[0] << 8 | b[1]) % 31 == 0 && !(b[1] & 0x20);
}

static enum lm_decode_status zlib_run(struct lm_decode *d, const uint8_t *p,
                                      size_t n) {
  z_stream *zs = d->lib;
  while (n > 0) {
    /* Input goes to zlib in pieces its uInt counters can hold. */
    uInt take = n > 1u << 30 ? 1u << 30 : (uInt)n;
    zs->next_in = (Bytef *)(uintptr_t)p;
    zs->avail_in = take;
    for (;;) {
      if (d->status == LM_DECODE_DONE) {
        /* A gzip body may hold several members back to back (RFC 1952);
         * anything else after the end is ignored, as browsers do. */
        if (d->coding != LM_CODING_GZIP || zs->avail_in == 0 ||
            zs->next_in[0] != 0x1f)
          return LM_DECODE_DONE;
        zlib_fn.reset(zs);
        d->status = LM_DECODE_OK;
      }
      zs->next_out = (Bytef *)d->buf;
      zs->avail_out = sizeof d->buf;
      int rc = zlib_fn.inflate(zs, Z_NO_FLUSH);
      size_t got = sizeof d->buf - zs->avail_out;
      if (rc == Z_STREAM_END)
        d->status = LM_DECODE_DONE;
      else if (rc != Z_OK && rc != Z_BUF_ERROR)
        return fail(d, "corrupt data", zs->msg ? zs->msg : "inflate failed");
      if (!emit(d, d->buf, got))
        return LM_DECODE_STOPPED;
      if (d->status == LM_DECODE_DONE)
        continue;
      /* Z_BUF_ERROR: no progress was possible (all input used, nothing
       * pending). Otherwise a full buffer may leave output pending. */
      if (rc == Z_BUF_ERROR || (zs->avail_in == 0 && zs->avail_out != 0))
        break;
    }
    p += take;
    n -= take;
  }
  return (enum lm_decode_status)d->status;
}

/* deflate: zlib-wrapped or raw, told by the first two bytes. */
static enum lm_decode_status deflate_start(struct lm_decode *d) {
  z_stream *zs = zs_of(d);
  int bits = d->sniff_len == 2 && zlib_header(d->sniff) ? 15 : -15;
  int rc = zlib_fn.init2(zs, bits, ZLIB_VERSION, (int)sizeof *zs);
  if (rc != Z_OK)
    return fail(d, "cannot start zlib", zs->msg);
  d->lib = zs;
  d->started = 1;
  return zlib_run(d, d->sniff, d->sniff_len);
}

static enum lm_decode_status deflate_feed(struct lm_decode *d, const uint8_t *p,
                                          size_t n) {
  if (!d->started) {
    while (d->sniff_len < 2 && n > 0) {
      d->sniff[d->sniff_len++] = *p++;
      n--;
    }
    if (d->sniff_len < 2)
      return LM_DECODE_OK;
    enum lm_decode_status s = deflate_start(d);
    if (s != LM_DECODE_OK)
      return s;
  }
  return zlib_run(d, p, n);
}

/* ---- brotli ----------------------------------------------------------- */

static enum lm_decode_status brotli_run(struct lm_decode *d, const uint8_t *p,
                                        size_t n) {
  if (d->status == LM_DECODE_DONE)
    return LM_DECODE_DONE;
  size_t avail_in = n;
  const uint8_t *next_in = p;
  for (;;) {
    size_t avail_out = sizeof d->buf;
    uint8_t *next_out = (uint8_t *)d->buf;
    BrotliDecoderResult r = brotli_fn.stream(d->lib, &avail_in, &next_in,
                                             &avail_out, &next_out, NULL);
    if (r == BROTLI_DECODER_RESULT_ERROR)
      return fail(d, "corrupt data",
                  brotli_fn.error_string(brotli_fn.error_code(d->lib)));
    if (r == BROTLI_DECODER_RESULT_SUCCESS)
      d->status = LM_DECODE_DONE;
    if (!emit(d, d->buf, sizeof d->buf - avail_out))
      return LM_DECODE_STOPPED;
    if (r != BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT)
      break;
  }
  return (enum lm_decode_status)d->status;
}

/* ---- zstd ------------------------------------------------------------- */

/* d->started: the last call ended a frame (with nothing left to flush). */
static enum lm_decode_status zstd_run(struct lm_decode *d, const uint8_t *p,
                                      size_t n) {
  ZSTD_inBuffer in = {p, n, 0};
  for (;;) {
    ZSTD_outBuffer out = {d->buf, sizeof d->buf, 0};
    size_t rc = zstd_fn.stream(d->lib, &out, &in);
    if (zstd_fn.is_error(rc))
      return fail(d, "corrupt data", zstd_fn.error_name(rc));
    d->started = rc == 0;
    if (!emit(d, d->buf, out.pos))
      return LM_DECODE_STOPPED;
    /* 0: a frame ended, all of it flushed; another call with no input
     * would start the next frame (and forget that this one ended).
     * Frames may follow each other: zstd starts the next by itself. */
    if (in.pos == in.size && (rc == 0 || out.pos < out.size))
      break;
  }
  return LM_DECODE_OK;
}

/* ---- feed and finish -------------------------------------------------- */

enum lm_decode_status lm_decode_feed(struct lm_decode *d, const char *p,
                                     size_t n) {
  if (d->status == LM_DECODE_ERROR || d->status == LM_DECODE_STOPPED)
    return (enum lm_decode_status)d->status;
  d->in_total += n;
  if (n == 0)
    return (enum lm_decode_status)d->status;
  const uint8_t *u = (const uint8_t *)p;
  switch (d->coding) {
  case LM_CODING_IDENTITY:
    while (n > 0) {
      size_t k = n < LM_DECODE_OUT_MAX ? n : LM_DECODE_OUT_MAX;
      if (!emit(d, p, k))
        return LM_DECODE_STOPPED;
      p += k;
      n -= k;
    }
    return LM_DECODE_OK;
  case LM_CODING_GZIP:
    return zlib_run(d, u, n);
  case LM_CODING_DEFLATE:
    return deflate_feed(d, u, n);
  case LM_CODING_BR:
    return brotli_run(d, u, n);
  case LM_CODING_ZSTD:
    return zstd_run(d, u, n);
  default:
    return fail(d, "unsupported content coding", NULL);
  }
}

enum lm_decode_status lm_decode_finish(struct lm_decode *d) {
  if (d->status == LM_DECODE_ERROR || d->status == LM_DECODE_STOPPED)
    return (enum lm_decode_status)d->status;
  /* An empty body labelled with a coding (servers do that) holds nothing
   * to decode and nothing was cut. */
  if (d->in_total == 0) {
    d->status = LM_DECODE_DONE;
    return LM_DECODE_DONE;
  }
  switch (d->coding) {
  case LM_CODING_IDENTITY:
    d->status = LM_DECODE_DONE;
    break;
  case LM_CODING_DEFLATE:
    if (!d->started) {
      /* One byte: decode it as raw deflate, which then reports the
       * truncation (no deflate stream is that short). */
      if (deflate_start(d) == LM_DECODE_ERROR)
        return LM_DECODE_ERROR;
    }
    /* fall through */
  case LM_CODING_GZIP:
  case LM_CODING_BR:
    if (d->status != LM_DECODE_DONE)
      return fail(d, "truncated", "the stream did not reach its end");
    break;
  case LM_CODING_ZSTD:
    if (!d->started)
      return fail(d, "truncated", "the last frame did not end");
    d->status = LM_DECODE_DONE;
    break;
  default:
    break;
  }
  return (enum lm_decode_status)d->status;
}
