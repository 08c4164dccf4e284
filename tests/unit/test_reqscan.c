/* test_reqscan.c — request body facts, on the recorded request bodies and
 * on small cases for each rule of reqscan.h. The expected prompt_chars of
 * the fixtures were computed independently (Python's json module summing
 * the string lengths under the prompt keys).
 */
#include "detect.h"
#include "lm_test.h"
#include "reqscan.h"
#include "lm_slurp.h"

static char *read_fixture(const char *name, size_t *len) {
  char path[512];
  const char *root = getenv("LM_ROOT");
  snprintf(path, sizeof path, "%s/tests/fixtures/%s.request.json",
           root ? root : ".", name);
  return lm_slurp(path, len);
}

struct req_case {
  const char *fixture;
  enum lm_api api;
  const char *model;
  int64_t max_out;
  bool stream, include_usage, has_stream_options;
  uint64_t prompt_chars;
};

static const struct req_case cases[] = {
    {"anthropic_messages_nonstream_cache", LM_API_ANTHROPIC_MESSAGES,
     "claude-sonnet-4-5", 4096, false, false, false, 7102},
    {"anthropic_messages_stream", LM_API_ANTHROPIC_MESSAGES,
     "claude-3-5-sonnet-20240620", 256, true, false, false, 9},
    {"anthropic_messages_stream_padded_cumulative", LM_API_ANTHROPIC_MESSAGES,
     "claude-sonnet-4-5", 32000, true, false, false, 49},
    {"cohere_chat_nonstream", LM_API_COHERE_CHAT, "command-r-plus", -1, false,
     false, false, 34},
    {"deepseek_chat_nonstream_cache_hit", LM_API_OPENAI_CHAT,
     "deepseek-reasoner", -1, false, false, false, 1354},
    {"gemini_generate_content_nonstream", LM_API_GEMINI_GENERATE, "", -1, false,
     false, false, 74},
    {"gemini_stream_sse", LM_API_GEMINI_STREAM, "", -1, true, false, false, 57},
    {"mistral_chat_nonstream_cached", LM_API_OPENAI_CHAT,
     "mistral-large-latest", -1, false, false, false, 1554},
    {"ollama_chat_stream_ndjson", LM_API_OLLAMA_CHAT, "llama3.2", -1, true,
     false, false, 24},
    {"openai_chat_nonstream_cache_read", LM_API_OPENAI_CHAT, "gpt-5.6-sol", -1,
     false, false, false, 12729},
    {"openai_chat_nonstream_reasoning", LM_API_OPENAI_CHAT, "o3-mini", 100,
     false, false, false, 9},
    {"openai_chat_stream_include_usage", LM_API_OPENAI_CHAT, "gpt-4o-mini", -1,
     true, true, true, 311},
    {"openai_chat_stream_no_usage", LM_API_OPENAI_CHAT, "gpt-3.5-turbo-0125",
     -1, true, false, false, 10},
    {"openai_embeddings", LM_API_OPENAI_EMBEDDINGS, "text-embedding-3-small",
     -1, false, false, false, 13},
    {"openai_responses_nonstream", LM_API_OPENAI_RESPONSES, "gpt-5", -1, false,
     false, false, 77},
    {"openai_responses_stream", LM_API_OPENAI_RESPONSES, "gpt-5", -1, true,
     false, false, 200},
    {"openrouter_chat_nonstream_cost", LM_API_OPENAI_CHAT,
     "openai/gpt-4.1-mini", -1, false, false, false, 156},
};

LM_TEST(test_fixture_request_bodies) {
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const struct req_case *c = &cases[i];
    size_t n = 0;
    char *body = read_fixture(c->fixture, &n);
    CHECK(body != NULL);
    if (!body)
      continue;
    struct lm_request_info r;
    lm_reqscan(c->api, body, n, &r);
    int before = lm_t_cur_failed;
    lm_t_cur_failed = 0;
    CHECK_STR(r.model, c->model);
    CHECK_EQ_I64(r.max_output_tokens, c->max_out);
    CHECK(r.stream == c->stream);
    CHECK(r.include_usage == c->include_usage);
    CHECK(r.has_stream_options == c->has_stream_options);
    CHECK_EQ_U64(r.body_bytes, n);
    CHECK_EQ_U64(r.prompt_chars, c->prompt_chars);
    if (lm_t_cur_failed)
      fprintf(stderr, "    (fixture %s)\n", c->fixture);
    lm_t_cur_failed |= before;
    free(body);
  }
}

static struct lm_request_info scan(enum lm_api api, const char *body) {
  struct lm_request_info r;
  lm_reqscan(api, body, strlen(body), &r);
  return r;
}

LM_TEST(test_max_completion_tokens_wins_over_max_tokens) {
  struct lm_request_info r = scan(
      LM_API_OPENAI_CHAT, "{\"max_tokens\":10,\"max_completion_tokens\":20}");
  CHECK_EQ_I64(r.max_output_tokens, 20);
  r = scan(LM_API_OPENAI_CHAT,
           "{\"max_completion_tokens\":20,\"max_tokens\":10}");
  CHECK_EQ_I64(r.max_output_tokens, 20);
}

LM_TEST(test_output_caps_of_every_api_are_read) {
  CHECK_EQ_I64(scan(LM_API_OPENAI_RESPONSES, "{\"max_output_tokens\":33}")
                   .max_output_tokens,
               33);
  CHECK_EQ_I64(scan(LM_API_GEMINI_GENERATE,
                    "{\"generationConfig\":{\"maxOutputTokens\":44}}")
                   .max_output_tokens,
               44);
  CHECK_EQ_I64(scan(LM_API_OLLAMA_CHAT, "{\"options\":{\"num_predict\":55}}")
                   .max_output_tokens,
               55);
  CHECK_EQ_I64(scan(LM_API_OLLAMA_CHAT, "{\"options\":{\"num_predict\":-1}}")
                   .max_output_tokens,
               -1);
  CHECK_EQ_I64(
      scan(LM_API_OPENAI_CHAT, "{\"x\":{\"max_tokens\":5}}").max_output_tokens,
      -1);
}

/* Every answer of n is billed: n, best_of (completions: generated and
 * billed, n of them returned), Gemini's candidateCount; the largest. */
LM_TEST(test_answers_asked_for_are_counted) {
  CHECK_EQ_U64(scan(LM_API_OPENAI_CHAT, "{\"model\":\"m\"}").choices, 1);
  CHECK_EQ_U64(scan(LM_API_OPENAI_CHAT, "{\"n\":5}").choices, 5);
  CHECK_EQ_U64(
      scan(LM_API_OPENAI_COMPLETIONS, "{\"n\":2,\"best_of\":7}").choices, 7);
  CHECK_EQ_U64(scan(LM_API_GEMINI_GENERATE,
                    "{\"generationConfig\":{\"candidateCount\":3}}")
                   .choices,
               3);
  CHECK_EQ_U64(scan(LM_API_GEMINI_GENERATE,
                    "{\"generation_config\":{\"candidate_count\":4}}")
                   .choices,
               4);
  CHECK_EQ_U64(scan(LM_API_OPENAI_CHAT, "{\"n\":0}").choices, 1);
  CHECK_EQ_U64(scan(LM_API_OPENAI_CHAT, "{\"n\":-3}").choices, 1);
  CHECK_EQ_U64(scan(LM_API_OPENAI_CHAT, "{\"n\":99999999}").choices,
               LM_REQ_CHOICES_MAX);
  CHECK_EQ_U64(scan(LM_API_OPENAI_CHAT, "{\"x\":{\"n\":5}}").choices, 1);
  /* not an integer: the provider refuses it; read rounded, half up */
  CHECK_EQ_U64(scan(LM_API_OPENAI_CHAT, "{\"n\":2.5}").choices, 3);
}

LM_TEST(test_ollama_streams_by_default_unless_told_not_to) {
  CHECK(scan(LM_API_OLLAMA_GENERATE, "{\"model\":\"m\"}").stream);
  CHECK(!scan(LM_API_OLLAMA_CHAT, "{\"stream\":false}").stream);
  CHECK(!scan(LM_API_OPENAI_CHAT, "{\"model\":\"m\"}").stream);
}

LM_TEST(test_stream_options_include_usage) {
  struct lm_request_info r = scan(
      LM_API_OPENAI_CHAT,
      "{\"stream\":true,\"stream_options\":{\"include_usage\":false}}");
  CHECK(r.has_stream_options);
  CHECK(!r.include_usage);
  r = scan(LM_API_OPENAI_CHAT, "{\"stream_options\":null}");
  CHECK(!r.has_stream_options);
}

LM_TEST(test_inline_binary_is_not_prompt_text) {
  struct lm_request_info r = scan(
      LM_API_OPENAI_CHAT,
      "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"},"
      "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,AAAA\"}}]},"
      "{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":{\"type\":\"base64\","
      "\"media_type\":\"image/png\",\"data\":\"QUFBQUFBQUFB\"}}]}],"
      "\"contents\":[{\"parts\":[{\"inlineData\":{\"mimeType\":\"image/png\",\"data\":\"QUFB\"}}]}]}");
  /* counted: "user" "text" "hi" "image_url" | "user" "image" "base64"
   * "image/png"; not the data: URL, the base64 data, nor inlineData */
  CHECK_EQ_U64(r.prompt_chars, 4 + 4 + 2 + 9 + 4 + 5 + 6 + 9);
}

LM_TEST(test_model_outside_the_top_level_is_ignored) {
  CHECK_STR(scan(LM_API_OPENAI_CHAT, "{\"x\":{\"model\":\"no\"}}").model, "");
}

LM_TEST(test_malformed_body_keeps_what_was_read) {
  struct lm_request_info r = scan(
      LM_API_OPENAI_CHAT,
      "{\"model\":\"gpt-4o\",\"max_tokens\":7,\"messages\":[}");
  CHECK_STR(r.model, "gpt-4o");
  CHECK_EQ_I64(r.max_output_tokens, 7);
  lm_reqscan(LM_API_OPENAI_CHAT, NULL, 0, &r);
  CHECK_STR(r.model, "");
  CHECK_EQ_I64(r.max_output_tokens, -1);
}

/* ---- the event walk reads what the scanner reads ------------------------ */

static bool same_info(const struct lm_request_info *a,
                      const struct lm_request_info *b) {
  return strcmp(a->model, b->model) == 0 &&
         a->max_output_tokens == b->max_output_tokens &&
         a->stream == b->stream && a->include_usage == b->include_usage &&
         a->has_stream_options == b->has_stream_options &&
         a->body_bytes == b->body_bytes && a->prompt_chars == b->prompt_chars;
}

static size_t differ; /* bodies on which the two readings differed */

static void compare(enum lm_api api, const char *body, size_t n) {
  struct lm_request_info w, s;
  lm_reqscan(api, body, n, &w);
  lm_reqscan_scanned(api, body, n, &s);
  if (same_info(&w, &s))
    return;
  if (differ++ < 3)
    fprintf(stderr,
            "    walk/scan differ on %.*s%s: model %s/%s cap %lld/%lld "
            "prompt %llu/%llu stream %d/%d\n",
            (int)(n < 120 ? n : 120), body, n > 120 ? "..." : "", w.model,
            s.model, (long long)w.max_output_tokens,
            (long long)s.max_output_tokens, (unsigned long long)w.prompt_chars,
            (unsigned long long)s.prompt_chars, w.stream, s.stream);
}

/* body, then every byte of it replaced by each of a few values that change
 * its structure (or deleted), at every `step`-th position. */
static size_t compare_variants(enum lm_api api, const char *body, size_t n,
                               size_t step) {
  static const char subst[] = {'"', '\\', '{', '}', '[', ']', ',',
                               ':', ' ',  'u', '0', '9', 'x', '\x80'};
  char *buf = malloc(n + 1);
  size_t runs = 0;
  compare(api, body, n);
  for (size_t i = 0; i < n; i += step) {
    memcpy(buf, body, n);
    for (size_t k = 0; k < sizeof subst; k++) {
      buf[i] = subst[k];
      compare(api, buf, n);
      runs++;
    }
    memcpy(buf + i, body + i + 1, n - i - 1); /* deleted */
    compare(api, buf, n - 1);
    runs++;
  }
  free(buf);
  return runs;
}

static const char *const edge_bodies[] = {
    "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":"
    "\"\\n\\nHuman: hi \\\"x\\\" \\u00e9\"}],\"max_tokens\":5}",
    "{\"m\\u006fdel\":\"a\",\"model\":\"b\\u0063\"}",
    "{\"model\":\"one\",\"model\":\"two\",\"stream\":true,\"stream\":false}",
    "{\"input\":[\"data:x\",\"d\\u0061ta:y\",\"\\u0064ata:\",\"dat\",\"da\\n"
    "ta:\",\"data\\u003a\",\"\\\\data:\"]}",
    "{\"messages\":[{\"content\":[{\"type\":\"image_url\",\"image_url\":{"
    "\"url\":\"data:image/png;base64,AAAA\"}},{\"type\":\"text\",\"text\":"
    "\"look\"}]}],\"system\":\"s\",\"documents\":[{\"data\":\"zz\"}]}",
    "{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":"
    "\"string\"}}}}}],\"functions\":{\"a\":{\"b\":1}}}",
    "{\"generationConfig\":{\"maxOutputTokens\":9},\"options\":{"
    "\"num_predict\":3},\"generation_config\":{\"max_output_tokens\":4}}",
    "{\"max_tokens\":1234567890123456789012345678901234567890123,"
    "\"max_output_tokens\":-5,\"max_completion_tokens\":1e3}",
    "{\"stream_options\":{\"include_usage\":true},\"stream_options\":[]}",
    "{\"messages\":\"x\"} trailing",
    "  {\"prompt\":\"p\"}\n",
    "[{\"prompt\":\"p\"}]",
    "\"just a string\"",
    "{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\":1,"
    "\"messages\":[{\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\":"
    "\"c\"}]}",
    "{\"model\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
};

/* Nested `depth` levels below "messages", a string at the bottom. */
static size_t nested(char *out, size_t size, int depth, const char *key) {
  size_t k = (size_t)snprintf(out, size, "{\"messages\":");
  for (int i = 0; i < depth; i++)
    k += (size_t)snprintf(out + k, size - k, i % 2 ? "[" : "{\"%s\":", key);
  k += (size_t)snprintf(out + k, size - k, "\"text\"");
  for (int i = depth - 1; i >= 0; i--)
    k += (size_t)snprintf(out + k, size - k, i % 2 ? "]" : "}");
  k += (size_t)snprintf(out + k, size - k, "}");
  return k;
}

LM_TEST(test_the_walk_reads_every_body_as_the_scanner_does) {
  static const enum lm_api apis[] = {LM_API_OPENAI_CHAT, LM_API_OLLAMA_CHAT};
  size_t runs = 0;
  differ = 0;
  for (size_t a = 0; a < 2; a++) {
    for (size_t i = 0; i < sizeof edge_bodies / sizeof edge_bodies[0]; i++)
      runs += compare_variants(apis[a], edge_bodies[i], strlen(edge_bodies[i]),
                               1);
    char buf[4096];
    for (int d = 18; d <= 30; d++)
      for (int k = 0; k < 2; k++) {
        size_t n = nested(buf, sizeof buf, d, k ? "data" : "images");
        runs += compare_variants(apis[a], buf, n, 1);
      }
  }
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t n = 0;
    char *body = read_fixture(cases[i].fixture, &n);
    CHECK(body != NULL);
    if (!body)
      continue;
    runs += compare_variants(cases[i].api, body, n, n > 2048 ? 13 : 1);
    free(body);
  }
  fprintf(stderr, "    %zu bodies read both ways, %zu differed\n", runs,
          differ);
  CHECK(runs > 100000);
  CHECK_EQ_U64(differ, 0);
}

int main(void) {
  LM_RUN(test_fixture_request_bodies);
  LM_RUN(test_max_completion_tokens_wins_over_max_tokens);
  LM_RUN(test_output_caps_of_every_api_are_read);
  LM_RUN(test_answers_asked_for_are_counted);
  LM_RUN(test_ollama_streams_by_default_unless_told_not_to);
  LM_RUN(test_stream_options_include_usage);
  LM_RUN(test_inline_binary_is_not_prompt_text);
  LM_RUN(test_model_outside_the_top_level_is_ignored);
  LM_RUN(test_malformed_body_keeps_what_was_read);
  LM_RUN(test_the_walk_reads_every_body_as_the_scanner_does);
  LM_TEST_END();
}
