/* test_inject.c — include_usage injection: the request rewrite and the
 * response filter that hides its traces, at any split and across pauses. */
#include "inject.h"
#include "lm_test.h"

static char out[1 << 20];
static size_t out_n;
static size_t pause_every; /* emit refuses every Nth call (0: never) */
static size_t calls;

static size_t collect(void *ctx, const char *p, size_t len) {
  (void)ctx;
  calls++;
  if (pause_every && calls % pause_every == 0)
    return 0x10000001; /* CURL_WRITEFUNC_PAUSE */
  memcpy(out + out_n, p, len);
  out_n += len;
  return len;
}

static struct lm_inject_filter F;

/* Runs the filter over s split at pseudo-random points, resuming after
 * every pause the way the hook does. */
static void run(const char *s, size_t n, unsigned seed, size_t max_piece) {
  out_n = 0;
  calls = 0;
  lm_inject_filter_init(&F);
  size_t i = 0;
  while (i < n) {
    seed = seed * 1103515245u + 12345u;
    size_t k = 1 + (seed >> 8) % max_piece;
    if (k > n - i)
      k = n - i;
    bool stopped;
    lm_inject_filter_feed(&F, s + i, k, collect, NULL, &stopped);
    while (stopped) /* the program paused: resume with nothing new */
      lm_inject_filter_feed(&F, NULL, 0, collect, NULL, &stopped);
    i += k;
  }
  bool stopped;
  lm_inject_filter_finish(&F, collect, NULL, &stopped);
  while (stopped)
    lm_inject_filter_finish(&F, collect, NULL, &stopped);
  out[out_n] = 0;
}

static const char with_usage[] =
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"the \\\"usage\\\":null text\"}}],\"usage\":null,\"obfuscation\":\"ab\"}\n\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n"
    "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n"
    "data: [DONE]\n\n";
static const char without[] =
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"the \\\"usage\\\":null text\"}}],\"obfuscation\":\"ab\"}\n\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
    "data: [DONE]\n\n";

LM_TEST(test_filter_restores_the_stream_without_include_usage) {
  for (unsigned seed = 1; seed < 300; seed++) {
    pause_every = 0;
    run(with_usage, sizeof(with_usage) - 1, seed, 1 + seed % 40);
    if (strcmp(out, without) != 0) {
      fprintf(stderr, "  seed %u: got [%s]\n", seed, out);
      CHECK(0);
      break;
    }
  }
}

LM_TEST(test_filter_output_survives_pauses) {
  for (unsigned seed = 1; seed < 100; seed++) {
    pause_every = 2 + seed % 3;
    run(with_usage, sizeof(with_usage) - 1, seed, 1 + seed % 50);
    CHECK_STR(out, without);
  }
  pause_every = 0;
}

LM_TEST(test_crlf_events_and_unterminated_last_event) {
  const char in[] =
      "data: {\"a\":1,\"usage\":null}\r\n\r\ndata: {\"b\":2,\"usage\":null}";
  run(in, sizeof(in) - 1, 7, 5);
  /* the last event never ended: it is handed over untouched */
  CHECK_STR(out, "data: {\"a\":1}\r\n\r\ndata: {\"b\":2,\"usage\":null}");
}

static size_t tr(const char *in, char *buf) {
  size_t n = strlen(in);
  memcpy(buf, in, n + 1);
  size_t r = lm_inject_transform_event(buf, n);
  buf[r] = 0;
  return r;
}

LM_TEST(test_transform_only_touches_top_level_usage_null) {
  char b[512];
  tr("data: {\"usage\":null,\"id\":\"x\"}\n\n", b);
  CHECK_STR(b, "data: {\"id\":\"x\"}\n\n");
  tr("data: {\"id\":\"x\", \"usage\" : null }\n\n", b);
  CHECK_STR(b, "data: {\"id\":\"x\" }\n\n");
  tr("data: {\"id\":\"x\",\"x\":{\"usage\":null}}\n\n", b);
  CHECK_STR(b, "data: {\"id\":\"x\",\"x\":{\"usage\":null}}\n\n");
  /* Azure's first chunk: empty choices, no usage: kept */
  tr("data: {\"choices\":[],\"model\":\"\"}\n\n", b);
  CHECK_STR(b, "data: {\"choices\":[],\"model\":\"\"}\n\n");
  /* usage with real numbers on a finish chunk (not ours): kept */
  tr("data: {\"choices\":[{}],\"usage\":{\"prompt_tokens\":1}}\n\n", b);
  CHECK_STR(b, "data: {\"choices\":[{}],\"usage\":{\"prompt_tokens\":1}}\n\n");
  CHECK_EQ_U64(
      tr("data: {\"choices\": [ ],\"usage\":{\"prompt_tokens\":1}}\n\n", b), 0);
  tr("data: [DONE]\n\n", b);
  CHECK_STR(b, "data: [DONE]\n\n");
  tr("data: {\"a\":1,\n\n", b); /* malformed: left alone */
  CHECK_STR(b, "data: {\"a\":1,\n\n");
  tr("event: x\ndata: {\"usage\":null}\ndata: {}\n\n", b);
  CHECK_STR(b, "event: x\ndata: {\"usage\":null}\ndata: {}\n\n");
}

LM_TEST(test_oversized_event_passes_through_untouched) {
  static char big[LM_INJECT_MAX * 2 + 100];
  size_t n = 0;
  n += (size_t)snprintf(big, sizeof(big), "data: {\"usage\":null,\"c\":\"");
  while (n < sizeof(big) - 40)
    big[n++] = 'x';
  n += (size_t)snprintf(big + n, sizeof(big) - n,
                        "\"}\n\ndata: {\"a\":1,\"usage\":null}\n\n");
  run(big, n, 3, 9000);
  CHECK_EQ_U64(out_n, n - strlen(",\"usage\":null"));
  CHECK(memcmp(out, big, n - 30) == 0);
  CHECK(strstr(out + n - 60, "data: {\"a\":1}\n\n") != NULL);
}

LM_TEST(test_request_gets_include_usage_first) {
  size_t n;
  char *b = lm_inject_request(" {\"model\":\"m\",\"stream\":true}", 28, &n);
  CHECK_STR(
      b,
      " {\"stream_options\":{\"include_usage\":true},\"model\":\"m\",\"stream\":true}");
  CHECK_EQ_U64(n, strlen(b));
  free(b);
  b = lm_inject_request("{ }", 3, &n);
  CHECK_STR(b, "{\"stream_options\":{\"include_usage\":true} }");
  free(b);
  CHECK(lm_inject_request("[1]", 3, &n) == NULL);
  CHECK(lm_inject_request("", 0, &n) == NULL);
}

int main(void) {
  LM_RUN(test_filter_restores_the_stream_without_include_usage);
  LM_RUN(test_filter_output_survives_pauses);
  LM_RUN(test_crlf_events_and_unterminated_last_event);
  LM_RUN(test_transform_only_touches_top_level_usage_null);
  LM_RUN(test_oversized_event_passes_through_untouched);
  LM_RUN(test_request_gets_include_usage_first);
  LM_TEST_END();
}
