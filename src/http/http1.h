/* http1.h — HTTP/1.1 message framing for one direction of one connection.
 *
 * Owns: turning the bytes one side of a connection sends (a program's
 * requests, or the responses it reads) into messages, in sequence
 * (keep-alive and pipelining), however the bytes are split across feeds
 * (1 byte to any size): the head (request or status line and header
 * lines, reassembled across feeds), the body with chunk framing removed
 * (still content-encoded: decode.h undoes that), and the message's end —
 * by Content-Length, by the last chunk, or by the end of the connection.
 * The parser is llhttp (Debian's node-llhttp), in strict mode with no
 * leniency; what is accepted and why is in http1.c. A head that arrives
 * whole in one feed and has the plain shape nearly every client and
 * server sends is read by a scanner of http1.c's own, for speed; it
 * accepts a subset of what llhttp accepts and hands llhttp the rest, so
 * what is framed how never depends on it.
 *
 * A message whose framing is in doubt (bad chunk sizes, Content-Length and
 * Transfer-Encoding together, duplicate or overflowing Content-Length,
 * control bytes in a head, a head over LM_HTTP1_HEAD_MAX bytes or
 * LM_HTTP1_HEADERS_MAX lines) puts the parser in a sticky error state
 * with a one-line reason: the caller then stands aside from the
 * connection. It never guesses a framing.
 *
 * Knows nothing of TLS, sockets or libcurl; never changes, copies or
 * holds on to a body byte; never allocates (the whole state is the struct
 * below, about 17.3 KiB, owned by the caller); never prints.
 */
#ifndef LM_HTTP1_H
#define LM_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decode.h" /* enum lm_http_coding */

/* A head's bytes on the wire (start line, header lines, their line ends
 * and the blank line), as Node's default; beyond it: error. */
#define LM_HTTP1_HEAD_MAX 16384
/* Header lines in one head, as Apache's LimitRequestFields; beyond: error.
 * (Trailer lines after a chunked body are read and skipped, not kept.) */
#define LM_HTTP1_HEADERS_MAX 100
/* Requests whose responses have not started yet (lm_http1_expect). */
#define LM_HTTP1_PENDING_MAX 16

enum lm_http1_kind { LM_HTTP1_REQUEST, LM_HTTP1_RESPONSE };

enum lm_http1_status {
  LM_HTTP1_OK = 0,   /* all bytes consumed */
  LM_HTTP1_STOPPED,  /* a callback returned nonzero: *used says how far */
  LM_HTTP1_UPGRADED, /* the connection left HTTP/1 after a message (101
                        Switching Protocols, CONNECT): *used is its end;
                        later bytes are not HTTP and every feed returns
                        this again, consuming nothing. A request asking
                        to upgrade ends the request side at its end even
                        if the server then declines: the transport stands
                        aside from such a connection. */
  LM_HTTP1_ERROR,    /* framing error, sticky: lm_http1_error says why */
};

/* How the body of a message is delimited. */
enum lm_http1_body {
  LM_HTTP1_BODY_NONE,    /* no body (HEAD, 1xx, 204, 304, length 0) */
  LM_HTTP1_BODY_LENGTH,  /* Content-Length bytes */
  LM_HTTP1_BODY_CHUNKED, /* chunked transfer coding */
  LM_HTTP1_BODY_EOF,     /* a response read until the connection closes
                            (lm_http1_finish ends it) */
};

struct lm_http1_head {
  const char *method; /* request: "POST"...; response: NULL */
  const char *target; /* request: target as sent, NUL-terminated */
  size_t target_len;
  int status;     /* response: status code (the reason phrase is not
                     kept); request: 0 */
  int http_major; /* 1 */
  int http_minor; /* 0 or 1 */
  /* "Name: value" lines in order, each NUL-terminated, value without its
   * surrounding whitespace (an obs-fold joined with spaces). */
  const char *const *headers;
  size_t n_headers;
  int64_t content_length; /* -1: no Content-Length header */
  bool chunked;           /* Transfer-Encoding ends in chunked */
  enum lm_http1_body body;
  /* Content-Encoding, all headers of it combined (decode.h). */
  enum lm_http_coding content_encoding;
  const char *content_type; /* its value (points into headers), or NULL */
  bool keep_alive;          /* another message may follow this one */
  bool upgrade;       /* the connection leaves HTTP/1 after this message */
  bool informational; /* 1xx (but 101): the real response follows */
  /* The head's bytes on the wire across every feed it spanned, and where
   * it ended (just past its blank line) in the feed that completed it. */
  size_t head_len;
  size_t head_end_off;
};

/* Each returns 0 to go on, nonzero to stop: lm_http1_feed then returns
 * LM_HTTP1_STOPPED at once, *used just past the bytes the callback was
 * given (the head, the body piece, the message). The parser is whole: the
 * next feed, with the bytes after *used (none is fine: n == 0 delivers
 * what the stop held back, e.g. the end of a bodyless message), carries
 * on where it stopped — a stop in on_done is a pause at the message
 * boundary. Any may be NULL. Callbacks must not feed this parser. */
struct lm_http1_events {
  /* The head is complete. h is valid until the next message begins (at
   * the earliest right after this message's on_done returns). */
  int (*on_head)(void *ctx, const struct lm_http1_head *h);
  /* Body bytes, de-chunked, still content-encoded; p points into the fed
   * buffer. Never called with n == 0. */
  int (*on_body)(void *ctx, const char *p, size_t n);
  /* The message is complete; end_off is just past its last byte in the
   * current feed's buffer (0 when lm_http1_finish completed it). */
  int (*on_done)(void *ctx, size_t end_off);
};

struct lm_http1 {
  /* llhttp's parser state, kept opaque so that users of this header need
   * not see llhttp.h (http1.c asserts it fits). */
  union {
    uint64_t align_;
    void *align_p_;
    unsigned char bytes[128];
  } ll;
  const struct lm_http1_events *ev;
  void *ctx;
  uint8_t kind;          /* enum lm_http1_kind */
  uint8_t state;         /* http1.c: running, upgraded, ended, error */
  uint8_t phase;         /* http1.c: between messages, in a head, in a body */
  uint8_t pause;         /* http1.c: why llhttp was paused */
  uint8_t in_finish;     /* inside lm_http1_finish */
  uint8_t field_state;   /* http1.c: where in the current header line */
  uint8_t pending_n;     /* requests waiting (lm_http1_expect) */
  uint8_t pending_first; /* ring index of the oldest */
  uint8_t pending[LM_HTTP1_PENDING_MAX]; /* their methods (http1.c) */
  uint8_t answering;         /* method the current response answers */
  uint8_t fast;              /* http1.c: the fast path may be tried */
  uint8_t in_fast;           /* http1.c: this message is the fast path's */
  uint64_t fast_left;        /* its body bytes still to come */
  size_t head_wire;          /* head bytes seen so far */
  size_t text_len;           /* bytes used in text */
  size_t line_start;         /* where the current header line starts */
  size_t name_len;           /* length of its name */
  size_t stop_off;           /* offset for a stop decided in a callback */
  const char *feed_base;     /* the buffer of the feed in progress */
  uint64_t stream_off;       /* bytes fed before the feed in progress */
  struct lm_http1_head head; /* the current message's head */
  const char *lines[LM_HTTP1_HEADERS_MAX];
  /* Start line parts and header lines, NUL-terminated. A head that fits
   * LM_HTTP1_HEAD_MAX on the wire always fits here: each stored line is
   * at most as long as its wire form (": " for ":", NUL for CRLF). */
  char text[LM_HTTP1_HEAD_MAX + 64];
  char reason[128]; /* the error, one line; "" while none */
};

/* A parser for one direction. The struct must not move while in use (the
 * head points into it). */
void lm_http1_init(struct lm_http1 *p, enum lm_http1_kind kind,
                   const struct lm_http1_events *ev, void *ctx);

/* Feeds the next bytes of the stream. *used (may be NULL) is set to how
 * many were consumed: n on LM_HTTP1_OK; see the status for the others. */
enum lm_http1_status lm_http1_feed(struct lm_http1 *p, const char *buf,
                                   size_t n, size_t *used);

/* The stream ended (the peer closed or the transport gave up on it). A
 * body read until close (LM_HTTP1_BODY_EOF) completes now, with on_done;
 * between messages this is OK; inside any other message it is an error
 * ("connection closed inside a message"): the message was cut short.
 * The stream is over either way: a later feed is an error. */
enum lm_http1_status lm_http1_finish(struct lm_http1 *p);

/* Response parsers: a request with this method was sent; its response
 * comes after those of the requests told before. A response to HEAD has
 * no body whatever its headers say; a 2xx to CONNECT opens a tunnel
 * (LM_HTTP1_UPGRADED). Without a call, a response is taken to answer a
 * GET. Returns 0, or -1 when more than LM_HTTP1_PENDING_MAX requests are
 * waiting (the parser goes to its error state). */
int lm_http1_expect(struct lm_http1 *p, const char *method);

/* Whether whole heads of the common shape are read by http1.c's own
 * scanner (on, after init) or every byte goes through llhttp. The events
 * are the same either way (fuzz_http1 checks it); tests turn it off to
 * compare. */
void lm_http1_set_fast(struct lm_http1 *p, bool on);

/* The one-line reason of the error state, or NULL while there is none. */
const char *lm_http1_error(const struct lm_http1 *p);

/* Between messages: the last message is complete and no byte of the next
 * has been seen (a transport may stand aside cleanly here). */
bool lm_http1_idle(const struct lm_http1 *p);

#endif
