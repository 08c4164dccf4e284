/* test_lifecycle.c — the call lifecycle driven by a fake transport.
 *
 * No libcurl and no socket: this file plays a transport the way a hook
 * does (lifecycle.h only, plus the meter's call.h to look inside), on a
 * real shared-memory budget. Every recorded fixture goes through begin →
 * header → body at random splits → end; refusals are checked byte by byte
 * as the HTTP a program would read; cuts and failed ends are checked
 * against the budget's totals.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <unistd.h>

#include "budget.h"
#include "call.h"
#include "config.h"
#include "lifecycle.h"
#include "lm_slurp.h"
#include "lm_test.h"

static char bname[64];
static struct lm_budget *B;
static struct lm_snapshot S;
static char said[8192];

static void capture(const char *line, size_t len) {
  size_t n = strlen(said);
  if (n + len + 2 < sizeof(said)) {
    memcpy(said + n, line, len);
    said[n + len] = '\n';
    said[n + len + 1] = 0;
  }
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* Sets limits on the test's budget (everything else unlimited) and zeroes
 * its spend. */
static void limits(int64_t hard_pusd, int64_t rpm) {
  struct lm_limit_config c = LM_LIMITS_NONE;
  c.hard_pusd = hard_pusd;
  c.rpm = rpm;
  c.on_soft = "";
  c.downgrade = "";
  lm_budget_configure(B, &c);
  lm_budget_reset(B);
  said[0] = 0;
}

static void snap(void) { lm_budget_snapshot(B, &S); }

/* A fake transport's view of one response: status, Content-Type, then the
 * body in random pieces (1..max bytes); returns true if the meter cut it. */
static bool respond(struct lm_meter_call *c, int status, const char *ctype,
                    const char *body, size_t len, size_t max_piece) {
  char line[256];
  snprintf(line, sizeof(line), "HTTP/1.1 %d X\r\n", status);
  lm_meter_header(c, line, strlen(line));
  snprintf(line, sizeof(line), "Content-Type: %s\r\n", ctype);
  lm_meter_header(c, line, strlen(line));
  lm_meter_header(c, "\r\n", 2);
  for (size_t off = 0; off < len;) {
    size_t n = 1 + (size_t)(next_rand() % max_piece);
    if (n > len - off)
      n = len - off;
    if (lm_meter_body(c, body + off, n))
      return true;
    off += n;
  }
  return false;
}

static const char chat_req[] =
    "{\"model\":\"gpt-4o-mini\",\"max_tokens\":50,\"messages\":[{\"role\":"
    "\"user\",\"content\":\"hello\"}]}";
static const char chat_resp[] =
    "{\"id\":\"x\",\"object\":\"chat.completion\",\"model\":\"gpt-4o-mini\","
    "\"choices\":[],\"usage\":{\"prompt_tokens\":1000,\"completion_tokens\":"
    "100,\"total_tokens\":1100}}";

static struct lm_meter_request chat_request(const char *path) {
  static char url[256];
  snprintf(url, sizeof(url), "http://127.0.0.1:9%s", path);
  return (struct lm_meter_request){
      .url = url, .body = chat_req, .body_len = sizeof(chat_req) - 1};
}

LM_TEST(test_ordinary_traffic_passes_without_a_call_object) {
  struct lm_meter_call *c = NULL;
  struct lm_verdict v;
  struct lm_meter_request get = {
      .url = "https://example.com/v1/chat/completions", .method = "GET"};
  CHECK(lm_meter_begin(&c, &get, &v) == LM_VERDICT_PASS);
  struct lm_meter_request other = {
      .url = "https://example.com/upload", .body = "{}", .body_len = 2};
  CHECK(lm_meter_begin(&c, &other, &v) == LM_VERDICT_PASS);
  struct lm_meter_request nobody = {.url = "https://x/v1/chat/completions"};
  CHECK(lm_meter_begin(&c, &nobody, &v) == LM_VERDICT_PASS);
  CHECK(c == NULL); /* nothing allocated for traffic that is not ours */
  CHECK(v.kind == LM_VERDICT_PASS && !v.body && !v.response);
}

LM_TEST(test_parts_of_a_request_make_its_url) {
  limits(-1, -1);
  struct lm_meter_call *c = NULL;
  struct lm_verdict v;
  struct lm_meter_request r = {.scheme = "https",
                               .host = "api.openai.com",
                               .target = "/v1/chat/completions?x=1",
                               .target_len = 24,
                               .body = chat_req,
                               .body_len = sizeof(chat_req) - 1};
  CHECK(lm_meter_begin(&c, &r, &v) == LM_VERDICT_METER);
  CHECK(!respond(c, 200, "application/json", chat_resp, sizeof(chat_resp) - 1,
                 7));
  lm_meter_end(c, true);
  snap();
  CHECK_EQ_U64(S.total.tokens[LM_TOK_INPUT], 1000);
  CHECK_EQ_U64(S.total.tokens[LM_TOK_OUTPUT], 100);
  CHECK_EQ_I64(S.total.spent, c->charged_pusd);
  CHECK(S.total.spent > 0);
  lm_meter_free(c);
}

/* One fixture through the fake transport at random splits. */
static void run_fixture(const char *dir, const char *name) {
  char path[512];
  size_t mlen = 0, qlen = 0, rlen = 0;
  snprintf(path, sizeof(path), "%s/%s.meta.json", dir, name);
  char *meta_txt = lm_slurp(path, &mlen);
  snprintf(path, sizeof(path), "%s/%s.request.json", dir, name);
  char *req = lm_slurp(path, &qlen);
  snprintf(path, sizeof(path), "%s/%s.response", dir, name);
  char *resp = lm_slurp(path, &rlen);
  cJSON *meta = meta_txt ? cJSON_Parse(meta_txt) : NULL;
  CHECK(meta && req && resp);
  if (!meta || !req || !resp)
    goto out;
  const char *upath = cJSON_GetStringValue(
      cJSON_GetObjectItem(meta, "url_path"));
  const char *ctype = cJSON_GetStringValue(
      cJSON_GetObjectItem(meta, "response_content_type"));
  int status = (int)cJSON_GetNumberValue(
      cJSON_GetObjectItem(meta, "http_status"));
  const cJSON *norm = cJSON_GetObjectItem(meta, "expected_normalized");
  char url[512];
  snprintf(url, sizeof(url), "http://127.0.0.1:9%s", upath);
  int64_t first_cost = -1;
  for (int round = 0; round < 8; round++) {
    limits(-1, -1);
    struct lm_meter_call *c = NULL;
    struct lm_verdict v;
    struct lm_meter_request r = {.url = url, .body = req, .body_len = qlen};
    uint64_t scans = lm_meter_scan_count();
    if (lm_meter_begin(&c, &r, &v) != LM_VERDICT_METER) {
      fprintf(stderr, "  %s: not metered: %s\n", name, lm_meter_reason(c));
      CHECK(0);
      lm_meter_free(c);
      break;
    }
    CHECK_EQ_U64(lm_meter_scan_count() - scans, 1);
    size_t piece = round == 0 ? rlen : 1 + (size_t)(next_rand() % 64);
    CHECK(!respond(c, status, ctype, resp, rlen, piece));
    lm_meter_end(c, true);
    snap();
    CHECK_EQ_I64(S.total.reserved, 0);
    CHECK_EQ_U64(S.active_leases, 0);
    CHECK_EQ_I64(S.total.spent, c->charged_pusd);
    if (status >= 400)
      CHECK_EQ_I64(S.total.spent, 0);
    if (cJSON_IsObject(norm) && status < 400) {
      CHECK_EQ_U64(S.total.tokens[LM_TOK_INPUT],
                   (uint64_t)cJSON_GetNumberValue(
                       cJSON_GetObjectItem(norm, "total_input_tokens")));
      CHECK_EQ_U64(S.total.tokens[LM_TOK_OUTPUT],
                   (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(
                       norm, "output_tokens_incl_reasoning")));
      /* The parts beyond text a fixture names (absent: none). */
      static const struct {
        const char *key;
        int kind;
      } parts[] = {
          {"input_audio_tokens", LM_TOK_INPUT_AUDIO},
          {"output_audio_tokens", LM_TOK_OUTPUT_AUDIO},
          {"input_image_tokens", LM_TOK_INPUT_IMAGE},
          {"output_image_tokens", LM_TOK_OUTPUT_IMAGE},
          {"input_video_tokens", LM_TOK_INPUT_VIDEO},
          {"output_video_tokens", LM_TOK_OUTPUT_VIDEO},
          {"citation_tokens", LM_TOK_CITATION},
          {"separate_reasoning_tokens", LM_TOK_SEPARATE_REASONING},
          {"web_searches", LM_TOK_WEB_SEARCHES},
      };
      for (size_t k = 0; k < sizeof(parts) / sizeof(parts[0]); k++) {
        const cJSON *n = cJSON_GetObjectItem(norm, parts[k].key);
        CHECK_EQ_U64(S.total.tokens[parts[k].kind],
                     cJSON_IsNumber(n) ? (uint64_t)n->valuedouble : 0);
      }
    }
    if (first_cost < 0)
      first_cost = S.total.spent;
    CHECK_EQ_I64(S.total.spent, first_cost); /* any split, the same cost */
    lm_meter_free(c);
  }
out:
  cJSON_Delete(meta);
  free(meta_txt);
  free(req);
  free(resp);
}

LM_TEST(test_every_fixture_is_metered_exactly_at_random_splits) {
  const char *dir = "tests/fixtures";
  DIR *d = opendir(dir);
  CHECK(d != NULL);
  if (!d)
    return;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    size_t l = strlen(de->d_name);
    if (l < 11 || strcmp(de->d_name + l - 10, ".meta.json") != 0)
      continue;
    char name[256];
    snprintf(name, sizeof(name), "%.*s", (int)(l - 10), de->d_name);
    run_fixture(dir, name);
    n++;
  }
  closedir(d);
  CHECK(n >= 25);
}

LM_TEST(test_denied_call_gets_exact_402_bytes_naming_the_budget) {
  limits(-1, -1);
  struct lm_meter_call *c = NULL;
  struct lm_verdict v;
  struct lm_meter_request r = chat_request("/v1/chat/completions");
  CHECK(lm_meter_begin(&c, &r, &v) == LM_VERDICT_METER);
  CHECK(!respond(c, 200, "application/json", chat_resp, sizeof(chat_resp) - 1,
                 5));
  lm_meter_end(c, true);
  struct lm_limit_config hard = LM_LIMITS_KEEP;
  hard.hard_pusd = 1000000; /* $0.000001, below what was spent */
  lm_budget_configure(B, &hard);
  uint64_t scans = lm_meter_scan_count();
  CHECK(lm_meter_begin(&c, &r, &v) == LM_VERDICT_DENY);
  CHECK_EQ_U64(lm_meter_scan_count() - scans, 1);
  CHECK_EQ_I64(v.status, 402);
  CHECK(v.response && v.head_len > 0 && v.response_len > v.head_len);
  CHECK(strncmp(v.response, "HTTP/1.1 402 Payment Required\r\n", 31) == 0);
  char head[1024];
  snprintf(head, sizeof(head), "%.*s", (int)v.head_len, v.response);
  CHECK(strstr(head, "\r\nContent-Type: application/json\r\n") != NULL);
  CHECK(strstr(head, "\r\nx-should-retry: false\r\n") != NULL);
  CHECK(strstr(head, "\r\nConnection: close\r\n") != NULL);
  CHECK(strcmp(head + v.head_len - 4, "\r\n\r\n") == 0);
  char cl[64];
  snprintf(cl, sizeof(cl), "\r\nContent-Length: %zu\r\n",
           v.response_len - v.head_len);
  CHECK(strstr(head, cl) != NULL);
  cJSON *j = cJSON_ParseWithLength(v.response + v.head_len,
                                   v.response_len - v.head_len);
  CHECK(j != NULL);
  const char *msg = cJSON_GetStringValue(
      cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "message"));
  CHECK(msg && strstr(msg, bname) && strstr(msg, "hard limit"));
  CHECK_STR(cJSON_GetStringValue(
                cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "code")),
            "budget_exceeded");
  cJSON_Delete(j);
  CHECK(v.reason && strstr(v.reason, bname));
  CHECK(strstr(said, "llmmeter: call refused: ") != NULL);
  snap();
  CHECK_EQ_U64(S.total.denied, 1);
  CHECK_EQ_I64(S.total.reserved, 0);
  lm_meter_free(c);
}

LM_TEST(test_denied_anthropic_call_speaks_anthropic) {
  limits(0, -1);
  struct lm_meter_call *c = NULL;
  struct lm_verdict v;
  struct lm_meter_request r = {
      .url = "http://127.0.0.1:9/v1/messages",
      .body = "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":10,"
              "\"messages\":[]}",
      .body_len = 58};
  CHECK(lm_meter_begin(&c, &r, &v) == LM_VERDICT_DENY);
  cJSON *j = cJSON_ParseWithLength(v.response + v.head_len,
                                   v.response_len - v.head_len);
  CHECK(j != NULL);
  CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "type")), "error");
  const char *msg = cJSON_GetStringValue(
      cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "message"));
  CHECK(msg && strstr(msg, bname));
  cJSON_Delete(j);
  lm_meter_free(c);
}

LM_TEST(test_rate_denial_is_429_with_retry_after) {
  limits(-1, 1); /* one request a minute */
  struct lm_meter_call *c = NULL;
  struct lm_verdict v;
  struct lm_meter_request r = chat_request("/v1/chat/completions");
  CHECK(lm_meter_begin(&c, &r, &v) == LM_VERDICT_METER);
  lm_meter_end(c, false);
  CHECK(lm_meter_begin(&c, &r, &v) == LM_VERDICT_DENY);
  CHECK_EQ_I64(v.status, 429);
  CHECK(strncmp(v.response, "HTTP/1.1 429 Too Many Requests\r\n", 32) == 0);
  char head[1024];
  snprintf(head, sizeof(head), "%.*s", (int)v.head_len, v.response);
  CHECK(strstr(head, "\r\nRetry-After: ") != NULL);
  CHECK(strstr(head, "x-should-retry") == NULL); /* a later retry can pass */
  lm_meter_free(c);
}

LM_TEST(test_stream_crossing_the_limit_is_cut_and_what_arrived_charged) {
  /* claude-3-5-sonnet input 25 tokens at $3/M = $0.000075: the running
   * total after message_start already crosses $0.00005. */
  limits(50000000, -1);
  const char *dir = "tests/fixtures";
  char path[256];
  size_t qlen = 0, rlen = 0;
  snprintf(path, sizeof(path), "%s/anthropic_messages_stream.request.json",
           dir);
  char *req = lm_slurp(path, &qlen);
  snprintf(path, sizeof(path), "%s/anthropic_messages_stream.response", dir);
  char *resp = lm_slurp(path, &rlen);
  CHECK(req && resp);
  if (!req || !resp)
    return;
  struct lm_meter_call *c = NULL;
  struct lm_verdict v;
  struct lm_meter_request r = {
      .url = "http://127.0.0.1:9/v1/messages", .body = req, .body_len = qlen};
  CHECK(lm_meter_begin(&c, &r, &v) == LM_VERDICT_METER);
  CHECK(respond(c, 200, "text/event-stream", resp, rlen, 16));
  CHECK(lm_meter_was_cut(c));
  CHECK(strstr(lm_meter_reason(c), "stream cut") != NULL);
  lm_meter_end(c, false);
  snap();
  CHECK(S.total.spent > 0);
  CHECK_EQ_I64(S.total.spent, c->charged_pusd);
  CHECK_EQ_I64(S.total.reserved, 0);
  CHECK_EQ_U64(S.total.tokens[LM_TOK_INPUT], 25);
  CHECK(strstr(said, "stream cut") != NULL);
  lm_meter_free(c);
  free(req);
  free(resp);
}

LM_TEST(test_failed_end_without_usage_is_refunded) {
  limits(-1, -1);
  struct lm_meter_call *c = NULL;
  struct lm_verdict v;
  struct lm_meter_request r = chat_request("/v1/chat/completions");
  CHECK(lm_meter_begin(&c, &r, &v) == LM_VERDICT_METER);
  snap();
  CHECK(S.total.reserved > 0);
  lm_meter_end(c, false); /* dropped before any response: nothing to bill */
  snap();
  CHECK_EQ_I64(S.total.spent, 0);
  CHECK_EQ_I64(S.total.reserved, 0);
  CHECK_EQ_U64(S.active_leases, 0);
  CHECK(!lm_meter_running(c));
  lm_meter_end(c, false); /* twice is harmless */
  /* an error status is not billed either */
  CHECK(lm_meter_begin(&c, &r, &v) == LM_VERDICT_METER);
  CHECK(!respond(c, 500, "application/json", "{\"error\":", 9, 3));
  lm_meter_end(c, false);
  snap();
  CHECK_EQ_I64(S.total.spent, 0);
  CHECK_EQ_I64(S.total.reserved, 0);
  lm_meter_free(c);
}

/* A 2xx the program left before its usage (a read timeout mid-body, an SDK
 * that stops at finish_reason) is billed by the provider all the same:
 * charged at its estimate, never free. */
LM_TEST(test_a_2xx_left_before_its_usage_is_charged_its_estimate) {
  limits(-1, -1);
  snap();
  int64_t spent0 = S.total.spent;
  struct lm_meter_call *c = NULL;
  struct lm_verdict v;
  struct lm_meter_request r = chat_request("/v1/chat/completions");
  CHECK(lm_meter_begin(&c, &r, &v) == LM_VERDICT_METER);
  snap();
  int64_t est = S.total.reserved;
  CHECK(est > 0);
  CHECK(!respond(c, 200, "application/json", chat_resp, 40, 7));
  lm_meter_end(c, false); /* the rest of the body never read */
  snap();
  CHECK_EQ_I64(S.total.spent - spent0, est);
  CHECK_EQ_I64(S.total.reserved, 0);
  CHECK_EQ_U64(S.active_leases, 0);
  lm_meter_free(c);
}

/* n answers are n answers' output: reserved as such, so that a strict
 * limit holds against a call that asks for five. */
LM_TEST(test_n_answers_reserve_n_outputs) {
  limits(-1, -1);
  static const char one[] =
      "{\"model\":\"gpt-4o-mini\",\"max_tokens\":1000,\"messages\":[]}";
  static const char five[] = "{\"model\":\"gpt-4o-mini\",\"max_tokens\":1000,"
                             "\"n\":5,\"messages\":[]}";
  int64_t reserved[2];
  for (int i = 0; i < 2; i++) {
    struct lm_meter_call *c = NULL;
    struct lm_verdict v;
    struct lm_meter_request r = {
        .url = "https://api.openai.com/v1/chat/completions",
        .body = i ? five : one,
        .body_len = i ? sizeof(five) - 1 : sizeof(one) - 1};
    CHECK(lm_meter_begin(&c, &r, &v) == LM_VERDICT_METER);
    snap();
    reserved[i] = S.total.reserved;
    lm_meter_end(c, false); /* no response: refunded */
    lm_meter_free(c);
  }
  /* gpt-4o-mini: $0.15/M in, $0.60/M out: 1000 output tokens dominate */
  CHECK(reserved[1] > 4 * reserved[0]);
  CHECK(reserved[1] < 6 * reserved[0]);
}

/* An SDK may close a stream as soon as its final usage is in: the call is
 * "ok" in the ledger (it got all it was billed for); a stream dropped
 * before its final usage is charged at its estimate, or at what arrived
 * where that is more ("unmetered": Anthropic's message_start has the
 * input, and one output token). */
static const char stream_req[] =
    "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"stream_options\":{"
    "\"include_usage\":true},\"messages\":[{\"role\":\"user\",\"content\":"
    "\"hi\"}]}";
static const char stream_final[] =
    "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n"
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1000,"
    "\"completion_tokens\":100}}\n\n";
static const char anth_req[] =
    "{\"model\":\"claude-haiku-4-5\",\"max_tokens\":64,\"stream\":true,"
    "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
static const char anth_start[] =
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{"
    "\"model\":\"claude-haiku-4-5\",\"usage\":{\"input_tokens\":1000,"
    "\"output_tokens\":1}}}\n\n";

LM_TEST(test_a_stream_closed_after_its_final_usage_is_ok_not_failed) {
  char path[96];
  snprintf(path, sizeof(path), "/tmp/lmtest-lifecycle-%d.ledger",
           (int)getpid());
  unlink(path);
  setenv("LLMMETER_LEDGER", path, 1);
  lm_config_reload();
  limits(-1, -1);
  struct lm_meter_call *c = NULL;
  struct lm_verdict v;
  struct lm_meter_request r = {
      .url = "https://api.openai.com/v1/chat/completions",
      .body = stream_req,
      .body_len = sizeof(stream_req) - 1};
  CHECK(lm_meter_begin(&c, &r, &v) == LM_VERDICT_METER);
  CHECK(!respond(c, 200, "text/event-stream", stream_final,
                 sizeof(stream_final) - 1, 17));
  lm_meter_end(c, false); /* the program closed it before the [DONE] */
  lm_meter_free(c);
  c = NULL;
  struct lm_meter_request a = {.url = "https://api.anthropic.com/v1/messages",
                               .body = anth_req,
                               .body_len = sizeof(anth_req) - 1};
  CHECK(lm_meter_begin(&c, &a, &v) == LM_VERDICT_METER);
  CHECK(!respond(c, 200, "text/event-stream", anth_start,
                 sizeof(anth_start) - 1, 13));
  lm_meter_end(c, false); /* dropped before message_delta */
  lm_meter_free(c);
  snap();
  CHECK_EQ_I64(S.total.reserved, 0);
  CHECK_EQ_U64(S.active_leases, 0);
  size_t len = 0;
  char *led = lm_slurp(path, &len);
  CHECK(led != NULL);
  if (led) {
    char *first = strstr(led, "\"outcome\":");
    char *second = first ? strstr(first + 1, "\"outcome\":") : NULL;
    CHECK(first && strncmp(first, "\"outcome\":\"ok\"", 14) == 0);
    CHECK(second && strncmp(second, "\"outcome\":\"unmetered\"", 21) == 0);
  }
  free(led);
  unlink(path);
  unsetenv("LLMMETER_LEDGER");
  lm_config_reload();
}

static const char sonar_req[] =
    "{\"model\":\"sonar\",\"max_tokens\":50,\"messages\":[{\"role\":"
    "\"user\",\"content\":\"hello\"}]}";

static struct lm_meter_request sonar_request(void) {
  return (struct lm_meter_request){.url = "http://127.0.0.1:9/chat/completions",
                                   .body = sonar_req,
                                   .body_len = sizeof(sonar_req) - 1};
}

LM_TEST(test_request_fee_is_reserved_at_admission_and_charged_once) {
  /* Perplexity sonar: $1 / $1 per Mtok and $12 per 1,000 calls. The
   * reservation holds the fee with the estimated tokens; the call pays it
   * once, however many usage snapshots its stream carries. */
  limits(-1, -1);
  struct lm_meter_call *c = NULL;
  struct lm_verdict v;
  struct lm_meter_request r = sonar_request();
  CHECK(lm_meter_begin(&c, &r, &v) == LM_VERDICT_METER);
  CHECK_EQ_I64(c->price.price.request, 12000000000LL);
  CHECK_EQ_U64(c->est.requests, 1);
  CHECK_EQ_I64(c->est_pusd,
               12000000000LL +
                   (int64_t)(c->est.input + c->est.output) * 1000000);
  snap();
  CHECK_EQ_I64(S.total.reserved, c->est_pusd);
  /* Two chunks report a growing usage: 14 + 5, then 14 + 181. */
  const char stream[] =
      "data: {\"id\":\"p\",\"model\":\"sonar\",\"choices\":[{\"delta\":"
      "{\"content\":\"a\"}}],\"usage\":{\"prompt_tokens\":14,"
      "\"completion_tokens\":5,\"total_tokens\":19}}\n\n"
      "data: {\"id\":\"p\",\"model\":\"sonar\",\"choices\":[{\"delta\":"
      "{\"content\":\"b\"},\"finish_reason\":\"stop\"}],\"usage\":"
      "{\"prompt_tokens\":14,\"completion_tokens\":181,\"total_tokens\":195}}"
      "\n\ndata: [DONE]\n\n";
  CHECK(!respond(c, 200, "text/event-stream", stream, sizeof(stream) - 1, 9));
  lm_meter_end(c, true);
  snap();
  /* 14 x 1,000,000 + 181 x 1,000,000 + 12,000,000,000 */
  CHECK_EQ_I64(S.total.spent, 12195000000LL);
  CHECK_EQ_I64(S.total.reserved, 0);
  CHECK_EQ_U64(S.total.tokens[LM_TOK_INPUT], 14);
  CHECK_EQ_U64(S.total.tokens[LM_TOK_OUTPUT], 181);
  CHECK(!c->zero_priced);

  /* A 2xx body without usage: charged its estimate, fee included. */
  limits(-1, -1);
  CHECK(lm_meter_begin(&c, &r, &v) == LM_VERDICT_METER);
  int64_t est = c->est_pusd;
  CHECK(!respond(c, 200, "application/json", "{\"id\":\"p\"}", 10, 4));
  lm_meter_end(c, true);
  snap();
  CHECK_EQ_I64(S.total.spent, est);
  CHECK_EQ_U64(S.total.unmetered, 1);

  /* A failed call without usage is refunded: no fee. */
  limits(-1, -1);
  CHECK(lm_meter_begin(&c, &r, &v) == LM_VERDICT_METER);
  lm_meter_end(c, false);
  snap();
  CHECK_EQ_I64(S.total.spent, 0);
  CHECK_EQ_I64(S.total.reserved, 0);
  lm_meter_free(c);
}

LM_TEST(test_a_request_fee_alone_crosses_a_limit_below_it) {
  /* Strict: a limit below the fee refuses the call before it leaves, even
   * with no tokens estimated to speak of. */
  struct lm_limit_config cfg = LM_LIMITS_NONE;
  cfg.hard_pusd = 11000000000LL; /* $0.011 < $0.012 */
  cfg.mode = LM_MODE_STRICT;
  cfg.on_soft = "";
  cfg.downgrade = "";
  lm_budget_configure(B, &cfg);
  lm_budget_reset(B);
  struct lm_meter_call *c = NULL;
  struct lm_verdict v;
  struct lm_meter_request r = sonar_request();
  CHECK(lm_meter_begin(&c, &r, &v) == LM_VERDICT_DENY);
  snap();
  CHECK_EQ_I64(S.total.spent, 0);
  CHECK_EQ_U64(S.total.denied, 1);
  lm_meter_free(c);
  cfg.mode = LM_MODE_OPTIMISTIC;
  lm_budget_configure(B, &cfg);
}

LM_TEST(test_downgrade_and_injection_scan_the_body_once) {
  struct lm_limit_config cfg = LM_LIMITS_NONE;
  cfg.hard_pusd = 1000000000000LL;
  cfg.soft_pusd = 1;
  cfg.downgrade = "gpt-4o=gpt-4o-mini";
  cfg.on_soft = "";
  lm_budget_configure(B, &cfg);
  lm_budget_reset(B);
  /* spend past the soft limit */
  struct lm_meter_call *c = NULL;
  struct lm_verdict v;
  struct lm_meter_request r0 = chat_request("/v1/chat/completions");
  CHECK(lm_meter_begin(&c, &r0, &v) == LM_VERDICT_METER);
  CHECK(!respond(c, 200, "application/json", chat_resp, sizeof(chat_resp) - 1,
                 9));
  lm_meter_end(c, true);
  static const char body[] =
      "{\"model\":\"gpt-4o\",\"stream\":true,\"messages\":[]}";
  struct lm_meter_request r = {.url = "http://127.0.0.1:9/v1/chat/completions",
                               .body = body,
                               .body_len = sizeof(body) - 1};
  uint64_t scans = lm_meter_scan_count();
  CHECK(lm_meter_begin(&c, &r, &v) == LM_VERDICT_METER);
  CHECK_EQ_U64(lm_meter_scan_count() - scans, 1);
  CHECK(v.body != NULL && v.filter_response);
  CHECK(v.body && memmem(v.body, v.body_len, "\"gpt-4o-mini\"", 13) != NULL);
  CHECK(v.body && memmem(v.body, v.body_len, "include_usage", 13) != NULL);
  CHECK_STR(c->model, "gpt-4o-mini");
  CHECK_STR(c->downgraded_from, "gpt-4o");
  lm_meter_end(c, false);
  lm_meter_free(c);
}

LM_TEST(test_a_response_whose_final_usage_crosses_the_limit_is_delivered) {
  /* $0.0001: the call costs $0.00021 (1000 in, 100 out on gpt-4o-mini) */
  limits(100000000, -1);
  struct lm_meter_call *c = NULL;
  struct lm_verdict v;
  struct lm_meter_request r = chat_request("/v1/chat/completions");
  CHECK(lm_meter_begin(&c, &r, &v) == LM_VERDICT_METER);
  /* a JSON body in 3-byte pieces: it was generated before it was sent */
  CHECK(!respond(c, 200, "application/json", chat_resp, sizeof(chat_resp) - 1,
                 3));
  CHECK(!lm_meter_was_cut(c));
  lm_meter_end(c, true);
  snap();
  CHECK(S.total.spent > S.hard_pusd); /* charged whole: the overshoot */
  CHECK_EQ_I64(S.total.spent, c->charged_pusd);
  /* the next call is the one refused, before it leaves */
  CHECK(lm_meter_begin(&c, &r, &v) == LM_VERDICT_DENY);
  /* an OpenAI stream's usage chunk, and Anthropic's message_delta, close
   * their responses: what follows them ([DONE], message_stop) is delivered */
  static const char sse[] =
      "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n"
      "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1000,"
      "\"completion_tokens\":100}}\n\ndata: [DONE]\n\n";
  static const char ant[] =
      "event: message_start\ndata: {\"type\":\"message_start\",\"message\":"
      "{\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":10,"
      "\"output_tokens\":1}}}\n\nevent: message_delta\ndata: {\"type\":"
      "\"message_delta\",\"usage\":{\"output_tokens\":3000}}\n\n"
      "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
  static const char ant_req[] =
      "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":10,\"stream\":true,"
      "\"messages\":[]}";
  struct {
    const char *url, *req, *body;
    size_t len;
    int64_t limit; /* below the final usage, above any running total */
  } streams[] = {
      {"http://127.0.0.1:9/v1/chat/completions", chat_req, sse, sizeof(sse) - 1,
       1000000},
      {"http://127.0.0.1:9/v1/messages", ant_req, ant, sizeof(ant) - 1,
       100000000},
  };
  for (int i = 0; i < 2; i++) {
    limits(streams[i].limit, -1);
    struct lm_meter_request rs = {.url = streams[i].url,
                                  .body = streams[i].req,
                                  .body_len = strlen(streams[i].req)};
    CHECK(lm_meter_begin(&c, &rs, &v) == LM_VERDICT_METER);
    CHECK(!respond(c, 200, "text/event-stream", streams[i].body, streams[i].len,
                   4));
    CHECK(!lm_meter_was_cut(c));
    lm_meter_end(c, true);
    snap();
    CHECK(S.total.spent > S.hard_pusd);
    CHECK(lm_meter_begin(&c, &rs, &v) == LM_VERDICT_DENY);
  }
  lm_meter_free(c);
}

int main(void) {
  snprintf(bname, sizeof(bname), "lmtest-life-%d", (int)getpid());
  setenv("LLMMETER_BUDGET", bname, 1);
  setenv("LLMMETER_WAIT_S", "0", 1);
  unsetenv("LLMMETER_LIMIT_USD");
  unsetenv("LLMMETER_LEDGER");
  unsetenv("LLMMETER_QUIET");
  lm_config_reload();
  char err[256];
  struct lm_limit_config none = LM_LIMITS_NONE;
  if (lm_budget_create(bname, true, &none, &B, err, sizeof(err)) != 0) {
    fprintf(stderr, "create: %s\n", err);
    return 2;
  }
  lm_meter_set_printer(capture);
  LM_RUN(test_ordinary_traffic_passes_without_a_call_object);
  LM_RUN(test_parts_of_a_request_make_its_url);
  LM_RUN(test_every_fixture_is_metered_exactly_at_random_splits);
  LM_RUN(test_denied_call_gets_exact_402_bytes_naming_the_budget);
  LM_RUN(test_denied_anthropic_call_speaks_anthropic);
  LM_RUN(test_rate_denial_is_429_with_retry_after);
  LM_RUN(test_stream_crossing_the_limit_is_cut_and_what_arrived_charged);
  LM_RUN(test_failed_end_without_usage_is_refunded);
  LM_RUN(test_a_2xx_left_before_its_usage_is_charged_its_estimate);
  LM_RUN(test_n_answers_reserve_n_outputs);
  LM_RUN(test_a_stream_closed_after_its_final_usage_is_ok_not_failed);
  LM_RUN(test_a_response_whose_final_usage_crosses_the_limit_is_delivered);
  LM_RUN(test_request_fee_is_reserved_at_admission_and_charged_once);
  LM_RUN(test_a_request_fee_alone_crosses_a_limit_below_it);
  LM_RUN(test_downgrade_and_injection_scan_the_body_once);
  lm_budget_close(B);
  lm_segment_remove(bname, NULL, 0);
  LM_TEST_END();
}
