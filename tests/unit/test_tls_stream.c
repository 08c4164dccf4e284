/* test_tls_stream.c — the OpenSSL transport's stream over a fake connection.
 *
 * No OpenSSL and no socket: a program's writes go through
 * lm_tls_stream_write to a fake real-write that fails with WANT_WRITE and
 * writes short at random (the program retries the same bytes, as OpenSSL
 * requires); the server's bytes come back through pre_read/received at
 * random read sizes, exactly as tls_hook.c's read loop drives them. The
 * budget is real shared memory. Checked: what reaches the server, what the
 * program reads (byte for byte, or de-chunked where the filter reframes),
 * and what the budget holds.
 */
#include <cjson/cJSON.h>
#include <unistd.h>
#include <zlib.h>

#include "budget.h"
#include "config.h"
#include "http1.h"
#include "lifecycle.h"
#include "lm_slurp.h"
#include "lm_test.h"
#include "tls_stream.h"
#include "unmetered.h"

static char bname[64];
static struct lm_budget *B;
static struct lm_snapshot S;
static char said[4096];

static void capture(const char *line, size_t len) {
  size_t n = strlen(said);
  if (n + len + 2 < sizeof(said)) {
    memcpy(said + n, line, len);
    said[n + len] = '\n';
    said[n + len + 1] = 0;
  }
}

static uint64_t rng = 0x243f6a8885a308d3ULL;
static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static void limits(int64_t hard_pusd) {
  struct lm_limit_config c = LM_LIMITS_NONE;
  c.hard_pusd = hard_pusd;
  c.on_soft = "";
  c.downgrade = "";
  lm_budget_configure(B, &c);
  lm_budget_reset(B);
  said[0] = 0;
}

static void snap(void) { lm_budget_snapshot(B, &S); }

/* ---- a growable string ------------------------------------------------ */

struct str {
  char *p;
  size_t len;
};

static void str_add(struct str *s, const char *p, size_t n) {
  s->p = realloc(s->p, s->len + n + 1);
  memcpy(s->p + s->len, p, n);
  s->len += n;
  s->p[s->len] = 0;
}

static void str_fmt(struct str *s, const char *fmt, ...) {
  char tmp[4096];
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(tmp, sizeof(tmp), fmt, ap);
  va_end(ap);
  str_add(s, tmp, (size_t)k);
}

/* ---- the fake connection ---------------------------------------------- */

struct server {
  struct str got; /* what reached the server */
  int writes;
};

/* The real write: WANT_WRITE one time in four, short one time in four. */
static long fake_send(void *ctx, const char *p, size_t n) {
  struct server *sv = ctx;
  sv->writes++;
  uint64_t r = next_rand() % 4;
  if (r == 0)
    return -1;
  if (r == 1 && n > 1)
    n = 1 + (size_t)(next_rand() % (n - 1));
  str_add(&sv->got, p, n);
  return (long)n;
}

/* The program writes all of p in random pieces, retrying a failed piece
 * with the same bytes. Returns false if a write ever took more than
 * offered. */
static bool program_writes(struct lm_tls_stream *s, struct server *sv,
                           const char *p, size_t n) {
  for (size_t off = 0; off < n;) {
    size_t k = 1 + (size_t)(next_rand() % 300);
    if (k > n - off)
      k = n - off;
    long r;
    int tries = 0;
    while ((r = lm_tls_stream_write(s, p + off, k, fake_send, sv)) <= 0)
      if (++tries > 1000)
        return false;
    if ((size_t)r > k)
      return false;
    off += (size_t)r;
  }
  return true;
}

/* The program reads until the stream's end or a reset (as tls_hook.c's
 * read loop does: the stream's own answer first, then the "real" read of
 * the server's next bytes). *reset tells which ended it. */
static void program_reads(struct lm_tls_stream *s, const char *resp,
                          size_t rlen, bool close_at_end, struct str *out,
                          bool *reset) {
  size_t off = 0;
  *reset = false;
  char buf[1024];
  for (int guard = 0; guard < 1000000; guard++) {
    size_t cap = 1 + (size_t)(next_rand() % sizeof(buf));
    size_t got = 0;
    enum lm_tls_read a = lm_tls_stream_pre_read(s, buf, cap, &got, false);
    if (a == LM_TLS_READ_DATA) {
      str_add(out, buf, got);
      continue;
    }
    if (a == LM_TLS_READ_EOF)
      return;
    if (a == LM_TLS_READ_RESET) {
      *reset = true;
      return;
    }
    if (off == rlen) {
      if (!close_at_end)
        return; /* keep-alive: the response is all in */
      lm_tls_stream_closed(s, true);
      if (lm_tls_stream_pre_read(s, buf, cap, &got, false) ==
          LM_TLS_READ_DATA) {
        str_add(out, buf, got);
        continue;
      }
      return;
    }
    size_t n = 1 + (size_t)(next_rand() % cap);
    if (n > rlen - off)
      n = rlen - off;
    memcpy(buf, resp + off, n);
    off += n;
    bool cut = false;
    size_t k = lm_tls_stream_received(s, buf, n, cap, &cut);
    str_add(out, buf, k);
  }
}

/* ---- messages --------------------------------------------------------- */

static const char chat_req[] =
    "{\"model\":\"gpt-4o-mini\",\"max_tokens\":50,\"messages\":[{\"role\":"
    "\"user\",\"content\":\"hello\"}]}";
static const char chat_resp[] =
    "{\"id\":\"x\",\"object\":\"chat.completion\",\"model\":\"gpt-4o-mini\","
    "\"choices\":[],\"usage\":{\"prompt_tokens\":1000,\"completion_tokens\":"
    "100,\"total_tokens\":1100}}";

/* The end of a head and its body: by Content-Length, or chunked in random
 * chunk sizes of 1..max bytes. */
static void framed_body(struct str *r, const char *body, size_t len,
                        bool chunked, size_t max) {
  if (!chunked) {
    str_fmt(r, "Content-Length: %zu\r\n\r\n", len);
    str_add(r, body, len);
    return;
  }
  str_fmt(r, "Transfer-Encoding: chunked\r\n\r\n");
  for (size_t off = 0; off < len;) {
    size_t k = 1 + (size_t)(next_rand() % max);
    if (k > len - off)
      k = len - off;
    str_fmt(r, "%zx\r\n", k);
    str_add(r, body + off, k);
    str_fmt(r, "\r\n");
    off += k;
  }
  str_fmt(r, "0\r\n\r\n");
}

static void request(struct str *r, const char *method, const char *target,
                    const char *body, size_t len, bool chunked) {
  str_fmt(r, "%s %s HTTP/1.1\r\nHost: api.openai.com\r\n", method, target);
  str_fmt(r, "Authorization: Bearer sk-test-secret\r\n");
  if (!body) {
    str_fmt(r, "\r\n");
    return;
  }
  str_fmt(r, "Content-Type: application/json\r\n");
  framed_body(r, body, len, chunked, 40);
}

/* A response; chunked bodies in random chunk sizes. */
static void response(struct str *r, int status, const char *ctype,
                     const char *enc, const char *body, size_t len,
                     bool chunked) {
  str_fmt(r, "HTTP/1.1 %d X\r\nContent-Type: %s\r\n", status, ctype);
  if (enc)
    str_fmt(r, "Content-Encoding: %s\r\n", enc);
  framed_body(r, body, len, chunked, 100);
}

static void gzip_of(const char *p, size_t n, struct str *out) {
  z_stream z;
  memset(&z, 0, sizeof(z));
  deflateInit2(&z, 6, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY);
  char buf[65536];
  z.next_in = (Bytef *)p;
  z.avail_in = (uInt)n;
  int rc;
  do {
    z.next_out = (Bytef *)buf;
    z.avail_out = sizeof(buf);
    rc = deflate(&z, Z_FINISH);
    str_add(out, buf, sizeof(buf) - z.avail_out);
  } while (rc == Z_OK);
  deflateEnd(&z);
}

/* The body of a response as a client sees it, de-chunked (http1.h). */
struct dechunk {
  struct str body;
  int status;
  int done;
};
static int dc_head(void *ctx, const struct lm_http1_head *h) {
  ((struct dechunk *)ctx)->status = h->status;
  return 0;
}
static int dc_body(void *ctx, const char *p, size_t n) {
  str_add(&((struct dechunk *)ctx)->body, p, n);
  return 0;
}
static int dc_done(void *ctx, size_t off) {
  (void)off;
  ((struct dechunk *)ctx)->done++;
  return 0;
}
static bool dechunked(const struct str *wire, const char *method,
                      struct dechunk *d) {
  static const struct lm_http1_events ev = {dc_head, dc_body, dc_done};
  static struct lm_http1 p;
  memset(d, 0, sizeof(*d));
  lm_http1_init(&p, LM_HTTP1_RESPONSE, &ev, d);
  lm_http1_expect(&p, method);
  size_t used = 0;
  return lm_http1_feed(&p, wire->p, wire->len, &used) == LM_HTTP1_OK;
}

/* ---- tests ------------------------------------------------------------ */

LM_TEST(test_ordinary_requests_pass_byte_for_byte_on_keep_alive) {
  limits(-1);
  struct lm_tls_stream *s = lm_tls_stream_new("example.com", 443);
  struct server sv = {0};
  struct str req = {0}, resp = {0}, got = {0};
  for (int i = 0; i < 20; i++) {
    request(&req, "GET", "/index.html", NULL, 0, false);
    request(&req, "POST", "/upload", "{\"a\":1}", 7, i % 2);
  }
  CHECK(program_writes(s, &sv, req.p, req.len));
  CHECK(sv.got.len == req.len && memcmp(sv.got.p, req.p, req.len) == 0);
  for (int i = 0; i < 40; i++)
    response(&resp, 200, "text/plain", NULL, "hello", 5, i % 3 == 0);
  bool reset;
  program_reads(s, resp.p, resp.len, false, &got, &reset);
  CHECK(!reset);
  CHECK(got.len == resp.len && memcmp(got.p, resp.p, resp.len) == 0);
  snap();
  CHECK_EQ_U64(S.total.requests, 0);
  lm_tls_stream_free(s);
  free(req.p), free(resp.p), free(got.p), free(sv.got.p);
}

LM_TEST(test_llm_calls_on_one_connection_are_each_charged_exactly) {
  limits(-1);
  struct lm_tls_stream *s = lm_tls_stream_new("api.openai.com", 443);
  for (int i = 0; i < 6; i++) {
    struct server sv = {0};
    struct str req = {0}, resp = {0}, got = {0};
    request(&req, "POST", "/v1/chat/completions", chat_req,
            sizeof(chat_req) - 1, i % 2);
    CHECK(program_writes(s, &sv, req.p, req.len));
    /* A non-stream call is not rewritten: the server sees the program's
     * bytes. */
    CHECK(sv.got.len == req.len && memcmp(sv.got.p, req.p, req.len) == 0);
    CHECK(strstr(sv.got.p, "sk-test-secret") != NULL);
    if (i % 3 == 2) { /* gzip, as OpenAI's brotli and Anthropic's gzip */
      struct str z = {0};
      gzip_of(chat_resp, sizeof(chat_resp) - 1, &z);
      response(&resp, 200, "application/json", "gzip", z.p, z.len, i % 2);
      free(z.p);
    } else {
      response(&resp, 200, "application/json", NULL, chat_resp,
               sizeof(chat_resp) - 1, i % 2);
    }
    bool reset;
    program_reads(s, resp.p, resp.len, false, &got, &reset);
    CHECK(!reset);
    CHECK(got.len == resp.len && memcmp(got.p, resp.p, resp.len) == 0);
    free(req.p), free(resp.p), free(got.p), free(sv.got.p);
  }
  snap();
  CHECK_EQ_U64(S.total.requests, 6);
  CHECK_EQ_U64(S.total.tokens[LM_TOK_INPUT], 6000);
  CHECK_EQ_U64(S.total.tokens[LM_TOK_OUTPUT], 600);
  /* gpt-4o-mini: $0.15/M in, $0.60/M out: 6 x $0.00021 */
  CHECK_EQ_I64(S.total.spent, 6 * 210000000LL);
  CHECK_EQ_I64(S.total.reserved, 0);
  CHECK_EQ_U64(S.active_leases, 0);
  /* keep-alive HTTP/1.1: another call may follow, so it is followed on */
  CHECK(!lm_tls_stream_aside(s));
  lm_tls_stream_free(s);
}

static const char stream_req[] =
    "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[{\"role\":"
    "\"user\",\"content\":\"hello\"}]}";

/* What the server sends when include_usage was asked for. */
static const char stream_with_usage[] =
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
    "\"Hi\"}}],\"usage\":null}\n\n"
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},"
    "\"finish_reason\":\"stop\"}],\"usage\":null}\n\n"
    "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":2000,"
    "\"completion_tokens\":300,\"total_tokens\":2300}}\n\n"
    "data: [DONE]\n\n";
/* What the program would have received without the meter. */
static const char stream_without[] =
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
    "\"Hi\"}}]}\n\n"
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},"
    "\"finish_reason\":\"stop\"}]}\n\n"
    "data: [DONE]\n\n";

LM_TEST(
    test_an_openai_stream_gets_include_usage_and_the_program_never_sees_it) {
  limits(-1);
  for (int round = 0; round < 8; round++) {
    struct lm_tls_stream *s = lm_tls_stream_new("api.openai.com", 443);
    struct server sv = {0};
    struct str req = {0}, resp = {0}, got = {0};
    request(&req, "POST", "/v1/chat/completions", stream_req,
            sizeof(stream_req) - 1, round % 2);
    CHECK(program_writes(s, &sv, req.p, req.len));
    /* The server gets the rewritten body, framed by a Content-Length that
     * matches it, and every other header line as written. */
    const char *body = strstr(sv.got.p, "\r\n\r\n");
    CHECK(body && strstr(body, "\"include_usage\":true"));
    CHECK(strstr(sv.got.p, "Authorization: Bearer sk-test-secret\r\n"));
    CHECK(!strstr(sv.got.p, "Transfer-Encoding"));
    if (body) {
      char want[64];
      snprintf(want, sizeof(want), "Content-Length: %zu\r\n", strlen(body + 4));
      CHECK(strstr(sv.got.p, want) != NULL);
    }
    bool chunked = round < 6; /* and two read until the close */
    if (chunked) {
      response(&resp, 200, "text/event-stream", NULL, stream_with_usage,
               sizeof(stream_with_usage) - 1, true);
    } else {
      str_fmt(&resp, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     "Connection: close\r\n\r\n");
      str_add(&resp, stream_with_usage, sizeof(stream_with_usage) - 1);
    }
    bool reset;
    program_reads(s, resp.p, resp.len, !chunked, &got, &reset);
    CHECK(!reset);
    if (chunked) {
      struct dechunk d;
      CHECK(dechunked(&got, "POST", &d));
      CHECK(d.done == 1 && d.status == 200);
      CHECK(d.body.len == sizeof(stream_without) - 1 && d.body.p &&
            memcmp(d.body.p, stream_without, d.body.len) == 0);
      free(d.body.p);
    } else {
      const char *b = strstr(got.p, "\r\n\r\n");
      CHECK(b && strcmp(b + 4, stream_without) == 0);
    }
    lm_tls_stream_free(s);
    free(req.p), free(resp.p), free(got.p), free(sv.got.p);
  }
  snap();
  CHECK_EQ_U64(S.total.requests, 8);
  CHECK_EQ_U64(S.total.tokens[LM_TOK_INPUT], 8 * 2000);
  CHECK_EQ_U64(S.total.tokens[LM_TOK_OUTPUT], 8 * 300);
  CHECK_EQ_I64(S.total.spent, 8 * (300000000LL + 180000000LL));
}

LM_TEST(test_a_refused_call_never_leaves_and_reads_as_the_providers_402) {
  limits(1); /* one pUSD: spent by the first call */
  struct lm_tls_stream *s = lm_tls_stream_new("api.openai.com", 443);
  struct server sv = {0};
  struct str req = {0}, got = {0}, resp = {0};
  request(&req, "POST", "/v1/chat/completions", chat_req, sizeof(chat_req) - 1,
          false);
  CHECK(program_writes(s, &sv, req.p, req.len));
  CHECK(sv.got.len == req.len);
  response(&resp, 200, "application/json", NULL, chat_resp,
           sizeof(chat_resp) - 1, false);
  bool reset;
  program_reads(s, resp.p, resp.len, false, &got, &reset);
  snap();
  int64_t spent = S.total.spent;
  CHECK_EQ_I64(spent, 210000000LL);
  free(sv.got.p), free(got.p);
  memset(&sv, 0, sizeof(sv));
  memset(&got, 0, sizeof(got));
  /* the next call on the same connection is refused */
  bool closed = false, ended = false;
  lm_tls_stream_refusal_state(s, &closed, &ended);
  CHECK(!closed && !ended);
  CHECK(program_writes(s, &sv, req.p, req.len));
  CHECK_EQ_U64(sv.got.len, 0); /* nothing reached the server */
  /* the caller closes the sending side, once (event loops wake on it) */
  CHECK(lm_tls_stream_take_close(s));
  CHECK(!lm_tls_stream_take_close(s));
  /* later writes on the connection are swallowed too */
  CHECK(lm_tls_stream_write(s, "GET / HTTP/1.1\r\n\r\n", 18, fake_send, &sv) ==
        18);
  CHECK_EQ_U64(sv.got.len, 0);
  program_reads(s, "", 0, false, &got, &reset);
  CHECK(!reset);
  /* read to its EOF: the session reads as closed by the peer, and the
   * close_notify the program never sent is the stream's */
  lm_tls_stream_refusal_state(s, &closed, &ended);
  CHECK(closed && ended);
  struct dechunk d;
  CHECK(got.p && dechunked(&got, "POST", &d));
  CHECK(d.status == 402);
  CHECK(got.p && strstr(got.p, "x-should-retry: false"));
  CHECK(got.p && strstr(got.p, "Connection: close"));
  CHECK(d.body.p && strstr(d.body.p, bname));
  cJSON *j = d.body.p ? cJSON_Parse(d.body.p) : NULL;
  CHECK(j && cJSON_GetObjectItem(j, "error"));
  cJSON_Delete(j);
  CHECK(!strstr(got.p ? got.p : "", "sk-test-secret"));
  snap();
  CHECK_EQ_I64(S.total.spent, spent);
  CHECK_EQ_U64(S.total.denied, 1);
  lm_tls_stream_free(s);
  free(req.p), free(got.p), free(resp.p), free(d.body.p);
}

static const char anth_req[] =
    "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":1000,\"stream\":true,"
    "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

/* $0.002: message_start's 1,000 input tokens ($0.003, $3/M) and first
 * output token ($0.000015) cross it while the text is still coming. With a
 * socket the next read fails as a reset; without one (memory BIOs) it is
 * the connection's end, mid-message, and the session reads as closed. */
static void cut_case(bool socketless) {
  limits(2000000000LL);
  struct lm_tls_stream *s = lm_tls_stream_new("api.anthropic.com", 443);
  if (socketless)
    lm_tls_stream_set_socketless(s);
  struct server sv = {0};
  struct str req = {0}, body = {0}, resp = {0}, got = {0};
  str_fmt(&req,
          "POST /v1/messages HTTP/1.1\r\nHost: api.anthropic.com\r\n"
          "x-api-key: sk-ant-secret\r\nContent-Length: %zu\r\n\r\n%s",
          sizeof(anth_req) - 1, anth_req);
  CHECK(program_writes(s, &sv, req.p, req.len));
  CHECK(sv.got.len == req.len);
  str_fmt(&body,
          "event: message_start\ndata: {\"type\":\"message_start\",\"message\":"
          "{\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":1000,"
          "\"output_tokens\":1}}}\n\n");
  for (int i = 1; i <= 40; i++)
    str_fmt(&body, "event: content_block_delta\ndata: {\"type\":"
                   "\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
                   "\"text_delta\",\"text\":\"word word word\"}}\n\n");
  str_fmt(&body, "event: message_delta\ndata: {\"type\":\"message_delta\","
                 "\"delta\":{},\"usage\":{\"output_tokens\":2000}}\n\n");
  response(&resp, 200, "text/event-stream", NULL, body.p, body.len, true);
  bool reset;
  program_reads(s, resp.p, resp.len, false, &got, &reset);
  CHECK(reset == !socketless);
  CHECK(got.len < resp.len && memcmp(got.p, resp.p, got.len) == 0);
  char one[8];
  size_t n = 0;
  CHECK(lm_tls_stream_pre_read(s, one, sizeof(one), &n, false) ==
        (socketless ? LM_TLS_READ_EOF : LM_TLS_READ_RESET));
  bool closed = true, ended = !socketless;
  lm_tls_stream_refusal_state(s, &closed, &ended);
  CHECK(!closed);
  CHECK(ended == socketless);
  snap();
  CHECK_EQ_U64(S.total.requests, 1);
  CHECK_EQ_I64(S.total.spent, 3000000000LL + 15000000LL);
  CHECK_EQ_I64(S.total.reserved, 0);
  CHECK(strstr(said, "cut") != NULL);
  CHECK(!lm_tls_stream_aside(s)); /* the cut's reset is still ours to say */
  lm_tls_stream_free(s);
  free(req.p), free(body.p), free(resp.p), free(got.p), free(sv.got.p);
}

LM_TEST(test_a_stream_crossing_the_limit_is_cut_and_then_reads_reset) {
  cut_case(false);
}

LM_TEST(test_a_socketless_cut_ends_the_reads_as_the_connections_end) {
  cut_case(true);
}

/* Lost before the response came: nothing to bill, refunded. Lost in the
 * middle of a 200's body (a read timeout, a program that has what it
 * wanted): billed by the provider all the same, charged its estimate. */
LM_TEST(test_a_connection_lost_before_any_usage_is_refunded) {
  limits(-1);
  snap();
  int64_t spent0 = S.total.spent;
  for (int mid_body = 0; mid_body < 2; mid_body++) {
    struct lm_tls_stream *s = lm_tls_stream_new("api.openai.com", 443);
    struct server sv = {0};
    struct str req = {0}, resp = {0}, got = {0};
    request(&req, "POST", "/v1/chat/completions", chat_req,
            sizeof(chat_req) - 1, false);
    CHECK(program_writes(s, &sv, req.p, req.len));
    snap();
    int64_t est = S.total.reserved;
    CHECK(est > 0);
    response(&resp, 200, "application/json", NULL, chat_resp,
             sizeof(chat_resp) - 1, false);
    bool reset;
    if (mid_body)
      program_reads(s, resp.p, resp.len - 40, false, &got, &reset);
    lm_tls_stream_closed(s, false);
    snap();
    CHECK_EQ_I64(S.total.spent - spent0, mid_body ? est : 0);
    CHECK_EQ_I64(S.total.reserved, 0);
    CHECK_EQ_U64(S.active_leases, 0);
    spent0 = S.total.spent;
    lm_tls_stream_free(s);
    free(req.p), free(resp.p), free(got.p), free(sv.got.p);
  }
}

LM_TEST(test_garbage_and_upgrades_pass_through_untouched) {
  /* no hard limit: warned, passed (the policy: unmetered.c) */
  limits(-1);
  static const char junk[] = "\x16\x03\x01 not http at all\r\n\r\n\x00\xff";
  struct lm_tls_stream *s = lm_tls_stream_new("api.openai.com", 443);
  struct server sv = {0};
  CHECK(!lm_tls_stream_aside(s)); /* nothing seen yet: followed */
  CHECK(program_writes(s, &sv, junk, sizeof(junk)));
  /* not HTTP: the stream stands aside for good, and says so (the hook
   * then drops it and calls the real functions straight) */
  CHECK(lm_tls_stream_aside(s));
  CHECK(sv.got.len == sizeof(junk) &&
        memcmp(sv.got.p, junk, sizeof(junk)) == 0);
  CHECK(program_writes(s, &sv, chat_req, sizeof(chat_req) - 1));
  CHECK(sv.got.len == sizeof(junk) + sizeof(chat_req) - 1);
  struct str got = {0};
  bool reset;
  program_reads(s, junk, sizeof(junk), false, &got, &reset);
  CHECK(got.len == sizeof(junk) && memcmp(got.p, junk, got.len) == 0);
  lm_tls_stream_free(s);
  free(sv.got.p), free(got.p);

  s = lm_tls_stream_new("api.openai.com", 443);
  memset(&sv, 0, sizeof(sv));
  static const char ws[] = "GET /v1/realtime HTTP/1.1\r\nHost: x\r\n"
                           "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                           "\x81\x05hello";
  CHECK(program_writes(s, &sv, ws, sizeof(ws) - 1));
  CHECK(sv.got.len == sizeof(ws) - 1 && memcmp(sv.got.p, ws, sv.got.len) == 0);
  CHECK(lm_tls_stream_aside(s));
  lm_tls_stream_free(s);
  free(sv.got.p);
  snap();
  CHECK_EQ_U64(S.total.requests, 0);
}

/* Writes p[0..n) whole until it is taken or refused: the last result. */
static long write_all(struct lm_tls_stream *s, struct server *sv, const char *p,
                      size_t n) {
  long r = 0;
  for (int tries = 0; tries < 1000; tries++)
    if ((r = lm_tls_stream_write(s, p, n, fake_send, sv)) > 0 ||
        r == LM_TLS_BLOCKED)
      return r;
  return r;
}

/* Under a hard limit that fails closed, what the stream cannot follow on
 * a connection to an LLM host is refused as a whole, with one line naming
 * it, and nothing of it leaves; the same bytes to another host pass. */
LM_TEST(test_what_cannot_be_followed_to_an_llm_host_is_refused) {
  limits(1000000000000LL);
  static const char h2[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04";
  static const char ws[] = "GET /v1/realtime HTTP/1.1\r\nHost: x\r\n"
                           "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                           "\x81\x05hello";
  static const char junk[] = "\x16\x03\x01 not http at all\r\n\r\n";
  const struct {
    const char *p;
    size_t n;
    const char *what;
  } cases[] = {{h2, sizeof(h2) - 1, "HTTP/2"},
               {ws, sizeof(ws) - 1, "WebSocket"},
               {junk, sizeof(junk) - 1, "not HTTP/1.1"}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    lm_meter_unmetered_forget();
    said[0] = 0;
    struct lm_tls_stream *s = lm_tls_stream_new("api.openai.com", 443);
    struct server sv = {0};
    CHECK(write_all(s, &sv, cases[i].p, cases[i].n) == LM_TLS_BLOCKED);
    CHECK_EQ_U64(sv.got.len, 0);
    /* and every later write on it */
    CHECK(lm_tls_stream_write(s, "GET / HTTP/1.1\r\n\r\n", 18, fake_send,
                              &sv) == LM_TLS_BLOCKED);
    CHECK_EQ_U64(sv.got.len, 0);
    CHECK(strstr(said, "refused a connection to api.openai.com") != NULL);
    CHECK(strstr(said, cases[i].what) != NULL);
    CHECK(strstr(said, bname) != NULL);
    lm_tls_stream_free(s);
    free(sv.got.p);
    /* another host: untouched, nothing said */
    said[0] = 0;
    s = lm_tls_stream_new("example.com", 443);
    memset(&sv, 0, sizeof(sv));
    CHECK(program_writes(s, &sv, cases[i].p, cases[i].n));
    CHECK(sv.got.len == cases[i].n &&
          memcmp(sv.got.p, cases[i].p, cases[i].n) == 0);
    CHECK_STR(said, "");
    lm_tls_stream_free(s);
    free(sv.got.p);
  }
  snap();
  CHECK_EQ_U64(S.total.requests, 0);
  limits(-1);
  lm_meter_unmetered_forget();
}

/* Every recorded fixture as the program would meet it over TLS: the
 * request as written, the response with Content-Length, chunked and
 * gzipped, at random splits both ways. */
static void run_fixture(const char *dir, const char *name) {
  char path[1100];
  size_t mlen = 0, qlen = 0, rlen = 0;
  snprintf(path, sizeof(path), "%s/%s.meta.json", dir, name);
  char *meta_txt = lm_slurp(path, &mlen);
  snprintf(path, sizeof(path), "%s/%s.request.json", dir, name);
  char *req_body = lm_slurp(path, &qlen);
  snprintf(path, sizeof(path), "%s/%s.response", dir, name);
  char *body = lm_slurp(path, &rlen);
  cJSON *meta = meta_txt ? cJSON_Parse(meta_txt) : NULL;
  const char *upath = cJSON_GetStringValue(
      cJSON_GetObjectItem(meta, "url_path"));
  const char *host = cJSON_GetStringValue(cJSON_GetObjectItem(meta, "host"));
  const char *ctype = cJSON_GetStringValue(
      cJSON_GetObjectItem(meta, "response_content_type"));
  int status = (int)cJSON_GetNumberValue(
      cJSON_GetObjectItem(meta, "http_status"));
  const cJSON *norm = cJSON_GetObjectItem(meta, "expected_normalized");
  if (!meta || !req_body || !body || !upath || !host || !ctype ||
      !cJSON_IsObject(norm) || status >= 400) {
    goto out; /* no usage to check, or not a fixture of this shape */
  }
  for (int round = 0; round < 3; round++) {
    limits(-1);
    struct lm_tls_stream *s = lm_tls_stream_new(host, 443);
    struct server sv = {0};
    struct str req = {0}, resp = {0}, got = {0}, z = {0};
    str_fmt(&req, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %zu\r\n\r\n",
            upath, host, qlen);
    str_add(&req, req_body, qlen);
    CHECK(program_writes(s, &sv, req.p, req.len));
    if (round == 2) {
      gzip_of(body, rlen, &z);
      response(&resp, status, ctype, "gzip", z.p, z.len, true);
    } else {
      response(&resp, status, ctype, NULL, body, rlen, round == 1);
    }
    bool reset;
    program_reads(s, resp.p, resp.len, false, &got, &reset);
    CHECK(!reset);
    struct dechunk d;
    CHECK(dechunked(&got, "POST", &d));
    struct dechunk want;
    CHECK(dechunked(&resp, "POST", &want));
    /* Byte for byte where nothing was filtered; the same body where the
     * meter asked for usage the program did not (and hid it again). */
    bool injected = strstr(sv.got.p, "\"include_usage\":true") &&
                    !memmem(req_body, qlen, "include_usage", 13);
    if (!injected)
      CHECK(got.len == resp.len && memcmp(got.p, resp.p, got.len) == 0);
    CHECK(d.body.len == want.body.len &&
          memcmp(d.body.p, want.body.p, d.body.len) == 0);
    lm_tls_stream_free(s);
    snap();
    CHECK_EQ_U64(S.total.requests, 1);
    CHECK_EQ_U64(S.total.tokens[LM_TOK_INPUT],
                 (uint64_t)cJSON_GetNumberValue(
                     cJSON_GetObjectItem(norm, "total_input_tokens")));
    CHECK_EQ_U64(S.total.tokens[LM_TOK_OUTPUT],
                 (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(
                     norm, "output_tokens_incl_reasoning")));
    if (lm_t_cur_failed) {
      fprintf(stderr, "  fixture %s, round %d\n", name, round);
      round = 3;
    }
    free(req.p), free(resp.p), free(got.p), free(z.p), free(sv.got.p);
    free(d.body.p), free(want.body.p);
  }
out:
  cJSON_Delete(meta);
  free(meta_txt), free(req_body), free(body);
}

LM_TEST(test_every_fixture_over_tls_is_delivered_and_charged_exactly) {
  const char *dir = "tests/fixtures";
  FILE *ls = popen("ls tests/fixtures/*.meta.json", "r");
  CHECK(ls != NULL);
  char line[512];
  int n = 0;
  while (ls && fgets(line, sizeof(line), ls)) {
    char *base = strrchr(line, '/');
    base = base ? base + 1 : line;
    char *dot = strstr(base, ".meta.json");
    if (!dot)
      continue;
    *dot = 0;
    run_fixture(dir, base);
    n++;
  }
  if (ls)
    pclose(ls);
  CHECK(n >= 20);
}

int main(void) {
  snprintf(bname, sizeof(bname), "lmtest-tls-%d", (int)getpid());
  setenv("LLMMETER_BUDGET", bname, 1);
  setenv("LLMMETER_WAIT_S", "0", 1);
  unsetenv("LLMMETER_LIMIT_USD");
  unsetenv("LLMMETER_LEDGER");
  unsetenv("LLMMETER_QUIET");
  unsetenv("LLMMETER_ENDPOINTS");
  lm_config_reload();
  char err[256];
  struct lm_limit_config none = LM_LIMITS_NONE;
  if (lm_budget_create(bname, true, &none, &B, err, sizeof(err)) != 0) {
    fprintf(stderr, "create: %s\n", err);
    return 2;
  }
  lm_meter_set_printer(capture);
  LM_RUN(test_ordinary_requests_pass_byte_for_byte_on_keep_alive);
  LM_RUN(test_llm_calls_on_one_connection_are_each_charged_exactly);
  LM_RUN(
      test_an_openai_stream_gets_include_usage_and_the_program_never_sees_it);
  LM_RUN(test_a_refused_call_never_leaves_and_reads_as_the_providers_402);
  LM_RUN(test_a_stream_crossing_the_limit_is_cut_and_then_reads_reset);
  LM_RUN(test_a_socketless_cut_ends_the_reads_as_the_connections_end);
  LM_RUN(test_a_connection_lost_before_any_usage_is_refunded);
  LM_RUN(test_garbage_and_upgrades_pass_through_untouched);
  LM_RUN(test_what_cannot_be_followed_to_an_llm_host_is_refused);
  LM_RUN(test_every_fixture_over_tls_is_delivered_and_charged_exactly);
  lm_budget_close(B);
  lm_segment_remove(bname, NULL, 0);
  LM_TEST_END();
}
