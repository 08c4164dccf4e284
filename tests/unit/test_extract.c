/* test_extract.c — usage extraction against the recorded provider fixtures.
 *
 * Every fixture in tests/fixtures is fed whole, one byte at a time and cut
 * at 200 random places (fixed seeds), and must give exactly the usage of
 * its meta.json (expected_normalized), the reported model and the in-band
 * error flag. The synthetic cases below spell out the combining rules of
 * extract.h one by one.
 */
#include <cjson/cJSON.h>

#include "detect.h"
#include "extract.h"
#include "lm_test.h"
#include "lm_slurp.h"

/* ---- helpers -------------------------------------------------------------- */

static char *read_file(const char *name, size_t *len) {
  char path[512];
  const char *root = getenv("LM_ROOT");
  snprintf(path, sizeof path, "%s/tests/fixtures/%s", root ? root : ".", name);
  char *b = lm_slurp(path, len);
  if (!b)
    fprintf(stderr, "  cannot open %s\n", path);
  return b;
}

static uint64_t rng_state;
static uint64_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

enum split { WHOLE, BYTES, RANDOM };

/* Feeds body into x (already initialised) in the given way, then finishes. */
static void feed_split(struct lm_extract *x, const char *b, size_t n,
                       enum split how, uint64_t seed) {
  if (how == WHOLE) {
    lm_extract_feed(x, b, n);
  } else if (how == BYTES) {
    for (size_t i = 0; i < n; i++)
      lm_extract_feed(x, b + i, 1);
  } else {
    rng_state = seed * 0x9E3779B97F4A7C15ull + 1;
    size_t cuts[201], k = 0;
    for (int i = 0; i < 200; i++)
      cuts[k++] = n ? (size_t)(rng() % (n + 1)) : 0;
    cuts[k++] = n;
    /* sort (insertion; small) */
    for (size_t i = 1; i < k; i++)
      for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
        size_t t = cuts[j];
        cuts[j] = cuts[j - 1];
        cuts[j - 1] = t;
      }
    size_t at = 0;
    for (size_t i = 0; i < k; i++) {
      lm_extract_feed(x, b + at, cuts[i] - at);
      at = cuts[i];
    }
  }
  lm_extract_finish(x);
}

static void run_text(struct lm_extract *x, enum lm_api api, const char *ct,
                     const char *body) {
  lm_extract_init(x, api);
  if (ct)
    lm_extract_set_content_type(x, ct, strlen(ct));
  feed_split(x, body, strlen(body), WHOLE, 0);
}

struct expect {
  bool has_usage;
  struct lm_usage u;
  const char *model;
  bool error;
};

/* The text fields of an expected usage (the parts beyond text are 0). */
#define U(in, cr, cw, cw1h, out, reas)                             \
  {                                                                \
    .input = (in), .cache_read = (cr), .cache_write = (cw),        \
    .cache_write_1h = (cw1h), .output = (out), .reasoning = (reas) \
  }

static void check_result(const struct lm_extract *x, const struct expect *e,
                         const char *what) {
  int before = lm_t_cur_failed;
  lm_t_cur_failed = 0;
  CHECK(lm_extract_has_usage(x) == e->has_usage);
  const struct lm_usage *u = lm_extract_usage(x);
  CHECK_EQ_U64(u->input, e->u.input);
  CHECK_EQ_U64(u->cache_read, e->u.cache_read);
  CHECK_EQ_U64(u->cache_write, e->u.cache_write);
  CHECK_EQ_U64(u->cache_write_1h, e->u.cache_write_1h);
  CHECK_EQ_U64(u->output, e->u.output);
  CHECK_EQ_U64(u->reasoning, e->u.reasoning);
  CHECK_EQ_U64(u->input_audio, e->u.input_audio);
  CHECK_EQ_U64(u->cache_audio_read, e->u.cache_audio_read);
  CHECK_EQ_U64(u->input_image, e->u.input_image);
  CHECK_EQ_U64(u->cache_image_read, e->u.cache_image_read);
  CHECK_EQ_U64(u->input_video, e->u.input_video);
  CHECK_EQ_U64(u->citation, e->u.citation);
  CHECK_EQ_U64(u->separate_reasoning, e->u.separate_reasoning);
  CHECK_EQ_U64(u->output_audio, e->u.output_audio);
  CHECK_EQ_U64(u->output_image, e->u.output_image);
  CHECK_EQ_U64(u->output_video, e->u.output_video);
  CHECK_EQ_U64(u->web_searches, e->u.web_searches);
  CHECK_EQ_U64(u->requests, 0); /* a call's fee is the meter's to add */
  CHECK_STR(lm_extract_model(x), e->model);
  CHECK(lm_extract_inband_error(x) == e->error);
  if (lm_t_cur_failed)
    fprintf(stderr, "    (while feeding %s)\n", what);
  lm_t_cur_failed |= before;
}

static uint64_t jnum(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsNumber(v) ? (uint64_t)v->valuedouble : 0;
}

/* Expected result of a fixture, from its meta.json. */
static bool load_expect(const char *name, struct expect *e, enum lm_api *api,
                        char *ct, size_t ct_size, char *model_buf,
                        size_t model_size) {
  char file[256];
  size_t n;
  snprintf(file, sizeof file, "%s.meta.json", name);
  char *text = read_file(file, &n);
  if (!text)
    return false;
  cJSON *m = cJSON_Parse(text);
  free(text);
  if (!m)
    return false;
  memset(e, 0, sizeof *e);
  const cJSON *path = cJSON_GetObjectItemCaseSensitive(m, "url_path");
  *api = lm_detect_api(path->valuestring, strlen(path->valuestring), NULL);
  snprintf(ct, ct_size, "%s",
           cJSON_GetObjectItemCaseSensitive(m, "response_content_type")
               ->valuestring);
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(m, "model_reported");
  snprintf(model_buf, model_size, "%s",
           cJSON_IsString(model) ? model->valuestring : "");
  e->model = model_buf;
  const cJSON *eu = cJSON_GetObjectItemCaseSensitive(m, "expected_usage");
  const cJSON *en = cJSON_GetObjectItemCaseSensitive(m, "expected_normalized");
  e->has_usage = cJSON_IsObject(eu);
  if (cJSON_IsObject(en)) {
    e->u.input = jnum(en, "total_input_tokens");
    e->u.cache_read = jnum(en, "cache_read_tokens");
    e->u.cache_write = jnum(en, "cache_write_tokens");
    e->u.output = jnum(en, "output_tokens_incl_reasoning");
    e->u.reasoning = jnum(en, "reasoning_tokens");
    if (!cJSON_GetObjectItemCaseSensitive(en, "reasoning_tokens"))
      e->u.reasoning = jnum(eu, "reasoning_tokens");
    /* The parts beyond text, where a fixture has them (absent: 0). */
    e->u.input_audio = jnum(en, "input_audio_tokens");
    e->u.cache_audio_read = jnum(en, "cache_audio_read_tokens");
    e->u.input_image = jnum(en, "input_image_tokens");
    e->u.cache_image_read = jnum(en, "cache_image_read_tokens");
    e->u.input_video = jnum(en, "input_video_tokens");
    e->u.citation = jnum(en, "citation_tokens");
    e->u.separate_reasoning = jnum(en, "separate_reasoning_tokens");
    e->u.output_audio = jnum(en, "output_audio_tokens");
    e->u.output_image = jnum(en, "output_image_tokens");
    e->u.output_video = jnum(en, "output_video_tokens");
    e->u.web_searches = jnum(en, "web_searches");
  }
  const cJSON *err = cJSON_GetObjectItemCaseSensitive(m, "expected_error");
  const cJSON *status = cJSON_GetObjectItemCaseSensitive(m, "http_status");
  e->error = cJSON_IsObject(err) ||
             (cJSON_IsNumber(status) && status->valueint >= 400);
  cJSON_Delete(m);
  return true;
}

/* Feeds a fixture whole, byte by byte and at 20 x 200 random cuts. */
static void check_fixture_with(const char *name,
                               const struct expect *override) {
  struct expect e;
  enum lm_api api;
  char ct[128], model[128], file[256];
  if (!load_expect(name, &e, &api, ct, sizeof ct, model, sizeof model)) {
    CHECK(!"fixture meta readable");
    return;
  }
  if (override) {
    e.has_usage = override->has_usage;
    e.u = override->u;
  }
  CHECK(api != LM_API_NONE);
  size_t n;
  snprintf(file, sizeof file, "%s.response", name);
  char *body = read_file(file, &n);
  if (!body) {
    CHECK(!"fixture response readable");
    return;
  }
  static struct lm_extract x;
  char what[64];
  for (int how = WHOLE; how <= RANDOM; how++) {
    int seeds = how == RANDOM ? 20 : 1;
    for (int seed = 1; seed <= seeds; seed++) {
      lm_extract_init(&x, api);
      lm_extract_set_content_type(&x, ct, strlen(ct));
      feed_split(&x, body, n, (enum split)how, (uint64_t)seed);
      snprintf(what, sizeof what, "%s",
               how == WHOLE   ? "whole"
               : how == BYTES ? "byte by byte"
                              : "random cuts");
      check_result(&x, &e, what);
    }
  }
  /* And without a Content-Type: the framing is sniffed. */
  lm_extract_init(&x, api);
  feed_split(&x, body, n, RANDOM, 99);
  check_result(&x, &e, "random cuts, no content type");
  free(body);
}

static void check_fixture(const char *name) { check_fixture_with(name, NULL); }

/* ---- the fixtures --------------------------------------------------------- */

LM_TEST(test_openai_chat_nonstream_reasoning_is_part_of_output) {
  check_fixture("openai_chat_nonstream_reasoning");
}
LM_TEST(test_openai_chat_nonstream_cached_tokens_are_part_of_input) {
  check_fixture("openai_chat_nonstream_cache_read");
}
LM_TEST(test_openai_chat_stream_usage_null_never_resets_final_usage) {
  check_fixture("openai_chat_stream_include_usage");
}
LM_TEST(test_openai_chat_stream_without_include_usage_reports_no_usage) {
  check_fixture("openai_chat_stream_no_usage");
}
LM_TEST(test_openai_responses_nonstream_usage) {
  check_fixture("openai_responses_nonstream");
}
LM_TEST(test_openai_responses_stream_usage_from_response_completed) {
  check_fixture("openai_responses_stream");
}
LM_TEST(test_openai_embeddings_have_input_only) {
  check_fixture("openai_embeddings");
}
LM_TEST(test_openai_error_429_body_is_an_error_without_usage) {
  check_fixture("openai_error_429_insufficient_quota");
}
LM_TEST(test_anthropic_nonstream_input_includes_cache_read_and_write) {
  check_fixture("anthropic_messages_nonstream_cache");
}
LM_TEST(test_anthropic_stream_output_is_replaced_not_added) {
  check_fixture("anthropic_messages_stream");
}
LM_TEST(test_anthropic_stream_padded_cumulative_delta_is_taken_as_is) {
  check_fixture("anthropic_messages_stream_padded_cumulative");
}
LM_TEST(test_anthropic_stream_error_keeps_message_start_usage_and_flags_error) {
  check_fixture("anthropic_messages_stream_error_overloaded");
}
LM_TEST(test_gemini_nonstream_thoughts_are_output_and_prompt_includes_cache) {
  check_fixture("gemini_generate_content_nonstream");
}
LM_TEST(test_gemini_stream_sse_crlf_takes_latest_snapshot) {
  check_fixture("gemini_stream_sse");
}
LM_TEST(test_ollama_ndjson_usage_from_done_line) {
  check_fixture("ollama_chat_stream_ndjson");
}
LM_TEST(test_deepseek_cache_hit_tokens_not_double_counted) {
  check_fixture("deepseek_chat_nonstream_cache_hit");
}
LM_TEST(test_mistral_usage_before_choices) {
  check_fixture("mistral_chat_nonstream_cached");
}
LM_TEST(test_openrouter_usage_and_cost) {
  check_fixture("openrouter_chat_nonstream_cost");
  size_t n;
  char *body = read_file("openrouter_chat_nonstream_cost.response", &n);
  if (!body)
    return;
  static struct lm_extract x;
  lm_extract_init(&x, LM_API_OPENAI_CHAT);
  feed_split(&x, body, n, BYTES, 0);
  int64_t pusd = 0;
  CHECK(lm_extract_provider_cost(&x, &pusd));
  CHECK_EQ_I64(pusd, 13317600000LL); /* 0.0133176 USD, exactly */
  free(body);
}
LM_TEST(test_cohere_billed_units_are_what_is_charged) {
  /* No expected_normalized in meta (two bases): we bill billed_units and
   * report no cache read, because cached_tokens (448) counts raw tokens,
   * not billed ones (12). */
  struct expect e = {true, U(12, 0, 0, 0, 7, 0), "", false};
  check_fixture_with("cohere_chat_nonstream", &e);
}

/* ---- the rules, one by one ------------------------------------------------ */

LM_TEST(test_anthropic_delta_keeps_message_start_fields_it_omits) {
  static struct lm_extract x;
  run_text(
      &x, LM_API_ANTHROPIC_MESSAGES, "text/event-stream",
      "event: message_start\n"
      "data: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-x\","
      "\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":200,"
      "\"cache_read_input_tokens\":3000,\"cache_creation\":{"
      "\"ephemeral_5m_input_tokens\":150,\"ephemeral_1h_input_tokens\":50},"
      "\"output_tokens\":1}}}\n\n"
      "event: message_delta\n"
      "data: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"output_tokens\":42}}\n\n");
  const struct lm_usage *u = lm_extract_usage(&x);
  CHECK_EQ_U64(u->input, 3210);
  CHECK_EQ_U64(u->cache_read, 3000);
  CHECK_EQ_U64(u->cache_write, 200);
  CHECK_EQ_U64(u->cache_write_1h, 50);
  CHECK_EQ_U64(u->output, 42);
  CHECK_STR(lm_extract_model(&x), "claude-x");
}

LM_TEST(test_anthropic_gateway_input_only_in_delta_is_preferred) {
  static struct lm_extract x;
  run_text(
      &x, LM_API_ANTHROPIC_MESSAGES, "text/event-stream",
      "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":0,\"output_tokens\":1}}}\n\n"
      "data: {\"type\":\"message_delta\",\"usage\":{\"input_tokens\":77,\"output_tokens\":9}}\n\n");
  CHECK_EQ_U64(lm_extract_usage(&x)->input, 77);
  CHECK_EQ_U64(lm_extract_usage(&x)->output, 9);
}

LM_TEST(test_anthropic_compaction_iterations_sum_is_billed) {
  static struct lm_extract x;
  run_text(
      &x, LM_API_ANTHROPIC_MESSAGES, "application/json",
      "{\"type\":\"message\",\"usage\":{\"input_tokens\":23000,\"output_tokens\":1000,"
      "\"iterations\":[{\"type\":\"compaction\",\"input_tokens\":180000,\"output_tokens\":3500},"
      "{\"type\":\"message\",\"input_tokens\":23000,\"output_tokens\":1000,"
      "\"cache_read_input_tokens\":5}]}}");
  const struct lm_usage *u = lm_extract_usage(&x);
  CHECK_EQ_U64(u->input, 203005);
  CHECK_EQ_U64(u->cache_read, 5);
  CHECK_EQ_U64(u->output, 4500);
}

LM_TEST(test_gemini_snapshots_are_not_monotonic_latest_wins) {
  static struct lm_extract x;
  run_text(
      &x, LM_API_GEMINI_STREAM, "text/event-stream",
      "data: {\"usageMetadata\":{\"promptTokenCount\":15,\"candidatesTokenCount\":3,\"totalTokenCount\":18},\"modelVersion\":\"gemini-2.5-pro\"}\r\n\r\n"
      "data: {\"usageMetadata\":{\"promptTokenCount\":13,\"candidatesTokenCount\":9,\"thoughtsTokenCount\":4,\"toolUsePromptTokenCount\":2}}\r\n\r\n");
  const struct lm_usage *u = lm_extract_usage(&x);
  CHECK_EQ_U64(u->input, 15); /* 13 prompt + 2 tool-use prompt */
  CHECK_EQ_U64(u->output, 13);
  CHECK_EQ_U64(u->reasoning, 4);
  CHECK_STR(lm_extract_model(&x), "gemini-2.5-pro");
}

LM_TEST(test_gemini_json_array_stream_each_element_is_a_snapshot) {
  const char *body =
      "[{\r\n  \"candidates\": [{\"content\": {\"parts\": [{\"text\": \"1\"}]}}],\r\n"
      "  \"usageMetadata\": {\"promptTokenCount\": 18, \"candidatesTokenCount\": 31, \"thoughtsTokenCount\": 35},\r\n"
      "  \"modelVersion\": \"gemini-2.5-flash\"\r\n}\r\n,\r\n"
      "{\r\n  \"usageMetadata\": {\"promptTokenCount\": 18, \"candidatesTokenCount\": 80, \"thoughtsTokenCount\": 35}\r\n}\r\n]";
  static struct lm_extract x;
  for (int how = WHOLE; how <= RANDOM; how++) {
    lm_extract_init(&x, LM_API_GEMINI_STREAM);
    lm_extract_set_content_type(&x, "application/json", 16);
    feed_split(&x, body, strlen(body), (enum split)how, 7);
    struct expect e = {true, U(18, 0, 0, 0, 115, 35), "gemini-2.5-flash",
                       false};
    check_result(&x, &e, "gemini array");
  }
}

LM_TEST(test_gemini_array_error_element_is_inband_error) {
  static struct lm_extract x;
  run_text(
      &x, LM_API_GEMINI_STREAM, "application/json",
      "[{\"error\": {\"code\": 429, \"message\": \"quota\", \"status\": \"RESOURCE_EXHAUSTED\"}}]");
  CHECK(lm_extract_inband_error(&x));
  CHECK(!lm_extract_has_usage(&x));
}

LM_TEST(test_groq_x_groq_and_top_level_usage_count_once) {
  static struct lm_extract x;
  run_text(
      &x, LM_API_OPENAI_CHAT, "text/event-stream",
      "data: {\"id\":\"stub\",\"model\":\"groq/compound\",\"choices\":[],"
      "\"x_groq\":{\"id\":\"req_1\",\"usage\":{\"queue_time\":0.1,\"prompt_tokens\":100,"
      "\"completion_tokens\":20,\"total_tokens\":120,\"total_time\":1.5e-1},"
      "\"usage_breakdown\":{\"models\":[{\"model\":\"a\",\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":20}},"
      "{\"model\":\"b\",\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":20}}]}},"
      "\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":20,\"total_tokens\":120}}\n\n"
      "data: [DONE]\n\n");
  CHECK_EQ_U64(lm_extract_usage(&x)->input, 100);
  CHECK_EQ_U64(lm_extract_usage(&x)->output, 20);
  CHECK_STR(lm_extract_model(&x), "groq/compound");
}

LM_TEST(test_groq_usage_only_in_x_groq_is_used) {
  static struct lm_extract x;
  run_text(
      &x, LM_API_OPENAI_CHAT, "text/event-stream",
      "data: {\"choices\":[],\"x_groq\":{\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}}\n\n"
      "event: error\ndata: {\"error\":{\"message\":\"x\",\"status_code\":400}}\n\n");
  CHECK_EQ_U64(lm_extract_usage(&x)->input, 7);
  CHECK_EQ_U64(lm_extract_usage(&x)->output, 3);
  CHECK(lm_extract_inband_error(&x));
}

LM_TEST(test_openrouter_error_chunk_with_usage_keeps_usage_and_flags_error) {
  static struct lm_extract x;
  run_text(
      &x, LM_API_OPENAI_CHAT, "text/event-stream",
      ": OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\n"
      "data: {\"model\":\"openai/gpt-4.1-mini\",\"choices\":[{\"finish_reason\":\"error\"}],"
      "\"error\":{\"code\":502,\"message\":\"upstream\"},"
      "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"cost\":0}}\n\n"
      "data: [DONE]\n\n");
  CHECK(lm_extract_inband_error(&x));
  CHECK_EQ_U64(lm_extract_usage(&x)->input, 5);
  int64_t c = -1;
  CHECK(lm_extract_provider_cost(&x, &c));
  CHECK_EQ_I64(c, 0);
}

LM_TEST(test_openrouter_reasoning_above_completion_is_clamped) {
  static struct lm_extract x;
  run_text(
      &x, LM_API_OPENAI_CHAT, "application/json",
      "{\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":10,"
      "\"completion_tokens_details\":{\"reasoning_tokens\":11},"
      "\"prompt_tokens_details\":{\"cached_tokens\":4,\"cache_write_tokens\":3}}}");
  CHECK_EQ_U64(lm_extract_usage(&x)->reasoning, 10);
  CHECK_EQ_U64(lm_extract_usage(&x)->cache_read, 4);
  CHECK_EQ_U64(lm_extract_usage(&x)->cache_write, 1);
}

LM_TEST(test_azure_empty_model_and_filter_chunk_change_nothing) {
  static struct lm_extract x;
  run_text(
      &x, LM_API_OPENAI_CHAT, "text/event-stream",
      "data: {\"choices\":[],\"created\":0,\"id\":\"\",\"model\":\"\",\"prompt_filter_results\":[]}\n\n"
      "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"model\":\"gpt-4o-2024-11-20\"}\n\n"
      "data: {\"choices\":[],\"model\":\"\",\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n"
      "data: [DONE]\n\n");
  CHECK_STR(lm_extract_model(&x), "gpt-4o-2024-11-20");
  CHECK_EQ_U64(lm_extract_usage(&x)->input, 3);
}

LM_TEST(test_usage_word_in_generated_text_is_not_matched) {
  static struct lm_extract x;
  run_text(
      &x, LM_API_OPENAI_CHAT, "text/event-stream",
      "data: {\"choices\":[{\"delta\":{\"content\":\"\\\"usage\\\":{\\\"prompt_tokens\\\":999}\"}}],"
      "\"tool\":{\"usage\":{\"prompt_tokens\":888}},\"usage\":null}\n\n"
      "data: {\"choices\":[{\"delta\":{\"arguments\":\"{\\\"usage\\\": {\\\"prompt_tokens\\\": 777}}\"}}]}\n\n");
  CHECK(!lm_extract_has_usage(&x));
  CHECK_EQ_U64(lm_extract_usage(&x)->input, 0);
}

LM_TEST(test_responses_failed_event_flags_error_with_null_usage) {
  static struct lm_extract x;
  run_text(
      &x, LM_API_OPENAI_RESPONSES, "text/event-stream",
      "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"model\":\"gpt-5\",\"usage\":null,\"error\":null}}\n\n"
      "event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"usage\":null,\"error\":{\"code\":\"insufficient_quota\"}}}\n\n");
  CHECK(lm_extract_inband_error(&x));
  CHECK(!lm_extract_has_usage(&x));
  CHECK_STR(lm_extract_model(&x), "gpt-5");
}

LM_TEST(test_responses_incomplete_event_carries_usage) {
  static struct lm_extract x;
  run_text(
      &x, LM_API_OPENAI_RESPONSES, "text/event-stream",
      "event: response.incomplete\ndata: {\"type\":\"response.incomplete\",\"response\":{\"usage\":"
      "{\"input_tokens\":10,\"input_tokens_details\":{\"cached_tokens\":4},\"output_tokens\":50,"
      "\"output_tokens_details\":{\"reasoning_tokens\":40}}}}\n\n");
  const struct lm_usage *u = lm_extract_usage(&x);
  CHECK_EQ_U64(u->input, 10);
  CHECK_EQ_U64(u->cache_read, 4);
  CHECK_EQ_U64(u->output, 50);
  CHECK_EQ_U64(u->reasoning, 40);
  CHECK(!lm_extract_inband_error(&x));
}

LM_TEST(test_ollama_absent_counters_on_done_line_are_zero) {
  static struct lm_extract x;
  run_text(&x, LM_API_OLLAMA_CHAT, "application/x-ndjson",
           "{\"model\":\"llama3.2\",\"done\":false}\n"
           "{\"model\":\"llama3.2\",\"done\":true,\"eval_count\":5}\n");
  CHECK(lm_extract_has_usage(&x));
  CHECK_EQ_U64(lm_extract_usage(&x)->input, 0);
  CHECK_EQ_U64(lm_extract_usage(&x)->output, 5);
}

LM_TEST(test_ollama_malformed_line_is_skipped) {
  static struct lm_extract x;
  run_text(
      &x, LM_API_OLLAMA_GENERATE, "application/x-ndjson",
      "{\"model\":\"m\",\"response\":\"a\",\"done\":false}\n"
      "{\"model\":\"m\",garbage here \"prompt_eval_count\":1000}\n"
      "{\"model\":\"m\",\"done\":true,\"prompt_eval_count\":6,\"eval_count\":7}");
  CHECK_EQ_U64(lm_extract_usage(&x)->input, 6);
  CHECK_EQ_U64(lm_extract_usage(&x)->output, 7);
}

LM_TEST(test_ollama_error_object_is_inband_error) {
  static struct lm_extract x;
  run_text(&x, LM_API_OLLAMA_CHAT, NULL, "{\"error\":\"model 'x' not found\"}");
  CHECK(lm_extract_inband_error(&x));
}

LM_TEST(test_cohere_stream_usage_from_message_end_delta) {
  static struct lm_extract x;
  run_text(
      &x, LM_API_COHERE_CHAT, "text/event-stream",
      "event: message-start\ndata: {\"type\":\"message-start\",\"id\":\"1\"}\n\n"
      "event: content-delta\ndata: {\"type\":\"content-delta\",\"delta\":{\"message\":{\"content\":{\"text\":\"Hi\"}}}}\n\n"
      "event: message-end\ndata: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"COMPLETE\","
      "\"usage\":{\"billed_units\":{\"input_tokens\":12,\"output_tokens\":7},\"tokens\":{\"input_tokens\":507,\"output_tokens\":10}}}}\n\n");
  CHECK_EQ_U64(lm_extract_usage(&x)->input, 12);
  CHECK_EQ_U64(lm_extract_usage(&x)->output, 7);
}

LM_TEST(test_last_event_without_blank_line_is_dispatched_at_finish) {
  static struct lm_extract x;
  lm_extract_init(&x, LM_API_OPENAI_CHAT);
  lm_extract_set_content_type(&x, "text/event-stream", 17);
  const char *b =
      "data: {\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2}}";
  lm_extract_feed(&x, b, strlen(b));
  /* The JSON is complete, so the usage counts even before EOF. */
  CHECK(lm_extract_has_usage(&x));
  lm_extract_finish(&x);
  CHECK_EQ_U64(lm_extract_usage(&x)->output, 2);
}

LM_TEST(test_json_error_body_under_event_stream_type_is_read_as_json) {
  static struct lm_extract x;
  run_text(
      &x, LM_API_ANTHROPIC_MESSAGES, "text/event-stream",
      "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}");
  CHECK(lm_extract_inband_error(&x));
  CHECK(lm_framer_mode(&x.framer) == LM_FRAME_JSON);
}

LM_TEST(test_generation_increments_only_when_usage_changes) {
  static struct lm_extract x;
  lm_extract_init(&x, LM_API_GEMINI_STREAM);
  uint32_t g0 = lm_extract_generation(&x);
  const char *a =
      "data: {\"usageMetadata\":{\"promptTokenCount\":5,\"candidatesTokenCount\":1}}\n\n";
  const char *b =
      "data: {\"usageMetadata\":{\"promptTokenCount\":5,\"candidatesTokenCount\":2}}\n\n";
  lm_extract_feed(&x, a, strlen(a));
  uint32_t g1 = lm_extract_generation(&x);
  lm_extract_feed(&x, a, strlen(a));
  uint32_t g2 = lm_extract_generation(&x);
  lm_extract_feed(&x, b, strlen(b));
  uint32_t g3 = lm_extract_generation(&x);
  CHECK(g1 == g0 + 1);
  CHECK(g2 == g1);
  CHECK(g3 == g2 + 1);
}

/* ---- documents read whole (framer.h): crossed, held, replayed ---------- */

/* Runs body whole (the fast paths) and with every document scanned (no
 * classifier), and checks both against e. */
static void check_both_ways(enum lm_api api, const char *ct, const char *body,
                            const struct expect *e, const char *what) {
  static struct lm_extract x;
  for (int scan_all = 0; scan_all < 2; scan_all++) {
    lm_extract_init(&x, api);
    if (scan_all)
      lm_framer_set_classifier(&x.framer, NULL, NULL);
    lm_extract_set_content_type(&x, ct, strlen(ct));
    feed_split(&x, body, strlen(body), WHOLE, 0);
    check_result(&x, e, what);
  }
}

#define GEM(p, c)                                                           \
  "{\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"a\\nb\"}]}}]," \
  "\"usageMetadata\": {\"promptTokenCount\": " #p                           \
  ", \"candidatesTokenCount\": " #c "},"                                    \
  "\"modelVersion\": \"gemini-2.5-flash\"}"

LM_TEST(test_gemini_held_snapshots_newest_taken) {
  struct expect e = {true, U(7, 0, 0, 0, 40, 0), "gemini-2.5-flash", false};
  check_both_ways(LM_API_GEMINI_STREAM, "text/event-stream",
                  "data: " GEM(7, 10) "\n\ndata: " GEM(7, 20) "\n\ndata: " GEM(
                      7, 30) "\n\ndata: " GEM(7, 40) "\n\n",
                  &e, "sse");
  check_both_ways(LM_API_GEMINI_STREAM, "application/json",
                  "[" GEM(7, 10) "\r\n,\r\n" GEM(7, 20) "\r\n,\r\n" GEM(
                      7, 30) "\r\n,\r\n" GEM(7, 40) "]",
                  &e, "array");
}

LM_TEST(test_gemini_held_snapshot_that_takes_nothing_falls_back) {
  /* The newest snapshot is malformed inside its usage (an SSE event: the
   * next one starts afresh), or has no counter we read: the one before it
   * stands, as when every event is scanned. */
  struct expect e = {true, U(7, 0, 0, 0, 30, 0), "gemini-2.5-flash", false};
  check_both_ways(
      LM_API_GEMINI_STREAM, "text/event-stream",
      "data: " GEM(7, 10) "\n\ndata: " GEM(7, 20) "\n\ndata: " GEM(
          7,
          30) "\n\ndata: {\"candidates\": [], \"usageMetadata\": {\"promptTokenCount\": 9, "
              "\"candidatesTokenCount\": 4x}}\n\n",
      &e, "malformed");
  check_both_ways(
      LM_API_GEMINI_STREAM, "text/event-stream",
      "data: " GEM(7, 10) "\n\ndata: " GEM(7, 20) "\n\ndata: " GEM(
          7, 30) "\n\ndata: {\"usageMetadata\": {\"totalTokenCount\": 99}}\n\n",
      &e, "no counters");
}

LM_TEST(test_gemini_array_malformed_element_ends_the_body_as_when_scanned) {
  /* In a JSON array an error ends the whole body: the element after the
   * malformed one never counts, so the malformed one must not be crossed. */
  struct expect e = {true, U(7, 0, 0, 0, 20, 0), "gemini-2.5-flash", false};
  check_both_ways(
      LM_API_GEMINI_STREAM, "application/json",
      "[" GEM(7, 10) "\r\n,\r\n" GEM(
          7, 20) "\r\n,\r\n"
                 "{\"candidates\": [], \"responseId\": 12x}\r\n,\r\n" GEM(
                     7, 90) "]",
      &e, "array");
  check_both_ways(
      LM_API_GEMINI_STREAM, "application/json",
      "[" GEM(7, 10) "\r\n,\r\n" GEM(
          7,
          20) "\r\n,\r\n"
              "{\"candidates\": [], \"promptFeedback\": {\"note\": \"a\\qb\"}}\r\n,\r\n" GEM(
                  7, 90) "]",
      &e, "array, bad escape");
}

LM_TEST(test_inert_looking_events_that_count_are_read) {
  const char *chunk =
      "data: {\"id\":\"c\",\"model\":\"gpt-4o\",\"choices\":[{\"delta\":{\"content\":\"x\"}}],\"usage\":null}\n\n";
  char body[2048];
  /* an error event name, an error type, a new model, usage after all */
  snprintf(
      body, sizeof body, "%s%s%s", chunk,
      "event: error\ndata: {\"id\":\"c\",\"model\":\"gpt-4o\",\"usage\":null}\n\n",
      chunk);
  struct expect e = {false, {0}, "gpt-4o", true};
  check_both_ways(LM_API_OPENAI_CHAT, "text/event-stream", body, &e,
                  "event: error");
  snprintf(body, sizeof body, "%s%s", chunk,
           "data: {\"type\":\"error\",\"model\":\"gpt-4o\"}\n\n");
  check_both_ways(LM_API_OPENAI_CHAT, "text/event-stream", body, &e,
                  "type error");
  snprintf(body, sizeof body, "%s%s%s", chunk,
           "data: {\"id\":\"c\",\"model\":\"gpt-4o-mini\",\"usage\":null}\n\n",
           chunk);
  struct expect m = {false, {0}, "gpt-4o", false};
  check_both_ways(LM_API_OPENAI_CHAT, "text/event-stream", body, &m, "model");
  snprintf(
      body, sizeof body, "%s%s", chunk,
      "data: {\"id\":\"c\",\"model\":\"gpt-4o\",\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n");
  struct expect u = {true, U(3, 0, 0, 0, 2, 0), "gpt-4o", false};
  check_both_ways(LM_API_OPENAI_CHAT, "text/event-stream", body, &u, "usage");
}

/* ---- whole JSON bodies read member by member (framer.h) ----------------- */

/* Runs a JSON body whole (members skipped, scanned or read DIRECT) and with
 * everything scanned; the two results must be the same. Returns whether
 * the whole run read a member DIRECT. */
static bool same_as_scanned_ct(enum lm_api api, const char *ct,
                               const char *body, const char *what);
static bool same_as_scanned(enum lm_api api, const char *body,
                            const char *what) {
  return same_as_scanned_ct(api, "application/json", body, what);
}

static bool same_as_scanned_ct(enum lm_api api, const char *ct,
                               const char *body, const char *what) {
  static struct lm_extract fast, all;
  for (int scan_all = 0; scan_all < 2; scan_all++) {
    struct lm_extract *x = scan_all ? &all : &fast;
    lm_extract_init(x, api);
    if (scan_all)
      lm_framer_set_classifier(&x->framer, NULL, NULL);
    lm_extract_set_content_type(x, ct, strlen(ct));
    lm_extract_feed(x, body, strlen(body));
    lm_extract_finish(x);
  }
  int64_t c1 = 0, c2 = 0;
  bool k1 = lm_extract_provider_cost(&fast, &c1),
       k2 = lm_extract_provider_cost(&all, &c2);
  bool same = lm_extract_has_usage(&fast) == lm_extract_has_usage(&all) &&
              memcmp(lm_extract_usage(&fast), lm_extract_usage(&all),
                     sizeof(struct lm_usage)) == 0 &&
              strcmp(lm_extract_model(&fast), lm_extract_model(&all)) == 0 &&
              lm_extract_inband_error(&fast) == lm_extract_inband_error(&all) &&
              fast.final == all.final && /* before the end */ k1 == k2 &&
              c1 == c2;
  if (!same)
    fprintf(stderr, "  %s: whole and scanned differ\n", what);
  CHECK(same);
  return fast.direct_members > 0;
}

#define OAI_USAGE                                                                  \
  "\"usage\": {\n    \"prompt_tokens\": 100,\n    \"completion_tokens\": 20,\n"    \
  "    \"prompt_tokens_details\": {\"cached_tokens\": 40, \"audio_tokens\": 0},\n" \
  "    \"completion_tokens_details\": {\"reasoning_tokens\": 8}\n  }"

LM_TEST(test_whole_json_body_reads_usage_direct_as_the_scanner_does) {
  const char *body =
      "{\n  \"id\": \"chatcmpl-1\",\n  \"object\": \"chat.completion\",\n"
      "  \"model\": \"gpt-4o-mini\",\n  \"choices\": [{\"message\": "
      "{\"content\": \"a \\\"b\\\"\"}}],\n  " OAI_USAGE "\n}\n";
  CHECK(same_as_scanned(LM_API_OPENAI_CHAT, body, "openai"));
  static struct lm_extract x;
  lm_extract_init(&x, LM_API_OPENAI_CHAT);
  lm_extract_set_content_type(&x, "application/json", 16);
  lm_extract_feed(&x, body, strlen(body));
  lm_extract_finish(&x);
  const struct lm_usage *u = lm_extract_usage(&x);
  CHECK(lm_extract_has_usage(&x) && u->input == 100 && u->cache_read == 40 &&
        u->output == 20 && u->reasoning == 8);
  CHECK(strcmp(lm_extract_model(&x), "gpt-4o-mini") == 0);
}

LM_TEST(test_whole_json_body_member_order_and_oddities_as_scanned) {
  /* two usage members (the later one's fields win), two models */
  CHECK(
      same_as_scanned(LM_API_OPENAI_CHAT,
                      "{\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,"
                      "\"total_tokens\":2},\"model\":\"a\",\"model\":\"b\","
                      "\"usage\":{\"prompt_tokens\":5}}",
                      "two usages"));
  /* OpenRouter's usage.cost, a number too long to read, a key too long to
   * match with a counter's name under it */
  CHECK(same_as_scanned(
      LM_API_OPENAI_CHAT,
      "{\"model\":\"m\",\"usage\":{\"prompt_tokens\":3,\"cost\":0.0012,"
      "\"completion_tokens\":12345678901234567890123456789012345678901,"
      "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\":"
      "{\"cached_tokens\":9}}}",
      "cost, long number, long key"));
  /* strings and literals inside usage (Anthropic's service_tier) */
  CHECK(same_as_scanned(
      LM_API_ANTHROPIC_MESSAGES,
      "{\"id\":\"msg\",\"type\":\"message\",\"model\":\"claude-x\","
      "\"content\":[{\"type\":\"text\",\"text\":\"hi\"}],\"usage\":{"
      "\"input_tokens\":10,\"cache_creation_input_tokens\":2,"
      "\"cache_read_input_tokens\":3,\"cache_creation\":{\"ephemeral_5m_input_"
      "tokens\":2,\"ephemeral_1h_input_tokens\":0},\"output_tokens\":7,"
      "\"service_tier\":\"standard\",\"x\":null,\"y\":true}}",
      "anthropic"));
  /* read by the scanner instead: an escaped key (it may spell a counter),
   * an array inside usage, nesting deeper than the direct read goes */
  CHECK(!same_as_scanned(LM_API_OPENAI_CHAT,
                         "{\"usage\":{\"prompt\\u005ftokens\":7,"
                         "\"completion_tokens\":1}}",
                         "escaped key"));
  CHECK(!same_as_scanned(LM_API_OPENAI_CHAT,
                         "{\"usage\":{\"prompt_tokens\":7,\"l\":[1,2]}}",
                         "array"));
  CHECK(!same_as_scanned(LM_API_OPENAI_CHAT,
                         "{\"usage\":{\"a\":{\"b\":{\"c\":{\"d\":1}}},"
                         "\"prompt_tokens\":7}}",
                         "deep"));
  /* not whole or not valid: everything scanned, as before */
  CHECK(!same_as_scanned(LM_API_OPENAI_CHAT,
                         "{\"choices\":[tru],\"usage\":{\"prompt_tokens\":7,"
                         "\"completion_tokens\":1}}",
                         "bad choices"));
  /* the object whole, then bytes after it: read direct, then the tail
   * scanned (and rejected) as it would be after a scanned object */
  CHECK(
      same_as_scanned(LM_API_OPENAI_CHAT,
                      "{\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":1}"
                      "} trailing",
                      "trailing bytes"));
  /* the error member and an Ollama body still count */
  CHECK(!same_as_scanned(LM_API_OPENAI_CHAT,
                         "{\"error\":{\"message\":\"no\",\"type\":\"x\"}}",
                         "error"));
  same_as_scanned(LM_API_OLLAMA_CHAT,
                  "{\"model\":\"llama3\",\"message\":{\"content\":\"x\"},"
                  "\"done\":true,\"prompt_eval_count\":11,\"eval_count\":4}",
                  "ollama");
  same_as_scanned(
      LM_API_GEMINI_GENERATE,
      "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"x\"}]},"
      "\"finishReason\":\"STOP\"}],\"usageMetadata\":{"
      "\"promptTokenCount\":5,\"candidatesTokenCount\":2},"
      "\"modelVersion\":\"gemini-2.5-flash\"}",
      "gemini");
}

LM_TEST(test_whole_sse_events_read_member_by_member_as_scanned) {
  /* The usage event of an OpenAI stream read DIRECT; events with a name,
   * CRLF lines, bytes after the object on its data line, a malformed
   * object, [DONE]: the same as the SSE parser and scanner make of them. */
  const char *ct = "text/event-stream";
  CHECK(same_as_scanned_ct(
      LM_API_OPENAI_CHAT, ct,
      "data: {\"id\":\"c\",\"model\":\"gpt-4o\",\"choices\":[{\"delta\":"
      "{\"content\":\"x\"}}],\"usage\":null}\n\n"
      "data: {\"id\":\"c\",\"model\":\"gpt-4o\",\"choices\":[],\"usage\":"
      "{\"prompt_tokens\":9,\"completion_tokens\":4,"
      "\"prompt_tokens_details\":{\"cached_tokens\":2}}}\n\ndata: [DONE]\n\n",
      "openai stream"));
  same_as_scanned_ct(
      LM_API_OPENAI_CHAT, ct,
      "event: chunk\r\ndata: {\"model\":\"m\",\"usage\":{\"prompt_tokens\":3,"
      "\"completion_tokens\":1}} x\r\n\r\n",
      "name, CRLF, bytes after the object");
  same_as_scanned_ct(LM_API_OPENAI_CHAT, ct,
                     "data: {\"model\":\"m\",\"usage\":{\"prompt_tokens\":3}}"
                     "\n\ndata: {\"model\":\"m\",\"usage\":{\"prompt_tokens\":"
                     "5,\"completion_tokens\":tru}}\n\n",
                     "malformed second event");
  same_as_scanned_ct(
      LM_API_ANTHROPIC_MESSAGES, ct,
      "event: message_start\ndata: {\"type\":\"message_start\",\"message\":"
      "{\"model\":\"claude-x\",\"usage\":{\"input_tokens\":10,"
      "\"output_tokens\":1}}}\n\n"
      "event: a-very-long-event-name-beyond-what-the-parser-keeps-xxxxxxxx\n"
      "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":7}}"
      "\n\n",
      "anthropic, long name");
}

/* A chunk whose leading members repeat the last INERT chunk's bytes is
 * walked from past them (doc_classify's prefix), only while the model is
 * the same: a model that changed and changed back, usage after a repeated
 * prefix, a difference inside a member. */
LM_TEST(test_repeated_chunk_prefixes_classify_as_when_scanned) {
  const char *ct = "text/event-stream";
  /* gpt-4o read, then crossed twice (the second time past the prefix);
   * gpt-4o-mini read; gpt-4o again in bytes equal to the kept prefix: read,
   * not crossed (the model changed since); then chunks without a model */
  const char *body =
      "data: {\"id\":\"c\",\"object\":\"chunk\",\"model\":\"gpt-4o\",\"choices\":"
      "[],\"usage\":null}\n\n"
      "data: {\"id\":\"c\",\"object\":\"chunk\",\"model\":\"gpt-4o\",\"choices\":"
      "[{\"delta\":{\"content\":\"a\"}}],\"usage\":null}\n\n"
      "data: {\"id\":\"c\",\"object\":\"chunk\",\"model\":\"gpt-4o\",\"choices\":"
      "[{\"delta\":{\"content\":\"b\"}}],\"usage\":null}\n\n"
      "data: {\"id\":\"c\",\"object\":\"chunk\",\"model\":\"gpt-4o-mini\",\"choices\":"
      "[],\"usage\":null}\n\n"
      "data: {\"id\":\"c\",\"object\":\"chunk\",\"model\":\"gpt-4o\",\"choices\":"
      "[],\"usage\":null}\n\n"
      "data: {\"id\":\"c\",\"object\":\"chunk\",\"choices\":[],"
      "\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2}}\n\n"
      "data: {\"id\":\"c\",\"object\":\"chunk\",\"type\":\"error\"}\n\n";
  same_as_scanned_ct(LM_API_OPENAI_CHAT, ct, body, "prefixes");
  static struct lm_extract x;
  lm_extract_init(&x, LM_API_OPENAI_CHAT);
  lm_extract_set_content_type(&x, ct, strlen(ct));
  lm_extract_feed(&x, body, strlen(body));
  lm_extract_finish(&x);
  CHECK(strcmp(lm_extract_model(&x), "gpt-4o") == 0);
  CHECK(lm_extract_has_usage(&x) && lm_extract_usage(&x)->input == 4);
  CHECK(lm_extract_inband_error(&x));
}

/* ---- every price the feed carries: the usage that prices them ---------- */

/* Fed whole, byte by byte and at random cuts, with the fast paths and with
 * every document scanned: the same usage each time. */
static void check_splits(enum lm_api api, const char *ct, const char *body,
                         const struct expect *e, const char *what) {
  static struct lm_extract x;
  for (int scan_all = 0; scan_all < 2; scan_all++)
    for (int how = WHOLE; how <= RANDOM; how++) {
      lm_extract_init(&x, api);
      if (scan_all)
        lm_framer_set_classifier(&x.framer, NULL, NULL);
      lm_extract_set_content_type(&x, ct, strlen(ct));
      feed_split(&x, body, strlen(body), (enum split)how, 5);
      check_result(&x, e, what);
    }
}

LM_TEST(test_anthropic_stream_web_search_requests_come_with_message_delta) {
  /* Anthropic's documented streaming example with the web search tool:
   * message_start says 2,679 in; message_delta 10,682 in, 510 out and
   * server_tool_use.web_search_requests 1. */
  check_fixture("anthropic_messages_stream_web_search");
}

LM_TEST(test_anthropic_web_searches_replace_and_null_means_none) {
  static struct lm_extract x;
  /* Non-stream: the count is read where it is. */
  struct expect e = {true, U(20, 0, 0, 0, 9, 0), "claude-x", false};
  e.u.web_searches = 3;
  check_splits(LM_API_ANTHROPIC_MESSAGES, "application/json",
               "{\"type\":\"message\",\"model\":\"claude-x\",\"usage\":"
               "{\"input_tokens\":20,\"output_tokens\":9,\"server_tool_use\":"
               "{\"web_search_requests\":3,\"web_fetch_requests\":2}}}",
               &e, "non-stream");
  /* "server_tool_use": null (gateways): no searches. */
  e.u.web_searches = 0;
  check_splits(LM_API_ANTHROPIC_MESSAGES, "application/json",
               "{\"type\":\"message\",\"model\":\"claude-x\",\"usage\":"
               "{\"input_tokens\":20,\"output_tokens\":9,"
               "\"server_tool_use\":null}}",
               &e, "null");
  /* Stream: message_start's 0 is replaced by message_delta's 2, never
   * added to; a delta without the field keeps the count. */
  run_text(&x, LM_API_ANTHROPIC_MESSAGES, "text/event-stream",
           "event: message_start\n"
           "data: {\"type\":\"message_start\",\"message\":{\"model\":"
           "\"claude-x\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1,"
           "\"server_tool_use\":{\"web_search_requests\":0}}}}\n\n"
           "event: message_delta\n"
           "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":7,"
           "\"server_tool_use\":{\"web_search_requests\":2}}}\n\n"
           "event: message_delta\n"
           "data: {\"type\":\"message_delta\",\"usage\":"
           "{\"output_tokens\":8}}\n\n");
  CHECK_EQ_U64(lm_extract_usage(&x)->web_searches, 2);
  CHECK_EQ_U64(lm_extract_usage(&x)->output, 8);
}

LM_TEST(test_openai_audio_tokens_are_parts_of_prompt_and_completion) {
  /* A gpt-4o-audio-preview completion: 28 prompt tokens of which 17
   * audio, 97 completion tokens of which 74 audio. */
  check_fixture("openai_chat_nonstream_audio");
}

LM_TEST(test_openai_stream_usage_chunk_carries_audio_tokens) {
  /* gpt-audio, 1,000 prompt tokens of which 800 audio, 100 completion
   * tokens of which 60 audio, in the include_usage chunk. */
  struct expect e = {true, U(1000, 0, 0, 0, 100, 0), "gpt-audio", false};
  e.u.input_audio = 800;
  e.u.output_audio = 60;
  check_splits(
      LM_API_OPENAI_CHAT, "text/event-stream",
      "data: {\"id\":\"c\",\"model\":\"gpt-audio\",\"choices\":[{\"delta\":"
      "{\"audio\":{\"transcript\":\"hi\"}}}],\"usage\":null}\n\n"
      "data: {\"id\":\"c\",\"model\":\"gpt-audio\",\"choices\":[],\"usage\":"
      "{\"prompt_tokens\":1000,\"completion_tokens\":100,"
      "\"total_tokens\":1100,\"prompt_tokens_details\":{\"cached_tokens\":0,"
      "\"audio_tokens\":800},\"completion_tokens_details\":"
      "{\"reasoning_tokens\":0,\"audio_tokens\":60,"
      "\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}"
      "\n\ndata: [DONE]\n\n",
      &e, "openai audio stream");
  /* More audio than prompt (a broken report): clamped to the total. */
  struct expect c = {true, U(10, 0, 0, 0, 0, 0), "gpt-audio", false};
  c.u.input_audio = 10;
  check_splits(LM_API_OPENAI_CHAT, "application/json",
               "{\"model\":\"gpt-audio\",\"usage\":{\"prompt_tokens\":10,"
               "\"prompt_tokens_details\":{\"audio_tokens\":99}}}",
               &c, "clamped");
}

LM_TEST(test_perplexity_sonar_usage_is_tokens_only) {
  /* A recorded sonar response: 14 in, 181 out, nothing beside them (its
   * request fee is per call, not in the usage). */
  check_fixture("perplexity_chat_nonstream_sonar");
}

LM_TEST(test_perplexity_citations_reasoning_searches_beside_the_totals) {
  /* Deep research: citation 8,014 and reasoning 92,431 beside prompt 1,188
   * and completion 4,240 (total_tokens 5,428), 54 searches; usage.cost is
   * Perplexity's object and never read as OpenRouter's number. */
  check_fixture("perplexity_chat_nonstream_deep_research");
  static struct lm_extract x;
  run_text(&x, LM_API_OPENAI_CHAT, "application/json",
           "{\"model\":\"sonar-deep-research\",\"usage\":{\"prompt_tokens\":1,"
           "\"completion_tokens\":2,\"cost\":{\"total_cost\":0.5}}}");
  int64_t pusd;
  CHECK(!lm_extract_provider_cost(&x, &pusd));
  /* Where completion_tokens_details.reasoning_tokens (a part of output) is
   * reported, a top-level reasoning_tokens is not counted again. */
  struct expect e = {true, U(3, 0, 0, 0, 10, 4), "m", false};
  check_splits(LM_API_OPENAI_CHAT, "application/json",
               "{\"model\":\"m\",\"usage\":{\"prompt_tokens\":3,"
               "\"completion_tokens\":10,\"reasoning_tokens\":4,"
               "\"completion_tokens_details\":{\"reasoning_tokens\":4}}}",
               &e, "details win");
}

LM_TEST(test_gemini_counts_by_modality_in_any_order_and_split) {
  /* Gemini's UsageMetadata: promptTokensDetails, cacheTokensDetails,
   * candidatesTokensDetails and toolUsePromptTokensDetails are lists of
   * {modality, tokenCount}; the order of the two keys is not fixed here.
   * 1,300 prompt (400 audio, 250 image, 50 video) + 20 tool-use prompt
   * (10 audio); 600 of the prompt cached (300 audio, 100 image); output
   * 1,290 image + 10 text + 5 thoughts. */
  const char *body =
      "{\"candidates\": [{\"content\": {\"parts\": [{\"inlineData\": "
      "{\"mimeType\": \"image/png\", \"data\": \"AAAA\"}}]}, "
      "\"finishReason\": \"STOP\"}],\n"
      "\"usageMetadata\": {\"promptTokenCount\": 1300, "
      "\"candidatesTokenCount\": 1300, \"cachedContentTokenCount\": 600, "
      "\"thoughtsTokenCount\": 5, \"toolUsePromptTokenCount\": 20, "
      "\"promptTokensDetails\": [{\"modality\": \"TEXT\", \"tokenCount\": "
      "600}, {\"tokenCount\": 400, \"modality\": \"AUDIO\"}, {\"modality\": "
      "\"IMAGE\", \"tokenCount\": 250}, {\"modality\": \"VIDEO\", "
      "\"tokenCount\": 50}], \"toolUsePromptTokensDetails\": [{\"modality\": "
      "\"AUDIO\", \"tokenCount\": 10}, {\"modality\": \"TEXT\", "
      "\"tokenCount\": 10}], \"cacheTokensDetails\": [{\"modality\": "
      "\"AUDIO\", \"tokenCount\": 300}, {\"tokenCount\": 100, \"modality\": "
      "\"IMAGE\"}, {\"modality\": \"TEXT\", \"tokenCount\": 200}], "
      "\"candidatesTokensDetails\": [{\"modality\": \"IMAGE\", "
      "\"tokenCount\": 1290}, {\"modality\": \"TEXT\", \"tokenCount\": "
      "10}]},\n\"modelVersion\": \"gemini-2.5-flash-image\"}";
  struct expect e = {true, U(1320, 600, 0, 0, 1305, 5),
                     "gemini-2.5-flash-image", false};
  e.u.input_audio = 410;
  e.u.input_image = 250;
  e.u.input_video = 50;
  e.u.cache_audio_read = 300;
  e.u.cache_image_read = 100;
  e.u.output_image = 1290;
  check_splits(LM_API_GEMINI_GENERATE, "application/json", body, &e,
               "gemini modalities");
}

LM_TEST(test_gemini_modality_counts_are_replaced_with_the_snapshot) {
  /* Running snapshots: each chunk's lists replace the last chunk's, like
   * its counts; a chunk without a list has none of that part. */
  struct expect e = {true, U(30, 0, 0, 0, 9, 0), "gemini-2.5-flash", false};
  e.u.input_audio = 25;
  check_splits(
      LM_API_GEMINI_STREAM, "text/event-stream",
      "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"a\"}]}}"
      "], \"usageMetadata\": {\"promptTokenCount\": 30, "
      "\"candidatesTokenCount\": 4, \"promptTokensDetails\": [{\"modality\":"
      " \"AUDIO\", \"tokenCount\": 28}, {\"modality\": \"TEXT\", "
      "\"tokenCount\": 2}]}, \"modelVersion\": \"gemini-2.5-flash\"}\r\n\r\n"
      "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"b\"}]},"
      " \"finishReason\": \"STOP\"}], \"usageMetadata\": {\"promptTokenCount\""
      ": 30, \"candidatesTokenCount\": 9, \"promptTokensDetails\": "
      "[{\"modality\": \"AUDIO\", \"tokenCount\": 25}, {\"modality\": "
      "\"TEXT\", \"tokenCount\": 5}]}, \"modelVersion\": "
      "\"gemini-2.5-flash\"}\r\n\r\n",
      &e, "gemini snapshots");
  e.u.input_audio = 0;
  check_splits(
      LM_API_GEMINI_STREAM, "text/event-stream",
      "data: {\"usageMetadata\": {\"promptTokenCount\": 30, "
      "\"candidatesTokenCount\": 4, \"promptTokensDetails\": [{\"modality\":"
      " \"AUDIO\", \"tokenCount\": 28}]}, \"modelVersion\": "
      "\"gemini-2.5-flash\"}\r\n\r\n"
      "data: {\"usageMetadata\": {\"promptTokenCount\": 30, "
      "\"candidatesTokenCount\": 9}, \"modelVersion\": "
      "\"gemini-2.5-flash\"}\r\n\r\n",
      &e, "gemini list gone");
}

LM_TEST(test_modality_elsewhere_is_never_a_count) {
  /* A "modality" or "tokenCount" outside usageMetadata's lists (generated
   * content, another root, a nested list) counts nothing. */
  struct expect e = {true, U(8, 0, 0, 0, 2, 0), "gemini-2.5-flash", false};
  check_splits(
      LM_API_GEMINI_GENERATE, "application/json",
      "{\"candidates\": [{\"modality\": \"AUDIO\", \"tokenCount\": 5, "
      "\"content\": {\"parts\": [{\"text\": \"{\\\"modality\\\": "
      "\\\"AUDIO\\\"}\"}]}}], \"promptFeedback\": {\"promptTokensDetails\": "
      "[{\"modality\": \"AUDIO\", \"tokenCount\": 7}]}, \"usageMetadata\": "
      "{\"promptTokenCount\": 8, \"candidatesTokenCount\": 2, "
      "\"promptTokensDetails\": [{\"modality\": \"AUDIO\", \"extra\": "
      "{\"tokenCount\": 6}}, [{\"modality\": \"AUDIO\", \"tokenCount\": 6}]"
      "]}, \"modelVersion\": \"gemini-2.5-flash\"}",
      &e, "elsewhere");
}

LM_TEST(test_ndjson_line_recovery_is_the_same_with_documents_crossed) {
  /* A malformed document: the rest of its line is skipped, so the error
   * object after it never counts; after a sound one, it does. */
  struct expect quiet = {false, {0}, "llama3.2", false};
  check_both_ways(
      LM_API_OLLAMA_CHAT, "application/x-ndjson",
      "{\"model\":\"llama3.2\",\"done\":false}\n"
      "{\"model\":\"llama3.2\",\"created_at\":12x}{\"error\":\"boom\"}\n"
      "{\"model\":\"llama3.2\",\"done\":false}\n",
      &quiet, "malformed");
  struct expect err = {false, {0}, "llama3.2", true};
  check_both_ways(
      LM_API_OLLAMA_CHAT, "application/x-ndjson",
      "{\"model\":\"llama3.2\",\"done\":false}\n"
      "{\"model\":\"llama3.2\",\"done\":false} {\"error\":\"boom\"}\n",
      &err, "sound");
}

LM_TEST(test_truncated_anthropic_stream_reports_only_usage_seen_so_far) {
  size_t n;
  char *body = read_file("anthropic_messages_stream.response", &n);
  if (!body)
    return;
  static struct lm_extract x;
  for (size_t cut = 0; cut <= n; cut++) {
    lm_extract_init(&x, LM_API_ANTHROPIC_MESSAGES);
    lm_extract_feed(&x, body, cut);
    lm_extract_finish(&x);
    const struct lm_usage *u = lm_extract_usage(&x);
    if (!lm_extract_has_usage(&x)) {
      CHECK_EQ_U64(u->input + u->output, 0);
    } else {
      CHECK_EQ_U64(u->input, 25);
      CHECK(u->output == 1 || u->output == 15);
    }
  }
  free(body);
}

LM_TEST(test_malformed_and_truncated_bodies_never_crash_or_invent_usage) {
  static const char *const bad[] = {
      "{\"usage\":{\"prompt_tokens\":12", /* truncated */
      "{\"usage\":{\"prompt_tokens\":12,}}",
      "{\"usage\":{\"prompt_tokens\":-3,\"completion_tokens\":1.5}}",
      "{\"usage\":{\"prompt_tokens\":\"12\"}}",
      "{\"usage\":{\"prompt_tokens\":1e999999999}}",
      "{\"usage\":{\"prompt_tokens\":123456789012345678901234567890}}",
      "}}}}]]]]",
      "\"\\uZZZZ\"",
      "data: {\"usage\":{\"prompt_tokens\":1}\n\ndata: }\n\n",
      "\xEF\xBB\xBF\xEF\xBB",
      "",
  };
  static struct lm_extract x;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    for (int api = 0; api < LM_API_COUNT; api++) {
      for (int how = WHOLE; how <= RANDOM; how++) {
        lm_extract_init(&x, (enum lm_api)api);
        feed_split(&x, bad[i], strlen(bad[i]), (enum split)how, 3);
        CHECK(!lm_extract_has_usage(&x));
      }
    }
}

LM_TEST(test_keys_with_escaped_nul_never_match_or_overread) {
  /* found by fuzz_extract: a key holding \u0000 once made the root-key
   * compare read past the end of "usage" (ASan, build-san) */
  static struct lm_extract x;
  run_text(
      &x, LM_API_OPENAI_CHAT, "application/json",
      "{\"u\\u0000aaaaaaaaaaaaaaaaaaaaaaaaa\":1,"
      "\"usage\\u0000aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\":{\"prompt_tokens\":5},"
      "\"m\\u0000odel\":\"x\"}");
  CHECK(!lm_extract_has_usage(&x));
  CHECK_STR(lm_extract_model(&x), "");
}

LM_TEST(test_deep_nesting_is_bounded) {
  static char body[70000];
  size_t n = 0;
  for (int i = 0; i < 30000; i++)
    body[n++] = '[';
  static struct lm_extract x;
  lm_extract_init(&x, LM_API_OPENAI_CHAT);
  lm_extract_feed(&x, body, n);
  lm_extract_finish(&x);
  CHECK(!lm_extract_has_usage(&x));
}

LM_TEST(test_extract_state_is_fixed_and_small) {
  CHECK(sizeof(struct lm_extract) <= 16384);
}

LM_TEST(test_unmetered_apis_parse_nothing) {
  static struct lm_extract x;
  run_text(&x, LM_API_CUSTOM, "application/json",
           "{\"model\":\"m\",\"usage\":{\"prompt_tokens\":1}}");
  CHECK(!lm_extract_has_usage(&x));
  CHECK_STR(lm_extract_model(&x), "");
}

/* ---- when the bill is final (lm_extract_final) ------------------------- */

/* Feeds a fixture byte by byte; returns the offset after which the
 * extractor first said final (or n + 1 if never before finish) and
 * whether usage was known (a running total) strictly before that. */
static size_t final_offset(const char *fixture, enum lm_api api, const char *ct,
                           bool *usage_before, struct lm_usage *at_final,
                           struct lm_usage *at_end) {
  size_t n;
  char *b = read_file(fixture, &n);
  static struct lm_extract x;
  lm_extract_init(&x, api);
  lm_extract_set_content_type(&x, ct, strlen(ct));
  size_t off = n + 1;
  *usage_before = false;
  for (size_t i = 0; b && i < n; i++) {
    bool had = lm_extract_has_usage(&x);
    lm_extract_feed(&x, b + i, 1);
    if (lm_extract_final(&x)) {
      *usage_before = had;
      off = i + 1;
      *at_final = *lm_extract_usage(&x);
      break;
    }
  }
  if (b && off <= n)
    lm_extract_feed(&x, b + off, n - off);
  lm_extract_finish(&x);
  *at_end = *lm_extract_usage(&x);
  if (off > n && lm_extract_final(&x))
    *at_final = *at_end;
  free(b);
  return off;
}

static bool same_usage(const struct lm_usage *a, const struct lm_usage *b) {
  return a->input == b->input && a->output == b->output &&
         a->cache_read == b->cache_read && a->cache_write == b->cache_write &&
         a->reasoning == b->reasoning;
}

LM_TEST(test_final_usage_is_known_before_the_stream_ends_and_never_rises) {
  static const struct {
    const char *fixture;
    enum lm_api api;
    const char *ct;
    bool running_total_first; /* usage is known (and can cross) earlier */
  } cases[] = {
      {"anthropic_messages_stream.response", LM_API_ANTHROPIC_MESSAGES,
       "text/event-stream", true},
      {"gemini_stream_sse.response", LM_API_GEMINI_STREAM, "text/event-stream",
       true},
      {"openai_chat_stream_include_usage.response", LM_API_OPENAI_CHAT,
       "text/event-stream", false},
      {"openai_responses_stream.response", LM_API_OPENAI_RESPONSES,
       "text/event-stream", false},
      {"ollama_chat_stream_ndjson.response", LM_API_OLLAMA_CHAT,
       "application/x-ndjson", false},
      {"cohere_chat_stream_message_end.response", LM_API_COHERE_CHAT,
       "text/event-stream", false},
      {"openai_chat_nonstream_reasoning.response", LM_API_OPENAI_CHAT,
       "application/json", false},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    bool before = false;
    struct lm_usage f = {0}, e = {0};
    size_t n = 0;
    char *b = read_file(cases[i].fixture, &n);
    free(b);
    size_t off = final_offset(cases[i].fixture, cases[i].api, cases[i].ct,
                              &before, &f, &e);
    if (off > n || !same_usage(&f, &e) ||
        before != cases[i].running_total_first)
      fprintf(stderr, "  %s: final at %zu of %zu, usage before: %d\n",
              cases[i].fixture, off, n, before);
    CHECK(off <= n);           /* said before the body ended */
    CHECK(same_usage(&f, &e)); /* nothing after it changed the bill */
    CHECK(before == cases[i].running_total_first);
  }
}

LM_TEST(test_gemini_snapshots_before_finish_reason_are_not_final) {
  static const char ev[] =
      "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": "
      "\"a\"}]},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": "
      "5,\"candidatesTokenCount\": 1}}\r\n\r\n";
  static const char last[] =
      "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": "
      "\"b\"}]},\"finishReason\": \"STOP\",\"index\": 0}],"
      "\"usageMetadata\": {\"promptTokenCount\": 5,\"candidatesTokenCount\": "
      "2}}\r\n\r\n";
  static struct lm_extract x;
  lm_extract_init(&x, LM_API_GEMINI_STREAM);
  lm_extract_set_content_type(&x, "text/event-stream", 17);
  lm_extract_feed(&x, ev, sizeof(ev) - 1);
  lm_extract_feed(&x, ev, sizeof(ev) - 1);
  CHECK(lm_extract_has_usage(&x));
  CHECK(!lm_extract_final(&x));
  lm_extract_feed(&x, last, sizeof(last) - 1);
  CHECK(lm_extract_final(&x));
  CHECK_EQ_U64(lm_extract_usage(&x)->output, 2);
  /* the same as one Gemini JSON array (streamGenerateContent, no alt=sse) */
  static const char arr[] =
      "[{\"candidates\": [{\"content\": {\"parts\": []}}],\"usageMetadata\":"
      " {\"promptTokenCount\": 5,\"candidatesTokenCount\": 1}},\n"
      "{\"candidates\": [{\"finishReason\": \"STOP\"}],\"usageMetadata\":"
      " {\"promptTokenCount\": 5,\"candidatesTokenCount\": 3}}]";
  lm_extract_init(&x, LM_API_GEMINI_STREAM);
  lm_extract_set_content_type(&x, "application/json", 16);
  size_t mid = (size_t)(strchr(arr, '\n') - arr);
  lm_extract_feed(&x, arr, mid);
  CHECK(lm_extract_has_usage(&x));
  CHECK(!lm_extract_final(&x));
  lm_extract_feed(&x, arr + mid, sizeof(arr) - 1 - mid);
  CHECK(lm_extract_final(&x));
  CHECK_EQ_U64(lm_extract_usage(&x)->output, 3);
}

int main(void) {
  LM_RUN(test_openai_chat_nonstream_reasoning_is_part_of_output);
  LM_RUN(test_openai_chat_nonstream_cached_tokens_are_part_of_input);
  LM_RUN(test_openai_chat_stream_usage_null_never_resets_final_usage);
  LM_RUN(test_openai_chat_stream_without_include_usage_reports_no_usage);
  LM_RUN(test_openai_responses_nonstream_usage);
  LM_RUN(test_openai_responses_stream_usage_from_response_completed);
  LM_RUN(test_openai_embeddings_have_input_only);
  LM_RUN(test_openai_error_429_body_is_an_error_without_usage);
  LM_RUN(test_anthropic_nonstream_input_includes_cache_read_and_write);
  LM_RUN(test_anthropic_stream_output_is_replaced_not_added);
  LM_RUN(test_anthropic_stream_padded_cumulative_delta_is_taken_as_is);
  LM_RUN(test_anthropic_stream_error_keeps_message_start_usage_and_flags_error);
  LM_RUN(test_gemini_nonstream_thoughts_are_output_and_prompt_includes_cache);
  LM_RUN(test_gemini_stream_sse_crlf_takes_latest_snapshot);
  LM_RUN(test_ollama_ndjson_usage_from_done_line);
  LM_RUN(test_deepseek_cache_hit_tokens_not_double_counted);
  LM_RUN(test_mistral_usage_before_choices);
  LM_RUN(test_openrouter_usage_and_cost);
  LM_RUN(test_cohere_billed_units_are_what_is_charged);
  LM_RUN(test_anthropic_delta_keeps_message_start_fields_it_omits);
  LM_RUN(test_anthropic_gateway_input_only_in_delta_is_preferred);
  LM_RUN(test_anthropic_compaction_iterations_sum_is_billed);
  LM_RUN(test_gemini_snapshots_are_not_monotonic_latest_wins);
  LM_RUN(test_gemini_json_array_stream_each_element_is_a_snapshot);
  LM_RUN(test_gemini_array_error_element_is_inband_error);
  LM_RUN(test_groq_x_groq_and_top_level_usage_count_once);
  LM_RUN(test_groq_usage_only_in_x_groq_is_used);
  LM_RUN(test_openrouter_error_chunk_with_usage_keeps_usage_and_flags_error);
  LM_RUN(test_openrouter_reasoning_above_completion_is_clamped);
  LM_RUN(test_azure_empty_model_and_filter_chunk_change_nothing);
  LM_RUN(test_usage_word_in_generated_text_is_not_matched);
  LM_RUN(test_responses_failed_event_flags_error_with_null_usage);
  LM_RUN(test_responses_incomplete_event_carries_usage);
  LM_RUN(test_ollama_absent_counters_on_done_line_are_zero);
  LM_RUN(test_ollama_malformed_line_is_skipped);
  LM_RUN(test_ollama_error_object_is_inband_error);
  LM_RUN(test_cohere_stream_usage_from_message_end_delta);
  LM_RUN(test_last_event_without_blank_line_is_dispatched_at_finish);
  LM_RUN(test_json_error_body_under_event_stream_type_is_read_as_json);
  LM_RUN(test_generation_increments_only_when_usage_changes);
  LM_RUN(test_truncated_anthropic_stream_reports_only_usage_seen_so_far);
  LM_RUN(test_malformed_and_truncated_bodies_never_crash_or_invent_usage);
  LM_RUN(test_keys_with_escaped_nul_never_match_or_overread);
  LM_RUN(test_deep_nesting_is_bounded);
  LM_RUN(test_extract_state_is_fixed_and_small);
  LM_RUN(test_unmetered_apis_parse_nothing);
  LM_RUN(test_gemini_held_snapshots_newest_taken);
  LM_RUN(test_gemini_held_snapshot_that_takes_nothing_falls_back);
  LM_RUN(test_gemini_array_malformed_element_ends_the_body_as_when_scanned);
  LM_RUN(test_whole_json_body_reads_usage_direct_as_the_scanner_does);
  LM_RUN(test_whole_json_body_member_order_and_oddities_as_scanned);
  LM_RUN(test_whole_sse_events_read_member_by_member_as_scanned);
  LM_RUN(test_repeated_chunk_prefixes_classify_as_when_scanned);
  LM_RUN(test_inert_looking_events_that_count_are_read);
  LM_RUN(test_anthropic_stream_web_search_requests_come_with_message_delta);
  LM_RUN(test_anthropic_web_searches_replace_and_null_means_none);
  LM_RUN(test_openai_audio_tokens_are_parts_of_prompt_and_completion);
  LM_RUN(test_openai_stream_usage_chunk_carries_audio_tokens);
  LM_RUN(test_perplexity_sonar_usage_is_tokens_only);
  LM_RUN(test_perplexity_citations_reasoning_searches_beside_the_totals);
  LM_RUN(test_gemini_counts_by_modality_in_any_order_and_split);
  LM_RUN(test_gemini_modality_counts_are_replaced_with_the_snapshot);
  LM_RUN(test_modality_elsewhere_is_never_a_count);
  LM_RUN(test_ndjson_line_recovery_is_the_same_with_documents_crossed);
  LM_RUN(test_final_usage_is_known_before_the_stream_ends_and_never_rises);
  LM_RUN(test_gemini_snapshots_before_finish_reason_are_not_final);
  LM_TEST_END();
}
