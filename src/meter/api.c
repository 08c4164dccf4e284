/* api.c — the public C API (include/llmmeter.h): a program's own calls,
 * charged to the same budget as the hooked ones.
 *
 * Owns the two public handles and the translation between the public
 * vocabulary (struct llmmeter_usage, llmmeter_* codes) and the meter's;
 * the lifecycle is the one lm_transfer runs for a hooked call (admit with
 * an estimate, charge cumulative cost deltas, settle or release), minus
 * everything about reading a transport. Prices come from the meter's
 * policy (pricing.h), limits and counts from the budget engine, so a call
 * made here and one made through a hook cost and count the same.
 *
 * Never prints (reasons go to a thread-local line for the caller), never
 * exits, never touches a handle it did not allocate. Allocates one handle
 * per budget and per call, and the status document.
 */
#include "llmmeter.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "budget.h"
#include "config.h"
#include "ledger.h"
#include "money.h"
#include "notify.h"
#include "pricing.h"
#include "status.h"

#define LM_API_MODEL_MAX 128 /* NUL included */
#define LM_API_AGENT_MAX LM_NAME_MAX
#define LM_API_LEDGER_NAME "c_api" /* the ledger's "api" of these calls */

struct llmmeter_budget {
  struct lm_budget *b;
  char name[LM_BUDGET_URL_MAX];
  atomic_long open_calls; /* admitted and not yet ended */
};

struct llmmeter_call {
  struct llmmeter_budget *budget;
  struct lm_lease lease;
  struct lm_call call; /* what admission was told (the caps re-checked) */
  struct lm_call_price price;
  struct lm_route route; /* the caller's provider (lm_route_provider) */
  char model[LM_API_MODEL_MAX];
  char agent[LM_API_AGENT_MAX];
  struct lm_usage est;
  int64_t est_pusd;
  struct lm_usage charged; /* the running total charged so far */
  int64_t charged_pusd;
  int64_t started_ns, started_ms; /* monotonic */
};

/* ---- the thread's last error ---------------------------------------------- */

static _Thread_local char last_error[256];

static void clear_error(void) { last_error[0] = 0; }

__attribute__((format(printf, 2, 3))) static int fail(int code, const char *fmt,
                                                      ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof(last_error), fmt, ap);
  va_end(ap);
  return code;
}

const char *llmmeter_last_error(void) { return last_error; }

unsigned int llmmeter_version(void) { return LLMMETER_VERSION_NUM; }

const char *llmmeter_strerror(int code) {
  switch (code) {
  case LLMMETER_OK:
    return "ok";
  case LLMMETER_STOP:
    return "charged; the call must stop";
  case LLMMETER_UNPRICED:
    return "the model has no price; charged at the fallback";
  case LLMMETER_EINVAL:
    return "invalid argument";
  case LLMMETER_ENOMEM:
    return "out of memory";
  case LLMMETER_ENOENT:
    return "no such budget";
  case LLMMETER_EACCES:
    return "budget not usable by this user";
  case LLMMETER_EFORMAT:
    return "budget corrupt or of another layout";
  case LLMMETER_ESYS:
    return "system call failed";
  case LLMMETER_EDENIED:
    return "budget refused the call";
  case LLMMETER_EBUSY:
    return "calls still open";
  case LLMMETER_ERANGE:
    return "buffer too small";
  default:
    return "unknown result code";
  }
}

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- usage ----------------------------------------------------------------- */

/* The size of the first struct llmmeter_usage; a caller's may be larger. */
#define LM_API_USAGE_V1_SIZE \
  (offsetof(struct llmmeter_usage, reasoning) + sizeof(uint64_t))

/* A caller's usage to the meter's, checked: a known size (a newer header's
 * fields unknown here must be zero) and a consistent breakdown. */
static int usage_in(const struct llmmeter_usage *u, const char *what,
                    struct lm_usage *out) {
  if (!u)
    return fail(LLMMETER_EINVAL, "%s: NULL usage", what);
  if (u->size < LM_API_USAGE_V1_SIZE)
    return fail(LLMMETER_EINVAL,
                "%s: usage.size is %u, not sizeof(struct llmmeter_usage)", what,
                (unsigned)u->size);
  if (u->size > sizeof(*u)) {
    const unsigned char *extra = (const unsigned char *)u + sizeof(*u);
    for (size_t i = 0; i < u->size - sizeof(*u); i++)
      if (extra[i])
        return fail(LLMMETER_EINVAL,
                    "%s: usage has fields this library does not know", what);
  }
  /* One call's usage: its request fee (where the model has one) is part of
   * the estimate, of the first charge and of the price. */
  *out = (struct lm_usage){.input = u->input,
                           .output = u->output,
                           .cache_read = u->cache_read,
                           .cache_write = u->cache_write,
                           .reasoning = u->reasoning,
                           .requests = 1};
  return 0;
}

/* Whether u is one usage on llmmeter's basis (parts within their totals,
 * every count small enough to price). */
static int usage_check(const struct lm_usage *u, const char *what) {
  const uint64_t max = INT64_MAX;
  if (u->input > max || u->output > max || u->cache_read > max ||
      u->cache_write > max || u->reasoning > max)
    return fail(LLMMETER_EINVAL, "%s: token count out of range", what);
  if (u->cache_read + u->cache_write > u->input)
    return fail(LLMMETER_EINVAL,
                "%s: cache_read + cache_write (%llu) exceed input (%llu): "
                "input counts every prompt token",
                what, (unsigned long long)(u->cache_read + u->cache_write),
                (unsigned long long)u->input);
  if (u->reasoning > u->output)
    return fail(LLMMETER_EINVAL,
                "%s: reasoning (%llu) exceeds output (%llu): output counts "
                "every completion token",
                what, (unsigned long long)u->reasoning,
                (unsigned long long)u->output);
  return 0;
}

static int usage_add(const struct lm_usage *a, const struct lm_usage *b,
                     struct lm_usage *sum, const char *what) {
  *sum = (struct lm_usage){0}; /* the parts the C API has no field for */
  if (__builtin_add_overflow(a->input, b->input, &sum->input) ||
      __builtin_add_overflow(a->output, b->output, &sum->output) ||
      __builtin_add_overflow(a->cache_read, b->cache_read, &sum->cache_read) ||
      __builtin_add_overflow(a->cache_write, b->cache_write,
                             &sum->cache_write) ||
      __builtin_add_overflow(a->reasoning, b->reasoning, &sum->reasoning))
    return fail(LLMMETER_EINVAL, "%s: token count out of range", what);
  sum->cache_write_1h = 0;
  sum->requests = 1; /* still one call */
  return usage_check(sum, what);
}

/* ---- budgets --------------------------------------------------------------- */

static int code_of_seg(int rc) {
  switch (rc) {
  case LM_SEG_ENOENT:
    return LLMMETER_ENOENT;
  case LM_SEG_EOWNER:
    return LLMMETER_EACCES;
  case LM_SEG_EFORMAT:
    return LLMMETER_EFORMAT;
  case LM_SEG_ENAME:
    return LLMMETER_EINVAL;
  default:
    return LLMMETER_ESYS;
  }
}

int llmmeter_open(const char *name, unsigned int flags, llmmeter_budget **out) {
  clear_error();
  if (!out)
    return fail(LLMMETER_EINVAL, "llmmeter_open: out is NULL");
  *out = NULL;
  if (flags & ~LLMMETER_OPEN_CREATE)
    return fail(LLMMETER_EINVAL, "llmmeter_open: unknown flags 0x%x", flags);
  struct llmmeter_budget *h = calloc(1, sizeof(*h));
  if (!h)
    return fail(LLMMETER_ENOMEM, "llmmeter_open: out of memory");
  const struct lm_config *c = lm_config_get();
  lm_budget_resolve_name(name && *name ? name : NULL, c->budget, h->name,
                         sizeof(h->name));
  char err[256] = "";
  int rc;
  if ((flags & LLMMETER_OPEN_CREATE) && c->limit_pusd >= 0) {
    /* As the library does: LLMMETER_LIMIT_USD creates it with that limit. */
    struct lm_limit_config lc = LM_LIMITS_NONE;
    lc.hard_pusd = c->limit_pusd;
    rc = lm_budget_create(h->name, false, &lc, &h->b, err, sizeof(err));
    if (rc == LM_SEG_EEXIST)
      rc = lm_budget_open(h->name, false, &h->b, err, sizeof(err));
  } else {
    rc = lm_budget_open(h->name, (flags & LLMMETER_OPEN_CREATE) != 0, &h->b,
                        err, sizeof(err));
  }
  if (rc != 0) {
    free(h);
    return fail(code_of_seg(rc), "%s", err[0] ? err : "budget not usable");
  }
  /* From here on the name is only shown: a URL's password leaves it. */
  char shown[LM_BUDGET_URL_MAX];
  lm_budget_display_name(h->name, shown, sizeof(shown));
  snprintf(h->name, sizeof(h->name), "%s", shown);
  atomic_init(&h->open_calls, 0);
  *out = h;
  return 0;
}

int llmmeter_close(llmmeter_budget *h) {
  clear_error();
  if (!h)
    return 0;
  long n = atomic_load(&h->open_calls);
  if (n > 0)
    return fail(LLMMETER_EBUSY, "budget '%s': %ld call%s still open", h->name,
                n, n == 1 ? "" : "s");
  lm_budget_close(h->b);
  free(h);
  return 0;
}

const char *llmmeter_budget_name(const llmmeter_budget *h) {
  return h ? h->name : "";
}

int llmmeter_status_json(llmmeter_budget *h, char **json) {
  clear_error();
  if (!h || !json)
    return fail(LLMMETER_EINVAL, "llmmeter_status_json: NULL argument");
  *json = NULL;
  struct lm_snapshot *snap = malloc(sizeof(*snap));
  char *doc = NULL;
  size_t len = 0;
  FILE *f = snap ? open_memstream(&doc, &len) : NULL;
  if (!f) {
    free(snap);
    return fail(LLMMETER_ENOMEM, "llmmeter_status_json: out of memory");
  }
  lm_budget_reclaim(h->b); /* as `llmmeter status` does */
  int rc = lm_budget_snapshot(h->b, snap);
  if (rc == 0)
    lm_status_print(f, snap, LM_FMT_JSON);
  int ferr = fclose(f);
  free(snap);
  if (rc != 0) {
    free(doc);
    return fail(LLMMETER_EFORMAT, "budget '%s': snapshot failed", h->name);
  }
  if (ferr != 0 || !doc) {
    free(doc);
    return fail(LLMMETER_ENOMEM, "llmmeter_status_json: out of memory");
  }
  *json = doc;
  return 0;
}

void llmmeter_free(void *p) { free(p); }

/* ---- calls ----------------------------------------------------------------- */

static void record(const struct llmmeter_call *k, const char *outcome,
                   const char *reason) {
  struct lm_ledger_rec r = {
      .budget = k->budget->name,
      .agent = k->agent,
      .api = LM_API_LEDGER_NAME,
      .provider = k->route.provider,
      .model = k->model,
      .reported_model = "",
      .outcome = outcome,
      .reason = reason && *reason ? reason : NULL,
      .usage = &k->charged,
      .cost_pusd = k->charged_pusd,
      .http_status = 0,
      .duration_ms = k->started_ms ? mono_ns() / 1000000 - k->started_ms : 0,
      .unpriced = k->price.unpriced,
  };
  lm_ledger_write(&r);
}

/* The first charge to find spent at the soft limit (once per window, across
 * all processes) records it and starts the --on-soft command, as a hooked
 * call does. */
static void check_soft(struct llmmeter_call *k) {
  char cmd[256];
  struct lm_budget *b = k->budget->b;
  if (!lm_budget_soft_crossed(b, cmd, sizeof(cmd)))
    return;
  char line[128];
  snprintf(line, sizeof(line), "budget '%.90s' crossed its soft limit",
           k->budget->name);
  struct llmmeter_call mark = *k;
  memset(&mark.charged, 0, sizeof(mark.charged));
  mark.charged_pusd = 0;
  record(&mark, "soft_limit", line);
  if (cmd[0])
    lm_notify_on_soft(b, cmd);
}

/* Moves the call's running total to `total`: charges the cost difference
 * (cost of the whole, so a tier is priced as the provider prices it). */
static void charge_to(struct llmmeter_call *k, const struct lm_usage *total) {
  int64_t cost = lm_price_cost(&k->price.match.price, total);
  struct lm_usage d = lm_usage_sub(total, &k->charged);
  lm_budget_charge(k->budget->b, &k->lease, &d, cost - k->charged_pusd);
  k->charged = *total;
  k->charged_pusd = cost;
  check_soft(k);
}

static void end_call(struct llmmeter_call *k) {
  struct lm_budget *b = k->budget->b;
  lm_budget_add_llm_time(b, mono_ns() - k->started_ns);
  lm_budget_rate_correct(b, &k->lease, &k->charged);
  atomic_fetch_sub(&k->budget->open_calls, 1);
  free(k);
}

int llmmeter_admit(llmmeter_budget *h, const char *model, const char *agent,
                   const char *provider, const struct llmmeter_usage *estimate,
                   llmmeter_call **out) {
  clear_error();
  if (!out)
    return fail(LLMMETER_EINVAL, "llmmeter_admit: out is NULL");
  *out = NULL;
  if (!h)
    return fail(LLMMETER_EINVAL, "llmmeter_admit: budget is NULL");
  if (!model || !*model)
    return fail(LLMMETER_EINVAL, "llmmeter_admit: no model");
  if (strlen(model) >= LM_API_MODEL_MAX)
    return fail(LLMMETER_EINVAL, "llmmeter_admit: model name over %d bytes",
                LM_API_MODEL_MAX - 1);
  if (agent && strlen(agent) >= LM_API_AGENT_MAX)
    return fail(LLMMETER_EINVAL, "llmmeter_admit: agent name over %d bytes",
                LM_API_AGENT_MAX - 1);
  const struct lm_config *c = lm_config_get();
  struct lm_usage est = {.output = (uint64_t)c->default_max_tokens};
  if (estimate) {
    int rc = usage_in(estimate, "llmmeter_admit", &est);
    if (rc == 0)
      rc = usage_check(&est, "llmmeter_admit");
    if (rc != 0)
      return rc;
  }
  struct llmmeter_call *k = calloc(1, sizeof(*k));
  if (!k)
    return fail(LLMMETER_ENOMEM, "llmmeter_admit: out of memory");
  k->budget = h;
  snprintf(k->model, sizeof(k->model), "%s", model);
  snprintf(k->agent, sizeof(k->agent), "%s",
           agent && *agent ? agent : c->agent);
  k->lease.slot = UINT32_MAX;
  k->started_ns = mono_ns();
  k->started_ms = k->started_ns / 1000000;
  lm_route_provider(provider, &k->route);
  lm_pricing_resolve_route(k->model, &k->route, &k->price);
  k->est = est;
  k->est_pusd = lm_price_cost(&k->price.match.price, &est);

  if (k->price.unpriced && c->unpriced == LM_UNPRICED_DENY) {
    fail(LLMMETER_EDENIED,
         "budget '%.40s': model '%.60s' has no price "
         "(LLMMETER_UNPRICED=deny); price it with LLMMETER_PRICES or "
         "LLMMETER_DEFAULT_PRICE",
         h->name, k->model);
    record(k, "denied", last_error);
    free(k);
    return LLMMETER_EDENIED;
  }
  k->call = (struct lm_call){
      .model = k->model,
      .provider = k->route.provider,
      .agent = k->agent,
      .est_pusd = k->est_pusd,
      .est_tokens = est.input + est.output,
      .est_input_tokens = est.input,
      .est_output_tokens = est.output,
      .zero_priced = k->price.zero_priced,
      .whole_response = false, /* the caller's charges: each sent at once */
      .wait_ms = c->wait_ms,
      .max_call_pusd = c->max_call_pusd,
      .max_call_input_tokens = c->max_call_input_tokens,
      .max_call_output_tokens = c->max_call_output_tokens};
  struct lm_denial why;
  if (lm_budget_admit(h->b, &k->call, &k->lease, &why) != 0) {
    lm_denial_format(&why, h->name, last_error, sizeof(last_error));
    record(k, "denied", last_error);
    free(k);
    return LLMMETER_EDENIED;
  }
  atomic_fetch_add(&h->open_calls, 1);
  *out = k;
  return 0;
}

int llmmeter_charge(llmmeter_call *k, const struct llmmeter_usage *delta) {
  clear_error();
  if (!k)
    return fail(LLMMETER_EINVAL, "llmmeter_charge: call is NULL");
  struct lm_usage d, total;
  int rc = usage_in(delta, "llmmeter_charge", &d);
  if (rc == 0)
    rc = usage_add(&k->charged, &d, &total, "llmmeter_charge");
  if (rc != 0)
    return rc;
  charge_to(k, &total);
  if (lm_config_get()->midstream_finish)
    return 0;
  struct lm_budget *b = k->budget->b;
  struct lm_denial why;
  char line[200];
  if (lm_budget_over_time(b, mono_ns() - k->started_ns, &why)) {
    lm_denial_format(&why, k->budget->name, line, sizeof(line));
    return fail(LLMMETER_STOP, "%s", line);
  }
  if (lm_budget_over_hard(b, &k->lease))
    return fail(LLMMETER_STOP, "budget '%s': hard limit reached",
                k->budget->name);
  if (lm_budget_over_call_caps(b, &k->lease, &k->call, &k->charged,
                               k->charged_pusd, &why)) {
    lm_denial_format(&why, k->budget->name, line, sizeof(line));
    return fail(LLMMETER_STOP, "%s", line);
  }
  return 0;
}

int llmmeter_settle(llmmeter_call *k, const struct llmmeter_usage *final,
                    int64_t *cost_pusd) {
  clear_error();
  if (!k)
    return fail(LLMMETER_EINVAL, "llmmeter_settle: call is NULL");
  unsigned flags = k->price.unpriced ? LM_SETTLE_UNPRICED : 0;
  const char *outcome = "ok";
  if (final) {
    struct lm_usage total;
    int rc = usage_in(final, "llmmeter_settle", &total);
    if (rc == 0)
      rc = usage_check(&total, "llmmeter_settle");
    if (rc != 0)
      return rc;
    charge_to(k, &total);
  } else if (!k->charged_pusd && !k->charged.input && !k->charged.output) {
    /* Usage unknown and nothing charged: the estimate, never free by
     * accident (as a hooked response whose usage could not be read). */
    charge_to(k, &k->est);
    flags |= LM_SETTLE_UNMETERED;
    outcome = "unmetered";
  }
  lm_budget_settle(k->budget->b, &k->lease, flags);
  if (cost_pusd)
    *cost_pusd = k->charged_pusd;
  record(k, outcome, NULL);
  end_call(k);
  return 0;
}

int llmmeter_release(llmmeter_call *k) {
  clear_error();
  if (!k)
    return 0;
  lm_budget_release(k->budget->b, &k->lease);
  record(k, "failed", NULL);
  end_call(k);
  return 0;
}

/* ---- prices ---------------------------------------------------------------- */

int llmmeter_price(const char *model, const char *provider,
                   const struct llmmeter_usage *usage, int64_t *pusd) {
  clear_error();
  if (!model || !*model || !pusd)
    return fail(LLMMETER_EINVAL, "llmmeter_price: NULL argument");
  struct lm_usage u;
  int rc = usage_in(usage, "llmmeter_price", &u);
  if (rc == 0)
    rc = usage_check(&u, "llmmeter_price");
  if (rc != 0)
    return rc;
  struct lm_call_price p;
  lm_pricing_resolve(model, provider, &p);
  *pusd = lm_price_cost(&p.match.price, &u);
  return p.unpriced ? LLMMETER_UNPRICED : 0;
}

int llmmeter_format_usd(int64_t pusd, char *buf, size_t size) {
  clear_error();
  char tmp[32];
  if (pusd == INT64_MIN) /* no trailing zero to trim, and no -pusd */
    lm_money_format(pusd, 12, tmp, sizeof(tmp));
  else
    lm_money_format_exact(pusd, tmp, sizeof(tmp));
  size_t n = strlen(tmp);
  if (!buf || n >= size)
    return fail(LLMMETER_ERANGE, "llmmeter_format_usd: %zu bytes needed",
                n + 1);
  memcpy(buf, tmp, n + 1);
  return 0;
}
