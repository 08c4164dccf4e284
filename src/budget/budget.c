/* budget.c — the budget interface: one entry point per question, the
 * choice of backend by the budget's name, and the one-line denial text.
 *
 * Every lm_budget_* call dispatches through the handle's ops table, so the
 * meter and the CLI never know which backend holds a budget. The backend is
 * chosen here and nowhere else: a plain name is a shared-memory segment;
 * a redis:// URL is a budget in Redis (budget_redis.c); any other scheme
 * is refused with a clear line. Reads no environment and prints nothing.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "budget_backend.h"
#include "money.h"
#include "window.h"
#include "utc.h"

static _Atomic uint64_t handle_serials;
static const struct lm_budget_backend *forced;

void lm_budget_init_base(struct lm_budget *b, const struct lm_budget_ops *ops,
                         const char *name) {
  b->ops = ops;
  b->serial = atomic_fetch_add(&handle_serials, 1) + 1;
  lm_budget_resolve_name(name, NULL, b->name, sizeof(b->name));
}

int64_t lm_budget_now(const struct lm_budget *b) {
  return b->now ? b->now(b->now_ctx) : (int64_t)time(NULL);
}

static struct lm_budget_env env = {.lease_ttl_ms = 120000};

void lm_budget_set_env(const struct lm_budget_env *e) { env = *e; }
const struct lm_budget_env *lm_budget_get_env(void) { return &env; }

void lm_budget_force_backend(const struct lm_budget_backend *be) {
  forced = be;
}

void lm_budget_resolve_name(const char *explicit_name, const char *env_name,
                            char *out, size_t size) {
  if (explicit_name && *explicit_name)
    snprintf(out, size, "%s", explicit_name);
  else if (env_name && *env_name)
    snprintf(out, size, "%s", env_name);
  else
    lm_segment_default_name(out, size);
}

/* The one place a budget's name selects its backend. */
static const struct lm_budget_backend *backend_for(const char *name, char *err,
                                                   size_t errlen) {
  if (forced)
    return forced;
  if (name && strncmp(name, "redis://", 8) == 0)
    return &lm_budget_backend_redis;
  if (name && strstr(name, "://")) {
    snprintf(err, errlen, "budget '%.*s...': no backend for this scheme",
             (int)(strstr(name, "://") - name), name);
    return NULL;
  }
  return &lm_budget_backend_shm;
}

void lm_budget_display_name(const char *name, char *out, size_t size) {
  const char *scheme = name ? strstr(name, "://") : NULL;
  const char *at = scheme ? strrchr(scheme, '@') : NULL;
  if (!at) {
    snprintf(out, size, "%s", name ? name : "");
    return;
  }
  /* scheme://[user:]password@rest -> scheme://rest: never shown */
  snprintf(out, size, "%.*s%s", (int)(scheme + 3 - name), name, at + 1);
}

int lm_budget_remove(const char *name, char *err, size_t errlen) {
  if (forced)
    return LM_SEG_ENAME;
  if (name && strncmp(name, "redis://", 8) == 0)
    return lm_budget_redis_remove(name, err, errlen);
  return lm_segment_remove(name, err, errlen);
}

int lm_budget_list(const char *where, void (*fn)(const char *name, void *ctx),
                   void *ctx, char *err, size_t errlen) {
  if (where && strncmp(where, "redis://", 8) == 0)
    return lm_budget_redis_list(where, fn, ctx, err, errlen);
  if (lm_segment_list(fn, ctx) != 0) {
    snprintf(err, errlen, "cannot read /dev/shm: %s", strerror(errno));
    return LM_SEG_ESYS;
  }
  return 0;
}

int lm_budget_open(const char *name, bool create, struct lm_budget **out,
                   char *err, size_t errlen) {
  const struct lm_budget_backend *be = backend_for(name, err, errlen);
  if (!be)
    return LM_SEG_ENAME;
  return be->open(name, create, out, err, errlen);
}

int lm_budget_create(const char *name, bool force,
                     const struct lm_limit_config *cfg, struct lm_budget **out,
                     char *err, size_t errlen) {
  const struct lm_budget_backend *be = backend_for(name, err, errlen);
  if (!be)
    return LM_SEG_ENAME;
  int rc = be->create(name, force, out, err, errlen);
  if (rc == 0 && cfg && (*out)->ops->configure(*out, cfg) != 0) {
    /* (a Redis that went away between the two steps): never a budget
     * that silently lacks the limits asked for */
    snprintf(err, errlen, "budget '%s': its limits could not be set",
             (*out)->name);
    lm_budget_close(*out);
    *out = NULL;
    return LM_SEG_ESYS;
  }
  return rc;
}

bool lm_denial_time(int64_t deadline, int64_t now, int64_t max_ns,
                    int64_t used_ns, struct lm_denial *why) {
  if (deadline >= 0 && now >= deadline) {
    memset(why, 0, sizeof(*why));
    why->kind = LM_DENY_DEADLINE;
    why->limit = deadline;
    why->retry_after_s = -1;
    return true;
  }
  if (max_ns >= 0 && used_ns >= max_ns) {
    memset(why, 0, sizeof(*why));
    why->kind = LM_DENY_LLM_TIME;
    why->limit = max_ns;
    why->used = used_ns;
    why->retry_after_s = -1;
    return true;
  }
  return false;
}

void lm_denial_fill(struct lm_denial *why, enum lm_deny_kind kind,
                    const char *subject, int64_t limit, int64_t used, int wk,
                    int64_t now) {
  memset(why, 0, sizeof(*why));
  why->kind = kind;
  if (subject)
    snprintf(why->subject, sizeof(why->subject), "%s", subject);
  why->limit = limit;
  why->used = used;
  why->window = (enum lm_window_kind)wk;
  why->retry_after_s = wk == LM_WINDOW_NONE ? -1
                                            : lm_window_next(wk, now) - now;
}

/* ---- dispatch ---------------------------------------------------------- */

int lm_budget_admit(struct lm_budget *b, const struct lm_call *c,
                    struct lm_lease *l, struct lm_denial *why) {
  return b->ops->admit(b, c, l, why);
}
void lm_budget_charge(struct lm_budget *b, struct lm_lease *l,
                      const struct lm_usage *d, int64_t pusd) {
  b->ops->charge(b, l, d, pusd);
}
void lm_budget_settle(struct lm_budget *b, struct lm_lease *l, unsigned f) {
  b->ops->settle(b, l, f);
}
void lm_budget_release(struct lm_budget *b, struct lm_lease *l) {
  b->ops->release(b, l);
}
int lm_budget_snapshot(struct lm_budget *b, struct lm_snapshot *o) {
  return b->ops->snapshot(b, o);
}
int lm_budget_reclaim(struct lm_budget *b) { return b->ops->reclaim(b); }
int lm_budget_configure(struct lm_budget *b, const struct lm_limit_config *c) {
  return b->ops->configure(b, c);
}
int lm_budget_add_rule(struct lm_budget *b, int kind, const char *pattern,
                       int64_t limit, char *err, size_t errlen) {
  return b->ops->add_rule(b, kind, pattern, limit, err, errlen);
}
int lm_budget_reset(struct lm_budget *b) { return b->ops->reset(b); }
void lm_budget_close(struct lm_budget *b) {
  if (b)
    b->ops->close(b);
}
void lm_budget_alive(struct lm_budget *b, struct lm_lease *l) {
  if (b->ops->alive)
    b->ops->alive(b, l);
}
bool lm_budget_over_hard(struct lm_budget *b, const struct lm_lease *l) {
  return b->ops->over_hard(b, l);
}
bool lm_budget_over_call_caps(struct lm_budget *b, const struct lm_lease *l,
                              const struct lm_call *call,
                              const struct lm_usage *total, int64_t cost,
                              struct lm_denial *why) {
  return b->ops->over_call_caps(b, l, call, total, cost, why);
}
void lm_budget_add_llm_time(struct lm_budget *b, int64_t ns) {
  b->ops->add_llm_time(b, ns);
}
bool lm_budget_over_time(struct lm_budget *b, int64_t inflight_ns,
                         struct lm_denial *why) {
  return b->ops->over_time(b, inflight_ns, why);
}
void lm_budget_rate_correct(struct lm_budget *b, const struct lm_lease *l,
                            const struct lm_usage *actual) {
  b->ops->rate_correct(b, l, actual);
}
bool lm_budget_soft_crossed(struct lm_budget *b, char *cmd, size_t cmdlen) {
  return b->ops->soft_crossed(b, cmd, cmdlen);
}
bool lm_budget_downgrade(struct lm_budget *b, const char *model, char *out,
                         size_t outlen) {
  return b->ops->downgrade(b, model, out, outlen);
}
bool lm_budget_hard_limit(struct lm_budget *b) { return b->ops->hard_limit(b); }
void lm_budget_count_unmetered(struct lm_budget *b, bool denied) {
  b->ops->count_unmetered(b, denied);
}
const char *lm_budget_name(const struct lm_budget *b) { return b->name; }

void lm_budget_set_clock(struct lm_budget *b, int64_t (*now)(void *),
                         void *ctx) {
  b->now = now;
  b->now_ctx = ctx;
}

/* ---- the denial line ----------------------------------------------------- */

void lm_denial_format(const struct lm_denial *d, const char *budget, char *buf,
                      size_t len) {
  char lim[32], used[32], sp[32], retry[64] = "", what[160];
  if (d->retry_after_s >= 0)
    snprintf(retry, sizeof(retry), "; retry after %llds (%s window)",
             (long long)d->retry_after_s, lm_window_name(d->window));
  const char *sub = d->subject[0] ? d->subject : NULL;
  switch (d->kind) {
  case LM_DENY_HARD:
  case LM_DENY_MODEL:
  case LM_DENY_AGENT:
    if (d->kind == LM_DENY_HARD)
      snprintf(what, sizeof(what), "hard limit $%s",
               lm_money_format_display(d->limit, 2, lim, sizeof(lim)));
    else
      snprintf(what, sizeof(what), "%s limit %s=$%s",
               d->kind == LM_DENY_MODEL ? "model" : "agent", d->subject,
               lm_money_format_display(d->limit, 2, lim, sizeof(lim)));
    if (d->waited_ms > 0)
      snprintf(buf, len,
               "budget '%s': %s: waited %llds for in-flight calls to settle "
               "(spent $%s, spent+reserved $%s)%s",
               budget, what, (long long)((d->waited_ms + 500) / 1000),
               lm_money_format_display(d->spent, 4, sp, sizeof(sp)),
               lm_money_format_display(d->used, 4, used, sizeof(used)), retry);
    else if (d->waitable)
      snprintf(buf, len,
               "budget '%s': %s: in-flight calls hold the rest (spent $%s, "
               "spent+reserved $%s); retry when they settle",
               budget, what,
               lm_money_format_display(d->spent, 4, sp, sizeof(sp)),
               lm_money_format_display(d->used, 4, used, sizeof(used)));
    else if (d->used >= 0 && d->used < d->limit) /* strict: it would not fit */
      snprintf(buf, len,
               "budget '%s': %s: this call's estimate does not fit what is "
               "left (spent+reserved $%s)%s",
               budget, what,
               lm_money_format_display(d->used, 4, used, sizeof(used)), retry);
    else
      snprintf(buf, len, "budget '%s': %s reached (spent+reserved $%s)%s",
               budget, what,
               lm_money_format_display(d->used, 4, used, sizeof(used)), retry);
    break;
  case LM_DENY_TOKENS:
    snprintf(buf, len, "budget '%s': token limit %lld %s (used %lld)%s", budget,
             (long long)d->limit,
             d->waited_ms > 0 ? "blocked by in-flight calls after waiting"
                              : "reached",
             (long long)d->used, retry);
    break;
  case LM_DENY_REQUESTS:
    snprintf(buf, len, "budget '%s': request limit %lld reached (used %lld)%s",
             budget, (long long)d->limit, (long long)d->used, retry);
    break;
  case LM_DENY_BUSY:
    snprintf(buf, len, "budget '%s': all %d lease slots are held by live calls",
             budget, LM_LEASES);
    break;
  case LM_DENY_CALL_USD:
    snprintf(buf, len,
             "budget '%s': per-call cap $%s%s%s exceeded (call costs $%s)",
             budget, lm_money_format_display(d->limit, 4, lim, sizeof(lim)),
             sub ? " for " : "", sub ? sub : "",
             lm_money_format_display(d->used, 4, used, sizeof(used)));
    break;
  case LM_DENY_CALL_INPUT:
  case LM_DENY_CALL_OUTPUT:
    snprintf(buf, len,
             "budget '%s': per-call %s-token cap %lld%s%s exceeded (%lld)",
             budget, d->kind == LM_DENY_CALL_INPUT ? "input" : "output",
             (long long)d->limit, sub ? " for " : "", sub ? sub : "",
             (long long)d->used);
    break;
  case LM_DENY_RATE:
    snprintf(buf, len,
             "budget '%s': rate limit %s %lld/min reached (in use %lld)%s",
             budget, d->subject, (long long)d->limit, (long long)d->used,
             d->retry_after_s >= 0 ? "" : "; never admits this call");
    if (d->retry_after_s >= 0) {
      size_t n = strlen(buf);
      snprintf(buf + n, len - n, "; retry after %llds",
               (long long)d->retry_after_s);
    }
    break;
  case LM_DENY_DEADLINE: {
    time_t t = (time_t)d->limit;
    struct tm tm;
    lm_utc(t, &tm);
    char when[32];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(buf, len, "budget '%s': deadline %s has passed", budget, when);
    break;
  }
  case LM_DENY_LLM_TIME:
    snprintf(buf, len,
             "budget '%s': LLM time budget of %llds is used (%.1fs inside "
             "LLM calls)",
             budget, (long long)(d->limit / 1000000000), (double)d->used / 1e9);
    break;
  default: /* LM_DENY_ERROR: the backend's reason, when it gave one */
    if (d->detail[0])
      sub = d->detail;
    snprintf(buf, len, "budget '%s': unavailable%s%s", budget, sub ? ": " : "",
             sub ? sub : "");
  }
}
