/* call.c — the call lifecycle: begin, response events, end (lifecycle.h).
 *
 * The whole path after a transport hook:
 *
 *   begin  → is it an LLM call, which API, who bills it (route.h: the
 *            URL's path, LLMMETER_ENDPOINTS, the host), what does it ask
 *            for (one scan of the body), which model goes out
 *            (--downgrade), what may it cost (price + estimate), may it
 *            leave (admission) — or how is it refused (deny.c) — and
 *            which bytes go out (include_usage)
 *   header → status line and Content-Type
 *   body   → framer → extractor → usage → price → charge the delta; cut?
 *   end    → settle with the exact usage, or release on failure
 *
 * Also owns the process's budget handle: opened on the first LLM call
 * (never at load), shared by every thread, and still valid in a fork()ed
 * child (the mapping is inherited; leases are stamped with the pid that
 * takes them). Prints only through the transport's printer.
 */
#include "call.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config.h"
#include "deny.h"
#include "detect.h"
#include "ledger.h"
#include "money.h"
#include "notify.h"
#include "pricing.h"
#include "str.h"

/* ---- printing through the transport ----------------------------------- */

/* Atomic: two transports (the libcurl hooks, the resolver hook) may each
 * install theirs from their own first call, on different threads. */
static _Atomic(lm_meter_printer) printer;
static atomic_int said_config, said_budget, said_prices;

void lm_meter_set_printer(lm_meter_printer say) { atomic_store(&printer, say); }

void lm_meter_say(const char *a, const char *b, const char *c) {
  lm_meter_printer say = atomic_load(&printer);
  if (!say || lm_config_get()->quiet)
    return;
  char line[640];
  size_t k = 0;
  const char *parts[3] = {a, b, c};
  for (int i = 0; i < 3; i++)
    for (const char *p = parts[i]; p && *p && k + 1 < sizeof(line); p++)
      line[k++] = *p;
  line[k] = 0;
  say(line, k);
}

void lm_meter_notice(const char *a, const char *b, const char *c) {
  lm_meter_say(a, b, c);
}

/* ---- the process's budget --------------------------------------------- */

static pthread_mutex_t budget_lock = PTHREAD_MUTEX_INITIALIZER;
static struct lm_budget *budget;
static char budget_name[160]; /* as shown: no password */
static char budget_err[256];

/* The budget, opened once; NULL (with budget_err) if unusable. */
static struct lm_budget *get_budget(void) {
  struct lm_budget *b = __atomic_load_n(&budget, __ATOMIC_ACQUIRE);
  if (b)
    return b;
  pthread_mutex_lock(&budget_lock);
  if (!budget && !budget_err[0]) {
    const struct lm_config *c = lm_config_get();
    char raw[1024]; /* a Redis URL may carry a password: only opened */
    lm_budget_resolve_name(NULL, c->budget, raw, sizeof(raw));
    lm_budget_display_name(raw, budget_name, sizeof(budget_name));
    int rc;
    if (c->limit_pusd >= 0) {
      /* LLMMETER_LIMIT_USD creates the budget with that limit if missing. */
      struct lm_limit_config lc = LM_LIMITS_NONE;
      lc.hard_pusd = c->limit_pusd;
      rc = lm_budget_create(raw, false, &lc, &b, budget_err,
                            sizeof(budget_err));
      if (rc == LM_SEG_EEXIST)
        rc = lm_budget_open(raw, false, &b, budget_err, sizeof(budget_err));
    } else {
      /* No budget configured: meter, without a limit, into the default. */
      rc = lm_budget_open(raw, true, &b, budget_err, sizeof(budget_err));
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

const char *lm_meter_budget_name(void) { return budget_name; }

struct lm_budget *lm_meter_budget(const char **err) {
  struct lm_budget *b = get_budget();
  if (err)
    *err = b ? "" : budget_err;
  return b;
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* One ledger line for this call (only when LLMMETER_LEDGER is set). */
void lm_meter_record(struct lm_meter_call *t, const char *outcome) {
  const struct lm_config *c = lm_config_get();
  struct lm_ledger_rec r = {
      .budget = budget_name,
      .agent = c->agent,
      .api = lm_api_name(t->api),
      .provider = t->route.provider,
      .model = t->model[0] ? t->model : "unknown",
      .reported_model = lm_extract_model(&t->x),
      .outcome = outcome,
      .reason = t->reason[0] ? t->reason : NULL,
      .usage = &t->charged,
      .cost_pusd = t->charged_pusd,
      .http_status = t->http_status,
      .duration_ms = now_ns() / 1000000 - t->started_ms,
      .unpriced = t->unpriced,
      .downgraded_from = t->downgraded_from[0] ? t->downgraded_from : NULL,
  };
  lm_ledger_write(&r);
}

/* ---- price and estimate ------------------------------------------------ */

/* The call's price (pricing.h: the table's, the user's default, or the
 * provider's highest; never free by accident), for who bills it. */
static void resolve_price(struct lm_meter_call *t) {
  struct lm_call_price cp;
  lm_pricing_resolve_route(t->model, &t->route, &cp);
  t->price = cp.match;
  t->unpriced = cp.unpriced;
  t->zero_priced = cp.zero_priced;
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

static void warn_unpriced(const struct lm_meter_call *t) {
  const char *how = lm_config_get()->unpriced == LM_UNPRICED_FREE
                        ? "charged $0 (LLMMETER_UNPRICED=free)"
                    : t->price.source == LM_PRICE_DEFAULT
                        ? "charged at LLMMETER_DEFAULT_PRICE"
                        : "charged at its provider's highest prices";
  char line[300];
  snprintf(line, sizeof(line), "llmmeter: model '%.80s' has no price; %s. ",
           t->model[0] ? t->model : "unknown", how);
  lm_meter_say(line, "Price it with LLMMETER_PRICES=FILE (LiteLLM format) or ",
               "LLMMETER_DEFAULT_PRICE=IN,OUT (USD per million tokens)");
}

/* An estimate must be an upper bound (strict mode admits on it): any
 * estimated input token may turn out to be audio, image or video and any
 * output token audio, image, video or reasoning, each with its own rate, so
 * the estimate prices every token at the highest rate its total can have. */
static int64_t worst_rate(int64_t base, const struct lm_price *p,
                          const uint32_t *bits, const int64_t *rates, int n) {
  int64_t r = base;
  for (int k = 0; k < n; k++)
    if ((p->parts & bits[k]) && rates[k] > r)
      r = rates[k];
  return r;
}

static int64_t estimate_cost(const struct lm_price *p,
                             const struct lm_usage *est) {
  struct lm_price w = *p;
  const uint32_t in_bits[] = {LM_PRICE_HAS_INPUT_AUDIO,
                              LM_PRICE_HAS_INPUT_IMAGE,
                              LM_PRICE_HAS_INPUT_VIDEO};
  const int64_t in_rates[] = {p->input_audio, p->input_image, p->input_video};
  const uint32_t out_bits[] = {
      LM_PRICE_HAS_OUTPUT_AUDIO, LM_PRICE_HAS_OUTPUT_IMAGE,
      LM_PRICE_HAS_OUTPUT_VIDEO, LM_PRICE_HAS_OUTPUT_REASONING};
  const int64_t out_rates[] = {p->output_audio, p->output_image,
                               p->output_video, p->output_reasoning};
  w.input = worst_rate(p->input, p, in_bits, in_rates, 3);
  w.output = worst_rate(p->output, p, out_bits, out_rates, 4);
  if (w.tier.above_input_tokens) {
    w.tier.input = worst_rate(p->tier.input, p, in_bits, in_rates, 3);
    w.tier.output = worst_rate(p->tier.output, p, out_bits, out_rates, 4);
  }
  return lm_price_cost(&w, est);
}

static void estimate(struct lm_meter_call *t, const char *body,
                     size_t body_len) {
  const struct lm_config *c = lm_config_get();
  uint64_t chars = body ? t->req.prompt_chars : 0;
  if (!body || (chars == 0 && body_len > 0))
    chars = body_len; /* nothing parsed: the whole body is the prompt */
  /* ~4 characters a token in English; 3 errs on the side of paying. */
  t->est.input = chars / 3 + 16;
  if (t->api == LM_API_OPENAI_EMBEDDINGS)
    t->est.output = 0;
  else {
    /* each of n answers (n, best_of, candidateCount) is billed */
    uint64_t one = (uint64_t)(t->req.max_output_tokens > 0
                                  ? t->req.max_output_tokens
                                  : c->default_max_tokens);
    uint64_t k = t->req.choices ? t->req.choices : 1;
    t->est.output = one > (uint64_t)INT64_MAX / k ? (uint64_t)INT64_MAX
                                                  : one * k;
  }
  t->est.requests = 1; /* a per-call fee (Perplexity) is reserved too */
  t->est_pusd = estimate_cost(&t->price.price, &t->est);
}

/* ---- begin ----------------------------------------------------------------- */

static __thread uint64_t scans;
uint64_t lm_meter_scan_count(void) { return scans; }

/* The request's URL: the transport's, or composed from its parts. */
/* Appends p[0..n) at *at if it fits before end. */
static bool put(char **at, const char *end, const char *p, size_t n) {
  if ((size_t)(end - *at) < n)
    return false;
  memcpy(*at, p, n);
  *at += n;
  return true;
}

/* scheme://host[:port]target in buf (every call: composed by hand, not by
 * snprintf, which cost a tenth of a metered call's CPU). */
static const char *request_url(const struct lm_meter_request *r, char *buf,
                               size_t size, size_t *len) {
  if (r->url) {
    *len = strlen(r->url);
    return r->url;
  }
  if (!r->host || !r->target || size == 0)
    return NULL;
  const char *scheme = r->scheme ? r->scheme : "https";
  char *at = buf, *end = buf + size - 1; /* room for the NUL */
  bool ok = put(&at, end, scheme, strlen(scheme)) && put(&at, end, "://", 3) &&
            put(&at, end, r->host, strlen(r->host));
  if (ok && r->port > 0) {
    char digits[12], *d = digits + sizeof digits;
    unsigned v = (unsigned)r->port;
    do
      *--d = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    *--d = ':';
    ok = put(&at, end, d, (size_t)(digits + sizeof digits - d));
  }
  if (!ok || !put(&at, end, r->target, r->target_len))
    return NULL;
  *at = '\0';
  *len = (size_t)(at - buf);
  return buf;
}

_Static_assert(offsetof(struct lm_meter_call, x) <
                   offsetof(struct lm_meter_call, response),
               "reset_call zeroes around the extractor, before response");

static void reset_call(struct lm_meter_call *t, const struct lm_route *route) {
  char *keep_body = t->send_body;
  struct lm_inject_filter *keep_filter = t->filter;
  free(keep_body);
  /* The extractor is zeroed by its own init, and the refusal bytes are
   * written whole when there is one: each byte of the call once. */
  memset(t, 0, offsetof(struct lm_meter_call, x));
  char *after_x = (char *)&t->x + sizeof(t->x);
  memset(after_x, 0, (size_t)((char *)t->response - after_x));
  lm_extract_init(&t->x, route->api);
  t->response[0] = 0;
  t->filter = keep_filter;
  t->api = route->api;
  t->route = *route;
  t->lease.slot = UINT32_MAX;
  t->started_ns = now_ns();
  t->started_ms = t->started_ns / 1000000;
}

/* Above the soft limit, --downgrade may send a cheaper model: the body is
 * rewritten and the call is admitted and priced as the new model. */
static const char *plan_downgrade(struct lm_meter_call *t, struct lm_budget *b,
                                  const char *body, size_t *len) {
  char target[128];
  if (!b || !body || !t->req.model[0] || !lm_budget_downgrade(b, NULL, NULL, 0))
    return body;
  if (!lm_budget_downgrade(b, t->req.model, target, sizeof(target)))
    return body;
  size_t out_len = 0;
  char *o = lm_inject_model(body, *len, target, &out_len);
  if (!o)
    return body;
  lm_str_copy(t->downgraded_from, sizeof(t->downgraded_from), t->req.model);
  lm_str_copy(t->req.model, sizeof(t->req.model), target);
  t->send_body = o;
  t->send_len = out_len;
  *len = out_len;
  return o;
}

/* An OpenAI chat stream that did not ask for usage: ask for it, and get
 * the filter ready to hide the answer's traces (inject.h). */
static void plan_injection(struct lm_meter_call *t, const char *body,
                           size_t len) {
  if (!lm_config_get()->inject || t->api != LM_API_OPENAI_CHAT ||
      !t->req.stream || t->req.has_stream_options || !body)
    return;
  if (!t->filter && !(t->filter = malloc(sizeof(*t->filter))))
    return;
  size_t out_len = 0;
  char *o = lm_inject_request(body, len, &out_len);
  if (!o)
    return;
  free(t->send_body);
  t->send_body = o;
  t->send_len = out_len;
  lm_inject_filter_init(t->filter);
  t->filtering = true;
}

static enum lm_verdict_kind deny(struct lm_meter_call *t,
                                 const struct lm_denial *why,
                                 struct lm_verdict *v) {
  const struct lm_config *c = lm_config_get();
  int status = lm_deny_status(why);
  int64_t retry = why ? why->retry_after_s : -1;
  if (why && why->waitable && why->waited_ms == 0)
    retry = 1; /* settlements come in seconds, not at the window's end */
  if (status == 429 && retry < 1)
    retry = 1;
  t->state = LM_CALL_DENIED;
  v->kind = LM_VERDICT_DENY;
  v->status = status;
  v->response_len = lm_deny_response(t->api, status, retry, t->reason,
                                     t->response, sizeof(t->response),
                                     &v->head_len);
  v->response = t->response;
  v->present = c->deny == LM_DENY_STYLE_HTTP;
  v->error_code = c->deny_curlcode;
  v->reason = t->reason;
  return LM_VERDICT_DENY;
}

/* The budget cannot be used: fail closed when a hard limit was asked for
 * (or LLMMETER_ON_ERROR=closed), else let the call pass unmetered. */
static enum lm_verdict_kind unusable(struct lm_meter_call *t,
                                     struct lm_verdict *v) {
  const struct lm_config *c = lm_config_get();
  bool closed = c->on_error == 1 || (c->on_error < 0 && c->limit_pusd >= 0);
  lm_str_copy(t->reason, sizeof(t->reason), budget_err);
  if (!atomic_exchange(&said_budget, 1))
    lm_meter_say("llmmeter: ", t->reason,
                 closed ? "; refusing LLM calls (LLMMETER_ON_ERROR)"
                        : "; LLM calls pass unmetered (LLMMETER_ON_ERROR)");
  if (!closed) {
    t->state = LM_CALL_DONE;
    return LM_VERDICT_PASS;
  }
  return deny(t, NULL, v);
}

static enum lm_verdict_kind admit(struct lm_meter_call *t, struct lm_budget *b,
                                  struct lm_verdict *v) {
  const struct lm_config *c = lm_config_get();
  if (t->unpriced && first_sight(t->model[0] ? t->model : "unknown"))
    warn_unpriced(t);
  if (t->unpriced && c->unpriced == LM_UNPRICED_DENY) {
    snprintf(t->reason, sizeof(t->reason),
             "budget '%.40s': model '%.60s' has no price "
             "(LLMMETER_UNPRICED=deny); price it with LLMMETER_PRICES or "
             "LLMMETER_DEFAULT_PRICE",
             budget_name, t->model[0] ? t->model : "unknown");
    struct lm_denial why = {.kind = LM_DENY_UNPRICED, .retry_after_s = -1};
    lm_meter_record(t, "denied");
    lm_meter_say("llmmeter: call refused: ", t->reason, NULL);
    return deny(t, &why, v);
  }
  t->call = (struct lm_call){
      .model = t->model,
      .provider = t->route.provider,
      .agent = c->agent,
      .est_pusd = t->est_pusd,
      .est_tokens = t->est.input + t->est.output,
      .est_input_tokens = t->est.input,
      .est_output_tokens = t->est.output,
      .zero_priced = t->zero_priced,
      .whole_response = !t->req.stream,
      .wait_ms = t->no_wait ? 0 : c->wait_ms,
      .max_call_pusd = c->max_call_pusd,
      .max_call_input_tokens = c->max_call_input_tokens,
      .max_call_output_tokens = c->max_call_output_tokens};
  struct lm_denial why;
  if (lm_budget_admit(b, &t->call, &t->lease, &why) != 0) {
    lm_denial_format(&why, budget_name, t->reason, sizeof(t->reason));
    if (why.kind == LM_DENY_ERROR && c->on_error == 0) {
      /* the budget cannot be asked (Redis down): LLMMETER_ON_ERROR=open
       * lets the call through, unmetered, and says so */
      lm_meter_say("llmmeter: ", t->reason,
                   "; this call passes unmetered (LLMMETER_ON_ERROR=open)");
      lm_meter_record(t, "unmetered");
      t->state = LM_CALL_DONE;
      return LM_VERDICT_PASS;
    }
    lm_meter_record(t, "denied");
    lm_meter_say("llmmeter: call refused: ", t->reason, NULL);
    return deny(t, &why, v);
  }
  t->state = LM_CALL_ADMITTED;
  v->kind = LM_VERDICT_METER;
  return LM_VERDICT_METER;
}

void lm_meter_say_settings(void) {
  const struct lm_config *c = lm_config_get();
  if (c->errors[0] && !atomic_exchange(&said_config, 1))
    lm_meter_say("llmmeter: ignoring bad settings: ", c->errors, NULL);
  if (lm_price_load_error() && !atomic_exchange(&said_prices, 1))
    lm_meter_say("llmmeter: price settings (LLMMETER_PRICES / "
                 "LLMMETER_DEFAULT_PRICE): ",
                 lm_price_load_error(), "; using the embedded table");
}

bool lm_meter_wants(const struct lm_meter_request *r) {
  const struct lm_config *c = lm_config_get();
  if (c->disabled || !(r->has_body || r->body) ||
      (r->method && strcmp(r->method, "POST") != 0))
    return false;
  char ubuf[2304];
  size_t ulen = 0;
  const char *url = request_url(r, ubuf, sizeof(ubuf), &ulen);
  struct lm_route route;
  return url && lm_route_url(url, ulen, c->endpoints, &route);
}

enum lm_verdict_kind lm_meter_begin(struct lm_meter_call **slot,
                                    const struct lm_meter_request *r,
                                    struct lm_verdict *v) {
  memset(v, 0, sizeof(*v));
  v->kind = LM_VERDICT_PASS;
  const struct lm_config *c = lm_config_get();
  bool has_body = r->has_body || r->body;
  /* LLM calls are POSTs with a body. */
  if (c->disabled || !has_body || (r->method && strcmp(r->method, "POST") != 0))
    return LM_VERDICT_PASS;
  char ubuf[2304];
  size_t ulen = 0;
  const char *url = request_url(r, ubuf, sizeof(ubuf), &ulen);
  if (!url)
    return LM_VERDICT_PASS;
  struct lm_route route; /* the API, who bills it, the URL's model */
  if (!lm_route_url(url, ulen, c->endpoints, &route))
    return LM_VERDICT_PASS;
  enum lm_api api = route.api;
  lm_meter_say_settings();
  if (*slot && (*slot)->state == LM_CALL_ADMITTED)
    return LM_VERDICT_PASS; /* already running: a second start passes */
  if (!*slot && !(*slot = calloc(1, sizeof(**slot))))
    return LM_VERDICT_PASS; /* out of memory: never crash the host */
  struct lm_meter_call *t = *slot;
  reset_call(t, &route);
  t->no_wait = r->no_wait;

  const char *body = r->body;
  size_t len = r->body_len;
  if (body) {
    lm_reqscan(api, body, len, &t->req); /* the one scan of the body */
    scans++;
  } else {
    t->req.max_output_tokens = -1;
  }
  struct lm_budget *b = get_budget();
  body = plan_downgrade(t, b, body, &len);
  const char *model = lm_route_model(url, ulen, t->req.model, t->model,
                                     sizeof(t->model));
  if (model != t->model)
    lm_str_copy(t->model, sizeof(t->model), model);
  resolve_price(t);
  estimate(t, body, len);
  if (!b)
    return unusable(t, v);
  if (admit(t, b, v) != LM_VERDICT_METER)
    return v->kind;
  plan_injection(t, body, len);
  v->body = t->send_body;
  v->body_len = t->send_len;
  v->filter_response = t->filtering;
  return LM_VERDICT_METER;
}

/* ---- the response -------------------------------------------------------- */

static int ci_prefix(const char *line, size_t len, const char *name) {
  size_t n = strlen(name);
  return len >= n && strncasecmp(line, name, n) == 0;
}

void lm_meter_header(struct lm_meter_call *t, const char *line, size_t len) {
  if (!t || t->state != LM_CALL_ADMITTED)
    return;
  if (len > 5 && memcmp(line, "HTTP/", 5) == 0) {
    /* A new status line: 1xx, a redirect or an auth round starts over. */
    const char *sp = memchr(line, ' ', len);
    int code = 0;
    for (const char *p = sp ? sp + 1 : line + len;
         p < line + len && *p >= '0' && *p <= '9'; p++)
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
static int64_t cost_of(struct lm_meter_call *t, const struct lm_usage *u) {
  int64_t pusd;
  if (lm_extract_provider_cost(&t->x, &pusd))
    return pusd;
  return lm_price_cost(&t->price.price, u);
}

/* The first call to find spent at the soft limit (once per window, across
 * all processes) records it, says so and starts the --on-soft command. */
static void check_soft(struct lm_meter_call *t) {
  char cmd[256];
  if (!budget || !lm_budget_soft_crossed(budget, cmd, sizeof(cmd)))
    return;
  lm_meter_say("llmmeter: budget '", budget_name, "' crossed its soft limit");
  struct lm_meter_call *mark = malloc(sizeof(*mark));
  if (mark) {
    memcpy(mark, t, offsetof(struct lm_meter_call, send_body));
    memset(&mark->charged, 0, sizeof(mark->charged));
    mark->charged_pusd = 0;
    snprintf(mark->reason, sizeof(mark->reason),
             "budget '%s' crossed its soft limit", budget_name);
    lm_meter_record(mark, "soft_limit");
    free(mark);
  }
  if (cmd[0])
    lm_notify_on_soft(budget, cmd);
}

/* Charges the difference between the latest usage and what was charged;
 * a snapshot may go down (Gemini), and then the difference is a refund. */
static void charge_latest(struct lm_meter_call *t) {
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
    struct lm_call_price cp;
    lm_pricing_resolve_route(lm_extract_model(&t->x), &t->route, &cp);
    if (!cp.unpriced) {
      if (!t->model[0])
        lm_str_copy(t->model, sizeof(t->model), lm_extract_model(&t->x));
      t->price = cp.match;
      t->unpriced = false;
      t->zero_priced = cp.zero_priced;
    }
  }
  struct lm_usage u = *lm_extract_usage(&t->x);
  u.requests = 1; /* the call's own fee, charged with its first usage */
  int64_t cost = cost_of(t, &u);
  struct lm_usage d = lm_usage_sub(&u, &t->charged);
  lm_budget_charge(b, &t->lease, &d, cost - t->charged_pusd);
  t->charged = u;
  t->charged_pusd = cost;
  check_soft(t);
}

/* Whether the call must be cut now, with the reason. A cut saves money
 * only while the response is still being generated: a single JSON body was
 * finished before its first byte was sent, and a stream whose final usage
 * has arrived has nothing more to bill. Those are delivered whole and
 * charged; the next call is the one refused. */
static bool should_cut(struct lm_meter_call *t) {
  struct lm_denial why;
  char line[200];
  if (!lm_extract_streaming(&t->x) || lm_extract_final(&t->x))
    return false;
  lm_budget_alive(budget, &t->lease);
  if (lm_budget_over_time(budget, now_ns() - t->started_ns, &why)) {
    lm_denial_format(&why, budget_name, line, sizeof(line));
    snprintf(t->reason, sizeof(t->reason), "%.200s; stream cut", line);
    return true;
  }
  if (!t->charged_pusd && !t->charged.input && !t->charged.output)
    return false; /* no running total yet (usage comes at the end): this
                     stream has crossed nothing; it finishes, charged exactly */
  if (lm_budget_over_hard(budget, &t->lease)) {
    snprintf(t->reason, sizeof(t->reason),
             "budget '%s': hard limit reached mid-stream; stream cut",
             budget_name);
    return true;
  }
  if (lm_budget_over_call_caps(budget, &t->lease, &t->call, &t->charged,
                               t->charged_pusd, &why)) {
    lm_denial_format(&why, budget_name, line, sizeof(line));
    snprintf(t->reason, sizeof(t->reason), "%.200s mid-stream; stream cut",
             line);
    return true;
  }
  return false;
}

bool lm_meter_body(struct lm_meter_call *t, const char *p, size_t n) {
  if (!t || t->state != LM_CALL_ADMITTED)
    return false;
  lm_extract_feed(&t->x, p, n);
  charge_latest(t);
  if (t->cut || lm_config_get()->midstream_finish)
    return t->cut;
  t->cut = should_cut(t);
  return t->cut;
}

size_t lm_meter_filter_feed(struct lm_meter_call *t, const char *p, size_t n,
                            lm_meter_emit_fn emit, void *ctx, bool *stopped) {
  *stopped = false;
  if (!t || !t->filtering)
    return 0;
  return lm_inject_filter_feed(t->filter, p, n, emit, ctx, stopped);
}

size_t lm_meter_filter_finish(struct lm_meter_call *t, lm_meter_emit_fn emit,
                              void *ctx, bool *stopped) {
  *stopped = false;
  if (!t || !t->filtering)
    return 0;
  /* The transfer is over, so a pause cannot be honoured: offer the rest
   * again (a paused program takes it on a later call). */
  size_t r = lm_inject_filter_finish(t->filter, emit, ctx, stopped);
  for (int tries = 0; *stopped && tries < 64; tries++)
    r = lm_inject_filter_feed(t->filter, NULL, 0, emit, ctx, stopped);
  t->filtering = false;
  return r;
}

size_t lm_meter_filter_taken(const struct lm_meter_call *t) {
  return t && t->filter ? t->filter->taken : 0;
}

void lm_meter_end(struct lm_meter_call *t, bool transport_ok) {
  if (!t)
    return;
  t->filtering = false;
  if (t->state != LM_CALL_ADMITTED) {
    if (t->state != LM_CALL_IDLE)
      t->state = LM_CALL_DONE;
    return;
  }
  struct lm_budget *b = budget;
  bool final = lm_extract_final(&t->x); /* before finish, which ends it */
  lm_extract_finish(&t->x);
  charge_latest(t);
  unsigned flags = t->unpriced ? LM_SETTLE_UNPRICED : 0;
  bool ok_status = t->http_status >= 200 && t->http_status < 300;
  /* The provider bills a successful response, whole or not: one read to
   * its end, one cut, one the program left before its end (an SDK that
   * stops reading at finish_reason or [DONE], a read timeout mid-body).
   * Its usage is taken as read when the response ended, its final usage
   * came, what was read is a running total of what arrived, or we cut it
   * (what arrived is charged: the limit is reached, the next call is
   * refused). A program that leaves a stream before its final usage may
   * do so call after call: it is charged no less than the estimate. */
  bool billed = ok_status;
  const char *outcome;
  if (lm_extract_has_usage(&t->x) && (transport_ok || final || !billed ||
                                      t->cut || lm_extract_running(&t->x))) {
    lm_budget_settle(b, &t->lease, flags);
    /* A program may close a stream once its final usage is in (an SDK
     * that stops at [DONE] and drops the connection): it got what it was
     * billed for, so that is no failure. */
    outcome = t->cut ? "cut" : transport_ok || final ? "ok" : "failed";
  } else if (billed) {
    /* Billed, and its final usage never read: a response we could not
     * read, one we cut before any usage, or one the program left before
     * its usage came (an Anthropic stream's message_start has the input,
     * its last event the output). Charged at the estimate, or at what was
     * read where that is more, field by field: never free by accident. */
    struct lm_usage u = lm_usage_max(&t->est, &t->charged);
    int64_t cost = cost_of(t, &u);
    if (cost < t->est_pusd)
      cost = t->est_pusd;
    if (cost < t->charged_pusd)
      cost = t->charged_pusd;
    struct lm_usage d = lm_usage_sub(&u, &t->charged);
    lm_budget_charge(b, &t->lease, &d, cost - t->charged_pusd);
    t->charged = u;
    t->charged_pusd = cost;
    lm_budget_settle(b, &t->lease, flags | LM_SETTLE_UNMETERED);
    outcome = t->cut ? "cut" : "unmetered";
    check_soft(t);
  } else {
    lm_budget_release(b, &t->lease); /* failed with no usage: refund */
    outcome = "failed";
  }
  lm_budget_add_llm_time(b, now_ns() - t->started_ns);
  lm_budget_rate_correct(b, &t->lease, &t->charged);
  lm_meter_record(t, outcome);
  t->state = LM_CALL_DONE;
  if (t->cut)
    lm_meter_say("llmmeter: ", t->reason, NULL);
}

bool lm_meter_running(const struct lm_meter_call *t) {
  return t && t->state == LM_CALL_ADMITTED;
}

int lm_meter_status(const struct lm_meter_call *t) {
  return t ? t->http_status : 0;
}

bool lm_meter_was_cut(const struct lm_meter_call *t) { return t && t->cut; }

const char *lm_meter_reason(const struct lm_meter_call *t) {
  return t ? t->reason : "";
}

void lm_meter_free(struct lm_meter_call *t) {
  if (!t)
    return;
  free(t->send_body);
  free(t->filter);
  free(t);
}
