/* test_detect.c — endpoint detection by URL path, user patterns, and the
 * model a URL names. Tables of URLs, positive and negative.
 */
#include "detect.h"
#include "lm_test.h"

struct url_case {
  const char *url;
  enum lm_api api;
};

static const struct url_case builtin_cases[] = {
    /* OpenAI chat and compatibles */
    {"https://api.openai.com/v1/chat/completions", LM_API_OPENAI_CHAT},
    {"http://localhost:8080/v1/chat/completions", LM_API_OPENAI_CHAT},
    {"https://gw.example/openai/v1/chat/completions", LM_API_OPENAI_CHAT},
    {"https://openrouter.ai/api/v1/chat/completions", LM_API_OPENAI_CHAT},
    {"https://api.deepseek.com/chat/completions", LM_API_OPENAI_CHAT},
    {"https://api.groq.com/openai/v1/chat/completions", LM_API_OPENAI_CHAT},
    {"https://res.openai.azure.com/openai/deployments/gpt4o/chat/completions"
     "?api-version=2024-10-21",
     LM_API_OPENAI_CHAT},
    {"https://generativelanguage.googleapis.com/v1beta/openai/chat/completions",
     LM_API_OPENAI_CHAT},
    {"https://api.openai.com/v1/chat/completions/", LM_API_OPENAI_CHAT},
    {"https://api.openai.com/v1/chat/completions#frag", LM_API_OPENAI_CHAT},
    {"/v1/chat/completions", LM_API_OPENAI_CHAT},
    /* legacy completions */
    {"https://api.openai.com/v1/completions", LM_API_OPENAI_COMPLETIONS},
    {"https://r.openai.azure.com/openai/deployments/davinci/completions?api-version=1",
     LM_API_OPENAI_COMPLETIONS},
    /* Responses */
    {"https://api.openai.com/v1/responses", LM_API_OPENAI_RESPONSES},
    {"https://r.openai.azure.com/openai/responses?api-version=2025-04-01-preview",
     LM_API_OPENAI_RESPONSES},
    {"https://api.openai.com/v1/responses/resp_123", LM_API_NONE},
    {"https://api.openai.com/v1/responses/input_tokens", LM_API_NONE},
    {"https://api.openai.com/v1/responses/resp_1/cancel", LM_API_NONE},
    /* embeddings */
    {"https://api.openai.com/v1/embeddings", LM_API_OPENAI_EMBEDDINGS},
    {"https://r.openai.azure.com/openai/deployments/emb/embeddings?api-version=1",
     LM_API_OPENAI_EMBEDDINGS},
    {"http://localhost:11434/api/embeddings", LM_API_NONE},
    /* Anthropic */
    {"https://api.anthropic.com/v1/messages", LM_API_ANTHROPIC_MESSAGES},
    {"https://api.anthropic.com/v1/messages?beta=true",
     LM_API_ANTHROPIC_MESSAGES},
    {"https://gw.example/anthropic/v1/messages", LM_API_ANTHROPIC_MESSAGES},
    {"https://api.anthropic.com/v1/messages/count_tokens", LM_API_NONE},
    {"https://api.anthropic.com/v1/messages/batches", LM_API_NONE},
    {"https://api.anthropic.com/v1/messages/batches/b1/results", LM_API_NONE},
    {"https://us-east5-aiplatform.googleapis.com/v1/projects/p/locations/us-east5/"
     "publishers/anthropic/models/claude-sonnet-4@20250514:streamRawPredict",
     LM_API_ANTHROPIC_MESSAGES},
    /* Gemini */
    {"https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent",
     LM_API_GEMINI_GENERATE},
    {"https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
     LM_API_GEMINI_STREAM},
    {"https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash%3AgenerateContent",
     LM_API_GEMINI_GENERATE},
    {"https://generativelanguage.googleapis.com/v1beta/tunedModels/my-tune:generateContent",
     LM_API_GEMINI_GENERATE},
    {"https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/"
     "publishers/google/models/gemini-2.0-flash:streamGenerateContent",
     LM_API_GEMINI_STREAM},
    {"https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:countTokens",
     LM_API_NONE},
    {"https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash",
     LM_API_NONE},
    {"https://generativelanguage.googleapis.com/v1beta/files/x:generateContent",
     LM_API_NONE},
    /* Ollama, Cohere */
    {"http://localhost:11434/api/chat", LM_API_OLLAMA_CHAT},
    {"http://127.0.0.1:11434/api/generate", LM_API_OLLAMA_GENERATE},
    {"https://api.cohere.com/v2/chat", LM_API_COHERE_CHAT},
    {"https://api.cohere.ai/v1/chat", LM_API_NONE},
    /* ordinary traffic */
    {"https://example.com/", LM_API_NONE},
    {"https://example.com", LM_API_NONE},
    {"https://api.openai.com/v1/models", LM_API_NONE},
    {"https://example.com/search?q=/v1/chat/completions", LM_API_NONE},
    {"https://example.com/v1/chat/completions.html", LM_API_NONE},
    {"https://example.com/v1/messagesx", LM_API_NONE},
    {"", LM_API_NONE},
    {"not a url", LM_API_NONE},
};

LM_TEST(test_builtin_endpoints_are_detected_by_path_on_any_host) {
  for (size_t i = 0; i < sizeof builtin_cases / sizeof builtin_cases[0]; i++) {
    const struct url_case *c = &builtin_cases[i];
    enum lm_api got = lm_detect_api(c->url, strlen(c->url), NULL);
    if (got != c->api) {
      fprintf(stderr, "  %s: got %s want %s\n", c->url, lm_api_name(got),
              lm_api_name(c->api));
      lm_t_cur_failed = 1;
    }
  }
}

LM_TEST(test_url_length_bounds_the_match) {
  const char *u = "https://api.openai.com/v1/chat/completionsXYZ";
  CHECK(lm_detect_api(u, strlen(u) - 3, NULL) == LM_API_OPENAI_CHAT);
  CHECK(lm_detect_api(u, strlen(u), NULL) == LM_API_NONE);
  CHECK(lm_detect_api(NULL, 0, NULL) == LM_API_NONE);
}

LM_TEST(test_user_patterns_are_checked_first) {
  const char *pats =
      " /llm/*/generate = openai-chat , /internal/v1/messages=none,"
      "/custom/*";
  const char *a = "https://h.example/llm/x/generate?k=1";
  const char *b = "https://h.example/internal/v1/messages";
  const char *c = "https://h.example/custom/thing";
  const char *d = "https://api.anthropic.com/v1/messages";
  CHECK(lm_detect_api(a, strlen(a), pats) == LM_API_OPENAI_CHAT);
  CHECK(lm_detect_api(b, strlen(b), pats) == LM_API_NONE);
  CHECK(lm_detect_api(c, strlen(c), pats) == LM_API_CUSTOM);
  CHECK(lm_detect_api(d, strlen(d), pats) == LM_API_ANTHROPIC_MESSAGES);
  CHECK(lm_detect_api(d, strlen(d), "") == LM_API_ANTHROPIC_MESSAGES);
}

LM_TEST(test_user_pattern_with_scheme_matches_the_whole_url) {
  const char *pats = "https://llm.corp.example/*=anthropic";
  const char *a = "https://llm.corp.example/any/path?x=1";
  const char *b = "https://other.example/any/path";
  CHECK(lm_detect_api(a, strlen(a), pats) == LM_API_ANTHROPIC_MESSAGES);
  CHECK(lm_detect_api(b, strlen(b), pats) == LM_API_NONE);
}

LM_TEST(test_unknown_api_name_in_a_pattern_is_still_metered) {
  const char *a = "https://h/x";
  CHECK(lm_detect_api(a, strlen(a), "/x=opneai-chat") == LM_API_CUSTOM);
  char why[64];
  CHECK(!lm_detect_patterns_check("/a=openai-chat,/x=opneai-chat", why,
                                  sizeof why));
  CHECK_STR(why, "/x=opneai-chat");
  CHECK(!lm_detect_patterns_check("/a,,/b", why, sizeof why));
  CHECK(
      lm_detect_patterns_check("/a=openai-chat, /b=none ,/c", why, sizeof why));
}

LM_TEST(test_endpoints_entry_may_name_the_provider_that_bills) {
  /* "=api@provider" sets both; "=@provider" leaves the API to the built-in
   * rules; the first matching entry decides. */
  const char *pats = "*://localhost:4000/*=@groq, /gw/*=anthropic@Bedrock,"
                     "*://localhost:*/*=custom";
  char prov[32] = "junk";
  const char *a = "http://localhost:4000/v1/chat/completions";
  CHECK(lm_detect_route(a, strlen(a), pats, prov, sizeof prov) ==
        LM_API_OPENAI_CHAT);
  CHECK_STR(prov, "groq");
  const char *b = "https://gw.corp/gw/claude";
  CHECK(lm_detect_route(b, strlen(b), pats, prov, sizeof prov) ==
        LM_API_ANTHROPIC_MESSAGES);
  CHECK_STR(prov, "Bedrock");
  const char *c = "http://localhost:9000/v1/chat/completions";
  CHECK(lm_detect_route(c, strlen(c), pats, prov, sizeof prov) ==
        LM_API_CUSTOM);
  CHECK_STR(prov, "");
  /* "=@provider" on a path no built-in rule knows: not an LLM call. */
  const char *d = "http://localhost:4000/v1/models";
  CHECK(lm_detect_route(d, strlen(d), pats, prov, sizeof prov) == LM_API_NONE);
  /* No entry matches: the built-in rules, no provider. */
  const char *e = "https://api.groq.com/openai/v1/chat/completions";
  CHECK(lm_detect_route(e, strlen(e), pats, prov, sizeof prov) ==
        LM_API_OPENAI_CHAT);
  CHECK_STR(prov, "");
  CHECK(lm_detect_api(a, strlen(a), pats) == LM_API_OPENAI_CHAT);
  char why[64];
  CHECK(lm_detect_patterns_check(pats, why, sizeof why));
  CHECK(!lm_detect_patterns_check("/a=@", why, sizeof why));
  CHECK_STR(why, "/a=@");
  CHECK(!lm_detect_patterns_check("/a=openai-chat@gr oq", why, sizeof why));
  CHECK(!lm_detect_patterns_check("/a=@p/q", why, sizeof why));
  CHECK(!lm_detect_patterns_check("/a=@a-provider-name-longer-than-31-bytes",
                                  why, sizeof why));
}

struct host_case {
  const char *url, *host, *path;
};

static const struct host_case host_cases[] = {
    {"https://api.groq.com/openai/v1/chat/completions", "api.groq.com",
     "/openai/v1/chat/completions"},
    {"http://api.groq.com:8080/v1/x?y=1#z", "api.groq.com", "/v1/x"},
    {"https://user:pw@Api.Example.com:443/p", "Api.Example.com", "/p"},
    {"http://[::1]:11434/api/chat", "[::1]", "/api/chat"},
    {"https://router.huggingface.co", "router.huggingface.co", ""},
    {"/v1/chat/completions", NULL, NULL},
    {"https:///v1/chat/completions", NULL, NULL},
    {"http://[::1/api/chat", NULL, NULL},
};

LM_TEST(test_url_host_is_found_without_port_or_user_info) {
  for (size_t i = 0; i < sizeof host_cases / sizeof host_cases[0]; i++) {
    const struct host_case *c = &host_cases[i];
    const char *h = NULL, *p = NULL;
    size_t hl = 0, pl = 0;
    bool ok = lm_detect_url_host(c->url, strlen(c->url), &h, &hl, &p, &pl);
    CHECK(ok == (c->host != NULL));
    if (!ok || !c->host)
      continue;
    CHECK_EQ_U64(hl, strlen(c->host));
    CHECK(memcmp(h, c->host, hl) == 0);
    CHECK_EQ_U64(pl, strlen(c->path));
    CHECK(memcmp(p, c->path, pl) == 0);
  }
}

struct model_case {
  const char *url;
  const char *model;
};

static const struct model_case model_cases[] = {
    {"https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
     "gemini-2.5-flash"},
    {"https://x/v1/projects/p/locations/l/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict",
     "claude-sonnet-4@20250514"},
    {"https://r.openai.azure.com/openai/deployments/my-gpt4o/chat/completions?api-version=1",
     "my-gpt4o"},
    {"https://api.openai.com/v1/chat/completions", ""},
    {"https://h/v1beta/models/:generateContent", ""},
};

LM_TEST(test_model_is_read_from_gemini_and_azure_urls) {
  for (size_t i = 0; i < sizeof model_cases / sizeof model_cases[0]; i++) {
    char out[64] = "junk";
    const struct model_case *c = &model_cases[i];
    size_t n = lm_detect_model_from_url(c->url, strlen(c->url), out,
                                        sizeof out);
    CHECK_EQ_U64(n, strlen(c->model));
    if (n)
      CHECK_STR(out, c->model);
  }
}

LM_TEST(test_model_that_does_not_fit_is_not_reported) {
  const char *u = "https://h/v1beta/models/gemini-2.5-flash:generateContent";
  char out[8];
  CHECK_EQ_U64(lm_detect_model_from_url(u, strlen(u), out, sizeof out), 0);
}

int main(void) {
  LM_RUN(test_builtin_endpoints_are_detected_by_path_on_any_host);
  LM_RUN(test_url_length_bounds_the_match);
  LM_RUN(test_user_patterns_are_checked_first);
  LM_RUN(test_user_pattern_with_scheme_matches_the_whole_url);
  LM_RUN(test_unknown_api_name_in_a_pattern_is_still_metered);
  LM_RUN(test_endpoints_entry_may_name_the_provider_that_bills);
  LM_RUN(test_url_host_is_found_without_port_or_user_info);
  LM_RUN(test_model_is_read_from_gemini_and_azure_urls);
  LM_RUN(test_model_that_does_not_fit_is_not_reported);
  LM_TEST_END();
}
