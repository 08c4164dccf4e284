/* test_unmetered.c — the leak guard's policy (src/meter/unmetered.c).
 *
 * Plays the resolver hook: asks lm_meter_llm_host and lm_meter_resolve
 * what src/resolve/ asks, on a real shared-memory budget, with the
 * environment set case by case. The matrix is LLMMETER_UNMETERED (unset,
 * allow, warn, deny) × the hard limit (none, the budget's, a spend rule,
 * LLMMETER_LIMIT_USD) × LLMMETER_ON_ERROR (unset, open, closed); then what
 * is said (one line, once per process) and what is counted.
 */
#include <unistd.h>

#include "budget.h"
#include "config.h"
#include "lifecycle.h"
#include "lm_test.h"
#include "unmetered.h"

static char bname[64];
static struct lm_budget *B;
static char said[8192];
static int lines;

static void capture(const char *line, size_t len) {
  size_t n = strlen(said);
  lines++;
  if (n + len + 2 < sizeof(said)) {
    memcpy(said + n, line, len);
    said[n + len] = '\n';
    said[n + len + 1] = 0;
  }
}

static void env(const char *name, const char *value) {
  if (value)
    setenv(name, value, 1);
  else
    unsetenv(name);
}

/* A fresh process as far as the guard knows: settings re-read, nothing
 * said or counted yet, the budget's limits and counts as given. */
static void fresh(const char *unmetered, const char *on_error,
                  const char *limit_usd, int64_t hard_pusd, bool rule) {
  env("LLMMETER_UNMETERED", unmetered);
  env("LLMMETER_ON_ERROR", on_error);
  env("LLMMETER_LIMIT_USD", limit_usd);
  lm_config_reload();
  lm_meter_unmetered_forget();
  /* The same segment the meter has open: configured, never recreated. */
  char err[256];
  struct lm_limit_config c = LM_LIMITS_NONE;
  c.hard_pusd = hard_pusd;
  lm_budget_configure(B, &c);
  lm_budget_add_rule(B, LM_RULE_MODEL, "gpt-4o*", rule ? 1000000000000LL : -1,
                     err, sizeof(err));
  lm_budget_reset(B);
  said[0] = 0;
  lines = 0;
}

static void counts(uint64_t *denied, uint64_t *warned) {
  struct lm_snapshot s;
  lm_budget_snapshot(B, &s);
  *denied = s.unmetered_denied;
  *warned = s.unmetered_warned;
}

LM_TEST(test_known_llm_hosts_are_named_exactly_by_the_host_table) {
  fresh(NULL, NULL, NULL, -1, false);
  CHECK(lm_meter_llm_host("api.openai.com"));
  CHECK(lm_meter_llm_host("API.OpenAI.com."));
  CHECK(lm_meter_llm_host("api.anthropic.com"));
  CHECK(lm_meter_llm_host("api.groq.com"));
  CHECK(lm_meter_llm_host("openrouter.ai"));
  CHECK(!lm_meter_llm_host("openai.com"));
  CHECK(!lm_meter_llm_host("api.openai.com.evil.example"));
  CHECK(!lm_meter_llm_host("example.com"));
  /* glob rules name more than LLM APIs (*.googleapis.com is storage too) */
  CHECK(!lm_meter_llm_host("storage.googleapis.com"));
  CHECK(!lm_meter_llm_host("gateway.azure-api.net"));
  CHECK(!lm_meter_llm_host("speech.cognitiveservices.azure.com"));
  CHECK(!lm_meter_llm_host("bedrock.us-east-1.amazonaws.com"));
  CHECK(!lm_meter_llm_host("s3.us-east-1.amazonaws.com"));
  CHECK(!lm_meter_llm_host("app.modal.run"));
  CHECK(!lm_meter_llm_host("openai.azure.com.evil.example"));
  CHECK(!lm_meter_llm_host(".openai.azure.com"));
  /* ...but the LLM-only namespaces within them are LLM hosts: a static
   * node calling Gemini, Vertex, Azure OpenAI or Bedrock is seen */
  CHECK(lm_meter_llm_host("generativelanguage.googleapis.com"));
  CHECK(lm_meter_llm_host("us-central1-aiplatform.googleapis.com"));
  CHECK(lm_meter_llm_host("aiplatform.googleapis.com"));
  CHECK(lm_meter_llm_host("x.openai.azure.com"));
  CHECK(lm_meter_llm_host("My-Resource.OpenAI.Azure.com."));
  CHECK(lm_meter_llm_host("bedrock-runtime.us-east-1.amazonaws.com"));
  CHECK(lm_meter_llm_host("api.moonshot.cn"));
  CHECK(!lm_meter_llm_host(""));
  CHECK(!lm_meter_llm_host(NULL));
}

LM_TEST(test_hosts_named_in_llmmeter_endpoints_are_llm_hosts) {
  setenv("LLMMETER_ENDPOINTS",
         "*://llm.corp:8000/*=openai-chat, /llm/*, *://*/gateway/*,"
         "https://*.gw.example/*=@groq, https://quiet.corp/*=none",
         1);
  fresh(NULL, NULL, NULL, -1, false);
  CHECK(lm_meter_llm_host("llm.corp"));
  CHECK(lm_meter_llm_host("LLM.Corp."));
  CHECK(lm_meter_llm_host("eu.gw.example"));
  CHECK(!lm_meter_llm_host("other.corp"));
  CHECK(!lm_meter_llm_host("quiet.corp"));    /* =none exempts it */
  CHECK(!lm_meter_llm_host("example.com"));   /* "*" as host: every host */
  CHECK(lm_meter_llm_host("api.openai.com")); /* the table still counts */
  unsetenv("LLMMETER_ENDPOINTS");
  fresh(NULL, NULL, NULL, -1, false);
  CHECK(!lm_meter_llm_host("llm.corp"));
}

struct policy_case {
  const char *unmetered, *on_error, *limit_usd;
  int64_t hard_pusd;
  bool rule;
  enum lm_resolve_verdict want;
};

LM_TEST(test_policy_matrix_mode_by_hard_limit_by_fail_closed) {
  const int64_t five = 5000000000000LL;
  const enum lm_resolve_verdict P = LM_RESOLVE_PASS, W = LM_RESOLVE_WARN,
                                D = LM_RESOLVE_DENY;
  const struct policy_case cases[] = {
      /* default: refuse only under a hard limit that fails closed */
      {NULL, NULL, NULL, -1, false, W},
      {NULL, NULL, NULL, five, false, D},
      {NULL, NULL, NULL, -1, true, D}, /* a spend rule is a hard limit */
      {NULL, NULL, "5", -1, false, D}, /* LLMMETER_LIMIT_USD */
      {NULL, "open", NULL, five, false, W},
      {NULL, "open", "5", -1, false, W},
      {NULL, "closed", NULL, -1, false, W}, /* closed, but no limit */
      {NULL, "closed", NULL, five, false, D},
      /* allow: nothing, ever */
      {"allow", NULL, NULL, -1, false, P},
      {"allow", NULL, NULL, five, false, P},
      {"allow", "closed", "5", five, true, P},
      /* warn: never refuse */
      {"warn", NULL, NULL, -1, false, W},
      {"warn", NULL, NULL, five, false, W},
      {"warn", "closed", "5", five, true, W},
      /* deny: refuse even without a limit */
      {"deny", NULL, NULL, -1, false, D},
      {"deny", "open", NULL, -1, false, D},
      {"deny", NULL, NULL, five, false, D},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const struct policy_case *k = &cases[i];
    fresh(k->unmetered, k->on_error, k->limit_usd, k->hard_pusd, k->rule);
    enum lm_resolve_verdict got = lm_meter_resolve("api.openai.com", false);
    if (got != k->want)
      fprintf(
          stderr,
          "  case %zu: UNMETERED=%s ON_ERROR=%s LIMIT_USD=%s hard=%lld "
          "rule=%d\n",
          i, k->unmetered ? k->unmetered : "-", k->on_error ? k->on_error : "-",
          k->limit_usd ? k->limit_usd : "-", (long long)k->hard_pusd, k->rule);
    CHECK_EQ_I64(got, k->want);
    /* A TLS library llmmeter sees: nothing to guard, whatever the mode. */
    lm_meter_unmetered_forget();
    CHECK_EQ_I64(lm_meter_resolve("api.openai.com", true), LM_RESOLVE_PASS);
  }
}

LM_TEST(test_disabled_meter_passes_everything) {
  setenv("LLMMETER_DISABLE", "1", 1);
  fresh("deny", NULL, NULL, -1, false);
  CHECK_EQ_I64(lm_meter_resolve("api.openai.com", false), LM_RESOLVE_PASS);
  CHECK_EQ_I64(lines, 0);
  unsetenv("LLMMETER_DISABLE");
}

LM_TEST(test_refusal_is_one_line_naming_program_host_and_why) {
  fresh(NULL, NULL, NULL, 5000000000000LL, false);
  for (int i = 0; i < 3; i++)
    CHECK_EQ_I64(lm_meter_resolve("api.anthropic.com", false), LM_RESOLVE_DENY);
  CHECK_EQ_I64(lines, 1); /* refused every time, said once */
  CHECK(strstr(said, "llmmeter: refused to resolve api.anthropic.com for "
                     "test_unmetered[") == said);
  CHECK(strstr(said, "no TLS library llmmeter can see") != NULL);
  CHECK(strstr(said, "has a hard limit") != NULL);
  CHECK(strstr(said, bname) != NULL);
  CHECK(strchr(said, '\n') == said + strlen(said) - 1);
}

LM_TEST(test_warning_is_said_once_per_process) {
  fresh(NULL, NULL, NULL, -1, false);
  CHECK_EQ_I64(lm_meter_resolve("api.openai.com", false), LM_RESOLVE_WARN);
  CHECK_EQ_I64(lm_meter_resolve("api.openai.com", false), LM_RESOLVE_WARN);
  CHECK_EQ_I64(lm_meter_resolve("api.groq.com", false), LM_RESOLVE_WARN);
  CHECK_EQ_I64(lines, 1);
  CHECK(strstr(said, "llmmeter: warning: test_unmetered[") == said);
  CHECK(strstr(said, "resolves api.openai.com") != NULL);
  CHECK(strstr(said, "NOT metered") != NULL);
}

LM_TEST(test_processes_are_counted_once_for_each_verdict) {
  fresh(NULL, NULL, NULL, -1, false);
  uint64_t d, w;
  lm_meter_resolve("api.openai.com", false);
  lm_meter_resolve("api.openai.com", false);
  counts(&d, &w);
  CHECK_EQ_U64(d, 0);
  CHECK_EQ_U64(w, 1);
  /* A limit set while the process runs: now refused, counted once more. */
  struct lm_limit_config c = LM_LIMITS_KEEP;
  c.hard_pusd = 1000000000000LL;
  lm_budget_configure(B, &c);
  CHECK_EQ_I64(lm_meter_resolve("api.openai.com", false), LM_RESOLVE_DENY);
  CHECK_EQ_I64(lm_meter_resolve("api.openai.com", false), LM_RESOLVE_DENY);
  counts(&d, &w);
  CHECK_EQ_U64(d, 1);
  CHECK_EQ_U64(w, 1);
  CHECK_EQ_I64(lines, 2);
  /* Another process (as a fork()ed child would be): counted again. */
  lm_meter_unmetered_forget();
  lm_meter_resolve("api.openai.com", false);
  counts(&d, &w);
  CHECK_EQ_U64(d, 2);
  /* What passes is never counted. */
  lm_meter_unmetered_forget();
  lm_meter_resolve("api.openai.com", true);
  counts(&d, &w);
  CHECK_EQ_U64(d, 2);
  CHECK_EQ_U64(w, 1);
  /* reset zeroes them with the rest of the counts */
  lm_budget_reset(B);
  counts(&d, &w);
  CHECK_EQ_U64(d + w, 0);
}

LM_TEST(test_quiet_refuses_and_counts_but_says_nothing) {
  setenv("LLMMETER_QUIET", "1", 1);
  fresh("deny", NULL, NULL, -1, false);
  CHECK_EQ_I64(lm_meter_resolve("api.openai.com", false), LM_RESOLVE_DENY);
  CHECK_EQ_I64(lines, 0);
  uint64_t d, w;
  counts(&d, &w);
  CHECK_EQ_U64(d, 1);
  unsetenv("LLMMETER_QUIET");
}

LM_TEST(test_a_wrong_setting_is_one_clear_line_and_the_default) {
  fresh("sometimes", NULL, NULL, -1, false);
  const struct lm_config *c = lm_config_get();
  CHECK_EQ_I64(c->unmetered, LM_UNMETERED_DEFAULT);
  CHECK(strstr(c->errors, "LLMMETER_UNMETERED='sometimes' is not allow, "
                          "warn or deny") != NULL);
  CHECK_EQ_I64(lm_meter_resolve("api.openai.com", false), LM_RESOLVE_WARN);
  CHECK(strstr(said, "llmmeter: ignoring bad settings: LLMMETER_UNMETERED=") ==
        said);
  CHECK_EQ_I64(lines, 2); /* the setting, then the warning */
}

int main(void) {
  snprintf(bname, sizeof(bname), "lmtest-unmetered-%d", (int)getpid());
  setenv("LLMMETER_BUDGET", bname, 1);
  unsetenv("LLMMETER_LEDGER");
  unsetenv("LLMMETER_QUIET");
  unsetenv("LLMMETER_DISABLE");
  unsetenv("LLMMETER_ENDPOINTS");
  char err[256];
  struct lm_limit_config none = LM_LIMITS_NONE;
  if (lm_budget_create(bname, true, &none, &B, err, sizeof(err)) != 0) {
    fprintf(stderr, "create: %s\n", err);
    return 2;
  }
  lm_meter_set_printer(capture);
  LM_RUN(test_known_llm_hosts_are_named_exactly_by_the_host_table);
  LM_RUN(test_hosts_named_in_llmmeter_endpoints_are_llm_hosts);
  LM_RUN(test_policy_matrix_mode_by_hard_limit_by_fail_closed);
  LM_RUN(test_disabled_meter_passes_everything);
  LM_RUN(test_refusal_is_one_line_naming_program_host_and_why);
  LM_RUN(test_warning_is_said_once_per_process);
  LM_RUN(test_processes_are_counted_once_for_each_verdict);
  LM_RUN(test_quiet_refuses_and_counts_but_says_nothing);
  LM_RUN(test_a_wrong_setting_is_one_clear_line_and_the_default);
  lm_budget_close(B);
  lm_segment_remove(bname, NULL, 0);
  LM_TEST_END();
}
