/* tls_stream.c — one TLS connection's plaintext, as HTTP/1.1 calls (see
 * tls_stream.h).
 *
 * Two parsers (http1.h), one a direction. The request side holds bytes
 * only while a decision needs them: a request head until it is complete
 * (is it an LLM call?), and an LLM request's body until it is complete
 * (the verdict reads it). Everything else is sent as it comes. The
 * response side follows every response, metered or not, because a
 * keep-alive connection may carry an LLM call after any other; a response
 * is matched to its request by order (HTTP/1.1 answers in order).
 *
 * What the program reads is the real read's bytes, untouched, except in
 * three cases: a refused call (the meter's response, then EOF), a cut (a
 * reset on the read after the cut), and a response the meter filters
 * (include_usage that the meter asked for and the program did not: the
 * filter hides its traces, and a chunked body is framed anew around what
 * the filter lets through). A filtered response's bytes are composed in
 * `dq` and handed out from there.
 */
#include "tls_stream.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "http1.h"
#include "lifecycle.h"
#include "resolve.h"

/* A growable byte buffer; grows geometrically, never shrinks until freed
 * (one connection's buffers stay as large as its largest message). */
struct buf {
  char *p;
  size_t len, cap, off;
};

static bool buf_add(struct buf *b, const char *p, size_t n) {
  if (!n)
    return true;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + n)
      cap *= 2;
    char *q = realloc(b->p, cap);
    if (!q)
      return false;
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->len, p, n);
  b->len += n;
  return true;
}

static void buf_clear(struct buf *b) { b->len = b->off = 0; }

static void buf_free(struct buf *b) {
  free(b->p);
  memset(b, 0, sizeof(*b));
}

static size_t buf_left(const struct buf *b) { return b->len - b->off; }

/* Request side. */
enum w_mode {
  W_HEAD,    /* a request head arriving: held */
  W_HOLD,    /* an LLM request's body arriving: held */
  W_PASS,    /* a request we do not hold: sent as it comes */
  W_DENIED,  /* a call was refused: nothing more leaves */
  W_ASIDE,   /* not HTTP/1.1 we follow: everything passes */
  W_BLOCKED, /* not followable, to an LLM host, refused: nothing passes */
};

/* A request whose response has not ended, in order. */
#define SLOTS LM_HTTP1_PENDING_MAX
struct slot {
  struct lm_meter_call *call; /* reused from call to call */
  bool metered;               /* its response is reported to the meter */
  bool filter;                /* and filtered (verdict.filter_response) */
};

struct lm_tls_stream {
  char host[256];
  int port;

  /* request side */
  struct lm_http1 req;
  uint8_t w_mode;
  bool ev_head, ev_done; /* what the last feed's stop was for */
  struct buf hold;       /* the held request's bytes as written */
  struct buf body;       /* its body, de-chunked */
  struct buf out;        /* bytes owed to the real write */
  size_t pend_n;         /* a write's count, owed once out is sent */

  /* calls: the requests sent whose responses have not ended */
  struct slot slot[SLOTS];
  unsigned first, n_slots; /* ring of requests in flight */
  unsigned filters;        /* how many of them are filtered */

  /* response side */
  struct lm_http1 resp;
  bool r_aside;          /* the response side stopped following */
  bool in_resp;          /* a response (head seen) is in progress */
  bool metering;         /* the current response is reported */
  bool filtering;        /* and filtered */
  bool rechunk;          /* filtered output is framed as chunks */
  bool bodyless;         /* the current response's body is NONE */
  bool cut;              /* the meter cut a call: reads fail as a reset */
  bool reset;            /* the cut has been delivered: every read resets */
  bool eof;              /* the connection ended */
  struct lm_decode *dec; /* the current response's decoder, if encoded */
  bool dec_on, dec_dead;
  struct buf dq; /* composed bytes for the program (filtered responses) */

  /* a refused call's response, served once the responses before it end */
  char *deny;
  size_t deny_len, deny_off;
  bool close_said; /* lm_tls_stream_take_close answered true */
  bool eof_said;   /* a read was answered with our EOF */
  bool socketless; /* lm_tls_stream_set_socketless */
};

/* ---- calls ------------------------------------------------------------ */

static struct slot *front(struct lm_tls_stream *s) {
  return s->n_slots ? &s->slot[s->first] : NULL;
}

static struct slot *push(struct lm_tls_stream *s) {
  if (s->n_slots == SLOTS)
    return NULL;
  struct slot *t = &s->slot[(s->first + s->n_slots++) % SLOTS];
  t->metered = t->filter = false;
  return t;
}

static struct slot *back(struct lm_tls_stream *s) {
  return s->n_slots ? &s->slot[(s->first + s->n_slots - 1) % SLOTS] : NULL;
}

static void pop(struct lm_tls_stream *s) {
  if (!s->n_slots)
    return;
  struct slot *t = front(s);
  if (t->filter && s->filters)
    s->filters--;
  t->metered = t->filter = false;
  s->first = (s->first + 1) % SLOTS;
  s->n_slots--;
}

/* ---- the request side ------------------------------------------------- */

static int req_on_head(void *ctx, const struct lm_http1_head *h) {
  struct lm_tls_stream *s = ctx;
  s->ev_head = true;
  (void)h;
  return 1;
}

static int req_on_body(void *ctx, const char *p, size_t n) {
  struct lm_tls_stream *s = ctx;
  if (s->w_mode == W_HOLD && s->body.len + n <= LM_TLS_HOLD_MAX &&
      !buf_add(&s->body, p, n))
    s->body.len = LM_TLS_HOLD_MAX + 1; /* out of memory: decide unread */
  else if (s->w_mode == W_HOLD && s->body.len + n > LM_TLS_HOLD_MAX)
    s->body.len = LM_TLS_HOLD_MAX + 1;
  return 0;
}

static int req_on_done(void *ctx, size_t end_off) {
  struct lm_tls_stream *s = ctx;
  (void)end_off;
  s->ev_done = true;
  return 1;
}

static const struct lm_http1_events req_events = {req_on_head, req_on_body,
                                                  req_on_done};

static void describe(const struct lm_tls_stream *s,
                     const struct lm_http1_head *h,
                     struct lm_meter_request *r) {
  memset(r, 0, sizeof(*r));
  r->method = h->method;
  r->scheme = "https";
  r->host = s->host[0] ? s->host : NULL;
  r->port = s->port;
  r->target = h->target;
  r->target_len = h->target_len;
  r->headers = h->headers;
  r->n_headers = h->n_headers;
  r->has_body = h->body != LM_HTTP1_BODY_NONE;
  /* Never wait in an event loop's thread (a memory BIO), nor behind a
   * request pipelined on this connection: its response comes only after
   * this write returns, so its reservation could not settle meanwhile. */
  r->no_wait = s->socketless || s->n_slots > 1;
}

static bool ci_name(const char *line, size_t len, const char *name) {
  size_t n = strlen(name);
  if (len <= n || line[n] != ':')
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = line[i];
    if (c >= 'A' && c <= 'Z')
      c = (char)(c - 'A' + 'a');
    if (c != name[i])
      return false;
  }
  return true;
}

/* The held head with its framing headers replaced by one Content-Length
 * for the meter's body, every other byte as the program wrote it. */
static bool rebuilt_head(struct lm_tls_stream *s, size_t head_len,
                         size_t body_len) {
  const char *p = s->hold.p, *end = s->hold.p + head_len;
  bool skipping = false;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
    bool blank = n <= 2 && (n == 1 || p[0] == '\r');
    if (blank) {
      char cl[48];
      int k = snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", body_len);
      if (!buf_add(&s->out, cl, (size_t)k))
        return false;
    } else if (p[0] == ' ' || p[0] == '\t') {
      /* an obs-fold continues the line before it */
    } else {
      skipping = ci_name(p, n, "content-length") ||
                 ci_name(p, n, "transfer-encoding");
    }
    if (!(skipping && !blank) && !buf_add(&s->out, p, n))
      return false;
    p += n;
  }
  return true;
}

static void refuse(struct lm_tls_stream *s, const struct lm_verdict *v) {
  s->w_mode = W_DENIED;
  free(s->deny);
  s->deny = malloc(v->response_len ? v->response_len : 1);
  if (s->deny) {
    memcpy(s->deny, v->response, v->response_len);
    s->deny_len = v->response_len;
  }
  s->deny_off = 0;
}

/* The held request is decided: body is what was read of it, or NULL when
 * it grew past LM_TLS_HOLD_MAX. Queues what must be sent. */
static bool decide(struct lm_tls_stream *s, bool whole) {
  const struct lm_http1_head *h = &s->req.head;
  struct slot *t = back(s);
  struct lm_meter_request r;
  describe(s, h, &r);
  if (whole) {
    r.body = s->body.p ? s->body.p : "";
    r.body_len = s->body.len;
  }
  struct lm_verdict v;
  memset(&v, 0, sizeof(v));
  enum lm_verdict_kind k = lm_meter_begin(&t->call, &r, &v);
  if (k == LM_VERDICT_DENY) {
    s->n_slots--; /* never sent: no response will come */
    refuse(s, &v);
    buf_clear(&s->hold);
    buf_clear(&s->body);
    return true;
  }
  bool ok;
  if (k == LM_VERDICT_METER && v.body && whole) {
    ok = rebuilt_head(s, h->head_len, v.body_len) &&
         buf_add(&s->out, v.body, v.body_len);
  } else {
    ok = buf_add(&s->out, s->hold.p, s->hold.len);
  }
  if (k == LM_VERDICT_METER) {
    t->metered = true;
    t->filter = v.filter_response;
    s->filters += t->filter;
  }
  buf_clear(&s->hold);
  buf_clear(&s->body);
  return ok;
}

/* What the request side could not follow, for the policy's line: p[0..n)
 * are the bytes the parser refused (after what it held). */
static const char *unfollowed(const struct lm_tls_stream *s, bool upgrade,
                              const char *p, size_t n) {
  static const char preface[] = "PRI * HTTP/2.0";
  if (upgrade)
    return "a WebSocket or other protocol upgrade";
  if (s->n_slots == SLOTS)
    return "more pipelined requests than llmmeter follows";
  const char *q = s->hold.len ? s->hold.p : p;
  size_t k = s->hold.len ? s->hold.len : n;
  if (k > sizeof(preface) - 1)
    k = sizeof(preface) - 1;
  if (q && k >= 3 && memcmp(q, preface, k) == 0)
    return "HTTP/2";
  return "bytes that are not HTTP/1.1";
}

/* The request parser went somewhere we cannot follow: everything held is
 * sent as written and the request side passes from now on — unless the
 * connection goes to an LLM API host and the policy refuses unmetered LLM
 * traffic there: then nothing of it leaves (W_BLOCKED). */
static bool go_aside(struct lm_tls_stream *s, bool upgrade, const char *p,
                     size_t n) {
  if (!s->n_slots)
    s->r_aside = true; /* no response of ours is still to come */
  if (lm_meter_llm_host(s->host) &&
      lm_meter_unseen(s->host, unfollowed(s, upgrade, p, n)) ==
          LM_RESOLVE_DENY) {
    buf_clear(&s->hold);
    buf_clear(&s->body);
    s->w_mode = W_BLOCKED;
    return true;
  }
  bool ok = buf_add(&s->out, s->hold.p, s->hold.len);
  buf_clear(&s->hold);
  buf_clear(&s->body);
  s->w_mode = W_ASIDE;
  return ok;
}

/* The head is complete: hold the request, or send it. */
static bool on_request_head(struct lm_tls_stream *s) {
  const struct lm_http1_head *h = &s->req.head;
  if (h->upgrade || s->n_slots == SLOTS ||
      lm_http1_expect(&s->resp, h->method) != 0)
    return go_aside(s, h->upgrade, NULL, 0);
  (void)push(s);
  struct lm_meter_request r;
  describe(s, h, &r);
  bool body = h->body == LM_HTTP1_BODY_LENGTH ||
              h->body == LM_HTTP1_BODY_CHUNKED;
  if (body && lm_meter_wants(&r)) {
    s->w_mode = W_HOLD;
    return true;
  }
  s->w_mode = W_PASS;
  bool ok = buf_add(&s->out, s->hold.p, s->hold.len);
  buf_clear(&s->hold);
  return ok;
}

/* Takes the program's p[0..n) into the request side: held, queued in
 * out, or (denied) swallowed. False when out of memory. A stop (a head,
 * a message's end) ends a feed, so each piece fed belongs to one mode;
 * after a stop the parser is fed again, with nothing if need be, for what
 * the stop held back (the end of a bodyless request). */
static bool take(struct lm_tls_stream *s, const char *p, size_t n) {
  size_t off = 0;
  for (;;) {
    if (s->w_mode == W_DENIED || s->w_mode == W_BLOCKED)
      return true;
    if (s->w_mode == W_ASIDE)
      return buf_add(&s->out, p + off, n - off);
    uint8_t mode = s->w_mode;
    size_t used = 0;
    s->ev_head = s->ev_done = false;
    enum lm_http1_status st = lm_http1_feed(&s->req, p + off, n - off, &used);
    if (st == LM_HTTP1_ERROR)
      used = 0; /* nothing of it is a request we follow */
    if (!buf_add(mode == W_PASS ? &s->out : &s->hold, p + off, used))
      return false;
    off += used;
    if (st == LM_HTTP1_ERROR || st == LM_HTTP1_UPGRADED) {
      if (!go_aside(s, st == LM_HTTP1_UPGRADED, p + off, n - off))
        return false;
      continue;
    }
    if (s->w_mode == W_HOLD && s->body.len > LM_TLS_HOLD_MAX) {
      /* Too large to hold: decided unread, the rest streams. */
      if (!decide(s, false))
        return false;
      if (s->w_mode != W_DENIED)
        s->w_mode = W_PASS;
    }
    if (s->ev_head && !on_request_head(s))
      return false;
    if (s->ev_done) {
      if (s->w_mode == W_HOLD && !decide(s, true))
        return false;
      if (s->w_mode == W_HOLD || s->w_mode == W_PASS)
        s->w_mode = W_HEAD;
    }
    if (st == LM_HTTP1_OK)
      return true;
  }
}

static long flush(struct lm_tls_stream *s, lm_tls_send_fn send, void *ctx) {
  while (buf_left(&s->out)) {
    long k = send(ctx, s->out.p + s->out.off, buf_left(&s->out));
    if (k <= 0)
      return k;
    s->out.off += (size_t)k;
  }
  buf_clear(&s->out);
  return 1;
}

long lm_tls_stream_write(struct lm_tls_stream *s, const char *p, size_t n,
                         lm_tls_send_fn send, void *ctx) {
  if (s->pend_n) {
    /* The retry of a write that could not finish: its bytes were taken
     * then; what remains to send is ours. */
    long k = flush(s, send, ctx);
    if (k <= 0)
      return k;
    size_t r = s->pend_n;
    s->pend_n = 0;
    return (long)(r < n ? r : n);
  }
  if (s->w_mode == W_ASIDE && !buf_left(&s->out))
    return send(ctx, p, n);
  if (s->w_mode == W_DENIED)
    return (long)n;
  if (s->w_mode == W_BLOCKED)
    return LM_TLS_BLOCKED;
  if (!take(s, p, n)) {
    /* Out of memory: stand aside, sending what we held and this. */
    s->w_mode = W_ASIDE;
  }
  if (s->w_mode == W_BLOCKED) {
    buf_clear(&s->out); /* the connection is refused as a whole */
    return LM_TLS_BLOCKED;
  }
  long k = flush(s, send, ctx);
  if (k <= 0) {
    s->pend_n = n;
    return k;
  }
  return (long)n;
}

/* ---- the response side ------------------------------------------------ */

static void to_program(struct lm_tls_stream *s, const char *p, size_t n) {
  (void)buf_add(&s->dq, p, n);
}

static size_t emit_filtered(void *ctx, const char *p, size_t n) {
  struct lm_tls_stream *s = ctx;
  if (!n)
    return 0;
  if (s->rechunk) {
    char size[24];
    int k = snprintf(size, sizeof(size), "%zx\r\n", n);
    to_program(s, size, (size_t)k);
    to_program(s, p, n);
    to_program(s, "\r\n", 2);
  } else {
    to_program(s, p, n);
  }
  return n;
}

static void meter_bytes(struct lm_tls_stream *s, const char *p, size_t n) {
  struct slot *t = front(s);
  if (!t || s->cut)
    return;
  if (lm_meter_body(t->call, p, n))
    s->cut = true;
}

static int decoded(void *ctx, const char *p, size_t n) {
  struct lm_tls_stream *s = ctx;
  meter_bytes(s, p, n);
  return s->cut;
}

static void header_lines(struct lm_tls_stream *s, struct lm_meter_call *c,
                         const struct lm_http1_head *h) {
  /* "HTTP/1.1 200\r\n" by hand: snprintf cost a tenth of the call here
   * (llhttp gives one-digit versions and three-digit statuses). */
  char line[16] = "HTTP/x.x nnn\r\n";
  line[5] = (char)('0' + h->http_major % 10);
  line[7] = (char)('0' + h->http_minor % 10);
  line[9] = (char)('0' + h->status / 100 % 10);
  line[10] = (char)('0' + h->status / 10 % 10);
  line[11] = (char)('0' + h->status % 10);
  lm_meter_header(c, line, 14);
  for (size_t i = 0; i < h->n_headers; i++) {
    char tmp[1024];
    size_t len = strlen(h->headers[i]);
    if (len > sizeof(tmp) - 3)
      len = sizeof(tmp) - 3;
    memcpy(tmp, h->headers[i], len);
    memcpy(tmp + len, "\r\n", 2);
    lm_meter_header(c, tmp, len + 2);
  }
  (void)s;
}

static int resp_on_head(void *ctx, const struct lm_http1_head *h) {
  struct lm_tls_stream *s = ctx;
  struct slot *t = front(s);
  s->in_resp = true;
  s->bodyless = h->body == LM_HTTP1_BODY_NONE;
  s->metering = t && t->metered && lm_meter_running(t->call);
  s->filtering = false;
  s->dec_on = s->dec_dead = false;
  if (!s->metering)
    return 1;
  header_lines(s, t->call, h);
  if (h->informational)
    return 1;
  enum lm_http_coding c = h->content_encoding;
  if (c != LM_CODING_IDENTITY) {
    if (!s->dec && !(s->dec = calloc(1, sizeof(*s->dec))))
      s->dec_dead = true;
    else if (lm_decode_init(s->dec, c, decoded, s) != 0)
      s->dec_dead = true; /* unreadable: charged at the estimate */
    else
      s->dec_on = true;
  }
  /* The filter needs the body's bytes as they are: it reads events. A
   * body compressed, or framed by a Content-Length the filter would make
   * wrong, is delivered unfiltered. */
  s->filtering = t->filter && c == LM_CODING_IDENTITY &&
                 (h->body == LM_HTTP1_BODY_CHUNKED ||
                  h->body == LM_HTTP1_BODY_EOF);
  s->rechunk = h->body == LM_HTTP1_BODY_CHUNKED;
  return 1;
}

static int resp_on_body(void *ctx, const char *p, size_t n) {
  struct lm_tls_stream *s = ctx;
  if (!s->metering)
    return 0;
  if (s->dec_on) {
    enum lm_decode_status st = lm_decode_feed(s->dec, p, n);
    if (st == LM_DECODE_ERROR)
      s->dec_on = false, s->dec_dead = true;
  } else if (!s->dec_dead) {
    meter_bytes(s, p, n);
  }
  if (s->filtering) {
    bool stopped = false;
    struct slot *t = front(s);
    lm_meter_filter_feed(t->call, p, n, emit_filtered, s, &stopped);
  }
  return 0;
}

/* The current response ended (ok: completely). */
static void response_end(struct lm_tls_stream *s, bool ok) {
  struct slot *t = front(s);
  if (s->metering && t) {
    if (s->dec_on)
      (void)lm_decode_finish(s->dec);
    if (s->filtering) {
      bool stopped = false;
      lm_meter_filter_finish(t->call, emit_filtered, s, &stopped);
      if (s->rechunk)
        to_program(s, "0\r\n\r\n", 5);
    }
    lm_meter_end(t->call, ok);
  }
  if (s->dec)
    lm_decode_free(s->dec);
  s->dec_on = s->filtering = s->metering = s->in_resp = false;
  pop(s);
}

static int resp_on_done(void *ctx, size_t end_off) {
  struct lm_tls_stream *s = ctx;
  (void)end_off;
  const struct lm_http1_head *h = &s->resp.head;
  if (h->informational) {
    s->in_resp = s->metering = false; /* the real response follows */
    return 1;
  }
  response_end(s, true);
  if (s->w_mode == W_ASIDE && !s->n_slots)
    s->r_aside = true; /* later responses answer requests we did not see */
  return 1;
}

static const struct lm_http1_events resp_events = {resp_on_head, resp_on_body,
                                                   resp_on_done};

/* The response side stops following: a call still running ends with what
 * arrived (a failed transfer as far as the meter knows). */
static void read_aside(struct lm_tls_stream *s) {
  while (s->n_slots) {
    if (s->metering)
      response_end(s, false);
    else {
      struct slot *t = front(s);
      if (t->metered)
        lm_meter_end(t->call, false);
      pop(s);
    }
  }
  s->r_aside = true;
}

size_t lm_tls_stream_received(struct lm_tls_stream *s, char *buf, size_t n,
                              size_t cap, bool *cut) {
  *cut = false;
  if (s->r_aside || s->reset || s->cut)
    return n;
  /* Only a filtered response changes what the program reads; then the
   * whole read is composed in dq (the order of bytes must hold). */
  bool compose = s->filters > 0;
  size_t off = 0;
  for (;;) {
    bool filtered_body = s->filtering && s->in_resp;
    size_t used = 0;
    enum lm_http1_status st = lm_http1_feed(&s->resp, buf + off, n - off,
                                            &used);
    if (st == LM_HTTP1_ERROR || st == LM_HTTP1_UPGRADED) {
      if (st == LM_HTTP1_ERROR)
        used = 0;
      if (compose)
        to_program(s, buf + off, n - off);
      read_aside(s);
      break;
    }
    /* A filtered body's bytes reach the program through the filter (its
     * chunk framing replaced by ours); all others as they came. A head
     * and a message's end stop the feed, so no piece is part of both. */
    if (compose && !filtered_body)
      to_program(s, buf + off, used);
    off += used;
    if (s->cut) {
      /* The rest of this read is the program's; nothing more is read. */
      if (compose)
        to_program(s, buf + off, n - off);
      read_aside(s);
      *cut = true;
      break;
    }
    if (s->r_aside) {
      if (compose)
        to_program(s, buf + off, n - off);
      break;
    }
    if (st == LM_HTTP1_OK)
      break;
  }
  if (!compose)
    return n;
  size_t k = buf_left(&s->dq) < cap ? buf_left(&s->dq) : cap;
  memcpy(buf, s->dq.p + s->dq.off, k);
  s->dq.off += k;
  if (!buf_left(&s->dq))
    buf_clear(&s->dq);
  return k;
}

void lm_tls_stream_closed(struct lm_tls_stream *s, bool clean) {
  if (s->eof)
    return;
  s->eof = true;
  if (s->r_aside)
    return;
  /* A response read until the close ends here, whole only when the close
   * was clean (a truncation attack looks like a close without
   * close_notify); whatever else is waiting ended with the connection. */
  if (clean)
    (void)lm_http1_finish(&s->resp);
  read_aside(s);
}

enum lm_tls_read lm_tls_stream_pre_read(struct lm_tls_stream *s, char *buf,
                                        size_t cap, size_t *got, bool peek) {
  *got = 0;
  if (buf_left(&s->dq)) {
    size_t k = buf_left(&s->dq) < cap ? buf_left(&s->dq) : cap;
    memcpy(buf, s->dq.p + s->dq.off, k);
    if (!peek) {
      s->dq.off += k;
      if (!buf_left(&s->dq))
        buf_clear(&s->dq);
    }
    *got = k;
    return LM_TLS_READ_DATA;
  }
  if (s->cut) {
    if (s->socketless) {
      if (!peek)
        s->eof_said = true;
      return LM_TLS_READ_EOF;
    }
    s->reset = true;
    return LM_TLS_READ_RESET;
  }
  if (s->w_mode == W_DENIED && !s->n_slots) {
    if (s->deny_off >= s->deny_len) {
      if (!peek)
        s->eof_said = true;
      return LM_TLS_READ_EOF;
    }
    size_t left = s->deny_len - s->deny_off;
    size_t k = left < cap ? left : cap;
    memcpy(buf, s->deny + s->deny_off, k);
    if (!peek)
      s->deny_off += k;
    *got = k;
    return LM_TLS_READ_DATA;
  }
  return LM_TLS_READ_REAL;
}

/* ---- life ------------------------------------------------------------- */

struct lm_tls_stream *lm_tls_stream_new(const char *host, int port) {
  struct lm_tls_stream *s = calloc(1, sizeof(*s));
  if (!s)
    return NULL;
  if (host)
    snprintf(s->host, sizeof(s->host), "%s", host);
  s->port = port;
  lm_http1_init(&s->req, LM_HTTP1_REQUEST, &req_events, s);
  lm_http1_init(&s->resp, LM_HTTP1_RESPONSE, &resp_events, s);
  s->w_mode = W_HEAD;
  return s;
}

bool lm_tls_stream_take_close(struct lm_tls_stream *s) {
  if (s->w_mode != W_DENIED || s->close_said)
    return false;
  s->close_said = true;
  return true;
}

void lm_tls_stream_set_socketless(struct lm_tls_stream *s) {
  s->socketless = true;
}

void lm_tls_stream_refusal_state(const struct lm_tls_stream *s, bool *closed,
                                 bool *ended) {
  *closed = s->close_said;
  *ended = s->eof_said;
}

bool lm_tls_stream_aside(const struct lm_tls_stream *s) {
  /* Nothing of ours is left to say on either side: no bytes owed to a
   * write or a read, no call in flight, no cut or refusal to deliver. */
  return s->w_mode == W_ASIDE && s->r_aside && !buf_left(&s->out) &&
         !s->pend_n && !buf_left(&s->dq) && !s->n_slots && !s->cut && !s->reset;
}

void lm_tls_stream_free(struct lm_tls_stream *s) {
  if (!s)
    return;
  read_aside(s);
  for (unsigned i = 0; i < SLOTS; i++)
    lm_meter_free(s->slot[i].call);
  if (s->dec) {
    lm_decode_free(s->dec);
    free(s->dec);
  }
  buf_free(&s->hold);
  buf_free(&s->body);
  buf_free(&s->out);
  buf_free(&s->dq);
  free(s->deny);
  free(s);
}
