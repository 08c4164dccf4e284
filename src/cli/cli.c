/* cli.c — the llmmeter command: create, inspect, change, reset and remove
 * budgets, and run a command under one.
 *
 * Parses flags strictly (an unknown flag or a bad value is a one-line error
 * and exit 2), talks to budgets only through budget.h, and is the only
 * place besides the hooks that prints.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "detect.h"
#include "money.h"
#include "pace.h"
#include "price.h"
#include "pricing.h"
#include "route.h"
#include "serve.h"
#include "window.h"

#ifndef LM_LIBDIR
#define LM_LIBDIR "/usr/local/lib"
#endif

static const char *usage_text =
    "usage: llmmeter COMMAND [OPTIONS]\n"
    "\n"
    "Hard, exact spending limits for LLM API calls of unmodified programs.\n"
    "Budgets live in POSIX shared memory, shared by every process of a user.\n"
    "\n"
    "Commands:\n"
    "  init [LIMITS] [--force]       create a budget (refuses to overwrite\n"
    "                                an existing one without --force)\n"
    "  status [--json|--prom] [--check]\n"
    "                                show spend, limits, tokens, models, agents;\n"
    "                                --check exits 3 when the hard limit is reached\n"
    "  watch [--interval S] [--count N]\n"
    "                                live view, refreshed every S seconds (1)\n"
    "  set LIMITS                    change limits live (\"none\" removes one)\n"
    "  reset                         zero the spend; keep the limits\n"
    "  rm                            remove the budget\n"
    "  list                          this user's budgets; with --budget\n"
    "                                redis://HOST:PORT[/DB] the budgets in that\n"
    "                                Redis (by SCAN; the password never shown)\n"
    "  run [LIMITS] [--quiet] -- CMD [ARGS...]\n"
    "                                run CMD with the library preloaded, creating\n"
    "                                the budget if needed; exits with CMD's code\n"
    "  prices MODEL... [--url URL] [--provider P] [--json]\n"
    "         [--usage input=N,output=N,cache_read=N,cache_write=N,\n"
    "         input_audio=N,output_audio=N,web_searches=N,requests=N,...]\n"
    "                                what a model resolves to in the price table\n"
    "                                (embedded, LLMMETER_PRICES overrides, or\n"
    "                                LLMMETER_DEFAULT_PRICE) and, with --usage,\n"
    "                                the exact cost of that usage (one call unless\n"
    "                                requests=N; audio, image, video and cache\n"
    "                                counts are parts of input and output); --url:\n"
    "                                what a call to URL is charged (its API and\n"
    "                                provider as the library decides them; MODEL\n"
    "                                may be left out when the URL names it);\n"
    "                                --provider: who bills it; MODEL max:PROVIDER\n"
    "                                shows what an unknown model of PROVIDER costs\n"
    "  report [FILE] [--by model|agent|provider|api|day] [--json]\n"
    "                                sum a ledger (LLMMETER_LEDGER) by model, agent,\n"
    "                                provider (who billed it), API or UTC day:\n"
    "                                calls, denials, exact cost, tokens\n"
    "  report [FILE] --html OUT [--budget NAME]\n"
    "                                the ledger as one self-contained page: spend\n"
    "                                over time by model and agent, cumulative spend\n"
    "                                against NAME's limits, denials and cuts\n"
    "  serve [--listen HOST:PORT] [--budget NAME]...\n"
    "                                serve /metrics (Prometheus) and /status.json\n"
    "                                for every budget of this user (or those named);\n"
    "                                read only; default 127.0.0.1:9464\n"
    "  help                          this text\n"
    "\n"
    "LIMITS (init, set, run):\n"
    "  --limit USD                   hard limit: LLM calls fail once it is reached\n"
    "  --soft USD                    warning threshold (default 80% of --limit)\n"
    "  --window none|hour|day|week|month\n"
    "                                spend resets at each UTC calendar boundary\n"
    "  --model-limit GLOB=USD        limit all models matching GLOB together\n"
    "                                (repeatable; e.g. 'claude-*=2.50')\n"
    "  --agent-limit GLOB=USD        limit agents (LLMMETER_AGENT) the same way\n"
    "  --token-limit N               input+output tokens per window\n"
    "  --request-limit N             LLM calls (steps) per window\n"
    "  --max-call-usd USD            refuse (or cut) any single call above this\n"
    "  --max-call-input-tokens N     ... any call with more input tokens\n"
    "  --max-call-output-tokens N    ... any call with more output tokens\n"
    "  --model-max-call GLOB=SPEC    the same caps for matching models; SPEC is\n"
    "                                usd:X, in:N or out:N, comma-separated\n"
    "                                (e.g. 'gpt-5*=usd:0.50,out:4000'; 'none' removes)\n"
    "  --agent-max-call GLOB=SPEC    the same for agents\n"
    "  --rpm N, --tpm N              requests / tokens per minute, shared by every\n"
    "  --input-tpm N, --output-tpm N process (a bucket of one minute's worth that\n"
    "                                refills continuously; calls over the rate wait\n"
    "                                their turn, up to LLMMETER_WAIT_S)\n"
    "  --model-rpm GLOB=N, --model-tpm GLOB=N\n"
    "                                the same for matching models, together\n"
    "  --max-llm-seconds S           total time inside LLM calls\n"
    "  --until TIME, --for DURATION  a deadline (2026-12-01T18:00Z; 90m, 2h, 1d)\n"
    "                                after which LLM calls are refused and cut\n"
    "  --on-soft CMD                 run CMD once per window when the soft limit\n"
    "                                is crossed (status JSON on its stdin)\n"
    "  --downgrade MAP               above the soft limit, rewrite the model of\n"
    "                                outgoing requests: 'gpt-4o=gpt-4o-mini,...'\n"
    "  --strict                      admit only calls whose estimate fits\n"
    "  --optimistic                  admit while spent+reserved < limit (default)\n"
    "\n"
    "Common options:\n"
    "  --budget NAME                 budget to use (default: $LLMMETER_BUDGET,\n"
    "                                else llmmeter-<uid>)\n"
    "  -h, --help                    help\n"
    "\n"
    "Exit codes: 0 ok; 1 error (missing, corrupt or foreign budget); 2 bad\n"
    "usage; 3 status --check found the hard limit reached; run: the command's\n"
    "own code (128+N if killed by signal N), 125 if llmmeter failed, 127 if\n"
    "the command was not found.\n"
    "\n"
    "Environment (read by the library): LLMMETER_BUDGET, LLMMETER_LIMIT_USD,\n"
    "LLMMETER_AGENT, LLMMETER_ON_ERROR, LLMMETER_DENY, LLMMETER_DENY_CURLCODE,\n"
    "LLMMETER_MIDSTREAM, LLMMETER_QUIET, LLMMETER_ENDPOINTS, LLMMETER_PRICES,\n"
    "LLMMETER_DEFAULT_PRICE, LLMMETER_DEFAULT_MAX_TOKENS, LLMMETER_UNPRICED,\n"
    "LLMMETER_WAIT_S, LLMMETER_MAX_CALL_USD, LLMMETER_MAX_CALL_INPUT_TOKENS,\n"
    "LLMMETER_MAX_CALL_OUTPUT_TOKENS, LLMMETER_INJECT, LLMMETER_LEDGER,\n"
    "LLMMETER_DISABLE; and LLMMETER_LIBRARY for `run`. See README.md.\n";

static void die_usage(const char *fmt, const char *arg) {
  fprintf(stderr, "llmmeter: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, " (see 'llmmeter --help')\n");
  exit(LM_EXIT_USAGE);
}

struct rule_arg {
  int kind;
  char pattern[LM_NAME_MAX];
  int64_t limit; /* -1 removes */
};

struct opts {
  const char *budget; /* resolved after parsing: never NULL */
  char budget_name[LM_BUDGET_URL_MAX];
  struct lm_limit_config cfg;
  struct rule_arg rules[LM_RULES * 2];
  int n_rules;
  int force, json, prom, check, quiet, any_limit;
  double interval;
  long count;
  char **cmd; /* run: after -- */
};

static int64_t parse_usd_or_none(const char *flag, const char *v) {
  int64_t x;
  if (v && strcmp(v, "none") == 0)
    return -1;
  if (!v || lm_money_parse_usd(v, &x) != 0) {
    fprintf(stderr,
            "llmmeter: %s needs an amount in USD such as 5 or 2.50, "
            "or 'none' (got '%s')\n",
            flag, v ? v : "");
    exit(LM_EXIT_USAGE);
  }
  return x;
}

static int64_t parse_count_or_none(const char *flag, const char *v) {
  if (v && strcmp(v, "none") == 0)
    return -1;
  char *end = NULL;
  errno = 0;
  long long x = v ? strtoll(v, &end, 10) : -1;
  if (!v || !*v || *end || errno || x < 0) {
    fprintf(stderr, "llmmeter: %s needs a whole number or 'none' (got '%s')\n",
            flag, v ? v : "");
    exit(LM_EXIT_USAGE);
  }
  return x;
}

/* GLOB=usd:X,in:N,out:N (or GLOB=none): one rule per measure. */
static void parse_cap_rule(struct opts *o, int target, const char *flag,
                           const char *v) {
  const char *eq = v ? strrchr(v, '=') : NULL;
  if (!eq || eq == v || (size_t)(eq - v) >= LM_NAME_MAX) {
    fprintf(stderr, "llmmeter: %s needs GLOB=usd:X,in:N,out:N (got '%s')\n",
            flag, v ? v : "");
    exit(LM_EXIT_USAGE);
  }
  char spec[128];
  snprintf(spec, sizeof(spec), "%s", eq + 1);
  int none = strcmp(spec, "none") == 0;
  static const struct {
    const char *name;
    int measure;
  } ms[] = {{"usd", LM_RULE_CALL_USD},
            {"in", LM_RULE_CALL_INPUT},
            {"out", LM_RULE_CALL_OUTPUT}};
  for (size_t m = 0; m < 3; m++) {
    const char *val = NULL;
    char *save = NULL, buf[128];
    snprintf(buf, sizeof(buf), "%s", spec);
    for (char *t = strtok_r(buf, ",", &save); t && !none;
         t = strtok_r(NULL, ",", &save)) {
      char *colon = strchr(t, ':');
      int known = 0;
      for (size_t k = 0; k < 3; k++)
        known |= colon && (size_t)(colon - t) == strlen(ms[k].name) &&
                 strncmp(t, ms[k].name, strlen(ms[k].name)) == 0;
      if (!known) {
        fprintf(stderr, "llmmeter: %s: '%s' is not usd:X, in:N or out:N\n",
                flag, t);
        exit(LM_EXIT_USAGE);
      }
      if (strncmp(t, ms[m].name, strlen(ms[m].name)) == 0 &&
          t[strlen(ms[m].name)] == ':')
        val = colon + 1;
    }
    if (!val && !none)
      continue;
    if (o->n_rules >= (int)(sizeof(o->rules) / sizeof(o->rules[0])))
      die_usage("too many %s flags", flag);
    struct rule_arg *r = &o->rules[o->n_rules++];
    r->kind = target | ms[m].measure;
    memcpy(r->pattern, v, (size_t)(eq - v));
    r->pattern[eq - v] = 0;
    r->limit = none ? -1
               : ms[m].measure == LM_RULE_CALL_USD
                   ? parse_usd_or_none(flag, val)
                   : parse_count_or_none(flag, val);
  }
}

/* "2h", "90m", "45s", "1d", "3600" -> seconds. */
static int64_t parse_duration(const char *flag, const char *v) {
  char *end = NULL;
  errno = 0;
  long long n = v ? strtoll(v, &end, 10) : -1;
  long long mul = 1;
  if (end && *end) {
    if (!strcmp(end, "s"))
      mul = 1;
    else if (!strcmp(end, "m"))
      mul = 60;
    else if (!strcmp(end, "h"))
      mul = 3600;
    else if (!strcmp(end, "d"))
      mul = 86400;
    else
      n = -1;
  }
  if (!v || !*v || errno || n < 0 || n > 100LL * 365 * 86400) {
    fprintf(stderr,
            "llmmeter: %s needs a duration such as 90m, 2h or 1d "
            "(got '%s')\n",
            flag, v ? v : "");
    exit(LM_EXIT_USAGE);
  }
  return n * mul;
}

/* 2026-12-01T18:00Z, 2026-12-01T18:00:00Z, 2026-12-01 (UTC). */
static int64_t parse_time(const char *flag, const char *v) {
  struct tm tm;
  memset(&tm, 0, sizeof(tm));
  const char *fmts[] = {"%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%MZ",
                        "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"};
  for (size_t i = 0; v && i < sizeof(fmts) / sizeof(fmts[0]); i++) {
    memset(&tm, 0, sizeof(tm));
    const char *e = strptime(v, fmts[i], &tm);
    if (e && !*e)
      return (int64_t)timegm(&tm);
  }
  fprintf(stderr,
          "llmmeter: %s needs a UTC time such as 2026-12-01T18:00Z "
          "(got '%s')\n",
          flag, v ? v : "");
  exit(LM_EXIT_USAGE);
}

/* GLOB=VALUE for rule flags: appends a rule with the glob and returns it,
 * with VALUE in *value (a one-line error and exit 2 otherwise). */
static struct rule_arg *new_rule(struct opts *o, int kind, const char *flag,
                                 const char *v, const char *example,
                                 const char **value) {
  const char *eq = v ? strrchr(v, '=') : NULL;
  if (!eq || eq == v || (size_t)(eq - v) >= LM_NAME_MAX) {
    fprintf(stderr, "llmmeter: %s needs GLOB=VALUE, e.g. '%s' (got '%s')\n",
            flag, example, v ? v : "");
    exit(LM_EXIT_USAGE);
  }
  if (o->n_rules >= (int)(sizeof(o->rules) / sizeof(o->rules[0])))
    die_usage("too many %s flags", flag);
  struct rule_arg *r = &o->rules[o->n_rules++];
  r->kind = kind;
  memcpy(r->pattern, v, (size_t)(eq - v));
  r->pattern[eq - v] = 0;
  *value = eq + 1;
  return r;
}

/* GLOB=N (or GLOB=none) for count rules such as --model-rpm. */
static void parse_count_rule(struct opts *o, int kind, const char *flag,
                             const char *v) {
  const char *val;
  struct rule_arg *r = new_rule(o, kind, flag, v, "claude-*=50", &val);
  r->limit = parse_count_or_none(flag, val);
}

/* GLOB=USD (or GLOB=none) for spend rules. */
static void parse_rule(struct opts *o, int kind, const char *flag,
                       const char *v) {
  const char *val;
  struct rule_arg *r = new_rule(o, kind, flag, v, "claude-*=2.50", &val);
  r->limit = parse_usd_or_none(flag, val);
}

/* Parses argv[i..]; `allowed` names which option groups this command takes:
 * L limits, F --force, S status formats, W watch, R run. */
static void parse_opts(int argc, char **argv, int i, const char *allowed,
                       struct opts *o) {
  memset(o, 0, sizeof(*o));
  o->cfg = LM_LIMITS_KEEP;
  o->interval = 1;
  o->count = -1;
  int L = strchr(allowed, 'L') != NULL;
  for (; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define TAKES(name)        \
  (strcmp(a, name) == 0 && \
   (v ? (i++, 1) : (die_usage("%s needs a value", a), 0)))
    if (strcmp(a, "--") == 0 && strchr(allowed, 'R')) {
      o->cmd = &argv[i + 1];
      return;
    } else if (TAKES("--budget")) {
      if (strncmp(v, "redis://", 8) != 0 && !lm_segment_name_valid(v))
        die_usage("invalid budget name '%s': use letters, digits, '.', '_' "
                  "and '-', or redis://[:PASSWORD@]HOST:PORT[/DB]/NAME",
                  v);
      o->budget = v;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(usage_text, stdout);
      exit(LM_EXIT_OK);
    } else if (L && TAKES("--limit")) {
      o->cfg.hard_pusd = parse_usd_or_none(a, v);
      o->any_limit = 1;
    } else if (L && TAKES("--soft")) {
      o->cfg.soft_pusd = parse_usd_or_none(a, v);
      o->any_limit = 1;
    } else if (L && TAKES("--window")) {
      o->cfg.window = lm_window_parse(v);
      if (o->cfg.window < 0)
        die_usage("unknown window '%s': use none, hour, day, week or month", v);
      o->any_limit = 1;
    } else if (L && TAKES("--model-limit")) {
      parse_rule(o, LM_RULE_MODEL, a, v);
      o->any_limit = 1;
    } else if (L && TAKES("--agent-limit")) {
      parse_rule(o, LM_RULE_AGENT, a, v);
      o->any_limit = 1;
    } else if (L &&
               (TAKES("--max-call-usd") || TAKES("--max-call-input-tokens") ||
                TAKES("--max-call-output-tokens") || TAKES("--rpm") ||
                TAKES("--tpm") || TAKES("--input-tpm") ||
                TAKES("--output-tpm"))) {
      /* Plain numeric limits: which field, and whether it is money. */
      static const struct {
        const char *flag;
        size_t off;
        int money;
      } nums[] = {
          {"--max-call-usd", offsetof(struct lm_limit_config, max_call_pusd),
           1},
          {"--max-call-input-tokens",
           offsetof(struct lm_limit_config, max_call_input_tokens), 0},
          {"--max-call-output-tokens",
           offsetof(struct lm_limit_config, max_call_output_tokens), 0},
          {"--rpm", offsetof(struct lm_limit_config, rpm), 0},
          {"--tpm", offsetof(struct lm_limit_config, tpm), 0},
          {"--input-tpm", offsetof(struct lm_limit_config, itpm), 0},
          {"--output-tpm", offsetof(struct lm_limit_config, otpm), 0},
      };
      for (size_t k = 0; k < sizeof(nums) / sizeof(nums[0]); k++)
        if (strcmp(a, nums[k].flag) == 0)
          *(int64_t *)((char *)&o->cfg +
                       nums[k].off) = nums[k].money ? parse_usd_or_none(a, v)
                                                    : parse_count_or_none(a, v);
      o->any_limit = 1;
    } else if (L && TAKES("--model-max-call")) {
      parse_cap_rule(o, LM_RULE_MODEL, a, v);
      o->any_limit = 1;
    } else if (L && TAKES("--agent-max-call")) {
      parse_cap_rule(o, LM_RULE_AGENT, a, v);
      o->any_limit = 1;
    } else if (L && (TAKES("--model-rpm") || TAKES("--model-tpm"))) {
      parse_count_rule(
          o, LM_RULE_MODEL | (a[8] == 'r' ? LM_RULE_RPM : LM_RULE_TPM), a, v);
      o->any_limit = 1;
    } else if (L && TAKES("--max-llm-seconds")) {
      int64_t sec = strcmp(v, "none") == 0 ? -1 : parse_duration(a, v);
      o->cfg.max_llm_ns = sec < 0 ? -1 : sec * 1000000000LL;
      o->any_limit = 1;
    } else if (L && TAKES("--until")) {
      o->cfg.deadline = strcmp(v, "none") == 0 ? -1 : parse_time(a, v);
      o->any_limit = 1;
    } else if (L && TAKES("--for")) {
      o->cfg.deadline = (int64_t)time(NULL) + parse_duration(a, v);
      o->any_limit = 1;
    } else if (L && TAKES("--on-soft")) {
      if (strlen(v) >= 256)
        die_usage("%s", "--on-soft: the command must be under 256 bytes");
      o->cfg.on_soft = strcmp(v, "none") == 0 ? "" : v;
      o->any_limit = 1;
    } else if (L && TAKES("--downgrade")) {
      if (strlen(v) >= 512)
        die_usage("%s", "--downgrade: the map must be under 512 bytes");
      if (strcmp(v, "none") != 0) {
        char buf[512];
        snprintf(buf, sizeof(buf), "%s", v);
        char *save = NULL;
        for (char *e2 = strtok_r(buf, ",", &save); e2;
             e2 = strtok_r(NULL, ",", &save)) {
          char *eq = strchr(e2, '=');
          if (!eq || eq == e2 || !eq[1] || strchr(eq + 1, '=') ||
              strpbrk(eq + 1, "\"\\"))
            die_usage(
                "--downgrade needs FROM_GLOB=TO_MODEL,... (bad entry '%s')",
                e2);
        }
      }
      o->cfg.downgrade = strcmp(v, "none") == 0 ? "" : v;
      o->any_limit = 1;
    } else if (L && TAKES("--token-limit")) {
      o->cfg.tokens = parse_count_or_none(a, v);
      o->any_limit = 1;
    } else if (L && TAKES("--request-limit")) {
      o->cfg.requests = parse_count_or_none(a, v);
      o->any_limit = 1;
    } else if (L && strcmp(a, "--strict") == 0) {
      o->cfg.mode = LM_MODE_STRICT;
      o->any_limit = 1;
    } else if (L && strcmp(a, "--optimistic") == 0) {
      o->cfg.mode = LM_MODE_OPTIMISTIC;
      o->any_limit = 1;
    } else if (strchr(allowed, 'F') && strcmp(a, "--force") == 0) {
      o->force = 1;
    } else if (strchr(allowed, 'S') && strcmp(a, "--json") == 0) {
      o->json = 1;
    } else if (strchr(allowed, 'S') && strcmp(a, "--prom") == 0) {
      o->prom = 1;
    } else if (strchr(allowed, 'S') && strcmp(a, "--check") == 0) {
      o->check = 1;
    } else if (strchr(allowed, 'W') && TAKES("--interval")) {
      char *end;
      o->interval = strtod(v, &end);
      if (*end || !(o->interval >= 0.05 && o->interval <= 3600))
        die_usage("--interval needs seconds between 0.05 and 3600 (got '%s')",
                  v);
    } else if (strchr(allowed, 'W') && TAKES("--count")) {
      o->count = (long)parse_count_or_none(a, v);
    } else if (strchr(allowed, 'R') && strcmp(a, "--quiet") == 0) {
      o->quiet = 1;
    } else {
      die_usage("unknown option '%s'", a);
    }
#undef TAKES
  }
  if (o->json && o->prom)
    die_usage("%s", "--json and --prom are exclusive");
}

static int open_budget(const struct opts *o, struct lm_budget **b) {
  char err[256];
  int rc = lm_budget_open(o->budget, false, b, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "llmmeter: %s\n", err);
    return LM_EXIT_ERROR;
  }
  return 0;
}

static int apply_rules(struct lm_budget *b, const struct opts *o) {
  char err[256];
  for (int i = 0; i < o->n_rules; i++) {
    const struct rule_arg *r = &o->rules[i];
    if (lm_budget_add_rule(b, r->kind, r->pattern, r->limit, err,
                           sizeof(err)) != 0) {
      fprintf(stderr, "llmmeter: %s\n", err);
      return LM_EXIT_ERROR;
    }
  }
  return 0;
}

static struct lm_snapshot snap; /* ~170 KiB: keep it off the stack */

static int cmd_init(const struct opts *o) {
  struct lm_budget *b;
  char err[256];
  struct lm_limit_config cfg = o->cfg;
  /* A new budget starts from "no limit" for everything not given. */
  if (cfg.hard_pusd == LM_KEEP)
    cfg.hard_pusd = -1;
  if (cfg.soft_pusd == LM_KEEP)
    cfg.soft_pusd = -1;
  if (cfg.tokens == LM_KEEP)
    cfg.tokens = -1;
  if (cfg.requests == LM_KEEP)
    cfg.requests = -1;
  if (cfg.max_call_pusd == LM_KEEP)
    cfg.max_call_pusd = -1;
  if (cfg.max_call_input_tokens == LM_KEEP)
    cfg.max_call_input_tokens = -1;
  if (cfg.max_call_output_tokens == LM_KEEP)
    cfg.max_call_output_tokens = -1;
  int64_t *more[] = {&cfg.rpm,  &cfg.tpm,      &cfg.itpm,
                     &cfg.otpm, &cfg.deadline, &cfg.max_llm_ns};
  for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++)
    if (*more[i] == LM_KEEP)
      *more[i] = -1;
  if (lm_budget_create(o->budget, o->force, &cfg, &b, err, sizeof(err)) != 0) {
    fprintf(stderr, "llmmeter: %s\n", err);
    return LM_EXIT_ERROR;
  }
  int rc = apply_rules(b, o);
  lm_budget_snapshot(b, &snap);
  lm_budget_close(b);
  if (rc == 0) {
    char a[40];
    printf("created budget '%s' (limit %s%s)\n", snap.name,
           snap.hard_pusd < 0 ? "none" : "$",
           snap.hard_pusd < 0
               ? ""
               : lm_money_format_display(snap.hard_pusd, 2, a, sizeof(a)));
  }
  return rc;
}

static int cmd_set(const struct opts *o) {
  if (!o->any_limit)
    die_usage("%s", "set needs at least one limit option");
  struct lm_budget *b;
  int rc = open_budget(o, &b);
  if (rc)
    return rc;
  if (lm_budget_configure(b, &o->cfg) != 0) {
    fprintf(stderr, "llmmeter: budget '%s': its limits could not be set\n",
            lm_budget_name(b));
    lm_budget_close(b);
    return LM_EXIT_ERROR;
  }
  rc = apply_rules(b, o);
  lm_budget_close(b);
  return rc;
}

static int cmd_status(const struct opts *o) {
  struct lm_budget *b;
  int rc = open_budget(o, &b);
  if (rc)
    return rc;
  lm_budget_reclaim(b); /* refund leases of dead processes before showing */
  lm_budget_snapshot(b, &snap);
  lm_budget_close(b);
  lm_pace_print_status(stdout, &snap,
                       o->json   ? LM_FMT_JSON
                       : o->prom ? LM_FMT_PROM
                                 : LM_FMT_TABLE,
                       NULL);
  if (o->check && snap.hard_pusd >= 0 && snap.total.spent >= snap.hard_pusd)
    return LM_EXIT_OVER;
  return 0;
}

static int cmd_watch(const struct opts *o) {
  struct lm_budget *b;
  int rc = open_budget(o, &b);
  if (rc)
    return rc;
  int tty = isatty(STDOUT_FILENO);
  static struct lm_pace_samples samples; /* 64 KiB: off the stack */
  for (long n = 0; o->count < 0 || n < o->count; n++) {
    if (n) {
      struct timespec ts = {(time_t)o->interval,
                            (long)((o->interval - (time_t)o->interval) * 1e9)};
      nanosleep(&ts, NULL);
    }
    lm_budget_reclaim(b);
    lm_budget_snapshot(b, &snap);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    lm_pace_sample(&samples, now.tv_sec * 1000LL + now.tv_nsec / 1000000,
                   snap.total.spent);
    if (tty)
      fputs("\033[H\033[2J", stdout);
    lm_pace_print_status(stdout, &snap, LM_FMT_TABLE, &samples);
    if (!tty)
      fputs("\n", stdout);
    fflush(stdout);
  }
  lm_budget_close(b);
  return 0;
}

static int cmd_reset(const struct opts *o) {
  struct lm_budget *b;
  int rc = open_budget(o, &b);
  if (rc)
    return rc;
  rc = lm_budget_reset(b) == 0 ? 0 : LM_EXIT_ERROR;
  lm_budget_close(b);
  if (rc)
    fprintf(stderr, "llmmeter: could not reset the budget\n");
  return rc;
}

static int cmd_rm(const struct opts *o) {
  char name[LM_BUDGET_URL_MAX], err[256];
  lm_budget_resolve_name(o->budget, NULL, name, sizeof(name));
  if (lm_budget_remove(name, err, sizeof(err)) != 0) {
    fprintf(stderr, "llmmeter: %s\n", err);
    return LM_EXIT_ERROR;
  }
  return 0;
}

static void list_one(const char *name, void *ctx) {
  (void)ctx;
  struct lm_budget *b;
  char err[256], a[40], c[40], shown[LM_BUDGET_URL_MAX];
  lm_budget_display_name(name, shown, sizeof(shown)); /* no password */
  if (lm_budget_open(name, false, &b, err, sizeof(err)) != 0) {
    printf("%-32s (unusable: %s)\n", shown, err);
    return;
  }
  lm_budget_snapshot(b, &snap);
  lm_budget_close(b);
  printf("%-32s spent $%-12s limit %s%s\n", shown,
         lm_money_format_display(snap.total.spent, 4, a, sizeof(a)),
         snap.hard_pusd < 0 ? "none" : "$",
         snap.hard_pusd < 0
             ? ""
             : lm_money_format_display(snap.hard_pusd, 2, c, sizeof(c)));
}

/* This user's shared-memory budgets; with --budget redis://HOST:PORT[/DB]
 * (or a budget URL on that server, or LLMMETER_BUDGET naming one), the
 * budgets in that Redis database. */
static int cmd_list(const struct opts *o) {
  char err[256];
  if (lm_budget_list(o->budget, list_one, NULL, err, sizeof(err)) != 0) {
    fprintf(stderr, "llmmeter: %s\n", err);
    return LM_EXIT_ERROR;
  }
  return 0;
}

/* The library beside this executable (build tree or installed tree). */
static int find_library(char *out, size_t size) {
  const char *env = lm_config_get()->library;
  if (env && access(env, R_OK) == 0) {
    snprintf(out, size, "%s", env);
    return 0;
  }
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) {
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) {
      *slash = 0;
      const char *rel[] = {"/libllmmeter.so", "/../lib/libllmmeter.so"};
      for (size_t i = 0; i < 2; i++) {
        /* Lengths known: copied, not printed (gcc's -Wformat-truncation
         * cannot see the check above and fails the SAN=1 build). */
        size_t el = strlen(exe), rl = strlen(rel[i]);
        if (el + rl >= size)
          continue;
        memcpy(out, exe, el);
        memcpy(out + el, rel[i], rl + 1);
        if (access(out, R_OK) == 0)
          return 0;
      }
    }
  }
  snprintf(out, size, "%s/libllmmeter.so", LM_LIBDIR);
  return access(out, R_OK) == 0 ? 0 : -1;
}

static int cmd_run(const struct opts *o) {
  if (!o->cmd || !o->cmd[0])
    die_usage("%s", "run needs a command after --");
  char lib[PATH_MAX], err[256], name[LM_BUDGET_URL_MAX];
  if (find_library(lib, sizeof(lib)) != 0) {
    fprintf(stderr, "llmmeter: cannot find libllmmeter.so (set "
                    "LLMMETER_LIBRARY)\n");
    return LM_EXIT_RUN_FAILED;
  }
  lm_budget_resolve_name(o->budget, NULL, name, sizeof(name));
  struct lm_budget *b;
  if (lm_budget_open(name, true, &b, err, sizeof(err)) != 0) {
    fprintf(stderr, "llmmeter: %s\n", err);
    return LM_EXIT_RUN_FAILED;
  }
  if (o->any_limit) {
    lm_budget_configure(b, &o->cfg);
    if (apply_rules(b, o) != 0) {
      lm_budget_close(b);
      return LM_EXIT_RUN_FAILED;
    }
  }
  lm_budget_snapshot(b, &snap);
  int64_t spent0 = snap.total.spent;
  uint64_t req0 = snap.total.requests, den0 = snap.total.denied;

  /* The child inherits metering through the environment. */
  const char *old = getenv("LD_PRELOAD");
  size_t len = strlen(lib) + (old ? strlen(old) + 2 : 1);
  char *preload = malloc(len);
  if (!preload)
    return LM_EXIT_RUN_FAILED;
  snprintf(preload, len, "%s%s%s", lib, old && *old ? " " : "", old ? old : "");
  setenv("LD_PRELOAD", preload, 1);
  setenv("LLMMETER_BUDGET", name, 1);
  free(preload);

  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "llmmeter: fork: %s\n", strerror(errno));
    return LM_EXIT_RUN_FAILED;
  }
  if (pid == 0) {
    execvp(o->cmd[0], o->cmd);
    fprintf(stderr, "llmmeter: %s: %s\n", o->cmd[0], strerror(errno));
    _exit(errno == ENOENT ? LM_EXIT_NOT_FOUND : 126);
  }
  /* Let the child take terminal signals; we report when it is done. */
  signal(SIGINT, SIG_IGN);
  signal(SIGQUIT, SIG_IGN);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  int code = WIFEXITED(st)     ? WEXITSTATUS(st)
             : WIFSIGNALED(st) ? 128 + WTERMSIG(st)
                               : LM_EXIT_RUN_FAILED;
  lm_budget_reclaim(b);
  lm_budget_snapshot(b, &snap);
  lm_budget_close(b);
  if (!o->quiet) {
    char a[40], t[40], c[40];
    fprintf(stderr,
            "llmmeter: spent $%s in %llu LLM calls (%llu denied); budget '%s' "
            "total $%s of %s%s\n",
            lm_money_format_display(snap.total.spent - spent0, 4, a, sizeof(a)),
            (unsigned long long)(snap.total.requests - req0),
            (unsigned long long)(snap.total.denied - den0), name,
            lm_money_format_display(snap.total.spent, 4, t, sizeof(t)),
            snap.hard_pusd < 0 ? "no limit" : "$",
            snap.hard_pusd < 0
                ? ""
                : lm_money_format_display(snap.hard_pusd, 2, c, sizeof(c)));
  }
  return code;
}

static void print_price_field(const char *name, int64_t v, int json,
                              int *first) {
  char a[40];
  if (v == LM_PRICE_UNSET)
    return;
  /* pico-USD per token = micro-USD per million tokens: USD/Mtok is v/1e6 */
  lm_money_format_exact(v * 1000000 > 0 ? v * 1000000 : v, a, sizeof(a));
  if (json)
    printf("%s\"%s_usd_per_mtok\":%s,\"%s_pusd_per_token\":%lld",
           *first ? "" : ",", name, a, name, (long long)v);
  else
    printf("  %-16s $%s / Mtok\n", name, a);
  *first = 0;
}

/* A price per event (a request, a web search): USD and pUSD per event. */
static void print_price_fee(const char *name, int64_t v, int json, int *first) {
  char a[40];
  if (!v)
    return;
  lm_money_format_exact(v, a, sizeof(a));
  if (json)
    printf("%s\"%s_usd\":%s,\"%s_pusd\":%lld", *first ? "" : ",", name, a, name,
           (long long)v);
  else
    printf("  %-16s $%s each\n", name, a);
  *first = 0;
}

/* The part rates a price has (struct lm_price.parts). */
static void print_price_parts(const struct lm_price *p, int json, int *first) {
  const struct {
    const char *name;
    unsigned bit;
    int64_t rate;
  } parts[] = {
      {"input_audio", LM_PRICE_HAS_INPUT_AUDIO, p->input_audio},
      {"cache_audio_read", LM_PRICE_HAS_CACHE_AUDIO_READ, p->cache_audio_read},
      {"input_image", LM_PRICE_HAS_INPUT_IMAGE, p->input_image},
      {"cache_image_read", LM_PRICE_HAS_CACHE_IMAGE_READ, p->cache_image_read},
      {"input_video", LM_PRICE_HAS_INPUT_VIDEO, p->input_video},
      {"citation", LM_PRICE_HAS_CITATION, p->citation},
      {"output_audio", LM_PRICE_HAS_OUTPUT_AUDIO, p->output_audio},
      {"output_image", LM_PRICE_HAS_OUTPUT_IMAGE, p->output_image},
      {"output_video", LM_PRICE_HAS_OUTPUT_VIDEO, p->output_video},
      {"output_reasoning", LM_PRICE_HAS_OUTPUT_REASONING, p->output_reasoning},
  };
  for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
    if (p->parts & parts[i].bit)
      print_price_field(parts[i].name, parts[i].rate, json, first);
  print_price_fee("request", p->request, json, first);
  print_price_fee("web_search", p->web_search, json, first);
}

/* --usage KEY=N,...: the fields of struct lm_usage by name. requests is 1
 * unless given: the usage of one call. */
static int parse_usage(const char *spec, struct lm_usage *u) {
  const struct {
    const char *name;
    uint64_t *field;
  } keys[] = {
      {"input", &u->input},
      {"output", &u->output},
      {"cache_read", &u->cache_read},
      {"cache_write", &u->cache_write},
      {"cache_write_1h", &u->cache_write_1h},
      {"reasoning", &u->reasoning},
      {"input_audio", &u->input_audio},
      {"cache_audio_read", &u->cache_audio_read},
      {"input_image", &u->input_image},
      {"cache_image_read", &u->cache_image_read},
      {"input_video", &u->input_video},
      {"citation", &u->citation},
      {"separate_reasoning", &u->separate_reasoning},
      {"output_audio", &u->output_audio},
      {"output_image", &u->output_image},
      {"output_video", &u->output_video},
      {"web_searches", &u->web_searches},
      {"requests", &u->requests},
  };
  char buf[512];
  if (strlen(spec) >= sizeof(buf))
    return -1;
  snprintf(buf, sizeof(buf), "%s", spec);
  u->requests = 1;
  char *save = NULL;
  for (char *tok = strtok_r(buf, ",", &save); tok;
       tok = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(tok, '=');
    if (!eq)
      return -1;
    *eq = 0;
    char *end;
    unsigned long long v = strtoull(eq + 1, &end, 10);
    if (*end || !eq[1] || eq[1] == '-')
      return -1;
    size_t k = 0;
    while (k < sizeof(keys) / sizeof(keys[0]) && strcmp(tok, keys[k].name))
      k++;
    if (k == sizeof(keys) / sizeof(keys[0]))
      return -1;
    *keys[k].field = v;
  }
  return 0;
}

/* A JSON string (quotes included) for names we print. */
static void json_string(const char *v) {
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
    if (*p == '"' || *p == '\\')
      printf("\\%c", *p);
    else if (*p < 0x20)
      printf("\\u%04x", *p);
    else
      putchar(*p);
  }
  putchar('"');
}

/* The route `prices` answers for: --url through the library's own routing
 * (route.h, with LLMMETER_ENDPOINTS), --provider as the C API names one,
 * or neither (the model's own provider). */
static void prices_route(const char *url, const char *provider,
                         struct lm_route *r) {
  if (url) {
    if (!lm_route_url(url, strlen(url), lm_config_get()->endpoints, r))
      die_usage("--url '%s' is not an LLM API endpoint (no built-in rule or "
                "LLMMETER_ENDPOINTS entry matches its path)",
                url);
    if (provider) { /* --provider names who bills it, as @provider would */
      struct lm_route named;
      lm_route_provider(provider, &named);
      memcpy(r->provider, named.provider, sizeof(r->provider));
      r->by = LM_ROUTE_BY_CALLER;
    }
    return;
  }
  lm_route_provider(provider, r);
}

static int cmd_prices(int argc, char **argv) {
  int json = 0, n = 0, rc = 0;
  const char *usage = NULL, *url = NULL, *provider = NULL;
  const char *models[64];
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0)
      json = 1;
    else if (strcmp(argv[i], "--usage") == 0 && i + 1 < argc)
      usage = argv[++i];
    else if (strcmp(argv[i], "--url") == 0 && i + 1 < argc)
      url = argv[++i];
    else if (strcmp(argv[i], "--provider") == 0 && i + 1 < argc)
      provider = argv[++i];
    else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      fputs(usage_text, stdout);
      return 0;
    } else if (argv[i][0] == '-')
      die_usage("unknown option '%s'", argv[i]);
    else if (n < 64)
      models[n++] = argv[i];
  }
  if (provider && !*provider)
    die_usage("%s", "--provider needs a provider name");
  struct lm_route route;
  prices_route(url, provider, &route);
  char url_model[128];
  if (!n && url &&
      *lm_route_model(url, strlen(url), NULL, url_model, sizeof(url_model)))
    models[n++] = url_model; /* the URL names the model (Gemini) */
  if (!n)
    die_usage("%s", "prices needs at least one MODEL (or a --url that names "
                    "one)");
  struct lm_usage u = {0};
  if (usage && parse_usage(usage, &u) != 0)
    die_usage("--usage needs input=N,output=N,... (got '%s')", usage);
  const bool routed = url || provider;
  for (int i = 0; i < n; i++) {
    struct lm_call_price cp;
    bool found, charged = true;
    const char *how = NULL; /* why an unpriced model costs what it costs */
    char max_of[96];
    if (strncmp(models[i], "max:", 4) == 0) {
      /* what an unknown model of this provider is charged at */
      memset(&cp, 0, sizeof(cp));
      found = lm_price_provider_max(models[i] + 4, &cp.match.price);
      cp.match.source = LM_PRICE_EMBEDDED;
      snprintf(cp.match.matched, sizeof(cp.match.matched),
               "highest prices of %.60s", models[i] + 4);
      charged = found;
    } else {
      /* The one policy the library charges calls by (pricing.h). */
      lm_pricing_resolve_route(models[i], &route, &cp);
      found = cp.match.source != LM_PRICE_NONE;
      if (cp.local)
        how = "$0: a local Ollama model without a price";
      else if (cp.unpriced && cp.match.source == LM_PRICE_NONE) {
        enum lm_unpriced up = lm_config_get()->unpriced;
        snprintf(max_of, sizeof(max_of), "the highest prices of %s",
                 cp.match.provider[0] ? cp.match.provider
                                      : "an unknown provider ($15 / $75)");
        how = up == LM_UNPRICED_DENY   ? "refused (LLMMETER_UNPRICED=deny)"
              : up == LM_UNPRICED_FREE ? "$0 (LLMMETER_UNPRICED=free)"
                                       : max_of;
        charged = up != LM_UNPRICED_DENY;
      }
    }
    const struct lm_price_match *m = &cp.match;
    const char *err = lm_price_load_error();
    if (err && i == 0)
      fprintf(stderr, "llmmeter: %s\n", err);
    static const char *src[] = {"none", "embedded", "override", "default"};
    const char *source = (unsigned)m->source < 4 ? src[m->source] : "?";
    if (json) {
      fputs("{\"model\":", stdout);
      json_string(models[i]);
      printf(",\"found\":%s,\"source\":\"%s\",\"matched\":",
             found ? "true" : "false", source);
      json_string(found ? m->matched : "");
      if (routed) {
        fputs(",\"provider\":", stdout);
        json_string(route.provider);
        printf(",\"provider_by\":\"%s\"", lm_route_by_name(route.by));
      }
      if (url)
        printf(",\"api\":\"%s\"", lm_api_name(route.api));
      if (found && m->provider[0]) {
        fputs(",\"matched_provider\":", stdout);
        json_string(m->provider);
      }
      printf(",\"unpriced\":%s,\"local\":%s", cp.unpriced ? "true" : "false",
             cp.local ? "true" : "false");
      if (how) {
        fputs(",\"charged_at\":", stdout);
        json_string(how);
      }
      if (!charged)
        fputs(",\"refused\":true", stdout);
    } else {
      printf("%s: %s%s%s\n", models[i],
             found ? "matched '" : "not in the price table",
             found ? m->matched : "", found ? "'" : "");
      if (found)
        printf("  source           %s%s%s\n", source,
               m->provider[0] ? ", provider " : "", m->provider);
      if (url)
        printf("  api              %s\n", lm_api_name(route.api));
      if (routed)
        printf("  billed by        %s (from the %s)\n",
               route.provider[0] ? route.provider : "-",
               route.by == LM_ROUTE_BY_CALLER      ? "--provider flag"
               : route.by == LM_ROUTE_BY_HOST      ? "host"
               : route.by == LM_ROUTE_BY_ENDPOINTS ? "LLMMETER_ENDPOINTS entry"
                                                   : "API: unknown host");
      if (how)
        printf("  charged at       %s\n", how);
    }
    if (charged) {
      int first = 0;
      if (json)
        fputs(",\"price\":{", stdout), first = 1;
      print_price_field("input", m->price.input, json, &first);
      print_price_field("output", m->price.output, json, &first);
      print_price_field("cache_read", m->price.cache_read, json, &first);
      print_price_field("cache_write", m->price.cache_write, json, &first);
      print_price_field("cache_write_1h", m->price.cache_write_1h, json,
                        &first);
      print_price_parts(&m->price, json, &first);
      if (m->price.tier.above_input_tokens) {
        char a[40], b[40];
        if (json)
          printf(",\"tier_above_input_tokens\":%llu",
                 (unsigned long long)m->price.tier.above_input_tokens);
        else
          printf("  above %llu input tokens: input $%s, output $%s / Mtok\n",
                 (unsigned long long)m->price.tier.above_input_tokens,
                 lm_money_format_exact(m->price.tier.input * 1000000, a,
                                       sizeof(a)),
                 lm_money_format_exact(m->price.tier.output * 1000000, b,
                                       sizeof(b)));
      }
      if (json)
        fputs("}", stdout);
    }
    if (!found && !cp.local)
      rc = LM_EXIT_ERROR; /* no price known: the answer is a fallback */
    if (usage && charged) {
      char a[40];
      int64_t c = lm_price_cost(&m->price, &u);
      if (json)
        printf(",\"cost_usd\":%s,\"cost_pusd\":%lld",
               lm_money_format_exact(c, a, sizeof(a)), (long long)c);
      else
        printf("  cost of usage    $%s (%lld pico-USD)\n",
               lm_money_format_exact(c, a, sizeof(a)), (long long)c);
    }
    if (json)
      puts("}");
  }
  return rc;
}

int main(int argc, char **argv) {
  lm_config_get(); /* the one reading of LLMMETER_*, for every module */
  if (argc < 2) {
    fputs(usage_text, stderr);
    return LM_EXIT_USAGE;
  }
  const char *cmd = argv[1];
  struct opts o;
  static const struct {
    const char *name, *allowed;
    int (*fn)(const struct opts *);
  } cmds[] = {
      {"init", "LF", cmd_init},  {"status", "S", cmd_status},
      {"watch", "W", cmd_watch}, {"set", "L", cmd_set},
      {"reset", "", cmd_reset},  {"rm", "", cmd_rm},
      {"list", "", cmd_list},    {"run", "LR", cmd_run},
  };
  if (strcmp(cmd, "help") == 0 || strcmp(cmd, "-h") == 0 ||
      strcmp(cmd, "--help") == 0) {
    fputs(usage_text, stdout);
    return LM_EXIT_OK;
  }
  if (strcmp(cmd, "prices") == 0)
    return cmd_prices(argc, argv);
  if (strcmp(cmd, "report") == 0)
    return lm_cli_report(argc, argv);
  if (strcmp(cmd, "serve") == 0)
    return lm_cli_serve(argc, argv);
  for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
    if (strcmp(cmd, cmds[i].name) == 0) {
      parse_opts(argc, argv, 2, cmds[i].allowed, &o);
      /* --budget, else LLMMETER_BUDGET (read by config.c), else the default */
      lm_budget_resolve_name(o.budget, lm_config_get()->budget, o.budget_name,
                             sizeof(o.budget_name));
      o.budget = o.budget_name;
      return cmds[i].fn(&o);
    }
  }
  die_usage("unknown command '%s'", cmd);
  return LM_EXIT_USAGE;
}
