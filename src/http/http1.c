/* http1.c — HTTP/1.1 framing over llhttp (see http1.h).
 *
 * How the pieces fit: llhttp does the framing (start line, header syntax,
 * Content-Length, chunked, keep-alive); this file keeps the head, decides
 * what llhttp cannot know (a response to HEAD or to CONNECT), bounds the
 * head, and turns llhttp's callbacks into the three events with offsets.
 * llhttp's callbacks get no position, so the two events that need one
 * pause it: on_headers_complete and on_message_complete return HPE_PAUSED,
 * llhttp_execute returns at that exact byte (llhttp_get_error_pos), the
 * event is delivered from lm_http1_feed with its offset, and llhttp is
 * resumed. A callback's stop is the same pause, not resumed until the
 * next feed — so every stop leaves a parser that can carry on.
 *
 * What llhttp accepts, decided here on purpose. We observe a conversation
 * between a real client and a real server; when our framing and theirs
 * could differ we would meter the wrong bytes, so a doubtful message is
 * one to stand aside from (the meter then reports it unreadable), never
 * one to guess at:
 *   - Strict mode (LLHTTP_STRICT_MODE=1, set in the Makefile): a CR must
 *     be followed by LF (loose mode takes any byte after a CR as the line
 *     end), chunk data must be followed by CRLF (loose mode skips two
 *     bytes blindly, so a lying chunk size slides the framing), and bytes
 *     after a `Connection: close` message are an error (loose mode drops
 *     them silently). Its cost: bytes >= 0x80 or a TAB in a request target
 *     are rejected; LLM API clients percent-encode their paths.
 *   - No leniency flag: LENIENT_HEADERS off so control bytes and NULs in
 *     header values are errors; LENIENT_CHUNKED_LENGTH off because
 *     Content-Length beside Transfer-Encoding is the request-smuggling
 *     signature (each side may pick a different one); LENIENT_KEEP_ALIVE
 *     off (see strict mode above); LENIENT_TRANSFER_ENCODING off so a
 *     request whose last coding is not chunked is an error (RFC 9112
 *     6.3: its length cannot be known; a response's is read to close);
 *     LENIENT_VERSION off: HTTP/1.0 and 1.1 only.
 *   - llhttp itself refuses duplicate Content-Length headers (even equal
 *     ones), a list value ("5, 5"), signs, overflow past 2^64, chunk sizes
 *     past 2^64, and bare LF line ends. It also refuses, wrongly, a chunk
 *     extension after an unquoted one ("1;a=b;c=d"; llhttp 8.1): servers
 *     do not send chunk extensions, and such a body is stood aside from.
 */
#include "http1.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "llhttp.h"

_Static_assert(sizeof(llhttp_t) <= sizeof(((struct lm_http1 *)0)->ll),
               "llhttp_t must fit struct lm_http1's ll");
_Static_assert(_Alignof(llhttp_t) <= _Alignof(uint64_t),
               "llhttp_t must be aligned in struct lm_http1's ll");
_Static_assert(LM_HTTP1_PENDING_MAX <= 255, "pending counters are uint8_t");

/* ENDED: lm_http1_finish was called and the stream was whole. */
enum { ST_RUNNING, ST_UPGRADED, ST_ENDED, ST_ERROR };
/* IDLE: between messages (bytes seen here are the next head's);
 * HEAD: a message began; BODY: its head is complete. */
enum { PH_IDLE, PH_HEAD, PH_BODY };
enum { PAUSE_NONE, PAUSE_HEAD, PAUSE_STOP, PAUSE_DONE };
/* Where the current header line is: nowhere yet, in its name, its value. */
enum { FS_NONE, FS_FIELD, FS_VALUE };
/* The request a response answers, as far as framing cares. */
enum { M_OTHER, M_HEAD, M_CONNECT };

static llhttp_t *ll_of(struct lm_http1 *p) { return (llhttp_t *)p->ll.bytes; }
static struct lm_http1 *of_ll(llhttp_t *l) { return l->data; }

static void reason_add(char *r, size_t cap, const char *s);

/* A callback's own error: the reason is ours, llhttp just stops. */
static int cb_error(struct lm_http1 *p, const char *reason) {
  p->reason[0] = '\0';
  reason_add(p->reason, sizeof p->reason, reason);
  return HPE_USER;
}

static int append(struct lm_http1 *p, const char *s, size_t n) {
  /* Cannot happen while the wire cap holds (see text[] in http1.h); kept
   * so that no input can write past the buffer whatever the cap. */
  if (n > sizeof p->text - 1 - p->text_len)
    return cb_error(p, "HTTP head does not fit its buffer");
  memcpy(p->text + p->text_len, s, n);
  p->text_len += n;
  return 0;
}

/* ---- llhttp callbacks ------------------------------------------------- */

/* A new message's head, empty (llhttp's path and the fast path). */
static void head_reset(struct lm_http1 *p) {
  memset(&p->head, 0, sizeof p->head);
  p->head.content_length = -1;
  p->head.headers = p->lines;
}

static int cb_message_begin(llhttp_t *l) {
  struct lm_http1 *p = of_ll(l);
  p->phase = PH_HEAD;
  p->text_len = 0;
  p->field_state = FS_NONE;
  head_reset(p);
  return 0;
}

static int cb_url(llhttp_t *l, const char *at, size_t n) {
  return append(of_ll(l), at, n);
}

static int cb_url_complete(llhttp_t *l) {
  struct lm_http1 *p = of_ll(l);
  p->head.target_len = p->text_len;
  return append(p, "", 1);
}

static int cb_header_field(llhttp_t *l, const char *at, size_t n) {
  struct lm_http1 *p = of_ll(l);
  if (p->phase == PH_BODY)
    return 0; /* a trailer line: not kept */
  if (p->field_state != FS_FIELD) {
    if (p->head.n_headers == LM_HTTP1_HEADERS_MAX)
      return cb_error(p, "HTTP head has over 100 header lines");
    p->line_start = p->text_len;
    p->field_state = FS_FIELD;
  }
  return append(p, at, n);
}

static int cb_header_field_complete(llhttp_t *l) {
  struct lm_http1 *p = of_ll(l);
  if (p->phase == PH_BODY)
    return 0;
  if (p->field_state != FS_FIELD) /* an empty name is an llhttp error */
    return cb_error(p, "HTTP header line without a name");
  p->name_len = p->text_len - p->line_start;
  p->field_state = FS_VALUE;
  return append(p, ": ", 2);
}

static int cb_header_value(llhttp_t *l, const char *at, size_t n) {
  struct lm_http1 *p = of_ll(l);
  if (p->phase == PH_BODY)
    return 0;
  size_t from = p->text_len;
  int rc = append(p, at, n);
  /* An obs-fold reaches us as its CRLF and whitespace: RFC 9112 5.2 has a
   * recipient replace it with spaces, and our lines must stay lines. */
  for (size_t i = from; rc == 0 && i < p->text_len; i++)
    if (p->text[i] == '\r' || p->text[i] == '\n')
      p->text[i] = ' ';
  return rc;
}

static bool name_is(const struct lm_http1 *p, const char *name) {
  return strlen(name) == p->name_len &&
         strncasecmp(p->text + p->line_start, name, p->name_len) == 0;
}

static int cb_header_value_complete(llhttp_t *l) {
  struct lm_http1 *p = of_ll(l);
  if (p->phase == PH_BODY)
    return 0;
  if (p->field_state != FS_VALUE)
    return cb_error(p, "HTTP header value without a name");
  size_t value = p->line_start + p->name_len + 2;
  while (p->text_len > value &&
         (p->text[p->text_len - 1] == ' ' || p->text[p->text_len - 1] == '\t'))
    p->text_len--;
  int rc = append(p, "", 1);
  if (rc)
    return rc;
  struct lm_http1_head *h = &p->head;
  const char *v = p->text + value;
  p->lines[h->n_headers++] = p->text + p->line_start;
  if (name_is(p, "content-encoding"))
    h->content_encoding = lm_http_coding_add(h->content_encoding, v,
                                             p->text_len - 1 - value);
  else if (name_is(p, "content-type") && !h->content_type)
    h->content_type = v;
  p->field_state = FS_NONE;
  return 0;
}

/* The request the next final response answers (GET when none was told). */
static uint8_t pop_pending(struct lm_http1 *p) {
  if (p->pending_n == 0)
    return M_OTHER;
  uint8_t m = p->pending[p->pending_first];
  p->pending_first = (uint8_t)((p->pending_first + 1) % LM_HTTP1_PENDING_MAX);
  p->pending_n--;
  return m;
}

static int cb_headers_complete(llhttp_t *l) {
  struct lm_http1 *p = of_ll(l);
  struct lm_http1_head *h = &p->head;
  bool response = p->kind == LM_HTTP1_RESPONSE;
  /* llhttp refuses this request only after its head: refuse it before
   * on_head, so that no event announces a message that cannot be framed. */
  if (!response && (l->flags & F_TRANSFER_ENCODING) && !(l->flags & F_CHUNKED))
    return cb_error(p, "HTTP request: Transfer-Encoding does not end in "
                       "chunked (its length cannot be known)");
  if (!response) {
    h->method = llhttp_method_name((llhttp_method_t)l->method);
    h->target = p->text;
  } else {
    h->status = l->status_code;
    h->informational = h->status / 100 == 1 && h->status != 101;
    if (!h->informational)
      p->answering = pop_pending(p);
    /* What llhttp cannot know: the method. A response to HEAD has no body
     * whatever its headers say; a 2xx to CONNECT turns the connection
     * into a tunnel. Flags set before the pause are the ones llhttp's
     * after_headers_complete reads (as its "return 1/2" would set them). */
    if (!h->informational && p->answering == M_HEAD)
      l->flags |= F_SKIPBODY;
    if (!h->informational && p->answering == M_CONNECT &&
        h->status / 100 == 2) {
      l->upgrade = 1;
      l->flags |= F_SKIPBODY;
    }
    /* A 101 switches protocols after its head, whatever headers it has
     * (llhttp wants Upgrade and Connection: upgrade first, and would read
     * the other protocol's bytes as the next response otherwise). */
    if (h->status == 101) {
      l->upgrade = 1;
      l->flags |= F_SKIPBODY;
    }
  }
  h->http_major = l->http_major;
  h->http_minor = l->http_minor;
  h->chunked = (l->flags & F_CHUNKED) != 0;
  if (l->flags & F_CONTENT_LENGTH)
    h->content_length = (int64_t)l->content_length;
  h->upgrade = l->upgrade != 0;
  bool no_body = (l->flags & F_SKIPBODY) ||
                 (response && (h->status / 100 == 1 || h->status == 204 ||
                               h->status == 304));
  if (no_body)
    h->body = LM_HTTP1_BODY_NONE;
  else if (h->chunked)
    h->body = LM_HTTP1_BODY_CHUNKED;
  else if (llhttp_message_needs_eof(l))
    h->body = LM_HTTP1_BODY_EOF;
  else if (h->content_length > 0)
    h->body = LM_HTTP1_BODY_LENGTH;
  else
    h->body = LM_HTTP1_BODY_NONE;
  if (h->upgrade && h->body != LM_HTTP1_BODY_LENGTH &&
      h->body != LM_HTTP1_BODY_CHUNKED)
    h->body = LM_HTTP1_BODY_NONE; /* the rest is another protocol */
  h->keep_alive = llhttp_should_keep_alive(l) != 0 && !h->upgrade;
  p->phase = PH_BODY;
  p->pause = PAUSE_HEAD;
  return HPE_PAUSED;
}

static int cb_body(llhttp_t *l, const char *at, size_t n) {
  struct lm_http1 *p = of_ll(l);
  if (n == 0 || !p->ev->on_body)
    return 0;
  if (p->ev->on_body(p->ctx, at, n) != 0) {
    /* llhttp resumes a span callback's pause after the span (llparse
     * keeps the next state in _current, as for any pause). */
    p->stop_off = (size_t)(at + n - p->feed_base);
    p->pause = PAUSE_STOP;
    return HPE_PAUSED;
  }
  return 0;
}

static int cb_message_complete(llhttp_t *l) {
  struct lm_http1 *p = of_ll(l);
  if (p->in_finish) {
    /* From llhttp_finish: no position to report and none needed. */
    p->phase = PH_IDLE;
    p->head_wire = 0;
    if (p->ev->on_done)
      (void)p->ev->on_done(p->ctx, 0);
    return 0;
  }
  p->pause = PAUSE_DONE;
  return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = cb_message_begin,
    .on_url = cb_url,
    .on_url_complete = cb_url_complete,
    .on_header_field = cb_header_field,
    .on_header_field_complete = cb_header_field_complete,
    .on_header_value = cb_header_value,
    .on_header_value_complete = cb_header_value_complete,
    .on_headers_complete = cb_headers_complete,
    .on_body = cb_body,
    .on_message_complete = cb_message_complete,
};

/* ---- the fast path ---------------------------------------------------- */

/* A whole head in one feed, of the shape nearly every client and server
 * sends, costs less than half of llhttp's byte-at-a-time run and its
 * callbacks (callgrind: a GET and its 2-byte answer, ~3.9k -> ~1.6k
 * instructions; make bench: TLS added CPU per call on a followed
 * connection). It is a
 * strict subset of what llhttp accepts, read into the same head: anything
 * else — a head split across feeds, HTTP/1.0, chunked, an upgrade, a
 * Connection other than keep-alive, a response without Content-Length or
 * to HEAD or CONNECT, 1xx, 204, 304, a byte outside the classes below —
 * is left untouched for llhttp, which then reads the message as if this
 * did not exist. So an error is always llhttp's, and fuzz_http1 compares
 * the events of both ways on every input. A message it reads never
 * reaches llhttp, which stays between messages, where a keep-alive
 * message leaves it; after a message that is not keep-alive it is not
 * tried again (llhttp refuses what follows such a message). */

enum { C_TOKEN = 1, C_TARGET = 2, C_VALUE = 4, C_DIGIT = 8 };

/* C_TOKEN: RFC 9110 tchar. C_TARGET: what llhttp's strict URL states take
 * in a path and query, less '#' (a fragment) and the bytes it treats
 * apart; '?' is added where a query begins (fast_target). C_VALUE: HTAB
 * and 0x20-0x7E (llhttp also takes obs-text; left to it). */
static const uint8_t cls[256] = {
    ['\t'] = C_VALUE,
    [' '] = C_VALUE,
    ['!'] = C_TOKEN | C_TARGET | C_VALUE,
    ['"'] = C_VALUE,
    ['#'] = C_TOKEN | C_VALUE,
    ['$'] = C_TOKEN | C_TARGET | C_VALUE,
    ['%'] = C_TOKEN | C_TARGET | C_VALUE,
    ['&'] = C_TOKEN | C_TARGET | C_VALUE,
    ['\''] = C_TOKEN | C_TARGET | C_VALUE,
    ['('] = C_TARGET | C_VALUE,
    [')'] = C_TARGET | C_VALUE,
    ['*'] = C_TOKEN | C_TARGET | C_VALUE,
    ['+'] = C_TOKEN | C_TARGET | C_VALUE,
    [','] = C_TARGET | C_VALUE,
    ['-'] = C_TOKEN | C_TARGET | C_VALUE,
    ['.'] = C_TOKEN | C_TARGET | C_VALUE,
    ['/'] = C_TARGET | C_VALUE,
    ['0'] = C_TOKEN | C_TARGET | C_VALUE | C_DIGIT,
    ['1'] = C_TOKEN | C_TARGET | C_VALUE | C_DIGIT,
    ['2'] = C_TOKEN | C_TARGET | C_VALUE | C_DIGIT,
    ['3'] = C_TOKEN | C_TARGET | C_VALUE | C_DIGIT,
    ['4'] = C_TOKEN | C_TARGET | C_VALUE | C_DIGIT,
    ['5'] = C_TOKEN | C_TARGET | C_VALUE | C_DIGIT,
    ['6'] = C_TOKEN | C_TARGET | C_VALUE | C_DIGIT,
    ['7'] = C_TOKEN | C_TARGET | C_VALUE | C_DIGIT,
    ['8'] = C_TOKEN | C_TARGET | C_VALUE | C_DIGIT,
    ['9'] = C_TOKEN | C_TARGET | C_VALUE | C_DIGIT,
    [':'] = C_TARGET | C_VALUE,
    [';'] = C_TARGET | C_VALUE,
    ['<'] = C_VALUE,
    ['='] = C_TARGET | C_VALUE,
    ['>'] = C_VALUE,
    ['?'] = C_VALUE,
    ['@'] = C_TARGET | C_VALUE,
    ['['] = C_VALUE,
    ['\\'] = C_VALUE,
    [']'] = C_VALUE,
    ['^'] = C_TOKEN | C_VALUE,
    ['_'] = C_TOKEN | C_TARGET | C_VALUE,
    ['`'] = C_TOKEN | C_VALUE,
    ['{'] = C_VALUE,
    ['|'] = C_TOKEN | C_VALUE,
    ['}'] = C_VALUE,
    ['~'] = C_TOKEN | C_TARGET | C_VALUE,
#define AZ(c) [c] = C_TOKEN | C_TARGET | C_VALUE
    AZ('A'),
    AZ('B'),
    AZ('C'),
    AZ('D'),
    AZ('E'),
    AZ('F'),
    AZ('G'),
    AZ('H'),
    AZ('I'),
    AZ('J'),
    AZ('K'),
    AZ('L'),
    AZ('M'),
    AZ('N'),
    AZ('O'),
    AZ('P'),
    AZ('Q'),
    AZ('R'),
    AZ('S'),
    AZ('T'),
    AZ('U'),
    AZ('V'),
    AZ('W'),
    AZ('X'),
    AZ('Y'),
    AZ('Z'),
    AZ('a'),
    AZ('b'),
    AZ('c'),
    AZ('d'),
    AZ('e'),
    AZ('f'),
    AZ('g'),
    AZ('h'),
    AZ('i'),
    AZ('j'),
    AZ('k'),
    AZ('l'),
    AZ('m'),
    AZ('n'),
    AZ('o'),
    AZ('p'),
    AZ('q'),
    AZ('r'),
    AZ('s'),
    AZ('t'),
    AZ('u'),
    AZ('v'),
    AZ('w'),
    AZ('x'),
    AZ('y'),
    AZ('z'),
#undef AZ
};

static bool is(unsigned char c, uint8_t k) { return (cls[c] & k) != 0; }

/* The end of the run of bytes of class k from p (at most end). */
static const char *span(const char *p, const char *end, uint8_t k) {
  while (p < end && is((unsigned char)*p, k))
    p++;
  return p;
}

/* span(p, end, C_VALUE), sixteen bytes a step where SSE2 is: header
 * values are most of a head's bytes. A byte is a value byte when it is
 * HTAB or 0x20-0x7E; as a signed byte, anything from 0x80 is below 0x20. */
static const char *span_value(const char *p, const char *end) {
#if defined(__SSE2__)
  const __m128i space = _mm_set1_epi8(0x20), del = _mm_set1_epi8(0x7f),
                tab = _mm_set1_epi8('\t');
  while (end - p >= 16) {
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i bad = _mm_or_si128(
        _mm_andnot_si128(_mm_cmpeq_epi8(v, tab), _mm_cmplt_epi8(v, space)),
        _mm_cmpeq_epi8(v, del));
    int m = _mm_movemask_epi8(bad);
    if (m)
      return p + __builtin_ctz((unsigned)m);
    p += 16;
  }
#endif
  return span(p, end, C_VALUE);
}

static bool lit(const char *p, const char *end, const char *s, size_t n) {
  return (size_t)(end - p) >= n && memcmp(p, s, n) == 0;
}

/* A method the fast path knows, and its length with the space after it. */
static int fast_method(const char *p, const char *end, size_t *len) {
  static const struct {
    const char *text;
    unsigned char len;
    unsigned char method;
  } known[] = {{"GET ", 4, HTTP_GET},       {"POST ", 5, HTTP_POST},
               {"PUT ", 4, HTTP_PUT},       {"PATCH ", 6, HTTP_PATCH},
               {"DELETE ", 7, HTTP_DELETE}, {"OPTIONS ", 8, HTTP_OPTIONS}};
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (lit(p, end, known[i].text, known[i].len)) {
      *len = known[i].len;
      return known[i].method;
    }
  return -1;
}

/* The end of an origin-form target at p ('/' first, one '?' at most
 * opening the query), or NULL. */
static const char *fast_target(const char *p, const char *end) {
  if (p == end || *p != '/')
    return NULL;
  p = span(p, end, C_TARGET);
  if (p < end && *p == '?')
    p = span(p + 1, end, C_TARGET);
  return p;
}

static bool name_eq(const char *a, size_t n, const char *lower, size_t len) {
  return n == len && strncasecmp(a, lower, len) == 0;
}

/* Reads a whole head at buf[0..n) into p->head, or returns 0 and leaves
 * the message to llhttp. Returns the head's length on the wire. */
static size_t fast_head(struct lm_http1 *p, const char *buf, size_t n) {
  bool response = p->kind == LM_HTTP1_RESPONSE;
  const char *q = buf,
             *end = buf + (n < LM_HTTP1_HEAD_MAX ? n : LM_HTTP1_HEAD_MAX);
  struct lm_http1_head *h = &p->head;
  head_reset(p);
  size_t t = 0; /* bytes used in p->text */
  if (!response) {
    size_t mlen = 0;
    int m = fast_method(q, end, &mlen);
    if (m < 0)
      return 0;
    q += mlen;
    const char *te = fast_target(q, end);
    if (!te || !lit(te, end, " HTTP/1.1\r\n", 11))
      return 0;
    h->method = llhttp_method_name((llhttp_method_t)m);
    h->target_len = (size_t)(te - q);
    memcpy(p->text, q, h->target_len);
    p->text[h->target_len] = '\0';
    h->target = p->text;
    t = h->target_len + 1;
    q = te + 11;
  } else {
    /* "HTTP/1.1 NNN reason": 200-599 but 204 and 304. */
    if (!lit(q, end, "HTTP/1.1 ", 9) || end - q < 13 || q[9] < '2' ||
        q[9] > '5' || !is((unsigned char)q[10], C_DIGIT) ||
        !is((unsigned char)q[11], C_DIGIT) || q[12] != ' ')
      return 0;
    h->status = (q[9] - '0') * 100 + (q[10] - '0') * 10 + (q[11] - '0');
    if (h->status == 204 || h->status == 304)
      return 0;
    if (p->pending_n && p->pending[p->pending_first] != M_OTHER)
      return 0; /* HEAD, CONNECT: llhttp with what it cannot know */
    q = span_value(q + 13, end);
    if (!lit(q, end, "\r\n", 2))
      return 0;
    q += 2;
  }
  for (;;) {
    if (lit(q, end, "\r\n", 2))
      break; /* the blank line */
    const char *name = q;
    q = span(q, end, C_TOKEN);
    if (q == name || q == end || *q != ':' ||
        h->n_headers == LM_HTTP1_HEADERS_MAX)
      return 0;
    size_t nlen = (size_t)(q - name);
    const char *v = q + 1;
    while (v < end && (*v == ' ' || *v == '\t'))
      v++;
    const char *ve = span_value(v, end);
    if (!lit(ve, end, "\r\n", 2))
      return 0;
    q = ve + 2;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
      ve--;
    size_t vlen = (size_t)(ve - v);
    /* The headers llhttp reads for framing. */
    if (name_eq(name, nlen, "content-length", 14)) {
      if (h->content_length >= 0 || vlen == 0 || vlen > 15 ||
          (v[0] == '0' && vlen > 1) || span(v, ve, C_DIGIT) != ve ||
          ve != q - 2)
        return 0;
      int64_t cl = 0;
      for (const char *d = v; d < ve; d++)
        cl = cl * 10 + (*d - '0');
      h->content_length = cl;
    } else if (name_eq(name, nlen, "connection", 10)) {
      if (!name_eq(v, vlen, "keep-alive", 10))
        return 0;
    } else if (name_eq(name, nlen, "transfer-encoding", 17) ||
               name_eq(name, nlen, "upgrade", 7) ||
               name_eq(name, nlen, "proxy-connection", 16)) {
      return 0;
    }
    char *line = p->text + t;
    memcpy(line, name, nlen);
    line[nlen] = ':';
    line[nlen + 1] = ' ';
    memcpy(line + nlen + 2, v, vlen);
    line[nlen + 2 + vlen] = '\0';
    p->lines[h->n_headers++] = line;
    if (name_eq(name, nlen, "content-encoding", 16))
      h->content_encoding = lm_http_coding_add(h->content_encoding,
                                               line + nlen + 2, vlen);
    else if (name_eq(name, nlen, "content-type", 12) && !h->content_type)
      h->content_type = line + nlen + 2;
    t += nlen + 3 + vlen;
  }
  q += 2;
  if (response && h->content_length < 0)
    return 0; /* read to close: llhttp's */
  if (response)
    p->answering = pop_pending(p);
  h->http_major = 1;
  h->http_minor = 1;
  h->body = h->content_length > 0 ? LM_HTTP1_BODY_LENGTH : LM_HTTP1_BODY_NONE;
  h->keep_alive = true;
  p->text_len = t;
  return (size_t)(q - buf);
}

void lm_http1_set_fast(struct lm_http1 *p, bool on) { p->fast = on; }

/* ---- the API ---------------------------------------------------------- */

void lm_http1_init(struct lm_http1 *p, enum lm_http1_kind kind,
                   const struct lm_http1_events *ev, void *ctx) {
  static const struct lm_http1_events none = {NULL, NULL, NULL};
  memset(p, 0, offsetof(struct lm_http1, lines));
  p->reason[0] = '\0';
  p->ev = ev ? ev : &none;
  p->ctx = ctx;
  p->kind = (uint8_t)kind;
  p->state = ST_RUNNING;
  p->phase = PH_IDLE;
  p->fast = 1;
  llhttp_t *l = ll_of(p);
  llhttp_init(l, kind == LM_HTTP1_REQUEST ? HTTP_REQUEST : HTTP_RESPONSE,
              &settings);
  l->data = p;
}

/* Appends s to the reason, cut at its end (a reason is one line, and a
 * cut one still says what went wrong first). */
static void reason_add(char *r, size_t cap, const char *s) {
  size_t len = strlen(r);
  size_t n = strlen(s);
  if (n > cap - 1 - len)
    n = cap - 1 - len;
  memcpy(r + len, s, n);
  r[len + n] = '\0';
}

/* The error state: "what: detail (stream byte N)". what may be reason. */
static enum lm_http1_status set_error(struct lm_http1 *p, uint64_t at,
                                      const char *what, const char *detail) {
  char r[sizeof p->reason];
  char where[48];
  r[0] = '\0';
  reason_add(r, sizeof r, what);
  if (detail) {
    reason_add(r, sizeof r, ": ");
    reason_add(r, sizeof r, detail);
  }
  snprintf(where, sizeof where, " (stream byte %llu)", (unsigned long long)at);
  reason_add(r, sizeof r, where);
  memcpy(p->reason, r, sizeof r);
  p->state = ST_ERROR;
  return LM_HTTP1_ERROR;
}

static enum lm_http1_status llhttp_failed(struct lm_http1 *p, llhttp_errno_t e,
                                          size_t at) {
  uint64_t where = p->stream_off + at;
  llhttp_t *l = ll_of(p);
  const char *dir = p->kind == LM_HTTP1_REQUEST ? "HTTP request"
                                                : "HTTP response";
  char detail[96];
  /* A reason set by one of our callbacks (cb_error) is the cause;
   * llhttp reports it as HPE_USER or as that callback's failure. */
  if (p->reason[0])
    return set_error(p, where, p->reason, NULL);
  switch (e) {
  case HPE_PAUSED_H2_UPGRADE:
    return set_error(p, where, dir, "HTTP/2 connection preface, not HTTP/1");
  default:
    detail[0] = '\0';
    reason_add(detail, sizeof detail, llhttp_get_error_reason(l));
    reason_add(detail, sizeof detail, " (");
    reason_add(detail, sizeof detail, llhttp_errno_name(e));
    reason_add(detail, sizeof detail, ")");
    return set_error(p, where, dir, detail);
  }
}

static enum lm_http1_status ended(struct lm_http1 *p, enum lm_http1_status s,
                                  size_t at, size_t *used) {
  p->stream_off += at;
  if (used)
    *used = at;
  return s;
}

enum lm_http1_status lm_http1_feed(struct lm_http1 *p, const char *buf,
                                   size_t n, size_t *used) {
  if (used)
    *used = 0;
  if (p->state == ST_ERROR)
    return LM_HTTP1_ERROR;
  if (p->state == ST_UPGRADED)
    return LM_HTTP1_UPGRADED;
  if (p->state == ST_ENDED)
    return set_error(p, p->stream_off, "HTTP stream fed after its end", NULL);
  if (!buf)
    buf = ""; /* n is 0: llhttp still gets a pointer it may offset */
  llhttp_t *l = ll_of(p);
  size_t off = 0;
  p->feed_base = buf;
  /* llhttp runs at least once, and once more after each pause, even with
   * no byte left: what follows a head or a message without consuming
   * input (the end of a message with no body) must happen in the feed
   * whose byte caused it — or, after a stop, in the feed that resumes. */
  bool again = true;
  while (off < n || again) {
    again = false;
    if (p->in_fast) {
      /* A message the fast path read: its Content-Length body, its end. */
      size_t k = n - off;
      if (k > p->fast_left)
        k = (size_t)p->fast_left;
      if (k) {
        const char *at = buf + off;
        off += k;
        p->fast_left -= k;
        if (p->ev->on_body && p->ev->on_body(p->ctx, at, k) != 0)
          return ended(p, LM_HTTP1_STOPPED, off, used);
      }
      if (p->fast_left)
        continue;
      p->in_fast = 0;
      p->phase = PH_IDLE;
      if (p->ev->on_done && p->ev->on_done(p->ctx, off) != 0)
        return ended(p, LM_HTTP1_STOPPED, off, used);
      continue;
    }
    if (p->fast && p->phase == PH_IDLE && p->head_wire == 0 && off < n) {
      size_t len = fast_head(p, buf + off, n - off);
      if (len) {
        off += len;
        p->head.head_len = len;
        p->head.head_end_off = off;
        p->phase = PH_BODY;
        p->in_fast = 1;
        p->fast_left = p->head.content_length > 0
                           ? (uint64_t)p->head.content_length
                           : 0;
        if (p->ev->on_head && p->ev->on_head(p->ctx, &p->head) != 0)
          return ended(p, LM_HTTP1_STOPPED, off, used);
        again = true; /* a bodyless message ends in this feed */
        continue;
      }
    }
    size_t step = n - off;
    bool in_head = p->phase != PH_BODY;
    if (in_head && step > 0) {
      /* Give llhttp no more than the head may still grow by: the cap is
       * exact, and a flood of header bytes is never parsed past it. */
      size_t room = LM_HTTP1_HEAD_MAX - p->head_wire;
      if (room == 0) {
        set_error(p, p->stream_off + off, "HTTP head over 16384 bytes", NULL);
        return ended(p, LM_HTTP1_ERROR, off, used);
      }
      if (step > room)
        step = room;
    }
    llhttp_errno_t e = llhttp_execute(l, buf + off, step);
    if (e == HPE_OK) {
      if (in_head)
        p->head_wire += step;
      off += step;
      continue;
    }
    const char *pos = llhttp_get_error_pos(l);
    size_t at = pos && pos >= buf + off && pos <= buf + off + step
                    ? (size_t)(pos - buf)
                    : off;
    if (e != HPE_PAUSED) {
      llhttp_failed(p, e, at);
      return ended(p, LM_HTTP1_ERROR, at, used);
    }
    if (in_head)
      p->head_wire += at - off;
    off = at;
    uint8_t why = p->pause;
    p->pause = PAUSE_NONE;
    llhttp_resume(l);
    again = true;
    switch (why) {
    case PAUSE_HEAD:
      /* llhttp refuses any byte after a message that is not keep-alive:
       * the fast path must not read one. */
      if (!p->head.keep_alive)
        p->fast = 0;
      p->head.head_len = p->head_wire;
      p->head.head_end_off = at;
      p->head_wire = 0;
      if (p->ev->on_head && p->ev->on_head(p->ctx, &p->head) != 0)
        return ended(p, LM_HTTP1_STOPPED, at, used);
      break;
    case PAUSE_STOP:
      return ended(p, LM_HTTP1_STOPPED, p->stop_off, used);
    case PAUSE_DONE: {
      bool upgrade = p->head.upgrade;
      /* What llhttp does after a message without taking a byte (its
       * keep-alive check, its safe-to-end mark) runs now, not when the
       * next byte comes: the next message may be the fast path's, which
       * llhttp never sees. Nothing of it can fail. */
      if (p->fast && llhttp_execute(l, buf + at, 0) != HPE_OK)
        p->fast = 0;
      p->phase = PH_IDLE;
      p->head_wire = 0;
      int stop = p->ev->on_done ? p->ev->on_done(p->ctx, at) : 0;
      if (upgrade) {
        /* The bytes after this message are another protocol's. */
        p->state = ST_UPGRADED;
        return ended(p, LM_HTTP1_UPGRADED, at, used);
      }
      if (stop)
        return ended(p, LM_HTTP1_STOPPED, at, used);
      break;
    }
    default:
      set_error(p, p->stream_off + at, "HTTP parser paused for no reason",
                NULL);
      return ended(p, LM_HTTP1_ERROR, at, used);
    }
  }
  if (p->phase != PH_BODY && p->head_wire >= LM_HTTP1_HEAD_MAX) {
    set_error(p, p->stream_off + off, "HTTP head over 16384 bytes", NULL);
    return ended(p, LM_HTTP1_ERROR, off, used);
  }
  return ended(p, LM_HTTP1_OK, n, used);
}

enum lm_http1_status lm_http1_finish(struct lm_http1 *p) {
  if (p->state == ST_ERROR)
    return LM_HTTP1_ERROR;
  if (p->state == ST_UPGRADED)
    return LM_HTTP1_UPGRADED;
  if (p->state == ST_ENDED)
    return LM_HTTP1_OK;
  uint8_t phase = p->phase;
  llhttp_errno_t e = HPE_INVALID_EOF_STATE;
  if (p->in_fast) {
    /* A fast-path message: cut short, or its end held back by a stop and
     * delivered now (llhttp, between messages, has nothing to end). */
    if (!p->fast_left) {
      p->in_fast = 0;
      p->phase = PH_IDLE;
      if (p->ev->on_done)
        (void)p->ev->on_done(p->ctx, 0);
      e = HPE_OK;
    }
  } else {
    p->in_finish = 1;
    e = llhttp_finish(ll_of(p));
    p->in_finish = 0;
  }
  if (e == HPE_OK) {
    /* llhttp would take more bytes as more of a body read to close. */
    p->state = ST_ENDED;
    return LM_HTTP1_OK;
  }
  return set_error(p, p->stream_off, "HTTP connection closed inside a message",
                   phase == PH_BODY ? "in its body" : "in its head");
}

int lm_http1_expect(struct lm_http1 *p, const char *method) {
  if (p->kind != LM_HTTP1_RESPONSE || p->state != ST_RUNNING)
    return 0;
  if (p->pending_n == LM_HTTP1_PENDING_MAX) {
    set_error(p, p->stream_off, "HTTP pipelining too deep",
              "over 16 requests await their responses");
    return -1;
  }
  uint8_t m = M_OTHER;
  if (method && strcasecmp(method, "HEAD") == 0)
    m = M_HEAD;
  else if (method && strcasecmp(method, "CONNECT") == 0)
    m = M_CONNECT;
  p->pending[(p->pending_first + p->pending_n) % LM_HTTP1_PENDING_MAX] = m;
  p->pending_n++;
  return 0;
}

const char *lm_http1_error(const struct lm_http1 *p) {
  return p->state == ST_ERROR ? p->reason : NULL;
}

bool lm_http1_idle(const struct lm_http1 *p) {
  return p->state == ST_RUNNING && p->phase == PH_IDLE && p->head_wire == 0;
}
