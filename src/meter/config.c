/* config.c — reads LLMMETER_* once (see config.h). Never prints. */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget.h"
#include "money.h"
#include "price.h"

static struct lm_config cfg;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void note(const char *var, const char *val, const char *why) {
  size_t n = strlen(cfg.errors);
  snprintf(cfg.errors + n, sizeof(cfg.errors) - n, "%s%s='%.40s' %s",
           n ? "; " : "", var, val, why);
}

static int flag(const char *name) {
  const char *v = getenv(name);
  return v && *v && strcmp(v, "0") != 0 && strcmp(v, "false") != 0 &&
         strcmp(v, "no") != 0;
}

/* Copies of the string settings, owned here (freed only by a reload). */
static char *owned[8];
static int n_owned;

static const char *keep(const char *v) {
  if (!v || n_owned == (int)(sizeof(owned) / sizeof(owned[0])))
    return v;
  char *d = strdup(v);
  if (!d)
    return v;
  owned[n_owned++] = d;
  return d;
}

static void load(void) {
  for (int i = 0; i < n_owned; i++)
    free(owned[i]);
  n_owned = 0;
  memset(&cfg, 0, sizeof(cfg));
  const char *v;
  cfg.quiet = flag("LLMMETER_QUIET");
  cfg.disabled = flag("LLMMETER_DISABLE");
  cfg.inject = !getenv("LLMMETER_INJECT") || flag("LLMMETER_INJECT");
  cfg.deny_curlcode = 42; /* CURLE_ABORTED_BY_CALLBACK */
  cfg.on_error = -1;
  cfg.limit_pusd = -1;
  cfg.default_max_tokens = 4096;
  if ((v = getenv("LLMMETER_DENY")) && *v) {
    if (strcmp(v, "http") == 0)
      cfg.deny = LM_DENY_STYLE_HTTP;
    else if (strcmp(v, "error") != 0)
      note("LLMMETER_DENY", v, "is not 'error' or 'http'; using 'error'");
  }
  if ((v = getenv("LLMMETER_DENY_CURLCODE")) && *v) {
    char *end;
    long c = strtol(v, &end, 10);
    if (*end || c <= 0 || c > 99)
      note("LLMMETER_DENY_CURLCODE", v, "is not a CURLcode 1..99; using 42");
    else
      cfg.deny_curlcode = (int)c;
  }
  if ((v = getenv("LLMMETER_MIDSTREAM")) && *v) {
    if (strcmp(v, "finish") == 0)
      cfg.midstream_finish = true;
    else if (strcmp(v, "cut") != 0)
      note("LLMMETER_MIDSTREAM", v, "is not 'cut' or 'finish'; using 'cut'");
  }
  if ((v = getenv("LLMMETER_ON_ERROR")) && *v) {
    if (strcmp(v, "open") == 0)
      cfg.on_error = 0;
    else if (strcmp(v, "closed") == 0)
      cfg.on_error = 1;
    else
      note("LLMMETER_ON_ERROR", v, "is not 'open' or 'closed'");
  }
  if ((v = getenv("LLMMETER_LIMIT_USD")) && *v) {
    if (lm_money_parse_usd(v, &cfg.limit_pusd) != 0) {
      cfg.limit_pusd = -1;
      note("LLMMETER_LIMIT_USD", v, "is not an amount in USD");
      cfg.on_error = cfg.on_error < 0 ? 1 : cfg.on_error; /* meant a limit */
    }
  }
  if ((v = getenv("LLMMETER_DEFAULT_MAX_TOKENS")) && *v) {
    char *end;
    long long t = strtoll(v, &end, 10);
    if (*end || t <= 0)
      note("LLMMETER_DEFAULT_MAX_TOKENS", v, "is not a positive number");
    else
      cfg.default_max_tokens = t;
  }
  cfg.wait_ms = 30000;
  if ((v = getenv("LLMMETER_WAIT_S")) && *v) {
    int64_t ms;
    if (lm_money_parse(v, (size_t)-1, 3, 0, &ms) != 0 || ms > 86400000)
      note("LLMMETER_WAIT_S", v, "is not seconds (0..86400); using 30");
    else
      cfg.wait_ms = ms;
  }
  if ((v = getenv("LLMMETER_UNPRICED")) && *v) {
    if (strcmp(v, "deny") == 0)
      cfg.unpriced = LM_UNPRICED_DENY;
    else if (strcmp(v, "free") == 0)
      cfg.unpriced = LM_UNPRICED_FREE;
    else if (strcmp(v, "charge-max") != 0)
      note("LLMMETER_UNPRICED", v,
           "is not charge-max, deny or free; using charge-max");
  }
  if ((v = getenv("LLMMETER_UNMETERED")) && *v) {
    if (strcmp(v, "allow") == 0)
      cfg.unmetered = LM_UNMETERED_ALLOW;
    else if (strcmp(v, "warn") == 0)
      cfg.unmetered = LM_UNMETERED_WARN;
    else if (strcmp(v, "deny") == 0)
      cfg.unmetered = LM_UNMETERED_DENY;
    else
      note("LLMMETER_UNMETERED", v,
           "is not allow, warn or deny; refusing under a hard limit, "
           "else warning");
  }
  cfg.max_call_pusd = -1;
  cfg.max_call_input_tokens = -1;
  cfg.max_call_output_tokens = -1;
  if ((v = getenv("LLMMETER_MAX_CALL_USD")) && *v &&
      lm_money_parse_usd(v, &cfg.max_call_pusd) != 0) {
    cfg.max_call_pusd = -1;
    note("LLMMETER_MAX_CALL_USD", v, "is not an amount in USD");
  }
  const char *tok_caps[2] = {"LLMMETER_MAX_CALL_INPUT_TOKENS",
                             "LLMMETER_MAX_CALL_OUTPUT_TOKENS"};
  int64_t *tok_dst[2] = {&cfg.max_call_input_tokens,
                         &cfg.max_call_output_tokens};
  for (int i = 0; i < 2; i++) {
    if (!(v = getenv(tok_caps[i])) || !*v)
      continue;
    char *end;
    long long t = strtoll(v, &end, 10);
    if (*end || t <= 0)
      note(tok_caps[i], v, "is not a positive number of tokens");
    else
      *tok_dst[i] = t;
  }
  /* Kept as copies: some hosts (PHP's CLI) clobber environ before exit,
   * and a late reader must still find what the process started with. */
  cfg.endpoints = keep(getenv("LLMMETER_ENDPOINTS"));
  cfg.budget = keep(getenv("LLMMETER_BUDGET"));
  cfg.ledger = keep(getenv("LLMMETER_LEDGER"));
  cfg.library = keep(getenv("LLMMETER_LIBRARY"));
  cfg.prices = keep(getenv("LLMMETER_PRICES"));
  cfg.default_price = keep(getenv("LLMMETER_DEFAULT_PRICE"));
  /* The price module is told its sources here, before its first lookup. */
  lm_price_set_sources(cfg.prices, cfg.default_price);
  /* The budget engine its settings, before its first open. */
  struct lm_budget_env be = {.lease_ttl_ms = 120000};
  if ((v = getenv("LLMMETER_LEASE_TTL_S")) && *v) {
    int64_t ms;
    if (lm_money_parse(v, (size_t)-1, 3, 0, &ms) != 0 || ms < 1000 ||
        ms > 86400000)
      note("LLMMETER_LEASE_TTL_S", v, "is not seconds (1..86400); using 120");
    else
      be.lease_ttl_ms = ms;
  }
  be.redis_password = keep(getenv("LLMMETER_REDIS_PASSWORD"));
  if ((v = getenv("LLMMETER_REDIS_PASSWORD_FILE")) && *v &&
      !be.redis_password) {
    char pw[256] = "";
    FILE *f = fopen(v, "re");
    if (!f || !fgets(pw, sizeof(pw), f))
      note("LLMMETER_REDIS_PASSWORD_FILE", v, "cannot be read");
    if (f)
      fclose(f);
    pw[strcspn(pw, "\r\n")] = 0;
    if (pw[0])
      be.redis_password = keep(pw);
    memset(pw, 0, sizeof(pw));
  }
  lm_budget_set_env(&be);
  v = getenv("LLMMETER_AGENT");
  extern char *program_invocation_short_name;
  snprintf(cfg.agent, sizeof(cfg.agent), "%s",
           (v && *v)                       ? v
           : program_invocation_short_name ? program_invocation_short_name
                                           : "default");
}

const struct lm_config *lm_config_get(void) {
  pthread_once(&once, load);
  return &cfg;
}

void lm_config_reload(void) {
  pthread_once(&once, load);
  load();
}
