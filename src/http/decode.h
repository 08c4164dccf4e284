/* decode.h — Content-Encoding decoding of a body, for the meter's eyes only.
 *
 * Owns: the coding names of Content-Encoding (gzip, x-gzip, deflate, br,
 * zstd, identity) and streaming decoders for them, so that the meter can
 * read a compressed response. The program's bytes are never touched: a
 * decoder reads a copy's worth of input and writes into its own buffer.
 *
 * The libraries (zlib, libbrotlidec, libzstd) are not linked: this code
 * is preloaded into every process, which must not gain DT_NEEDED entries
 * or do work at load. Each library is dlopen'ed (RTLD_LOCAL) by the first
 * decoder of its kind, once per process, thread-safely, and never closed.
 * A missing library makes lm_decode_init fail with a reason; the meter
 * then treats the body as unreadable.
 *
 * Bounded by construction: output comes through the callback in pieces of
 * at most LM_DECODE_OUT_MAX bytes from a buffer inside the struct, so a
 * decompression bomb only streams. What the libraries allocate goes
 * through a counting allocator capped at LM_DECODE_MEM_MAX. zlib and zstd
 * allocate when a stream starts (zstd again if a later frame needs a
 * larger window), never per feed or per output; brotli also takes and
 * gives back each metablock's tables as it reads them, so its count of
 * allocations grows with the compressed input while what it holds stays
 * under the same peak. Per decoder, beyond the ~16.3 KiB struct
 * (measured on Debian 12's libraries): gzip/deflate ~40 KiB (zlib's 7 KiB
 * state, then its 32 KiB window); zstd ~8.5 MiB at most (window capped at
 * 2^23 by ZSTD_d_windowLogMax 23, the 8 MB that RFC 9659 sets for the
 * zstd content coding: a frame asking for more is an error); br up to
 * ~24 MiB at most (brotli's
 * default 16 MiB window limit, large windows off; its ring buffer grows
 * by doubling, so 1.5 times the window while it grows: ~6 MiB for the
 * 4 MiB window encoders use by default). The cap is above all of them.
 *
 * Corrupt input, a truncated stream, or a stream asking for more than the
 * caps puts the decoder in a sticky error state with a one-line reason;
 * never a crash. Never prints.
 */
#ifndef LM_DECODE_H
#define LM_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a message's Content-Encoding headers say, all of them combined. */
enum lm_http_coding {
  LM_CODING_IDENTITY = 0, /* none (or only "identity") */
  LM_CODING_GZIP,         /* gzip, x-gzip */
  LM_CODING_DEFLATE,      /* deflate: zlib-wrapped (RFC 9110), or raw */
  LM_CODING_BR,
  LM_CODING_ZSTD,
  LM_CODING_OTHER,    /* one coding we cannot decode (compress, ...) */
  LM_CODING_MULTIPLE, /* more than one coding ("gzip, br"): unsupported */
};

/* Folds one Content-Encoding header value (comma-separated codings, case
 * insensitive) into what earlier values said (LM_CODING_IDENTITY first). */
enum lm_http_coding lm_http_coding_add(enum lm_http_coding so_far,
                                       const char *value, size_t len);
/* "identity", "gzip", ... */
const char *lm_http_coding_name(enum lm_http_coding c);

#define LM_DECODE_OUT_MAX 16384
#define LM_DECODE_MEM_MAX (32u << 20)

enum lm_decode_status {
  LM_DECODE_OK = 0,  /* all input consumed, output delivered */
  LM_DECODE_DONE,    /* the compressed stream ended; later input ignored */
  LM_DECODE_STOPPED, /* the output callback returned nonzero (sticky) */
  LM_DECODE_ERROR,   /* sticky: lm_decode_error says why */
};

/* Decoded bytes; return nonzero to stop decoding. */
typedef int (*lm_decode_out_fn)(void *ctx, const char *p, size_t n);

struct lm_decode {
  uint8_t coding;  /* enum lm_http_coding */
  uint8_t status;  /* enum lm_decode_status */
  uint8_t started; /* deflate: the zlib-or-raw decision is made */
  uint8_t sniff_len;
  uint8_t sniff[2]; /* deflate: first bytes held until decided */
  void *lib;        /* the library's stream state (z_stream, ...) */
  lm_decode_out_fn out;
  void *ctx;
  size_t mem;      /* bytes the library holds now */
  size_t mem_peak; /* and at most, so far */
  uint64_t allocs; /* allocations the library made, ever */
  uint64_t in_total, out_total;
  /* zlib's z_stream lives here (decode.c asserts it fits). */
  union {
    uint64_t align_;
    void *align_p_;
    unsigned char bytes[128];
  } z;
  char reason[128];
  char buf[LM_DECODE_OUT_MAX];
};

/* A decoder for coding, delivering to out. Returns 0, or -1 with
 * lm_decode_error(d) set (unsupported coding, library missing, out of
 * memory): lm_decode_free is still safe. IDENTITY passes input through.
 * d must not move while in use (the library's allocator points at it);
 * a decoder in use is freed before d is initialised again. */
int lm_decode_init(struct lm_decode *d, enum lm_http_coding coding,
                   lm_decode_out_fn out, void *ctx);
enum lm_decode_status lm_decode_feed(struct lm_decode *d, const char *p,
                                     size_t n);
/* The body ended: a stream that did not reach its end is an error
 * ("truncated"). Returns DONE (or OK for identity) when whole. */
enum lm_decode_status lm_decode_finish(struct lm_decode *d);
/* Releases the library's state; safe after a failed init and twice. */
void lm_decode_free(struct lm_decode *d);
/* The one-line reason of the error state, or NULL while there is none. */
const char *lm_decode_error(const struct lm_decode *d);

#endif
