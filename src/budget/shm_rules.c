/* shm_rules.c — the rest of what a shared-memory budget is asked: its
 * limits and rules (configure, add_rule, reset), the snapshot `llmmeter
 * status` shows, and what the meter asks between admission and settlement
 * (hard limit reached, deadline and LLM time, soft limit crossed,
 * downgrade).
 *
 * Limits are single atomics, changed live with no lock. What is more than
 * one word (the rule table, the on-soft command, the downgrade map) is
 * changed in a step (shm_journal.c); a reset zeroes every counter set in
 * one journaled step, so it happens wholly or not at all; the snapshot
 * reads under the lock, so it never shows a step half done. Every rule
 * change bumps rules_gen, which admission's per-thread memo checks
 * (shm_admit.c). Strings read back from the segment are copied bounded
 * with their NUL forced: another process of the same user may have
 * written them.
 */
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#include "money.h"
#include "shm_internal.h"
#include "window.h"

/* The soft limit in force: the one set, else 80 % of the hard limit
 * (exactly, in integers), else none (-1). */
static int64_t soft_limit(struct lm_segment *s) {
  int64_t soft = atomic_load(&s->limits.soft_pusd);
  int64_t hard = atomic_load(&s->limits.hard_pusd);
  if (soft < 0 && hard >= 0)
    soft = hard / 5 * 4 + (hard % 5) * 4 / 5;
  return soft;
}

/* ---- snapshot ---------------------------------------------------------- */

static void snap_counters(const struct lm_counters *c, int64_t win,
                          struct lm_snap_counters *o) {
  memset(o, 0, sizeof(*o));
  int current = atomic_load(&c->window) >= win;
  o->reserved = atomic_load(&c->reserved);
  o->reserved_requests = atomic_load(&c->reserved_requests);
  o->reserved_tokens = atomic_load(&c->reserved_tokens);
  o->first_activity = atomic_load(&c->first_activity);
  o->last_activity = atomic_load(&c->last_activity);
  if (!current)
    return; /* a stale window counts as zero until someone rolls it */
  o->spent = atomic_load(&c->spent);
  o->requests = atomic_load(&c->requests);
  o->denied = atomic_load(&c->denied);
  o->unmetered = atomic_load(&c->unmetered);
  o->unpriced = atomic_load(&c->unpriced);
  for (int k = 0; k < LM_TOK_KINDS; k++)
    o->tokens[k] = atomic_load(&c->tokens[k]);
}

static int snap_rows(const struct lm_row *rows, int64_t win,
                     struct lm_snap_row *out) {
  int n = 0;
  for (int i = 0; i <= LM_ROW_OTHER; i++) {
    const struct lm_row *r = &rows[i];
    if ((atomic_load(&r->state) & 3) != LM_ROW_READY)
      continue;
    struct lm_snap_row *o = &out[n];
    snap_counters(&r->c, win, &o->c);
    if (i == LM_ROW_OTHER && o->c.requests == 0 &&
        o->c.reserved_requests == 0 && o->c.denied == 0 && o->c.spent == 0)
      continue;
    memcpy(o->name, r->name, LM_NAME_MAX);
    o->name[LM_NAME_MAX - 1] = 0;
    memcpy(o->provider, r->provider, LM_PROVIDER_MAX);
    o->provider[LM_PROVIDER_MAX - 1] = 0; /* never trust shared memory */
    o->flags = r->flags;
    n++;
  }
  return n;
}

int lm_shm_snapshot(struct lm_budget *b, struct lm_snapshot *o) {
  struct lm_segment *s = SEG(b);
  memset(o, 0, sizeof(*o));
  int64_t now = lm_budget_now(b);
  int wk = lm_shm_window_kind(s);
  int64_t win = lm_window_start(wk, now);
  snprintf(o->name, sizeof(o->name), "%s", b->name);
  o->now = now;
  o->created_at = s->created_at;
  o->reset_at = atomic_load(&s->reset_at);
  o->hard_pusd = atomic_load(&s->limits.hard_pusd);
  o->soft_pusd = soft_limit(s);
  o->tokens_limit = atomic_load(&s->limits.tokens);
  o->requests_limit = atomic_load(&s->limits.requests);
  o->max_call_pusd = atomic_load(&s->limits.max_call_pusd);
  o->max_call_input_tokens = atomic_load(&s->limits.max_call_input_tokens);
  o->max_call_output_tokens = atomic_load(&s->limits.max_call_output_tokens);
  o->rpm = atomic_load(&s->limits.rpm);
  o->tpm = atomic_load(&s->limits.tpm);
  o->itpm = atomic_load(&s->limits.itpm);
  o->otpm = atomic_load(&s->limits.otpm);
  o->deadline = atomic_load(&s->limits.deadline);
  o->max_llm_ns = atomic_load(&s->limits.max_llm_ns);
  o->llm_ns = atomic_load(&s->llm_ns);
  int64_t nn = lm_shm_mono_ns();
  o->rpm_used = lm_shm_rate_used(&s->rpm_tat, o->rpm, nn);
  o->tpm_used = lm_shm_rate_used(&s->tpm_tat, o->tpm, nn);
  o->itpm_used = lm_shm_rate_used(&s->itpm_tat, o->itpm, nn);
  o->otpm_used = lm_shm_rate_used(&s->otpm_tat, o->otpm, nn);
  o->soft_crossed = atomic_load(&s->soft_window) == win + 1;
  /* Under the lock: a consistent view (no step half-applied), and a dead
   * holder's step rolled back first. Unlocked if the lock is not to be
   * had: each counter is still read atomically. */
  int locked = lm_shm_step_begin(s) == 0;
  if (locked) {
    memcpy(o->on_soft, s->on_soft, sizeof(o->on_soft));
    memcpy(o->downgrade, s->downgrade, sizeof(o->downgrade));
  }
  o->on_soft[sizeof(o->on_soft) - 1] = 0;
  o->downgrade[sizeof(o->downgrade) - 1] = 0;
  o->window = wk;
  o->mode = atomic_load(&s->limits.mode) == LM_MODE_STRICT;
  o->window_start = win;
  o->resets_in_s = wk == LM_WINDOW_NONE ? -1 : lm_window_next(wk, now) - now;
  snap_counters(&s->total, win, &o->total);
  o->n_models = snap_rows(s->models, win, o->models);
  o->n_agents = snap_rows(s->agents, win, o->agents);
  for (int i = 0; i < LM_RULES; i++) {
    const struct lm_rule *r = &s->rules[i];
    if (atomic_load(&r->state) != LM_RULE_ACTIVE)
      continue;
    struct lm_snap_rule *sr = &o->rules[o->n_rules++];
    sr->kind = (int)r->kind;
    memcpy(sr->pattern, r->pattern, LM_NAME_MAX);
    sr->pattern[LM_NAME_MAX - 1] = 0;
    sr->limit_pusd = atomic_load(&r->limit_pusd);
    uint32_t m = LM_RULE_MEASURE(r->kind);
    if (m == LM_RULE_RPM || m == LM_RULE_TPM)
      sr->rate_used = lm_shm_rate_used((_Atomic int64_t *)&r->tat,
                                       sr->limit_pusd, lm_shm_mono_ns());
    snap_counters(&r->c, win, &sr->c);
  }
  for (int i = 0; i < LM_LEASES; i++)
    if ((atomic_load(&s->leases[i].state) & ST_MASK) != LM_LEASE_FREE)
      o->active_leases++;
  o->waiters = atomic_load(&s->waiters);
  o->reclaimed = atomic_load(&s->reclaimed);
  o->reconciles = atomic_load(&s->reconciles);
  o->unmetered_denied = atomic_load(&s->unmetered_denied);
  o->unmetered_warned = atomic_load(&s->unmetered_warned);
  if (locked)
    lm_shm_step_end(s);
  return 0;
}

/* ---- configuration, rules, reset --------------------------------------- */

int lm_shm_configure(struct lm_budget *b, const struct lm_limit_config *c) {
  struct lm_segment *s = SEG(b);
  if (c->hard_pusd != LM_KEEP)
    atomic_store(&s->limits.hard_pusd, c->hard_pusd < 0 ? -1 : c->hard_pusd);
  LM_CRASH_POINT();
  if (c->soft_pusd != LM_KEEP)
    atomic_store(&s->limits.soft_pusd, c->soft_pusd < 0 ? -1 : c->soft_pusd);
  LM_CRASH_POINT();
  if (c->tokens != LM_KEEP)
    atomic_store(&s->limits.tokens, c->tokens < 0 ? -1 : c->tokens);
  LM_CRASH_POINT();
  if (c->requests != LM_KEEP)
    atomic_store(&s->limits.requests, c->requests < 0 ? -1 : c->requests);
  LM_CRASH_POINT();
  if (c->max_call_pusd != LM_KEEP)
    atomic_store(&s->limits.max_call_pusd,
                 c->max_call_pusd < 0 ? -1 : c->max_call_pusd);
  LM_CRASH_POINT();
  if (c->max_call_input_tokens != LM_KEEP)
    atomic_store(&s->limits.max_call_input_tokens,
                 c->max_call_input_tokens < 0 ? -1 : c->max_call_input_tokens);
  LM_CRASH_POINT();
  if (c->max_call_output_tokens != LM_KEEP)
    atomic_store(&s->limits.max_call_output_tokens,
                 c->max_call_output_tokens < 0 ? -1
                                               : c->max_call_output_tokens);
  LM_CRASH_POINT();
  const int64_t *vals[6] = {&c->rpm,  &c->tpm,      &c->itpm,
                            &c->otpm, &c->deadline, &c->max_llm_ns};
  _Atomic int64_t *dst[6] = {&s->limits.rpm,      &s->limits.tpm,
                             &s->limits.itpm,     &s->limits.otpm,
                             &s->limits.deadline, &s->limits.max_llm_ns};
  for (int i = 0; i < 6; i++)
    if (*vals[i] != LM_KEEP)
      atomic_store(dst[i], *vals[i] < 0 ? -1 : *vals[i]);
  LM_CRASH_POINT();
  if (c->on_soft || c->downgrade) {
    if (lm_shm_step_begin(s) == 0) {
      if (c->on_soft)
        snprintf(s->on_soft, sizeof(s->on_soft), "%s", c->on_soft);
      LM_CRASH_POINT();
      if (c->downgrade)
        snprintf(s->downgrade, sizeof(s->downgrade), "%s", c->downgrade);
      LM_CRASH_POINT();
      lm_shm_step_end(s);
    }
  }
  if (c->window >= 0 && c->window < LM_WINDOW_KINDS)
    atomic_store(&s->limits.window_kind, (uint32_t)c->window);
  LM_CRASH_POINT();
  if (c->mode >= 0 && c->mode <= LM_MODE_STRICT)
    atomic_store(&s->limits.mode, (uint32_t)c->mode);
  LM_CRASH_POINT();
  lm_shm_wake_waiters(s); /* a raised limit may let waiters in */
  return 0;
}

int lm_shm_add_rule(struct lm_budget *b, int kind, const char *pattern,
                    int64_t limit, char *err, size_t errlen) {
  struct lm_segment *s = SEG(b);
  if (!pattern || !*pattern || strlen(pattern) >= LM_NAME_MAX ||
      (LM_RULE_TARGET(kind) != LM_RULE_MODEL &&
       LM_RULE_TARGET(kind) != LM_RULE_AGENT) ||
      LM_RULE_MEASURE(kind) > LM_RULE_TPM) {
    snprintf(err, errlen, "invalid limit pattern '%s'", pattern ? pattern : "");
    return -1;
  }
  if (lm_shm_step_begin(s) != 0) {
    snprintf(err, errlen, "cannot lock budget '%s'", b->name);
    return -1;
  }
  int64_t now = lm_budget_now(b);
  int64_t win = lm_window_start(lm_shm_window_kind(s), now);
  int rc = 0, free_slot = -1;
  for (int i = 0; i < LM_RULES; i++) {
    struct lm_rule *r = &s->rules[i];
    uint32_t st = atomic_load(&r->state);
    if (st == LM_RULE_ACTIVE && (int)r->kind == kind &&
        strncmp(r->pattern, pattern, LM_NAME_MAX) == 0) {
      LM_CRASH_POINT();
      if (limit < 0)
        atomic_store(&r->state, LM_RULE_RETIRED);
      else
        atomic_store(&r->limit_pusd, limit);
      LM_CRASH_POINT();
      goto done;
    }
    if (st == LM_RULE_UNUSED && free_slot < 0)
      free_slot = i;
  }
  if (limit < 0)
    goto done; /* removing a rule that does not exist: nothing to do */
  if (free_slot < 0) {
    snprintf(err, errlen, "budget '%s' already has %d limit rules", b->name,
             LM_RULES);
    rc = -1;
    goto done;
  }
  struct lm_rule *r = &s->rules[free_slot];
  memset(&r->c, 0, sizeof(r->c));
  r->kind = (uint32_t)kind;
  snprintf(r->pattern, LM_NAME_MAX, "%s", pattern);
  atomic_store(&r->limit_pusd, limit);
  atomic_store(&r->c.window, win);
  LM_CRASH_POINT();
  /* A rule added live starts from what its rows already spent. */
  struct lm_row *rows = LM_RULE_TARGET(kind) == LM_RULE_AGENT ? s->agents
                                                              : s->models;
  int64_t spent = 0;
  for (int i = 0; i < LM_ROWS && LM_RULE_MEASURE(kind) == LM_RULE_SPEND; i++) {
    if ((atomic_load(&rows[i].state) & 3) != LM_ROW_READY ||
        atomic_load(&rows[i].c.window) < win)
      continue;
    char nm[LM_NAME_MAX];
    memcpy(nm, rows[i].name, LM_NAME_MAX);
    nm[LM_NAME_MAX - 1] = 0;
    if (fnmatch(pattern, nm, 0) == 0)
      spent = lm_money_add(spent, atomic_load(&rows[i].c.spent));
  }
  atomic_store(&r->c.spent, spent);
  LM_CRASH_POINT(); /* the rule is published last: dead before, unused */
  atomic_store_explicit(&r->state, LM_RULE_ACTIVE, memory_order_release);
  LM_CRASH_POINT();
done:
  atomic_fetch_add(&s->rules_gen, 1);
  lm_shm_step_end(s);
  return rc;
}

/* Zeroes what every set counts in one step: a reset happens wholly or, if
 * its process dies, not at all. */
_Static_assert(LM_JOURNAL_MAX >=
                   (1 + 2 * (LM_ROWS + 1) + LM_RULES) * (5 + LM_TOK_KINDS),
               "a reset fits in one journaled step");

int lm_shm_reset(struct lm_budget *b) {
  struct lm_segment *s = SEG(b);
  if (lm_shm_step_begin(s) != 0)
    return -1;
  lm_shm_zero_counters(s, &s->total);
  for (int i = 0; i <= LM_ROW_OTHER; i++) {
    lm_shm_zero_counters(s, &s->models[i].c);
    lm_shm_zero_counters(s, &s->agents[i].c);
  }
  for (int i = 0; i < LM_RULES; i++)
    lm_shm_zero_counters(s, &s->rules[i].c);
  lm_shm_step_commit(s);
  /* what follows is not counted money: single words, no step needed */
  for (int i = 0; i <= LM_ROW_OTHER; i++)
    __atomic_store_n(&s->models[i].flags, 0, __ATOMIC_RELAXED);
  atomic_store(&s->reset_at, lm_budget_now(b));
  atomic_store(&s->soft_window, 0);
  atomic_store(&s->llm_ns, 0);
  atomic_store(&s->unmetered_denied, 0);
  atomic_store(&s->unmetered_warned, 0);
  LM_CRASH_POINT();
  lm_shm_step_end(s);
  lm_shm_wake_waiters(s);
  return 0;
}

/* ---- the leak guard's questions ----------------------------------------- */

bool lm_shm_hard_limit(struct lm_budget *b) {
  struct lm_segment *s = SEG(b);
  if (atomic_load(&s->limits.hard_pusd) >= 0)
    return true;
  for (int r = 0; r < LM_RULES; r++)
    if (atomic_load(&s->rules[r].state) == LM_RULE_ACTIVE &&
        LM_RULE_MEASURE(s->rules[r].kind) == LM_RULE_SPEND &&
        atomic_load(&s->rules[r].limit_pusd) >= 0)
      return true;
  return false;
}

void lm_shm_count_unmetered(struct lm_budget *b, bool denied) {
  struct lm_segment *s = SEG(b);
  atomic_fetch_add(denied ? &s->unmetered_denied : &s->unmetered_warned, 1);
}

/* ---- between admission and settlement ---------------------------------- */

bool lm_shm_over_hard(struct lm_budget *b, const struct lm_lease *l) {
  struct lm_segment *s = SEG(b);
  if (!(l->flags & LM_LEASEF_DOLLARS))
    return false;
  int64_t hard = atomic_load(&s->limits.hard_pusd);
  if (hard >= 0 && atomic_load(&s->total.spent) >= hard)
    return true;
  for (int r = 0; r < LM_RULES; r++) {
    if (!(l->rule_mask & (1u << r)))
      continue;
    if (LM_RULE_MEASURE(s->rules[r].kind) != LM_RULE_SPEND)
      continue; /* caps and rates are not spending limits */
    int64_t lim = atomic_load(&s->rules[r].limit_pusd);
    if (atomic_load(&s->rules[r].state) == LM_RULE_ACTIVE && lim >= 0 &&
        atomic_load(&s->rules[r].c.spent) >= lim)
      return true;
  }
  return false;
}

void lm_shm_add_llm_time(struct lm_budget *b, int64_t ns) {
  if (ns > 0)
    atomic_fetch_add(&SEG(b)->llm_ns, ns);
}

bool lm_shm_over_time(struct lm_budget *b, int64_t inflight_ns,
                      struct lm_denial *why) {
  struct lm_segment *s = SEG(b);
  int64_t used = lm_money_add(atomic_load(&s->llm_ns), /* saturating */
                              inflight_ns > 0 ? inflight_ns : 0);
  return lm_denial_time(atomic_load(&s->limits.deadline), lm_budget_now(b),
                        atomic_load(&s->limits.max_llm_ns), used, why);
}

/* Spent in the current window: a window that has turned counts from zero
 * even before the first admission of the new window rolls it. */
static int64_t spent_now(struct lm_budget *b) {
  struct lm_segment *s = SEG(b);
  int64_t win = lm_window_start(lm_shm_window_kind(s), lm_budget_now(b));
  return atomic_load(&s->total.window) < win ? 0 : atomic_load(&s->total.spent);
}

bool lm_shm_soft_crossed(struct lm_budget *b, char *cmd, size_t cmdlen) {
  struct lm_segment *s = SEG(b);
  int64_t soft = soft_limit(s);
  if (soft < 0 || spent_now(b) < soft)
    return false;
  int64_t mark = lm_window_start(lm_shm_window_kind(s), lm_budget_now(b)) + 1;
  int64_t old = atomic_load(&s->soft_window);
  if (old == mark ||
      !atomic_compare_exchange_strong(&s->soft_window, &old, mark))
    return false; /* already recorded in this window */
  if (cmd && cmdlen) {
    cmd[0] = 0;
    if (lm_shm_step_begin(s) == 0) {
      memcpy(cmd, s->on_soft,
             cmdlen < sizeof(s->on_soft) ? cmdlen : sizeof(s->on_soft));
      lm_shm_step_end(s);
    }
    cmd[cmdlen - 1] = 0;
  }
  return true;
}

bool lm_shm_downgrade(struct lm_budget *b, const char *model, char *out,
                      size_t outlen) {
  struct lm_segment *s = SEG(b);
  if (!s->downgrade[0])
    return false;
  int64_t soft = soft_limit(s);
  if (soft < 0 || spent_now(b) < soft)
    return false;
  if (!model) /* the question was only: could a rule apply now? */
    return true;
  if (!*model)
    return false;
  char map[sizeof(s->downgrade)];
  if (lm_shm_step_begin(s) != 0)
    return false;
  memcpy(map, s->downgrade, sizeof(map));
  lm_shm_step_end(s);
  map[sizeof(map) - 1] = 0;
  char *save = NULL;
  for (char *e = strtok_r(map, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(e, '=');
    if (!eq)
      continue;
    *eq = 0;
    if (fnmatch(e, model, 0) == 0 && eq[1] && strcmp(eq + 1, model) != 0) {
      snprintf(out, outlen, "%s", eq + 1);
      return true;
    }
  }
  return false;
}
