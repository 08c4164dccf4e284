/* test_http1.c — HTTP/1.1 framing of one direction (src/http/http1.c).
 *
 * A recording handler turns the events into one string: "<head>" for each
 * head (method and target, or status, then the body kind), the body bytes
 * as delivered, "$" at each message's end. Each case states the bytes on
 * the wire and the string they must produce — fed whole, cut at every
 * position (and at every pair of positions for the short ones), and one
 * byte at a time — and where each head and message ended in the stream.
 */
#include "lm_test.h"
#include "lm_slurp.h"
#include "http1.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdint.h>

struct rec {
  char *out;
  size_t len, cap;
  uint64_t abs; /* stream offset of the buffer being fed */
  uint64_t head_end[16], done_end[16];
  int heads, dones;
  int stop_at; /* 'H', 'B', 'D': stop at every such event */
  int stops;
  struct lm_http1 *p;
  struct lm_http1_head last; /* the last head, copied */
  char lines[4096];          /* its header lines, "\n"-joined */
};

static void put(struct rec *r, const char *s, size_t n) {
  if (r->len + n + 1 > r->cap) {
    size_t cap = (r->len + n + 1) * 2;
    char *o = realloc(r->out, cap);
    if (!o)
      abort();
    r->out = o;
    r->cap = cap;
  }
  memcpy(r->out + r->len, s, n);
  r->len += n;
  r->out[r->len] = '\0';
}

static const char *body_kind(enum lm_http1_body b) {
  switch (b) {
  case LM_HTTP1_BODY_NONE:
    return "none";
  case LM_HTTP1_BODY_LENGTH:
    return "len";
  case LM_HTTP1_BODY_CHUNKED:
    return "chunked";
  case LM_HTTP1_BODY_EOF:
    return "eof";
  }
  return "?";
}

static int on_head(void *ctx, const struct lm_http1_head *h) {
  struct rec *r = ctx;
  char s[256];
  if (h->method)
    snprintf(s, sizeof s, "<%s %s %s>", h->method, h->target,
             body_kind(h->body));
  else
    snprintf(s, sizeof s, "<%d %s>", h->status, body_kind(h->body));
  put(r, s, strlen(s));
  if (r->heads < 16)
    r->head_end[r->heads] = r->abs + h->head_end_off;
  r->heads++;
  r->last = *h;
  size_t k = 0;
  r->lines[0] = '\0';
  for (size_t i = 0; i < h->n_headers; i++)
    k += (size_t)snprintf(r->lines + k, sizeof r->lines - k, "%s%s",
                          i ? "\n" : "", h->headers[i]);
  return r->stop_at == 'H';
}

static int on_body(void *ctx, const char *p, size_t n) {
  struct rec *r = ctx;
  put(r, p, n);
  return r->stop_at == 'B';
}

static int on_done(void *ctx, size_t end_off) {
  struct rec *r = ctx;
  put(r, "$", 1);
  if (r->dones < 16)
    r->done_end[r->dones] = r->abs + end_off;
  r->dones++;
  return r->stop_at == 'D';
}

static const struct lm_http1_events events = {on_head, on_body, on_done};

static void rec_init(struct rec *r, struct lm_http1 *p, enum lm_http1_kind k) {
  free(r->out);
  memset(r, 0, sizeof *r);
  r->p = p;
  put(r, "", 0);
  lm_http1_init(p, k, &events, r);
}

/* Feeds in[0..n) as one buffer; a stop is taken up again at *used. */
static enum lm_http1_status feed(struct rec *r, const char *in, size_t n) {
  size_t off = 0;
  enum lm_http1_status s = LM_HTTP1_OK;
  do {
    size_t used = 0;
    s = lm_http1_feed(r->p, in + off, n - off, &used);
    if (used > n - off) {
      fprintf(stderr, "  used %zu > %zu\n", used, n - off);
      lm_t_cur_failed = 1;
      return LM_HTTP1_ERROR;
    }
    r->abs += used;
    off += used;
    if (s == LM_HTTP1_STOPPED)
      r->stops++;
  } while (s == LM_HTTP1_STOPPED);
  return s;
}

/* Feeds in cut at the given positions (ascending), then finishes. */
static enum lm_http1_status run_cuts(struct rec *r, const char *in, size_t n,
                                     const size_t *cuts, int ncuts,
                                     bool finish) {
  size_t from = 0;
  enum lm_http1_status s = LM_HTTP1_OK;
  for (int i = 0; i <= ncuts && s == LM_HTTP1_OK; i++) {
    size_t to = i < ncuts ? cuts[i] : n;
    s = feed(r, in + from, to - from);
    from = to;
  }
  if (s == LM_HTTP1_OK && finish)
    s = lm_http1_finish(r->p);
  return s;
}

/* Everything one way of feeding produced, to compare with another. */
struct outcome {
  char out[8192];
  enum lm_http1_status status;
  int heads, dones;
  uint64_t head_end[16], done_end[16];
};

static void outcome_of(struct outcome *o, const struct rec *r,
                       enum lm_http1_status s) {
  memset(o, 0, sizeof *o);
  snprintf(o->out, sizeof o->out, "%s", r->out);
  o->status = s;
  o->heads = r->heads;
  o->dones = r->dones;
  memcpy(o->head_end, r->head_end, sizeof o->head_end);
  memcpy(o->done_end, r->done_end, sizeof o->done_end);
}

static bool same(const struct outcome *a, const struct outcome *b) {
  return strcmp(a->out, b->out) == 0 && a->status == b->status &&
         a->heads == b->heads && a->dones == b->dones &&
         memcmp(a->head_end, b->head_end, sizeof a->head_end) == 0 &&
         memcmp(a->done_end, b->done_end, sizeof a->done_end) == 0;
}

struct opts {
  enum lm_http1_kind kind;
  const char *expect[4]; /* response: methods of the requests, in order */
  bool finish;
  bool pairs; /* also every pair of cuts */
  int stop_at;
};

static void start(struct rec *r, struct lm_http1 *p, const struct opts *o) {
  rec_init(r, p, o->kind);
  r->stop_at = o->stop_at;
  for (int i = 0; i < 4 && o->expect[i]; i++)
    CHECK(lm_http1_expect(p, o->expect[i]) == 0);
}

/* Asserts one outcome for every way of feeding in; returns it in *got
 * (from the whole feed) for further checks. */
static void expect_all(const struct opts *o, const char *in, size_t n,
                       const char *want, enum lm_http1_status want_status,
                       struct rec *r, struct lm_http1 *p) {
  struct outcome whole, cut;
  start(r, p, o);
  enum lm_http1_status s = run_cuts(r, in, n, NULL, 0, o->finish);
  outcome_of(&whole, r, s);
  if (strcmp(r->out, want) != 0 || s != want_status) {
    fprintf(stderr, "  whole: got \"%s\" (status %d) want \"%s\" (%d)%s%s\n",
            r->out, s, want, want_status, lm_http1_error(p) ? ": " : "",
            lm_http1_error(p) ? lm_http1_error(p) : "");
    lm_t_cur_failed = 1;
    return;
  }
  for (size_t i = 0; i <= n; i++) {
    start(r, p, o);
    outcome_of(&cut, r, run_cuts(r, in, n, &i, 1, o->finish));
    if (!same(&whole, &cut)) {
      fprintf(stderr, "  cut at %zu: got \"%s\" (%d)\n", i, cut.out,
              cut.status);
      lm_t_cur_failed = 1;
      return;
    }
    for (size_t j = i; o->pairs && j <= n; j++) {
      size_t c2[2] = {i, j};
      start(r, p, o);
      outcome_of(&cut, r, run_cuts(r, in, n, c2, 2, o->finish));
      if (!same(&whole, &cut)) {
        fprintf(stderr, "  cuts at %zu,%zu: got \"%s\" (%d)\n", i, j, cut.out,
                cut.status);
        lm_t_cur_failed = 1;
        return;
      }
    }
  }
  /* One byte at a time. */
  start(r, p, o);
  s = LM_HTTP1_OK;
  for (size_t i = 0; i < n && s == LM_HTTP1_OK; i++)
    s = feed(r, in + i, 1);
  if (s == LM_HTTP1_OK && o->finish)
    s = lm_http1_finish(p);
  outcome_of(&cut, r, s);
  if (!same(&whole, &cut)) {
    fprintf(stderr, "  bytewise: got \"%s\" (%d)\n", cut.out, cut.status);
    lm_t_cur_failed = 1;
  }
  /* Leave r and p as the whole feed left them. */
  start(r, p, o);
  run_cuts(r, in, n, NULL, 0, o->finish);
}

#define S(lit) lit, sizeof(lit) - 1

static struct rec R;
static struct lm_http1 P;

/* ---- requests ----------------------------------------------------------- */

static const char req_cl[] = "POST /v1/chat/completions HTTP/1.1\r\n"
                             "Host: api.openai.com\r\n"
                             "Content-Type: application/json\r\n"
                             "Content-Length: 13\r\n"
                             "\r\n"
                             "{\"model\":\"x\"}";

LM_TEST(test_request_with_content_length_at_every_split) {
  struct opts o = {.kind = LM_HTTP1_REQUEST, .pairs = true};
  expect_all(&o, S(req_cl), "<POST /v1/chat/completions len>{\"model\":\"x\"}$",
             LM_HTTP1_OK, &R, &P);
  CHECK_EQ_U64(R.head_end[0], sizeof req_cl - 1 - 13);
  CHECK_EQ_U64(R.done_end[0], sizeof req_cl - 1);
  CHECK_EQ_I64(R.last.content_length, 13);
  CHECK_EQ_U64(R.last.head_len, sizeof req_cl - 1 - 13);
  CHECK_EQ_I64(R.last.http_minor, 1);
  CHECK(R.last.keep_alive);
  CHECK(!R.last.chunked);
  CHECK_STR(R.last.content_type, "application/json");
  CHECK_STR(R.lines, "Host: api.openai.com\nContent-Type: application/json\n"
                     "Content-Length: 13");
  CHECK(lm_http1_idle(&P));
}

static const char req_chunked[] = "POST /v1/messages HTTP/1.1\r\n"
                                  "Host: api.anthropic.com\r\n"
                                  "Transfer-Encoding: chunked\r\n"
                                  "\r\n"
                                  "5\r\n{\"a\":\r\n"
                                  "A;ext=\"x\";q\r\n\"0123456\"}\r\n"
                                  "0\r\n"
                                  "X-Trailer: yes\r\n"
                                  "\r\n";

LM_TEST(test_request_with_chunked_body_at_every_split) {
  struct opts o = {.kind = LM_HTTP1_REQUEST, .pairs = true};
  expect_all(&o, S(req_chunked),
             "<POST /v1/messages chunked>{\"a\":\"0123456\"}$", LM_HTTP1_OK, &R,
             &P);
  CHECK(R.last.chunked);
  CHECK_EQ_I64(R.last.content_length, -1);
  CHECK_EQ_U64(R.done_end[0], sizeof req_chunked - 1);
  /* The trailer is read and not kept among the head's lines. */
  CHECK_EQ_U64(R.last.n_headers, 2);
}

static const char req_split_headers[] =
    "GET /v1/models?limit=10&after=abc HTTP/1.1\r\n"
    "Host:   api.example.com  \r\n"
    "Authorization: Bearer sk-0123456789abcdef0123456789abcdef\r\n"
    "X-Empty:\r\n"
    "Accept-Encoding: gzip, br\r\n"
    "\r\n";

LM_TEST(test_header_names_and_values_split_across_feeds_are_reassembled) {
  struct opts o = {.kind = LM_HTTP1_REQUEST, .pairs = true};
  expect_all(&o, S(req_split_headers),
             "<GET /v1/models?limit=10&after=abc none>$", LM_HTTP1_OK, &R, &P);
  CHECK_STR(R.lines, "Host: api.example.com\n"
                     "Authorization: Bearer "
                     "sk-0123456789abcdef0123456789abcdef\n"
                     "X-Empty: \n"
                     "Accept-Encoding: gzip, br");
  CHECK_EQ_U64(R.last.target_len, strlen("/v1/models?limit=10&after=abc"));
  CHECK_STR(R.last.method, "GET");
}

LM_TEST(test_obs_fold_is_joined_with_spaces) {
  struct opts o = {.kind = LM_HTTP1_RESPONSE};
  expect_all(&o,
             S("HTTP/1.1 200 OK\r\nX-Long: a\r\n  b\r\nContent-Length: 0\r\n"
               "\r\n"),
             "<200 none>$", LM_HTTP1_OK, &R, &P);
  CHECK(strchr(R.lines, '\r') == NULL);
  CHECK(strncmp(R.lines, "X-Long: a", 9) == 0);
}

/* ---- keep-alive --------------------------------------------------------- */

static const char three_responses[] = "HTTP/1.1 200 OK\r\n"
                                      "Content-Length: 3\r\n"
                                      "\r\n"
                                      "one"
                                      "HTTP/1.1 200 OK\r\n"
                                      "Transfer-Encoding: chunked\r\n"
                                      "\r\n"
                                      "3\r\ntwo\r\n0\r\n\r\n"
                                      "HTTP/1.1 404 Not Found\r\n"
                                      "Content-Length: 0\r\n"
                                      "\r\n";

LM_TEST(test_keep_alive_three_messages_in_one_feed_and_bytewise) {
  struct opts o = {.kind = LM_HTTP1_RESPONSE, .pairs = true};
  expect_all(&o, S(three_responses),
             "<200 len>one$<200 chunked>two$<404 none>$", LM_HTTP1_OK, &R, &P);
  CHECK_EQ_I64(R.dones, 3);
  const char *second = strstr(three_responses, "oneHTTP") + 3;
  const char *third = strstr(three_responses, "HTTP/1.1 404");
  CHECK_EQ_U64(R.done_end[0], (size_t)(second - three_responses));
  CHECK_EQ_U64(R.done_end[1], (size_t)(third - three_responses));
  CHECK_EQ_U64(R.done_end[2], sizeof three_responses - 1);
  CHECK_EQ_U64(R.head_end[2], sizeof three_responses - 1);
}

LM_TEST(test_pipelined_requests_each_reported) {
  struct opts o = {.kind = LM_HTTP1_REQUEST};
  expect_all(&o,
             S("GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
               "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi"
               "GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
             "<GET /a none>$<POST /b len>hi$<GET /c none>$", LM_HTTP1_OK, &R,
             &P);
  CHECK(!R.last.keep_alive);
}

LM_TEST(test_stop_in_on_done_pauses_at_the_message_boundary) {
  struct opts o = {.kind = LM_HTTP1_RESPONSE, .stop_at = 'D'};
  expect_all(&o, S(three_responses),
             "<200 len>one$<200 chunked>two$<404 none>$", LM_HTTP1_OK, &R, &P);
  CHECK_EQ_I64(R.stops, 3);
  /* The first feed returns at the end of the first message. */
  rec_init(&R, &P, LM_HTTP1_RESPONSE);
  R.stop_at = 'D';
  size_t used = 0;
  CHECK(lm_http1_feed(&P, S(three_responses), &used) == LM_HTTP1_STOPPED);
  CHECK_EQ_U64(used, strlen("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none"));
  CHECK_STR(R.out, "<200 len>one$");
  CHECK(lm_http1_idle(&P));
}

LM_TEST(test_stop_in_on_head_and_on_body_resumes_where_it_stopped) {
  struct opts o = {.kind = LM_HTTP1_RESPONSE, .stop_at = 'H'};
  expect_all(&o, S(three_responses),
             "<200 len>one$<200 chunked>two$<404 none>$", LM_HTTP1_OK, &R, &P);
  CHECK_EQ_I64(R.stops, 3);
  o.stop_at = 'B';
  expect_all(&o, S(three_responses),
             "<200 len>one$<200 chunked>two$<404 none>$", LM_HTTP1_OK, &R, &P);
  CHECK_EQ_I64(R.stops, 2);
  rec_init(&R, &P, LM_HTTP1_RESPONSE);
  R.stop_at = 'B';
  size_t used = 0;
  CHECK(lm_http1_feed(&P, S(three_responses), &used) == LM_HTTP1_STOPPED);
  CHECK_EQ_U64(used, strlen("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none"));
}

/* ---- responses without a body ------------------------------------------- */

LM_TEST(test_response_to_head_has_no_body_whatever_its_headers_say) {
  struct opts o = {.kind = LM_HTTP1_RESPONSE, .expect = {"HEAD", "GET"}};
  expect_all(&o,
             S("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
               "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               "2\r\nok\r\n0\r\n\r\n"),
             "<200 none>$<200 chunked>ok$", LM_HTTP1_OK, &R, &P);
  o.expect[0] = "HEAD";
  o.expect[1] = "HEAD";
  expect_all(&o,
             S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               "HTTP/1.1 200 OK\r\n\r\n"),
             "<200 none>$<200 none>$", LM_HTTP1_OK, &R, &P);
}

LM_TEST(test_204_and_304_have_no_body) {
  struct opts o = {.kind = LM_HTTP1_RESPONSE};
  expect_all(&o,
             S("HTTP/1.1 204 No Content\r\n\r\n"
               "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n"
               "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz"),
             "<204 none>$<304 none>$<200 len>z$", LM_HTTP1_OK, &R, &P);
}

LM_TEST(test_1xx_responses_come_before_the_real_one) {
  struct opts o = {.kind = LM_HTTP1_RESPONSE, .expect = {"HEAD", "GET"}};
  /* The 100 and 103 do not answer the HEAD: the 200 after them does. */
  expect_all(&o,
             S("HTTP/1.1 100 Continue\r\n\r\n"
               "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
               "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
               "HTTP/1.1 100 Continue\r\n\r\n"
               "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"),
             "<100 none>$<103 none>$<200 none>$<100 none>$<200 len>hi$",
             LM_HTTP1_OK, &R, &P);
  CHECK(!R.last.informational);
  rec_init(&R, &P, LM_HTTP1_RESPONSE);
  CHECK(feed(&R, S("HTTP/1.1 100 Continue\r\n\r\n")) == LM_HTTP1_OK);
  CHECK(R.last.informational);
}

/* ---- a body read until the connection closes ---------------------------- */

LM_TEST(test_close_delimited_body_ends_at_finish) {
  struct opts o = {.kind = LM_HTTP1_RESPONSE, .finish = true};
  expect_all(&o,
             S("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
               "data: 1\n\ndata: 2\n\n"),
             "<200 eof>data: 1\n\ndata: 2\n\n$", LM_HTTP1_OK, &R, &P);
  CHECK(!R.last.keep_alive);
  CHECK_EQ_U64(R.done_end[0], strlen("HTTP/1.1 200 OK\r\nContent-Type: "
                                     "text/event-stream\r\n\r\n"
                                     "data: 1\n\ndata: 2\n\n"));
  /* HTTP/1.0 without a length, and a response whose last transfer coding
   * is not chunked, are read to close as well. */
  expect_all(&o, S("HTTP/1.0 200 OK\r\n\r\nabc"), "<200 eof>abc$", LM_HTTP1_OK,
             &R, &P);
  expect_all(&o, S("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc"),
             "<200 eof>abc$", LM_HTTP1_OK, &R, &P);
}

LM_TEST(test_finish_inside_a_message_is_an_error) {
  rec_init(&R, &P, LM_HTTP1_RESPONSE);
  CHECK(feed(&R, S("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")) ==
        LM_HTTP1_OK);
  CHECK(lm_http1_finish(&P) == LM_HTTP1_ERROR);
  CHECK(strstr(lm_http1_error(&P), "closed inside a message") != NULL);
  rec_init(&R, &P, LM_HTTP1_RESPONSE);
  CHECK(feed(&R, S("HTTP/1.1 200 OK\r\nContent-Le")) == LM_HTTP1_OK);
  CHECK(lm_http1_finish(&P) == LM_HTTP1_ERROR);
  /* Between messages, the end of the stream is the normal end. */
  rec_init(&R, &P, LM_HTTP1_RESPONSE);
  CHECK(feed(&R, S("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")) ==
        LM_HTTP1_OK);
  CHECK(lm_http1_finish(&P) == LM_HTTP1_OK);
  CHECK(lm_http1_error(&P) == NULL);
  CHECK(lm_http1_finish(&P) == LM_HTTP1_OK);
  /* The stream is over: nothing more is a body read to its close. */
  rec_init(&R, &P, LM_HTTP1_RESPONSE);
  CHECK(feed(&R, S("HTTP/1.1 200 OK\r\n\r\nab")) == LM_HTTP1_OK);
  CHECK(lm_http1_finish(&P) == LM_HTTP1_OK);
  CHECK(feed(&R, S("cd")) == LM_HTTP1_ERROR);
  CHECK_STR(R.out, "<200 eof>ab$");
  CHECK(lm_http1_feed(&P, NULL, 0, NULL) == LM_HTTP1_ERROR);
  rec_init(&R, &P, LM_HTTP1_REQUEST);
  CHECK(lm_http1_feed(&P, NULL, 0, NULL) == LM_HTTP1_OK);
}

/* ---- leaving HTTP/1 ------------------------------------------------------ */

LM_TEST(test_101_switching_protocols_ends_http) {
  rec_init(&R, &P, LM_HTTP1_RESPONSE);
  const char in[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\n\r\n\x81\x05hello";
  size_t used = 0;
  CHECK(lm_http1_feed(&P, S(in), &used) == LM_HTTP1_UPGRADED);
  CHECK_EQ_U64(used, sizeof in - 1 - 7);
  CHECK_STR(R.out, "<101 none>$");
  CHECK(R.last.upgrade);
  CHECK(lm_http1_feed(&P, "x", 1, &used) == LM_HTTP1_UPGRADED);
  CHECK_EQ_U64(used, 0);
}

LM_TEST(test_101_without_upgrade_headers_still_ends_http) {
  rec_init(&R, &P, LM_HTTP1_RESPONSE);
  size_t used = 0;
  const char in[] = "HTTP/1.1 101 Switching Protocols\r\n\r\nHTTP/1.1 200 OK";
  CHECK(lm_http1_feed(&P, S(in), &used) == LM_HTTP1_UPGRADED);
  CHECK_EQ_U64(used, sizeof in - 1 - strlen("HTTP/1.1 200 OK"));
  CHECK_STR(R.out, "<101 none>$");
}

LM_TEST(test_a_request_asking_to_upgrade_ends_the_request_side) {
  rec_init(&R, &P, LM_HTTP1_REQUEST);
  size_t used = 0;
  const char in[] = "GET /v1/realtime HTTP/1.1\r\nHost: h\r\n"
                    "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                    "\x81\x85xxxx";
  CHECK(lm_http1_feed(&P, S(in), &used) == LM_HTTP1_UPGRADED);
  CHECK_EQ_U64(used, sizeof in - 1 - 6);
  CHECK(R.last.upgrade);
  CHECK(!R.last.keep_alive);
}

LM_TEST(test_keep_alive_follows_the_version_and_connection_header) {
  rec_init(&R, &P, LM_HTTP1_RESPONSE);
  CHECK(feed(&R, S("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
                   "Content-Length: 1\r\n\r\nx")) == LM_HTTP1_OK);
  CHECK(R.last.keep_alive);
  CHECK_EQ_I64(R.last.http_minor, 0);
  rec_init(&R, &P, LM_HTTP1_RESPONSE);
  CHECK(feed(&R, S("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx")) ==
        LM_HTTP1_OK);
  CHECK(!R.last.keep_alive);
  rec_init(&R, &P, LM_HTTP1_RESPONSE);
  CHECK(feed(&R, S("HTTP/1.1 200 OK\r\nConnection: close\r\n"
                   "Content-Length: 1\r\n\r\nx")) == LM_HTTP1_OK);
  CHECK(!R.last.keep_alive);
  CHECK_STR(R.out, "<200 len>x$");
}

LM_TEST(test_connect_2xx_opens_a_tunnel_but_a_refusal_does_not) {
  rec_init(&R, &P, LM_HTTP1_RESPONSE);
  CHECK(lm_http1_expect(&P, "CONNECT") == 0);
  size_t used = 0;
  const char in[] = "HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x01";
  CHECK(lm_http1_feed(&P, S(in), &used) == LM_HTTP1_UPGRADED);
  CHECK_EQ_U64(used, sizeof in - 1 - 3);
  rec_init(&R, &P, LM_HTTP1_RESPONSE);
  CHECK(lm_http1_expect(&P, "CONNECT") == 0);
  CHECK(feed(&R, S("HTTP/1.1 407 Proxy Auth\r\nContent-Length: 2\r\n\r\nno")) ==
        LM_HTTP1_OK);
  CHECK_STR(R.out, "<407 len>no$");
  /* The request side: a CONNECT request ends HTTP there too. */
  rec_init(&R, &P, LM_HTTP1_REQUEST);
  CHECK(lm_http1_feed(&P,
                      S("CONNECT api.x:443 HTTP/1.1\r\nHost: api.x\r\n\r\n"),
                      &used) == LM_HTTP1_UPGRADED);
  CHECK_STR(R.out, "<CONNECT api.x:443 none>$");
}

/* ---- hostile framing ----------------------------------------------------- */

/* in, fed whole and one byte at a time, ends in the error state with a
 * reason containing `why`, and stays there. */
static void expect_error(enum lm_http1_kind kind, const char *in, size_t n,
                         const char *why) {
  for (int bytewise = 0; bytewise < 2; bytewise++) {
    rec_init(&R, &P, kind);
    enum lm_http1_status s = LM_HTTP1_OK;
    if (bytewise)
      for (size_t i = 0; i < n && s == LM_HTTP1_OK; i++)
        s = feed(&R, in + i, 1);
    else
      s = feed(&R, in, n);
    if (s != LM_HTTP1_ERROR || !lm_http1_error(&P) ||
        !strstr(lm_http1_error(&P), why)) {
      fprintf(stderr, "  %s: status %d, reason \"%s\", want \"%s\"\n",
              bytewise ? "bytewise" : "whole", s,
              lm_http1_error(&P) ? lm_http1_error(&P) : "(none)", why);
      lm_t_cur_failed = 1;
      return;
    }
    /* Sticky: nothing more is parsed, even a valid message. */
    size_t used = 1;
    CHECK(lm_http1_feed(&P, S("HTTP/1.1 200 OK\r\n\r\n"), &used) ==
          LM_HTTP1_ERROR);
    CHECK_EQ_U64(used, 0);
    CHECK(lm_http1_finish(&P) == LM_HTTP1_ERROR);
    CHECK(strchr(lm_http1_error(&P), '\n') == NULL);
  }
}

LM_TEST(test_chunk_size_overflow_is_an_error) {
  expect_error(LM_HTTP1_RESPONSE,
               S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "ffffffffffffffffff\r\n"),
               "Chunk size overflow");
  expect_error(LM_HTTP1_RESPONSE,
               S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "-1\r\n"),
               "chunk size");
  /* A chunk longer than its size says: the CRLF is not where it should be. */
  expect_error(LM_HTTP1_RESPONSE,
               S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "2\r\nabcd\r\n0\r\n\r\n"),
               "CRLF after chunk");
}

LM_TEST(test_bad_content_length_is_an_error) {
  expect_error(LM_HTTP1_RESPONSE,
               S("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
               "Content-Length");
  expect_error(LM_HTTP1_RESPONSE,
               S("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                 "Content-Length: 2\r\n\r\nok"),
               "Duplicate Content-Length");
  expect_error(LM_HTTP1_RESPONSE,
               S("HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok"),
               "Content-Length");
  expect_error(LM_HTTP1_RESPONSE,
               S("HTTP/1.1 200 OK\r\n"
                 "Content-Length: 99999999999999999999999\r\n\r\n"),
               "Content-Length overflow");
  expect_error(LM_HTTP1_REQUEST,
               S("POST / HTTP/1.1\r\nContent-Length: 5\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
               "Transfer-Encoding");
  expect_error(LM_HTTP1_RESPONSE,
               S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                 "Content-Length: 5\r\n\r\n0\r\n\r\n"),
               "Transfer-Encoding");
  expect_error(LM_HTTP1_REQUEST,
               S("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nabc"),
               "does not end in chunked");
}

LM_TEST(test_nul_and_control_bytes_in_a_head_are_an_error) {
  expect_error(LM_HTTP1_RESPONSE, S("HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n"),
               "header value char");
  expect_error(LM_HTTP1_RESPONSE, S("HTTP/1.1 200 OK\r\nX\0: ab\r\n\r\n"),
               "header");
  expect_error(LM_HTTP1_REQUEST, S("GET /a\0b HTTP/1.1\r\n\r\n"), "url");
  expect_error(LM_HTTP1_RESPONSE, S("HTTP/1.1 200 OK\nX: a\n\n"), "");
  expect_error(LM_HTTP1_RESPONSE, S("HTTP/1.1 200 OK\r\nX: a\r\r\n\r\n"), "");
  expect_error(LM_HTTP1_REQUEST, S("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
               "HTTP/2");
}

LM_TEST(test_data_after_connection_close_is_an_error) {
  expect_error(LM_HTTP1_RESPONSE,
               S("HTTP/1.1 200 OK\r\nConnection: close\r\n"
                 "Content-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n\r\n"),
               "Connection: close");
}

/* A head of exactly `size` wire bytes with `lines` header lines. */
static size_t make_head(char *buf, size_t cap, size_t size, int lines) {
  size_t n = (size_t)snprintf(buf, cap, "HTTP/1.1 200 OK\r\n");
  for (int i = 0; i < lines - 1; i++)
    n += (size_t)snprintf(buf + n, cap - n, "X-%d: v\r\n", i);
  /* The last line is padded so the head is exactly `size` bytes. */
  size_t fixed = n + strlen("X-Pad: \r\n\r\n");
  if (size < fixed + 1)
    abort();
  n += (size_t)snprintf(buf + n, cap - n, "X-Pad: ");
  memset(buf + n, 'p', size - fixed);
  n += size - fixed;
  n += (size_t)snprintf(buf + n, cap - n, "\r\n\r\n");
  return n;
}

LM_TEST(test_header_flood_is_an_error_and_100_lines_are_not) {
  static char buf[LM_HTTP1_HEAD_MAX * 2];
  size_t n = make_head(buf, sizeof buf, 2000, LM_HTTP1_HEADERS_MAX);
  rec_init(&R, &P, LM_HTTP1_RESPONSE);
  CHECK(feed(&R, buf, n) == LM_HTTP1_OK);
  CHECK_EQ_U64(R.last.n_headers, LM_HTTP1_HEADERS_MAX);
  n = make_head(buf, sizeof buf, 2000, LM_HTTP1_HEADERS_MAX + 1);
  expect_error(LM_HTTP1_RESPONSE, buf, n, "over 100 header lines");
}

LM_TEST(test_head_over_the_cap_is_an_error_and_one_at_it_is_not) {
  static char buf[LM_HTTP1_HEAD_MAX * 2];
  size_t n = make_head(buf, sizeof buf, LM_HTTP1_HEAD_MAX, 3);
  CHECK_EQ_U64(n, LM_HTTP1_HEAD_MAX);
  for (int bytewise = 0; bytewise < 2; bytewise++) {
    rec_init(&R, &P, LM_HTTP1_RESPONSE);
    enum lm_http1_status s = LM_HTTP1_OK;
    for (size_t i = 0; bytewise && i < n && s == LM_HTTP1_OK; i++)
      s = feed(&R, buf + i, 1);
    if (!bytewise)
      s = feed(&R, buf, n);
    CHECK(s == LM_HTTP1_OK);
    CHECK_EQ_U64(R.last.head_len, LM_HTTP1_HEAD_MAX);
    CHECK_EQ_I64(R.heads, 1);
  }
  n = make_head(buf, sizeof buf, LM_HTTP1_HEAD_MAX + 1, 3);
  expect_error(LM_HTTP1_RESPONSE, buf, n, "head over 16384 bytes");
  /* A flood that never ends its head stops at the cap. */
  memset(buf, 'a', sizeof buf);
  memcpy(buf, "HTTP/1.1 200 OK\r\nX: ", 20);
  expect_error(LM_HTTP1_RESPONSE, buf, sizeof buf, "head over 16384 bytes");
}

LM_TEST(test_pipelining_deeper_than_the_table_is_an_error) {
  rec_init(&R, &P, LM_HTTP1_RESPONSE);
  for (int i = 0; i < LM_HTTP1_PENDING_MAX; i++)
    CHECK(lm_http1_expect(&P, "GET") == 0);
  CHECK(lm_http1_expect(&P, "GET") == -1);
  CHECK(lm_http1_error(&P) != NULL);
}

/* ---- Content-Encoding ---------------------------------------------------- */

static enum lm_http_coding coding_of(const char *headers) {
  char in[512];
  size_t n = (size_t)snprintf(
      in, sizeof in, "HTTP/1.1 200 OK\r\n%sContent-Length: 0\r\n\r\n", headers);
  rec_init(&R, &P, LM_HTTP1_RESPONSE);
  CHECK(feed(&R, in, n) == LM_HTTP1_OK);
  return R.last.content_encoding;
}

LM_TEST(test_content_encoding_is_parsed_across_headers) {
  CHECK(coding_of("") == LM_CODING_IDENTITY);
  CHECK(coding_of("Content-Encoding: gzip\r\n") == LM_CODING_GZIP);
  CHECK(coding_of("content-encoding: X-GZIP\r\n") == LM_CODING_GZIP);
  CHECK(coding_of("Content-Encoding: deflate\r\n") == LM_CODING_DEFLATE);
  CHECK(coding_of("Content-Encoding: br\r\n") == LM_CODING_BR);
  CHECK(coding_of("Content-Encoding: zstd \r\n") == LM_CODING_ZSTD);
  CHECK(coding_of("Content-Encoding: identity\r\n") == LM_CODING_IDENTITY);
  CHECK(coding_of("Content-Encoding: compress\r\n") == LM_CODING_OTHER);
  CHECK(coding_of("Content-Encoding: gzip, br\r\n") == LM_CODING_MULTIPLE);
  CHECK(coding_of("Content-Encoding: gzip\r\nContent-Encoding: br\r\n") ==
        LM_CODING_MULTIPLE);
  CHECK(coding_of("Content-Encoding: identity, gzip,\r\n") == LM_CODING_GZIP);
}

/* ---- the recorded fixtures, framed -------------------------------------- */

static uint32_t rnd_state = 0x9e3779b9u;
static uint32_t rnd(void) {
  rnd_state ^= rnd_state << 13;
  rnd_state ^= rnd_state >> 17;
  rnd_state ^= rnd_state << 5;
  return rnd_state;
}

/* Appends body to w as chunks of random sizes (some with extensions),
 * then the last chunk and a trailer. */
static void frame_chunked(struct rec *w, const char *body, size_t n) {
  size_t off = 0;
  while (off < n) {
    size_t k = 1 + rnd() % (rnd() % 4 == 0 ? 4096 : 64);
    if (k > n - off)
      k = n - off;
    char sz[64];
    snprintf(sz, sizeof sz, rnd() % 5 == 0 ? "%zX;x=\"y\"\r\n" : "%zx\r\n", k);
    put(w, sz, strlen(sz));
    put(w, body + off, k);
    put(w, "\r\n", 2);
    off += k;
  }
  put(w, S("0\r\nX-Checksum: none\r\n\r\n"));
}

/* Feeds in at random piece sizes (1 byte to 64 KiB, mostly small). */
static enum lm_http1_status feed_random(struct rec *r, const char *in,
                                        size_t n) {
  size_t off = 0;
  enum lm_http1_status s = LM_HTTP1_OK;
  while (off < n && s == LM_HTTP1_OK) {
    size_t k = rnd() % 8 == 0 ? 1 + rnd() % 65536 : 1 + rnd() % 97;
    if (k > n - off)
      k = n - off;
    s = feed(r, in + off, k);
    off += k;
  }
  return s;
}

/* Collects one message's body (the recorder's string holds heads too). */
struct bodyrec {
  char *b;
  size_t len, cap;
  int heads, dones;
};

static int fx_head(void *ctx, const struct lm_http1_head *h) {
  (void)h;
  ((struct bodyrec *)ctx)->heads++;
  return 0;
}
static int fx_body(void *ctx, const char *p, size_t n) {
  struct bodyrec *b = ctx;
  if (b->len + n > b->cap)
    return 1; /* more body than the fixture: fail the case */
  memcpy(b->b + b->len, p, n);
  b->len += n;
  return 0;
}
static int fx_done(void *ctx, size_t end_off) {
  (void)end_off;
  ((struct bodyrec *)ctx)->dones++;
  return 0;
}

LM_TEST(test_recorded_fixtures_framed_chunked_come_out_byte_exact) {
  static const struct lm_http1_events fx = {fx_head, fx_body, fx_done};
  const char *root = getenv("LM_ROOT");
  char dir[512];
  snprintf(dir, sizeof dir, "%s/tests/fixtures", root ? root : ".");
  DIR *d = opendir(dir);
  CHECK(d != NULL);
  if (!d)
    return;
  int cases = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t nl = strlen(e->d_name);
    if (nl < 9 || strcmp(e->d_name + nl - 9, ".response") != 0)
      continue;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    size_t blen = 0;
    char *body = lm_slurp(path, &blen);
    CHECK(body != NULL);
    if (!body)
      continue;
    for (int framing = 0; framing < 2; framing++) {
      struct rec w = {0};
      put(&w, "", 0);
      char head[160];
      if (framing == 0) {
        put(&w, S("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n"));
        frame_chunked(&w, body, blen);
      } else {
        snprintf(head, sizeof head,
                 "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", blen);
        put(&w, head, strlen(head));
        put(&w, body, blen);
      }
      for (int round = 0; round < 8; round++) {
        struct bodyrec b = {malloc(blen + 1), 0, blen, 0, 0};
        struct rec r = {0};
        struct lm_http1 *p = &P;
        lm_http1_init(p, LM_HTTP1_RESPONSE, &fx, &b);
        r.p = p;
        enum lm_http1_status s = feed_random(&r, w.out, w.len);
        if (s != LM_HTTP1_OK || b.len != blen || memcmp(b.b, body, blen) != 0 ||
            b.heads != 1 || b.dones != 1) {
          fprintf(stderr,
                  "  %s (%s, round %d): status %d, %zu of %zu bytes,"
                  " %s\n",
                  e->d_name, framing ? "length" : "chunked", round, s, b.len,
                  blen, lm_http1_error(p) ? lm_http1_error(p) : "");
          lm_t_cur_failed = 1;
        }
        free(b.b);
      }
      free(w.out);
    }
    free(body);
    cases++;
  }
  closedir(d);
  CHECK(cases >= 30);
}

/* ---- the fast path against llhttp ------------------------------------- */

/* Everything a parse produced, as text: heads with every field, body
 * bytes, ends, the final status and error. */
struct trace {
  char s[8192];
  size_t n;
  int fast_heads; /* heads the fast path read */
  struct lm_http1 *p;
};

static void tput(struct trace *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void tput(struct trace *t, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (t->n < sizeof t->s) {
    int k = vsnprintf(t->s + t->n, sizeof t->s - t->n, fmt, ap);
    if (k > 0)
      t->n += (size_t)k;
  }
  va_end(ap);
}

static int t_head(void *ctx, const struct lm_http1_head *h) {
  struct trace *t = ctx;
  t->fast_heads += t->p->in_fast;
  tput(t,
       "<%s|%s|%zu|%d|%d.%d|ka%d|up%d|inf%d|ch%d|cl%lld|b%d|ce%d|ct%s|hl%zu|"
       "he%zu",
       h->method ? h->method : "-", h->target ? h->target : "-", h->target_len,
       h->status, h->http_major, h->http_minor, h->keep_alive, h->upgrade,
       h->informational, h->chunked, (long long)h->content_length, (int)h->body,
       (int)h->content_encoding, h->content_type ? h->content_type : "-",
       h->head_len, h->head_end_off);
  for (size_t i = 0; i < h->n_headers; i++)
    tput(t, "|%s", h->headers[i]);
  tput(t, ">");
  return 0;
}

static int t_body(void *ctx, const char *p, size_t n) {
  tput(ctx, "%.*s", (int)n, p);
  return 0;
}

static int t_done(void *ctx, size_t end_off) {
  tput(ctx, "$%zu", end_off);
  return 0;
}

static const struct lm_http1_events t_events = {t_head, t_body, t_done};

static void trace_parse(struct trace *t, struct lm_http1 *p,
                        enum lm_http1_kind k, const char *pending,
                        const char *in, size_t n, bool fast) {
  t->n = 0;
  t->s[0] = '\0';
  t->fast_heads = 0;
  t->p = p;
  lm_http1_init(p, k, &t_events, t);
  lm_http1_set_fast(p, fast);
  if (pending)
    lm_http1_expect(p, pending);
  size_t used = 0;
  int st = lm_http1_feed(p, in, n, &used);
  tput(t, "#%d %zu", st, used);
  if (st == LM_HTTP1_OK)
    tput(t, " fin%d", lm_http1_finish(p));
  const char *e = lm_http1_error(p);
  tput(t, " [%s]", e ? e : "");
}

static struct lm_http1 P_fast, P_slow;
static struct trace T_fast, T_slow;

/* Parses in[0..n) both ways; 1 when they differ (and says how). */
static int differs(enum lm_http1_kind k, const char *pending, const char *in,
                   size_t n) {
  trace_parse(&T_fast, &P_fast, k, pending, in, n, true);
  trace_parse(&T_slow, &P_slow, k, pending, in, n, false);
  if (T_fast.n == T_slow.n && memcmp(T_fast.s, T_slow.s, T_fast.n) == 0)
    return 0;
  fprintf(stderr, "  input: %.*s\n  fast:  %s\n  llhttp: %s\n", (int)n, in,
          T_fast.s, T_slow.s);
  return 1;
}

/* Every message of these streams, each byte of it replaced by each of the
 * 256 values, deleted, or doubled: the fast path must read each variant
 * exactly as llhttp does (or leave it to llhttp). The unchanged streams
 * must be the fast path's, or the test proves nothing. */
static void test_fast_path_reads_every_one_byte_change_as_llhttp_does(void) {
  static const struct {
    enum lm_http1_kind kind;
    const char *pending;
    const char *text;
    int fast; /* heads the fast path reads unchanged */
  } seeds[] = {
      {LM_HTTP1_REQUEST, NULL,
       "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: api.openai.com\r\n"
       "Content-Type: application/json\r\nContent-Length: 2\r\n"
       "Connection: keep-alive\r\n\r\n{}GET / HTTP/1.1\r\nA:\t b \r\n\r\n",
       2},
      {LM_HTTP1_RESPONSE, NULL,
       "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Type: "
       "text/event-stream\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 404 Not "
       "Found\r\nContent-Length: 0\r\n\r\n",
       2},
      {LM_HTTP1_RESPONSE, "GET",
       "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
       "Content-Length: 1\r\n\r\nx",
       1},
  };
  char buf[512];
  long variants = 0;
  int bad = 0;
  for (size_t si = 0; si < sizeof seeds / sizeof seeds[0]; si++) {
    const char *in = seeds[si].text;
    size_t n = strlen(in);
    CHECK(n + 1 < sizeof buf);
    bad += differs(seeds[si].kind, seeds[si].pending, in, n);
    CHECK(T_fast.fast_heads == seeds[si].fast);
    CHECK(T_slow.fast_heads == 0);
    for (size_t i = 0; i < n && bad < 3; i++) {
      for (int v = 0; v < 256 + 2 && bad < 3; v++) {
        size_t m = n;
        memcpy(buf, in, n);
        if (v < 256) {
          buf[i] = (char)v;
        } else if (v == 256) { /* deleted */
          memmove(buf + i, buf + i + 1, n - i - 1);
          m = n - 1;
        } else { /* doubled */
          memmove(buf + i + 1, buf + i, n - i);
          m = n + 1;
        }
        bad += differs(seeds[si].kind, seeds[si].pending, buf, m);
        variants++;
      }
    }
  }
  CHECK(bad == 0);
  CHECK(variants == 98556);
}

int main(void) {
  LM_RUN(test_request_with_content_length_at_every_split);
  LM_RUN(test_request_with_chunked_body_at_every_split);
  LM_RUN(test_header_names_and_values_split_across_feeds_are_reassembled);
  LM_RUN(test_obs_fold_is_joined_with_spaces);
  LM_RUN(test_keep_alive_three_messages_in_one_feed_and_bytewise);
  LM_RUN(test_pipelined_requests_each_reported);
  LM_RUN(test_stop_in_on_done_pauses_at_the_message_boundary);
  LM_RUN(test_stop_in_on_head_and_on_body_resumes_where_it_stopped);
  LM_RUN(test_response_to_head_has_no_body_whatever_its_headers_say);
  LM_RUN(test_204_and_304_have_no_body);
  LM_RUN(test_1xx_responses_come_before_the_real_one);
  LM_RUN(test_close_delimited_body_ends_at_finish);
  LM_RUN(test_finish_inside_a_message_is_an_error);
  LM_RUN(test_101_switching_protocols_ends_http);
  LM_RUN(test_101_without_upgrade_headers_still_ends_http);
  LM_RUN(test_a_request_asking_to_upgrade_ends_the_request_side);
  LM_RUN(test_keep_alive_follows_the_version_and_connection_header);
  LM_RUN(test_connect_2xx_opens_a_tunnel_but_a_refusal_does_not);
  LM_RUN(test_chunk_size_overflow_is_an_error);
  LM_RUN(test_bad_content_length_is_an_error);
  LM_RUN(test_nul_and_control_bytes_in_a_head_are_an_error);
  LM_RUN(test_data_after_connection_close_is_an_error);
  LM_RUN(test_header_flood_is_an_error_and_100_lines_are_not);
  LM_RUN(test_head_over_the_cap_is_an_error_and_one_at_it_is_not);
  LM_RUN(test_pipelining_deeper_than_the_table_is_an_error);
  LM_RUN(test_content_encoding_is_parsed_across_headers);
  LM_RUN(test_recorded_fixtures_framed_chunked_come_out_byte_exact);
  LM_RUN(test_fast_path_reads_every_one_byte_change_as_llhttp_does);
  free(R.out);
  LM_TEST_END();
}
