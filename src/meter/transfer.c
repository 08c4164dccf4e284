/* transfer.c — one metered LLM call (see transfer.h).
 *
 * Also owns the process's budget handle: opened on the first LLM transfer
 * (never at load), shared by every thread, and still valid in a fork()ed
 * child (the mapping is inherited; leases are stamped with the pid that
 * takes them).
 */
#include "transfer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "detect.h"
#include "inject.h"
#include "ledger.h"
#include "notify.h"
#include "status.h"
#include "money.h"

static pthread_mutex_t budget_lock = PTHREAD_MUTEX_INITIALIZER;
static struct lm_budget *budget;
static char budget_name[LM_BUDGET_NAME_MAX];
static char budget_err[256];

/* The budget, opened once; NULL (with budget_err) if unusable. */
static struct lm_budget *get_budget(void) {
  struct lm_budget *b = __atomic_load_n(&budget, __ATOMIC_ACQUIRE);
  if (b)
    return b;
  pthread_mutex_lock(&budget_lock);
  if (!budget && !budget_err[0]) {
    const struct lm_config *c = lm_config_get();
    lm_budget_resolve_name(NULL, c->budget, budget_name, sizeof(budget_name));
    int rc;
    if (c->limit_pusd >= 0) {
      /* LLMMETER_LIMIT_USD creates the budget with that limit if missing. */
      struct lm_limit_config lc = LM_LIMITS_NONE;
      lc.hard_pusd = c->limit_pusd;
      rc = lm_budget_create(budget_name, false, &lc, &b, budget_err,
                            sizeof(budget_err));
      if (rc == LM_SEG_EEXIST)
        rc = lm_budget_open(budget_name, false, &b, budget_err,
                            sizeof(budget_err));
    } else {
      /* No budget configured: meter, without a limit, into the default. */
      rc = lm_budget_open(budget_name, true, &b, budget_err,
                          sizeof(budget_err));
    }
    if (rc == 0) {
      budget_err[0] = 0;
      __atomic_store_n(&budget, b, __ATOMIC_RELEASE);
    }
  }
  b = budget;
  pthread_mutex_unlock(&budget_lock);
  return b;
}

const char *lm_transfer_budget_name(void) { return budget_name; }

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One ledger line for this call (only when LLMMETER_LEDGER is set). */
static void record(struct lm_transfer *t, const char *outcome) {
  const struct lm_config *c = lm_config_get();
  struct lm_ledger_rec r = {
      .budget = budget_name,
      .agent = c->agent,
      .api = lm_api_name(t->api),
      .model = t->model[0] ? t->model : "unknown",
      .reported_model = lm_extract_model(&t->x),
      .outcome = outcome,
      .reason = t->reason[0] ? t->reason : NULL,
      .usage = &t->charged,
      .cost_pusd = t->charged_pusd,
      .http_status = t->http_status,
      .duration_ms = now_ms() - t->started_ms,
      .unpriced = t->unpriced,
      .downgraded_from = t->downgraded_from[0] ? t->downgraded_from : NULL,
  };
  lm_ledger_write(&r);
}

static const char *provider_of(enum lm_api api) {
  switch (api) {
  case LM_API_ANTHROPIC_MESSAGES:
    return "anthropic";
  case LM_API_GEMINI_GENERATE:
  case LM_API_GEMINI_STREAM:
    return "google";
  case LM_API_COHERE_CHAT:
    return "cohere";
  case LM_API_OLLAMA_CHAT:
  case LM_API_OLLAMA_GENERATE:
    return "ollama";
  default:
    return "openai";
  }
}

/* The price table never changes once loaded, and a process usually asks
 * for the same few models: remember the last answer per thread. */
static bool cached_lookup(const char *model, const char *prov,
                          struct lm_price_match *m) {
  static __thread char last_model[128], last_prov[16];
  static __thread struct lm_price_match last;
  static __thread bool last_found, valid;
  if (valid && strcmp(model, last_model) == 0 && strcmp(prov, last_prov) == 0) {
    *m = last;
    return last_found;
  }
  bool found = lm_price_lookup(model, prov, m);
  if (strlen(model) < sizeof(last_model) && strlen(prov) < sizeof(last_prov)) {
    strcpy(last_model, model);
    strcpy(last_prov, prov);
    last = *m;
    last_found = found;
    valid = true;
  }
  return found;
}

/* A price for the model: the table's, or for a model the table does not
 * know, LLMMETER_DEFAULT_PRICE or else the provider's highest input and
 * output prices (LLMMETER_UNPRICED=charge-max), so an unknown model is
 * never free by accident. Local Ollama models cost nothing. */
static void resolve_price(struct lm_transfer *t) {
  const char *prov = provider_of(t->api);
  t->unpriced = false;
  t->zero_priced = false;
  if (t->api == LM_API_OLLAMA_CHAT || t->api == LM_API_OLLAMA_GENERATE) {
    memset(&t->price, 0, sizeof(t->price));
    t->zero_priced = true;
    return;
  }
  if (cached_lookup(t->model, prov, &t->price) &&
      t->price.source != LM_PRICE_DEFAULT) {
    const struct lm_price *p = &t->price.price;
    t->zero_priced = p->input == 0 && p->output == 0;
    return;
  }
  t->unpriced = true;
  if (t->price.source == LM_PRICE_DEFAULT)
    return; /* the user's default price, still flagged as unpriced */
  memset(&t->price, 0, sizeof(t->price));
  if (lm_config_get()->unpriced == LM_UNPRICED_FREE)
    return; /* opted in: $0, flagged */
  if (!lm_price_provider_max(prov, &t->price.price)) {
    /* $15 / $75 per million tokens: above any current flagship. */
    t->price.price.input = 15000000;
    t->price.price.output = 75000000;
  }
  t->price.price.cache_read = LM_PRICE_UNSET;
  t->price.price.cache_write = LM_PRICE_UNSET;
  t->price.price.cache_write_1h = LM_PRICE_UNSET;
}

/* Unpriced models seen by this process (each warned about once). */
static pthread_mutex_t warned_lock = PTHREAD_MUTEX_INITIALIZER;
static char warned[32][64];
static int n_warned;

static bool first_sight(const char *model) {
  bool first = true;
  pthread_mutex_lock(&warned_lock);
  for (int i = 0; i < n_warned && first; i++)
    if (strncmp(warned[i], model, sizeof(warned[i]) - 1) == 0)
      first = false;
  if (first && n_warned < 32)
    snprintf(warned[n_warned++], sizeof(warned[0]), "%.63s", model);
  pthread_mutex_unlock(&warned_lock);
  return first;
}

static void estimate(struct lm_transfer *t, const struct lm_transfer_req *r) {
  const struct lm_config *c = lm_config_get();
  uint64_t chars = r->body ? t->req.prompt_chars : 0;
  if (!r->body || (chars == 0 && r->body_len > 0))
    chars = r->body_len; /* nothing parsed: the whole body is the prompt */
  /* ~4 characters a token in English; 3 errs on the side of paying. */
  t->est.input = chars / 3 + 16;
  if (t->api == LM_API_OPENAI_EMBEDDINGS)
    t->est.output = 0;
  else
    t->est.output = (uint64_t)(t->req.max_output_tokens > 0
                                   ? t->req.max_output_tokens
                                   : c->default_max_tokens);
  t->est_pusd = lm_price_cost(&t->price.price, &t->est);
}

int lm_transfer_begin(struct lm_transfer *t, enum lm_api api,
                      const struct lm_transfer_req *r) {
  memset(t, 0, sizeof(*t));
  t->api = api;
  t->started_ms = now_ms();
  t->started_ns = now_ns();
  if (r->downgraded_from)
    snprintf(t->downgraded_from, sizeof(t->downgraded_from), "%s",
             r->downgraded_from);
  t->lease.slot = UINT32_MAX;
  if (r->body)
    lm_reqscan(api, r->body, r->body_len, &t->req);
  else
    t->req.max_output_tokens = -1;
  if (t->req.model[0])
    snprintf(t->model, sizeof(t->model), "%s", t->req.model);
  else if (!lm_detect_model_from_url(r->url, r->url_len, t->model,
                                     sizeof(t->model)))
    t->model[0] = 0;
  resolve_price(t);
  estimate(t, r);
  lm_extract_init(&t->x, api);

  struct lm_budget *b = get_budget();
  if (!b) {
    snprintf(t->reason, sizeof(t->reason), "%s", budget_err);
    t->state = LM_XFER_UNMETERED_OPEN;
    return -1;
  }
  const struct lm_config *c = lm_config_get();
  if (t->unpriced)
    t->warn_unpriced = first_sight(t->model[0] ? t->model : "unknown");
  if (t->unpriced && c->unpriced == LM_UNPRICED_DENY) {
    snprintf(t->reason, sizeof(t->reason),
             "budget '%.40s': model '%.60s' has no price "
             "(LLMMETER_UNPRICED=deny); price it with LLMMETER_PRICES or "
             "LLMMETER_DEFAULT_PRICE",
             budget_name, t->model[0] ? t->model : "unknown");
    t->state = LM_XFER_DENIED;
    record(t, "denied");
    return 1;
  }
  t->call = (struct lm_call){.model = t->model,
                             .agent = c->agent,
                             .est_pusd = t->est_pusd,
                             .est_tokens = t->est.input + t->est.output,
                             .est_input_tokens = t->est.input,
                             .est_output_tokens = t->est.output,
                             .zero_priced = t->zero_priced,
                             .wait_ms = c->wait_ms,
                             .max_call_pusd = c->max_call_pusd,
                             .max_call_input_tokens = c->max_call_input_tokens,
                             .max_call_output_tokens =
                                 c->max_call_output_tokens};
  struct lm_denial why;
  if (lm_budget_admit(b, &t->call, &t->lease, &why) != 0) {
    lm_denial_format(&why, budget_name, t->reason, sizeof(t->reason));
    t->state = LM_XFER_DENIED;
    record(t, "denied");
    return 1;
  }
  t->state = LM_XFER_ADMITTED;
  return 0;
}

static int ci_prefix(const char *line, size_t len, const char *name) {
  size_t n = strlen(name);
  return len >= n && strncasecmp(line, name, n) == 0;
}

void lm_transfer_header(struct lm_transfer *t, const char *line, size_t len) {
  if (t->state != LM_XFER_ADMITTED)
    return;
  if (len > 5 && memcmp(line, "HTTP/", 5) == 0) {
    /* A new status line: 1xx, a redirect or an auth round starts over. */
    const char *sp = memchr(line, ' ', len);
    int code = 0;
    for (const char *p = sp ? sp + 1 : line + len; p < line + len && *p >= '0' &&
                                                   *p <= '9';
         p++)
      code = code * 10 + (*p - '0');
    t->http_status = code;
    return;
  }
  if (ci_prefix(line, len, "content-type:")) {
    const char *v = line + 13;
    size_t n = len - 13;
    while (n && (*v == ' ' || *v == '\t'))
      v++, n--;
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
      n--;
    lm_extract_set_content_type(&t->x, v, n);
  }
}

/* Price of a usage snapshot: the provider's own figure when it reports
 * one (OpenRouter), else our table. */
static int64_t cost_of(struct lm_transfer *t, const struct lm_usage *u) {
  int64_t pusd;
  if (lm_extract_provider_cost(&t->x, &pusd))
    return pusd;
  return lm_price_cost(&t->price.price, u);
}

/* The first call to find spent at the soft limit (once per window, across
 * all processes) records it and starts the --on-soft command. */
static void check_soft(struct lm_transfer *t) {
  char cmd[256];
  if (!budget || !lm_budget_soft_crossed(budget, cmd, sizeof(cmd)))
    return;
  t->soft_crossed = true;
  struct lm_transfer mark = *t;
  memset(&mark.charged, 0, sizeof(mark.charged));
  mark.charged_pusd = 0;
  snprintf(mark.reason, sizeof(mark.reason), "budget '%s' crossed its soft limit",
           budget_name);
  record(&mark, "soft_limit");
  if (!cmd[0])
    return;
  struct lm_snapshot *snap = malloc(sizeof(*snap));
  char *json = NULL;
  size_t len = 0;
  FILE *f = snap ? open_memstream(&json, &len) : NULL;
  if (f) {
    lm_budget_snapshot(budget, snap);
    lm_status_print(f, snap, LM_FMT_JSON);
    fclose(f);
    lm_notify_run(cmd, json, len);
  }
  free(json);
  free(snap);
}

char *lm_transfer_plan_downgrade(enum lm_api api, const char *body,
                                 size_t len, size_t *out_len, char *from,
                                 size_t fromlen) {
  struct lm_budget *b = get_budget();
  if (!b || !body || !lm_budget_downgrade(b, NULL, NULL, 0))
    return NULL; /* nothing configured, or below the soft limit: no scan */
  struct lm_request_info ri;
  lm_reqscan(api, body, len, &ri);
  char target[128];
  if (!ri.model[0] || !lm_budget_downgrade(b, ri.model, target, sizeof(target)))
    return NULL;
  char *o = lm_inject_model(body, len, target, out_len);
  if (o)
    snprintf(from, fromlen, "%s", ri.model);
  return o;
}

/* Charges the difference between the latest usage and what was charged;
 * a snapshot may go down (Gemini), and then the difference is a refund. */
static void charge_latest(struct lm_transfer *t) {
  struct lm_budget *b = budget;
  if (!b || !lm_extract_has_usage(&t->x))
    return;
  uint32_t gen = lm_extract_generation(&t->x);
  if (gen == t->seen_generation)
    return;
  t->seen_generation = gen;
  if (t->unpriced && lm_extract_model(&t->x)[0]) {
    /* The request named no model the table knows (a body sent by a read
     * callback; an Azure deployment name): price by the model the response
     * reports, when the table knows that one. */
    struct lm_price_match m;
    if (lm_price_lookup(lm_extract_model(&t->x), provider_of(t->api), &m) &&
        m.source != LM_PRICE_DEFAULT) {
      if (!t->model[0])
        snprintf(t->model, sizeof(t->model), "%s", lm_extract_model(&t->x));
      t->price = m;
      t->unpriced = false;
      t->zero_priced = m.price.input == 0 && m.price.output == 0;
    }
  }
  const struct lm_usage *u = lm_extract_usage(&t->x);
  int64_t cost = cost_of(t, u);
  struct lm_usage d = {
      .input = u->input - t->charged.input,
      .cache_read = u->cache_read - t->charged.cache_read,
      .cache_write = u->cache_write - t->charged.cache_write,
      .cache_write_1h = u->cache_write_1h - t->charged.cache_write_1h,
      .output = u->output - t->charged.output,
      .reasoning = u->reasoning - t->charged.reasoning,
  };
  lm_budget_charge(b, &t->lease, &d, cost - t->charged_pusd);
  t->charged = *u;
  t->charged_pusd = cost;
  check_soft(t);
}

bool lm_transfer_body(struct lm_transfer *t, const char *p, size_t n) {
  if (t->state != LM_XFER_ADMITTED)
    return false;
  lm_extract_feed(&t->x, p, n);
  charge_latest(t);
  if (t->cut || lm_config_get()->midstream_finish)
    return t->cut;
  struct lm_denial why;
  if (lm_budget_over_time(budget, now_ns() - t->started_ns, &why)) {
    t->cut = true;
    char line[200];
    lm_denial_format(&why, budget_name, line, sizeof(line));
    snprintf(t->reason, sizeof(t->reason), "%.200s; stream cut", line);
  } else if (!t->charged_pusd && !t->charged.input && !t->charged.output) {
    /* No running total yet (usage comes at the end): this stream has not
     * crossed anything; it finishes and is charged exactly. */
  } else if (lm_budget_over_hard(budget, &t->lease)) {
    t->cut = true;
    snprintf(t->reason, sizeof(t->reason),
             "budget '%s': hard limit reached mid-stream; stream cut",
             budget_name);
  } else if (lm_budget_over_call_caps(budget, &t->lease, &t->call,
                                      &t->charged, t->charged_pusd, &why)) {
    t->cut = true;
    char line[200];
    lm_denial_format(&why, budget_name, line, sizeof(line));
    snprintf(t->reason, sizeof(t->reason), "%.200s mid-stream; stream cut",
             line);
  }
  return t->cut;
}

void lm_transfer_end(struct lm_transfer *t, bool transport_ok) {
  if (t->state != LM_XFER_ADMITTED) {
    t->state = LM_XFER_DONE;
    return;
  }
  struct lm_budget *b = budget;
  lm_extract_finish(&t->x);
  charge_latest(t);
  unsigned flags = t->unpriced ? LM_SETTLE_UNPRICED : 0;
  bool ok_status = t->http_status >= 200 && t->http_status < 300;
  const char *outcome;
  if (lm_extract_has_usage(&t->x)) {
    lm_budget_settle(b, &t->lease, flags);
    outcome = t->cut ? "cut" : transport_ok ? "ok" : "failed";
  } else if ((transport_ok || t->cut) && ok_status) {
    /* A successful response we could not read, or one we cut before its
     * usage arrived (the provider bills it all the same): charged at the
     * estimate, never free by accident. */
    lm_budget_charge(b, &t->lease, &t->est, t->est_pusd);
    t->charged = t->est;
    t->charged_pusd = t->est_pusd;
    lm_budget_settle(b, &t->lease, flags | LM_SETTLE_UNMETERED);
    outcome = t->cut ? "cut" : "unmetered";
    check_soft(t);
  } else {
    lm_budget_release(b, &t->lease); /* failed with no usage: refund */
    outcome = "failed";
  }
  lm_budget_add_llm_time(b, now_ns() - t->started_ns);
  lm_budget_rate_correct(b, &t->lease, &t->charged);
  record(t, outcome);
  t->state = LM_XFER_DONE;
}
