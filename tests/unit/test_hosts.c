/* test_hosts.c — who bills a call, by where it goes: the host table
 * generated from the price feed, the route of a URL (API, provider, the
 * URL's model) and the price policy on that route.
 *
 * The prices in the comments are the feed's, in USD per million tokens;
 * X USD per Mtok is X * 10^6 pico-USD per token.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "lm_test.h"
#include "price.h"
#include "pricing.h"
#include "provider_host.h"
#include "route.h"

static char tmpdir[512];

static const char *host_provider(const char *host, const char *path) {
  return lm_price_provider_for_host(host, strlen(host), path,
                                    path ? strlen(path) : 0);
}

struct host_case {
  const char *host, *path, *provider; /* provider NULL: unknown host */
};

static const struct host_case host_cases[] = {
    {"api.openai.com", NULL, "openai"},
    {"api.anthropic.com", NULL, "anthropic"},
    {"generativelanguage.googleapis.com", NULL, "google"},
    {"us-east5-aiplatform.googleapis.com", NULL, "google"}, /* Vertex */
    {"my-resource.openai.azure.com", NULL, "azure"},
    {"my-resource.cognitiveservices.azure.com", NULL, "azure"},
    {"api.groq.com", NULL, "groq"},
    {"api.deepseek.com", NULL, "deepseek"},
    {"api.mistral.ai", NULL, "mistral"},
    {"api.together.xyz", NULL, "together"},
    {"api.fireworks.ai", NULL, "fireworks"},
    {"api.x.ai", NULL, "x-ai"},
    {"api.cerebras.ai", NULL, "cerebras"},
    {"api.deepinfra.com", NULL, "deepinfra"}, /* not in the feed */
    {"openrouter.ai", NULL, "openrouter"},
    {"api.openrouter.ai", NULL, "openrouter"},
    {"api.perplexity.ai", NULL, "perplexity"},
    {"api.cohere.com", NULL, "cohere"},
    {"api.cohere.ai", NULL, "cohere"},
    {"bedrock-runtime.us-east-1.amazonaws.com", NULL, "aws"},
    {"api.moonshot.cn", NULL, "moonshotai"}, /* "api.moonshot." + any TLD */
    {"api.minimaxi.com", NULL, "minimax"},
    {"router.huggingface.co", "/groq/v1/chat/completions", "huggingface_groq"},
    {"router.huggingface.co", "/together", "huggingface_together"},
    /* Case and one trailing dot are the same host. */
    {"API.Groq.COM", NULL, "groq"},
    {"api.groq.com.", NULL, "groq"},
    /* Not the provider: a longer name, a lookalike, a bare suffix. */
    {"api.groq.com.evil.example", NULL, NULL},
    {"xapi.groq.com", NULL, NULL},
    {"evilapi.openai.com", NULL, NULL},
    {"bedrock-runtime..amazonaws.com", NULL, NULL},
    {"s3.amazonaws.com", NULL, NULL},
    {"router.huggingface.co", "/groqx/v1", NULL},
    {"router.huggingface.co", NULL, NULL},
    {"localhost", NULL, NULL},
    {"127.0.0.1", NULL, NULL},
    {"", NULL, NULL},
};

LM_TEST(test_host_names_the_provider_that_bills) {
  for (size_t i = 0; i < sizeof host_cases / sizeof *host_cases; i++) {
    const struct host_case *c = &host_cases[i];
    const char *got = host_provider(c->host, c->path);
    if (c->provider ? !got || strcmp(got, c->provider) != 0 : got != NULL) {
      fprintf(stderr, "  %s%s: got %s, want %s\n", c->host,
              c->path ? c->path : "", got ? got : "(none)",
              c->provider ? c->provider : "(none)");
      lm_t_cur_failed = 1;
    }
  }
  CHECK(lm_price_provider_for_host(NULL, 0, NULL, 0) == NULL);
}

LM_TEST(test_every_host_rule_names_a_provider_of_the_price_table) {
  /* The rules come from the same feed as the prices: each provider id is
   * one the lookup knows (deepinfra, added by hand, is the one exception:
   * the feed has no prices for it). */
  CHECK(lm_price_host_count > 40);
  for (size_t i = 0; i < lm_price_host_count; i++) {
    const struct lm_price_host *h = &lm_price_hosts[i];
    CHECK(h->host[0] && h->provider[0]);
    struct lm_price p;
    bool known = lm_price_provider_max(h->provider, &p);
    if (!known && strcmp(h->provider, "deepinfra") != 0) {
      fprintf(stderr, "  rule %s%s: provider %s has no prices\n", h->host,
              h->path, h->provider);
      lm_t_cur_failed = 1;
    }
  }
}

struct route_case {
  const char *url, *endpoints;
  enum lm_api api;
  const char *provider, *fallback;
  enum lm_route_by by;
  const char *url_model;
};

static const struct route_case route_cases[] = {
    {"https://api.groq.com/openai/v1/chat/completions", NULL,
     LM_API_OPENAI_CHAT, "groq", "openai", LM_ROUTE_BY_HOST, ""},
    {"http://api.groq.com:8080/openai/v1/chat/completions", NULL,
     LM_API_OPENAI_CHAT, "groq", "openai", LM_ROUTE_BY_HOST, ""},
    {"https://api.anthropic.com/v1/messages", NULL, LM_API_ANTHROPIC_MESSAGES,
     "anthropic", "anthropic", LM_ROUTE_BY_HOST, ""},
    {"https://us-east5-aiplatform.googleapis.com/v1/projects/p/locations/l/"
     "publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict",
     NULL, LM_API_ANTHROPIC_MESSAGES, "google", "anthropic", LM_ROUTE_BY_HOST,
     "claude-sonnet-4-5@20250929"},
    {"https://generativelanguage.googleapis.com/v1beta/models/"
     "gemini-2.5-flash:generateContent",
     NULL, LM_API_GEMINI_GENERATE, "google", "google", LM_ROUTE_BY_HOST,
     "gemini-2.5-flash"},
    {"https://r.openai.azure.com/openai/deployments/gpt-4o/chat/"
     "completions?api-version=2024-10-21",
     NULL, LM_API_OPENAI_CHAT, "azure", "openai", LM_ROUTE_BY_HOST, "gpt-4o"},
    /* Unknown hosts: the API's own provider. */
    {"http://127.0.0.1:8000/v1/chat/completions", NULL, LM_API_OPENAI_CHAT,
     "openai", "openai", LM_ROUTE_BY_API, ""},
    {"http://localhost:11434/api/generate", NULL, LM_API_OLLAMA_GENERATE,
     "ollama", "ollama", LM_ROUTE_BY_API, ""},
    /* LLMMETER_ENDPOINTS names the provider behind a proxy; first. */
    {"http://localhost:4000/v1/chat/completions", "*://localhost:4000/*=@groq",
     LM_API_OPENAI_CHAT, "groq", "openai", LM_ROUTE_BY_ENDPOINTS, ""},
    {"https://api.openai.com/v1/chat/completions", "*://api.openai.com/*=@xai",
     LM_API_OPENAI_CHAT, "x-ai", "openai", LM_ROUTE_BY_ENDPOINTS, ""},
    {"https://gw.corp/llm/claude", "/llm/*=anthropic@Bedrock",
     LM_API_ANTHROPIC_MESSAGES, "aws", "anthropic", LM_ROUTE_BY_ENDPOINTS, ""},
    {"https://gw.corp/llm/x", "/llm/*", LM_API_CUSTOM, "openai", "openai",
     LM_ROUTE_BY_API, ""},
};

LM_TEST(test_url_routes_to_api_provider_and_model) {
  for (size_t i = 0; i < sizeof route_cases / sizeof *route_cases; i++) {
    const struct route_case *c = &route_cases[i];
    struct lm_route r;
    bool ok = lm_route_url(c->url, strlen(c->url), c->endpoints, &r);
    if (!ok || r.api != c->api || strcmp(r.provider, c->provider) != 0 ||
        strcmp(r.fallback, c->fallback) != 0 || r.by != c->by) {
      fprintf(stderr, "  %s: got %d %s/%s by %s\n", c->url, r.api, r.provider,
              r.fallback, lm_route_by_name(r.by));
      lm_t_cur_failed = 1;
    }
    char model[128];
    CHECK_STR(lm_route_model(c->url, strlen(c->url), NULL, model, sizeof model),
              c->url_model);
    CHECK_STR(lm_route_model(c->url, strlen(c->url), "from-the-body", model,
                             sizeof model),
              "from-the-body");
  }
  struct lm_route r;
  const char *plain = "https://api.groq.com/openai/v1/models";
  CHECK(!lm_route_url(plain, strlen(plain), NULL, &r));
  CHECK(r.api == LM_API_NONE);
}

LM_TEST(test_caller_route_names_the_provider_as_the_table_spells_it) {
  struct lm_route r;
  lm_route_provider("Bedrock", &r);
  CHECK_STR(r.provider, "aws");
  CHECK(r.by == LM_ROUTE_BY_CALLER && !r.ollama_api);
  lm_route_provider("ollama", &r);
  CHECK(r.ollama_api);
  lm_route_provider(NULL, &r);
  CHECK_STR(r.provider, "");
  char model[16];
  CHECK_STR(lm_route_model(NULL, 0, "body-model", model, sizeof model),
            "body-model");
  CHECK_STR(lm_route_model(NULL, 0, "", model, sizeof model), "");
}

static struct lm_call_price price_at(const char *url, const char *model) {
  struct lm_route r;
  struct lm_call_price cp;
  memset(&cp, 0, sizeof cp);
  char buf[128];
  CHECK(lm_route_url(url, strlen(url), NULL, &r));
  lm_pricing_resolve_route(
      lm_route_model(url, strlen(url), model, buf, sizeof buf), &r, &cp);
  return cp;
}

LM_TEST(test_same_model_is_priced_by_who_bills_it) {
  /* openai/gpt-oss-120b: Groq $0.15 / $0.60, OpenRouter $0.039 / $0.18. */
  struct lm_call_price cp = price_at(
      "https://api.groq.com/openai/v1/chat/completions", "openai/gpt-oss-120b");
  CHECK_EQ_I64(cp.match.price.input, 150000);
  CHECK_EQ_I64(cp.match.price.output, 600000);
  cp = price_at("https://openrouter.ai/api/v1/chat/completions",
                "openai/gpt-oss-120b");
  CHECK_EQ_I64(cp.match.price.input, 39000);
  CHECK_EQ_I64(cp.match.price.output, 180000);
  /* gpt-oss-120b: Cerebras $0.35 / $0.75; an unknown host: OpenAI's. */
  cp = price_at("https://api.cerebras.ai/v1/chat/completions", "gpt-oss-120b");
  CHECK_EQ_I64(cp.match.price.input, 350000);
  cp = price_at("http://10.0.0.5:8000/v1/chat/completions", "gpt-oss-120b");
  CHECK_EQ_I64(cp.match.price.input, 39000);
  CHECK(!cp.unpriced);
  /* An unknown model at Groq: Groq's highest prices, flagged. */
  cp = price_at("https://api.groq.com/openai/v1/chat/completions",
                "no-such-model");
  CHECK(cp.unpriced);
  CHECK_STR(cp.match.provider, "groq");
  struct lm_price groq_max;
  CHECK(lm_price_provider_max("groq", &groq_max));
  CHECK_EQ_I64(cp.match.price.input, groq_max.input);
  /* DeepInfra has no prices in the table: the API's provider's highest. */
  cp = price_at("https://api.deepinfra.com/v1/openai/chat/completions",
                "no-such-model");
  CHECK_STR(cp.match.provider, "openai");
}

LM_TEST(test_ollama_call_is_free_only_without_a_known_price) {
  const char *gen = "http://localhost:11434/api/generate";
  struct lm_call_price cp = price_at(gen, "llama3.2");
  CHECK(cp.zero_priced && cp.local && !cp.unpriced);
  CHECK_EQ_I64(cp.match.price.input, 0);
  /* Never a cloud price by a similar name ("gpt-oss-120b" is OpenAI's). */
  cp = price_at(gen, "gpt-oss-120b");
  CHECK(cp.local);
  /* The user's price for the model wins, on the Ollama API too. */
  static const char json[] = "{\"llama3.2\": {\"input_cost_per_token\": 1e-07,"
                             " \"output_cost_per_token\": 2e-07}}";
  char path[600];
  snprintf(path, sizeof path, "%s/test_hosts_XXXXXX", tmpdir);
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  CHECK(write(fd, json, sizeof json - 1) == (ssize_t)(sizeof json - 1));
  close(fd);
  CHECK_EQ_I64(lm_price_load_file(path, NULL, 0), 1);
  cp = price_at(gen, "llama3.2");
  CHECK(!cp.local && !cp.zero_priced && !cp.unpriced);
  CHECK(cp.match.source == LM_PRICE_OVERRIDE);
  CHECK_EQ_I64(cp.match.price.input, 100000);
  CHECK_EQ_I64(cp.match.price.output, 200000);
  /* The C API's "ollama" is the same policy. */
  lm_pricing_resolve("llama3.2", "ollama", &cp);
  CHECK_EQ_I64(cp.match.price.input, 100000);
  lm_pricing_resolve("mistral-small3", "ollama", &cp);
  CHECK(cp.local && cp.zero_priced);
  lm_price_load_file(NULL, NULL, 0);
  unlink(path);
}

int main(void) {
  const char *t = getenv("LM_TEST_TMP");
  snprintf(tmpdir, sizeof tmpdir, "%s", t && *t ? t : "/tmp");
  unsetenv("LLMMETER_PRICES");
  unsetenv("LLMMETER_DEFAULT_PRICE");
  unsetenv("LLMMETER_UNPRICED");
  lm_config_reload();
  LM_RUN(test_host_names_the_provider_that_bills);
  LM_RUN(test_every_host_rule_names_a_provider_of_the_price_table);
  LM_RUN(test_url_routes_to_api_provider_and_model);
  LM_RUN(test_caller_route_names_the_provider_as_the_table_spells_it);
  LM_RUN(test_same_model_is_priced_by_who_bills_it);
  LM_RUN(test_ollama_call_is_free_only_without_a_known_price);
  LM_TEST_END();
}
