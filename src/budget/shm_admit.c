/* shm_admit.c — admission on a shared-memory budget: the one question asked
 * before every LLM call leaves the process.
 *
 * An admission reads top to bottom (lm_shm_admit, at the end): find the
 * call's model and agent rows and the rules it matches; refuse at once
 * what no waiting can change (deadline, LLM time, a cap on the call
 * itself, a rate turn too far away); sleep for a paced rate turn; then, in
 * one step, roll the windows, reserve everything the call may spend and
 * claim its lease slot, all or nothing, waiting (bounded) only while
 * in-flight reservations, not spending, stand in the way. A refused call
 * gives back what it took and counts as denied.
 *
 * This is the hot path: the reservation is one journaled step under the
 * segment's mutex (shm_journal.c: a process killed inside it leaves
 * nothing half-reserved), no allocation, and in the common case no system
 * call (an uncontended lock is one CAS, the pid and its start time are
 * cached, the clocks are vDSO reads; sleeping, waiting and reclaiming
 * happen only when a rate paces or a limit blocks). A per-thread memo skips
 * the row lookups and the rule scan when a thread asks for the same model
 * and agent again.
 */
#include <errno.h>
#include <fnmatch.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "money.h"
#include "shm_internal.h"
#include "window.h"

/* ---- rows and rules ---------------------------------------------------- */

static uint32_t fnv1a(uint32_t h, const char *s) {
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

/* A row's name and provider as stored: NUL-padded, truncated to fit. */
static void row_key(char *out, size_t size, const char *s, const char *dflt) {
  memset(out, 0, size);
  const char *src = (s && *s) ? s : dflt;
  memcpy(out, src, strnlen(src, size - 1));
}

/* The row of (name, provider), made if new and `create`. A row made by a
 * library that had no provider field has provider "" and the hash of its
 * name alone, which is the hash of (name, "") here: it stays the row of
 * calls with no provider. */
static uint32_t row_find(struct lm_row *rows, const char *name,
                         const char *provider, int create) {
  char key[LM_NAME_MAX], prov[LM_PROVIDER_MAX];
  row_key(key, sizeof(key), name, "unknown");
  row_key(prov, sizeof(prov), provider, "");
  uint32_t h = fnv1a(fnv1a(2166136261u, key), prov);
  uint32_t me = lm_shm_my_pid();
  for (uint32_t i = 0; i < LM_ROWS; i++) {
    struct lm_row *r = &rows[(h + i) % LM_ROWS];
    for (int spins = 0;; spins++) {
      uint64_t w = atomic_load_explicit(&r->state, memory_order_acquire);
      unsigned st = (unsigned)(w & 3);
      if (st == LM_ROW_READY) {
        if (r->hash == h && strncmp(r->name, key, LM_NAME_MAX) == 0 &&
            strncmp(r->provider, prov, LM_PROVIDER_MAX) == 0)
          return (uint32_t)(r - rows);
        break;
      }
      if (st == LM_ROW_CLAIMED) {
        /* Another process is writing this row's name: wait for it, but
         * never forever (it may have died; then the row stays unused). */
        if (spins > 2000 || !lm_shm_owner_alive((uint32_t)(w >> 2), 0, 0))
          break;
        sched_yield();
        continue;
      }
      if (w != 0)
        break; /* no state a row can be in (hostile): never ours to claim */
      if (!create)
        return LM_ROW_NONE;
      uint64_t expect = 0;
      if (!atomic_compare_exchange_strong(&r->state, &expect,
                                          ((uint64_t)me << 2) | LM_ROW_CLAIMED))
        continue;       /* lost the race: look at this row again */
      LM_CRASH_POINT(); /* dead here: the row stays CLAIMED, never used */
      r->hash = h;
      memcpy(r->name, key, LM_NAME_MAX);
      memcpy(r->provider, prov, LM_PROVIDER_MAX);
      LM_CRASH_POINT();
      atomic_store_explicit(&r->state, ((uint64_t)me << 2) | LM_ROW_READY,
                            memory_order_release);
      LM_CRASH_POINT();
      return (uint32_t)(r - rows);
    }
  }
  return create ? LM_ROW_OTHER : LM_ROW_NONE;
}

static uint32_t rules_match(struct lm_segment *s, const char *model,
                            const char *agent) {
  uint32_t mask = 0;
  for (int i = 0; i < LM_RULES; i++) {
    struct lm_rule *r = &s->rules[i];
    if (atomic_load_explicit(&r->state, memory_order_acquire) != LM_RULE_ACTIVE)
      continue;
    char pat[LM_NAME_MAX];
    memcpy(pat, r->pattern, LM_NAME_MAX);
    pat[LM_NAME_MAX - 1] = 0; /* never trust a string from shared memory */
    const char *subject = LM_RULE_TARGET(r->kind) == LM_RULE_AGENT ? agent
                                                                   : model;
    if (subject && fnmatch(pat, subject, 0) == 0)
      mask |= 1u << i;
  }
  return mask;
}

/* Per-thread memo of the last admission's rows and rule mask: an agent
 * calls one model under one name over and over, and the two row lookups
 * (hash, probe, compare) and the rule scan (a pattern match per rule) were
 * a third of an admission. A hit returns exactly what the lookups would:
 * a READY row is never freed or renamed, and rules_gen moves after every
 * rule change (a change racing the admission is ordered before or after it,
 * as without the memo). Keyed by the handle's serial, not its address,
 * which a closed and reopened handle may reuse. */
struct admit_memo {
  uint64_t serial; /* 0: empty */
  uint32_t rules_gen, model_row, agent_row, rule_mask;
  char model[LM_NAME_MAX], agent[LM_NAME_MAX], provider[LM_PROVIDER_MAX];
};
static __thread struct admit_memo admit_memo
    __attribute__((tls_model("initial-exec")));

static void admit_rows(struct lm_budget *b, const char *model,
                       const char *provider, const char *agent,
                       struct lm_lease *l) {
  struct lm_segment *s = SEG(b);
  struct admit_memo *m = &admit_memo;
  const char *ag = agent ? agent : ""; /* row_find maps "" to "unknown" */
  const char *pv = provider ? provider : "";
  uint32_t gen = atomic_load_explicit(&s->rules_gen, memory_order_acquire);
  if (m->serial == b->serial && m->rules_gen == gen &&
      strcmp(m->model, model) == 0 && strcmp(m->agent, ag) == 0 &&
      strcmp(m->provider, pv) == 0) {
    l->model_row = m->model_row;
    l->agent_row = m->agent_row;
    l->rule_mask = m->rule_mask;
    return;
  }
  l->model_row = row_find(s->models, model, pv, 1);
  l->agent_row = row_find(s->agents, ag, NULL, 1);
  l->rule_mask = rules_match(s, model, agent);
  size_t ml = strlen(model), al = strlen(ag), pl = strlen(pv);
  if (ml >= LM_NAME_MAX || al >= LM_NAME_MAX || pl >= LM_PROVIDER_MAX) {
    m->serial = 0; /* truncated names: not worth a memo */
    return;
  }
  memcpy(m->model, model, ml + 1);
  memcpy(m->agent, ag, al + 1);
  memcpy(m->provider, pv, pl + 1);
  m->model_row = l->model_row;
  m->agent_row = l->agent_row;
  m->rule_mask = l->rule_mask;
  m->rules_gen = gen;
  m->serial = b->serial;
}

/* ---- reservations (inside the admission's step) ------------------------ */

/* Reserves `est` on c against `limit` (-1: none). Optimistic: admitted while
 * spent + reserved (before us) is below the limit. Strict: admitted only if
 * spent + reserved + est fits. Returns 0 (reserved), -1 (over: spent alone
 * rules it out) or 1 (blocked only by other calls' reservations, which may
 * settle for less); *used and *spent say why. */
static int reserve_money(struct lm_segment *s, struct lm_counters *c,
                         int64_t limit, int64_t est, int strict, int64_t *used,
                         int64_t *spent) {
  if (limit >= 0) {
    int64_t sp = atomic_load_explicit(&c->spent, memory_order_relaxed);
    int64_t u = lm_money_add(
        sp, atomic_load_explicit(&c->reserved, memory_order_relaxed));
    if (strict ? lm_money_add(u, est) > limit : u >= limit) {
      *used = u;
      *spent = sp;
      return (strict ? lm_money_add(sp, est) <= limit : sp < limit) ? 1 : -1;
    }
  }
  lm_shm_jadd(s, &c->reserved, (uint64_t)est);
  return 0;
}

static int reserve_tokens(struct lm_segment *s, struct lm_counters *c,
                          int64_t limit, uint64_t est, int strict,
                          int64_t *used, int64_t *spent) {
  if (limit >= 0) {
    uint64_t settled = atomic_load(&c->tokens[LM_TOK_INPUT]) +
                       atomic_load(&c->tokens[LM_TOK_OUTPUT]);
    uint64_t u = settled + atomic_load(&c->reserved_tokens);
    *spent = (int64_t)settled;
    if (strict ? u + est > (uint64_t)limit : u >= (uint64_t)limit) {
      *used = (int64_t)u;
      return (strict ? settled + est <= (uint64_t)limit
                     : settled < (uint64_t)limit)
                 ? 1
                 : -1;
    }
  }
  lm_shm_jadd(s, &c->reserved_tokens, est);
  return 0;
}

static int reserve_request(struct lm_segment *s, struct lm_counters *c,
                           int64_t limit, int64_t *used) {
  uint64_t r = atomic_load(&c->reserved_requests);
  uint64_t done = atomic_load(&c->requests);
  if (limit >= 0 && done + r + 1 > (uint64_t)limit) {
    *used = (int64_t)(done + r);
    return -1;
  }
  lm_shm_jadd(s, &c->reserved_requests, 1);
  return 0;
}

/* Reserves est on every spend rule the lease matched. Returns as
 * reserve_money; a refusal leaves the rules before it reserved (the
 * caller aborts the step: all or nothing). */
static int reserve_rules(struct lm_segment *s, uint32_t rule_mask, int64_t est,
                         int strict, int wk, int64_t now,
                         struct lm_denial *why) {
  int64_t used = 0, spent = 0;
  for (int r = 0; r < LM_RULES; r++) {
    struct lm_rule *rule = &s->rules[r];
    if (!(rule_mask & (1u << r)) ||
        LM_RULE_MEASURE(rule->kind) != LM_RULE_SPEND)
      continue;
    int64_t lim = atomic_load(&rule->limit_pusd);
    int rc = reserve_money(s, &rule->c, lim, est, strict, &used, &spent);
    if (rc) {
      char pat[LM_NAME_MAX];
      memcpy(pat, rule->pattern, LM_NAME_MAX);
      pat[LM_NAME_MAX - 1] = 0;
      lm_denial_fill(why,
                     LM_RULE_TARGET(rule->kind) == LM_RULE_AGENT
                         ? LM_DENY_AGENT
                         : LM_DENY_MODEL,
                     pat, lim, used, wk, now);
      why->spent = spent;
      return rc;
    }
  }
  return 0;
}

/* Reserves everything the lease holds (l->reserved_pusd, l->reserved_tokens,
 * one request). Returns 0, -1 (refused) or 1 (refused only because of
 * in-flight reservations); on a refusal the caller aborts the step, which
 * undoes what was reserved before it: all or nothing. */
static int reserve_all(struct lm_segment *s, const struct lm_lease *l, int wk,
                       int64_t now, struct lm_denial *why) {
  int strict = atomic_load(&s->limits.mode) == LM_MODE_STRICT;
  int64_t est = l->reserved_pusd;
  int64_t used = 0, spent = 0;
  int dollars = (l->flags & LM_LEASEF_DOLLARS) != 0;
  int rc;

  if (reserve_request(s, &s->total, atomic_load(&s->limits.requests), &used)) {
    lm_denial_fill(why, LM_DENY_REQUESTS, NULL,
                   atomic_load(&s->limits.requests), used, wk, now);
    return -1; /* a request is a request: nothing to wait for */
  }
  rc = reserve_tokens(s, &s->total, atomic_load(&s->limits.tokens),
                      l->reserved_tokens, strict, &used, &spent);
  if (rc) {
    lm_denial_fill(why, LM_DENY_TOKENS, NULL, atomic_load(&s->limits.tokens),
                   used, wk, now);
    why->spent = spent;
    return rc;
  }
  if (dollars) {
    int64_t hard = atomic_load(&s->limits.hard_pusd);
    rc = reserve_money(s, &s->total, hard, est, strict, &used, &spent);
    if (rc) {
      lm_denial_fill(why, LM_DENY_HARD, NULL, hard, used, wk, now);
      why->spent = spent;
      return rc;
    }
    rc = reserve_rules(s, l->rule_mask, est, strict, wk, now, why);
    if (rc)
      return rc;
  }
  /* The rows only count; they never refuse. */
  struct lm_amounts row = {.reserved = dollars ? est : 0,
                           .reserved_requests = 1};
  if (l->model_row <= LM_ROW_OTHER)
    lm_shm_apply_counters(s, &s->models[l->model_row].c, &row);
  if (l->agent_row <= LM_ROW_OTHER)
    lm_shm_apply_counters(s, &s->agents[l->agent_row].c, &row);
  return 0;
}

/* Per-call caps: the budget's, the call's own (environment), and the cap
 * rules matching its model or agent. Values are estimates at admission and
 * running totals mid-stream. Returns true and fills why if one is passed. */
static bool over_caps(struct lm_segment *s, uint32_t rule_mask,
                      const struct lm_call *call, bool dollars, int64_t pusd,
                      uint64_t in, uint64_t out, struct lm_denial *why) {
  struct {
    int64_t lim;
    const char *subject;
  } best[3] = {{atomic_load(&s->limits.max_call_pusd), NULL},
               {atomic_load(&s->limits.max_call_input_tokens), NULL},
               {atomic_load(&s->limits.max_call_output_tokens), NULL}};
  const int64_t own[3] = {call ? call->max_call_pusd : -1,
                          call ? call->max_call_input_tokens : -1,
                          call ? call->max_call_output_tokens : -1};
  for (int k = 0; k < 3; k++) /* a call's own caps: 0 or less is none */
    if (own[k] > 0 && (best[k].lim < 0 || own[k] < best[k].lim))
      best[k].lim = own[k];
  for (int r = 0; r < LM_RULES && rule_mask; r++) {
    if (!(rule_mask & (1u << r)))
      continue;
    struct lm_rule *rule = &s->rules[r];
    uint32_t m = LM_RULE_MEASURE(rule->kind);
    int k = m == LM_RULE_CALL_USD      ? 0
            : m == LM_RULE_CALL_INPUT  ? 1
            : m == LM_RULE_CALL_OUTPUT ? 2
                                       : -1;
    int64_t lim = atomic_load(&rule->limit_pusd);
    if (k < 0 || lim < 0 || (best[k].lim >= 0 && lim >= best[k].lim))
      continue;
    best[k].lim = lim;
    best[k].subject = rule->pattern;
  }
  const int64_t val[3] = {dollars ? pusd : 0, (int64_t)in, (int64_t)out};
  static const enum lm_deny_kind kinds[3] = {
      LM_DENY_CALL_USD, LM_DENY_CALL_INPUT, LM_DENY_CALL_OUTPUT};
  for (int k = 0; k < 3; k++) {
    if (best[k].lim < 0 || val[k] <= best[k].lim)
      continue;
    memset(why, 0, sizeof(*why));
    why->kind = kinds[k];
    if (best[k].subject) {
      memcpy(why->subject, best[k].subject, LM_NAME_MAX);
      why->subject[LM_NAME_MAX - 1] = 0;
    }
    why->limit = best[k].lim;
    why->used = val[k];
    why->retry_after_s = -1;
    return true;
  }
  return false;
}

bool lm_shm_over_call_caps(struct lm_budget *b, const struct lm_lease *l,
                           const struct lm_call *call,
                           const struct lm_usage *total, int64_t cost,
                           struct lm_denial *why) {
  return over_caps(SEG(b), l->rule_mask, call,
                   (l->flags & LM_LEASEF_DOLLARS) != 0, cost,
                   total ? total->input : 0, total ? total->output : 0, why);
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the steps of an admission ----------------------------------------- */

/* Which rows and rules the call counts in, and what its lease will
 * reserve. Fills l from scratch; clears why. */
static void admit_begin(struct lm_budget *b, const struct lm_call *call,
                        struct lm_lease *l, struct lm_denial *why) {
  /* an untagged call is agent "unknown" for its row and its rules alike */
  const char *agent = (call->agent && *call->agent) ? call->agent : "unknown";
  const char *model = (call->model && *call->model) ? call->model : "unknown";

  memset(l, 0, sizeof(*l));
  memset(why, 0, sizeof(*why));
  admit_rows(b, model, call->provider, agent, l);
  l->flags = call->zero_priced ? 0 : LM_LEASEF_DOLLARS;
  l->reserved_pusd = (l->flags & LM_LEASEF_DOLLARS) && call->est_pusd > 0
                         ? call->est_pusd
                         : 0;
  l->reserved_tokens = call->est_tokens;
}

/* Rates: takes the call's turn in every bucket, or none (-1, why filled);
 * then sleeps until the turn (computed, not polled), moving *now on. */
static int admit_rates(struct lm_budget *b, const struct lm_call *call,
                       struct lm_lease *l, struct lm_shm_rates *rates,
                       int64_t *now, struct lm_denial *why) {
  if (lm_shm_rates_take(SEG(b), l->rule_mask, call->est_input_tokens,
                        call->est_output_tokens, call->wait_ms * 1000000, rates,
                        why) != 0)
    return -1;
  l->rate_in = call->est_input_tokens;
  l->rate_out = call->est_output_tokens;
  int64_t turn = rates->turn_ns;
  if (turn > 0) { /* paced: sleep until our turn */
    struct timespec ts = {turn / 1000000000, turn % 1000000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
      ;
    *now = lm_budget_now(b);
  }
  return 0;
}

/* One try, as one step: roll the lease's sets to the window, claim a slot
 * and reserve everything, or change nothing. Returns 0 (l->slot and
 * l->state_word set), 1 (blocked only by reservations), -1 (refused), -2
 * (no free slot) or -3 (the budget's lock is not to be had). */
static int reserve_step(struct lm_budget *b, struct lm_lease *l, uint32_t me,
                        int wk, int64_t now, struct lm_denial *why) {
  struct lm_segment *s = SEG(b);
  if (lm_shm_step_begin(s) != 0)
    return -3;
  lm_shm_roll_lease(s, l->model_row, l->agent_row, l->rule_mask, now);
  int rc = reserve_all(s, l, wk, now, why);
  uint32_t idx = 0;
  if (rc == 0 && lm_shm_lease_claim(s, me, l, now, &idx) != 0)
    rc = -2;
  if (rc != 0) {
    lm_shm_step_abort(s); /* all or nothing */
    lm_shm_step_end(s);
    return rc;
  }
  lm_shm_touch(&s->total, now);
  lm_shm_step_end(s);
  l->slot = idx;
  l->state_word = lm_shm_lease_word(me, LM_LEASE_ACTIVE);
  return 0;
}

/* Reserves what the lease holds. Waiting (bounded by call->wait_ms)
 * happens only while other calls' reservations, not spending, stand in the
 * way; every settlement bumps the futex word `wake`, and we count
 * ourselves in `waiters` before reading it so no wake-up can slip between
 * our check and our sleep. Dead processes' leases are refunded once when
 * they may be what stands in the way (or fill the table). Returns 0, -1
 * (refused, why filled) or -2 (the budget's lock is not to be had: refused
 * without waiting for it a second time to count the denial). */
static int reserve_or_wait(struct lm_budget *b, const struct lm_call *call,
                           struct lm_lease *l, uint32_t me, int wk, int64_t now,
                           struct lm_denial *why) {
  struct lm_segment *s = SEG(b);
  int64_t t0 = 0;
  bool waiting = false;
  for (int reclaimed_once = 0;;) {
    uint32_t w = atomic_load(&s->wake);
    int rc = reserve_step(b, l, me, wk, now, why);
    if (rc == 0) {
      if (waiting)
        atomic_fetch_sub(&s->waiters, 1);
      return 0;
    }
    if (rc == -3) { /* fail closed: a budget we cannot lock admits nothing */
      lm_denial_fill(why, LM_DENY_BUSY, NULL, 0, 0, LM_WINDOW_NONE, now);
      why->retry_after_s = 1;
      if (waiting)
        atomic_fetch_sub(&s->waiters, 1);
      return -2;
    }
    /* Dead processes may hold reservations or slots: refund them once. */
    if (!reclaimed_once && why->kind != LM_DENY_REQUESTS) {
      reclaimed_once = 1;
      if (lm_budget_reclaim(b) > 0)
        continue;
    }
    if (rc == -2) {
      lm_denial_fill(why, LM_DENY_BUSY, NULL, LM_LEASES, LM_LEASES,
                     LM_WINDOW_NONE, now);
      why->retry_after_s = 1;
      break;
    }
    if (rc < 0 || call->wait_ms <= 0) {
      why->waitable = rc > 0;
      break;
    }
    if (!waiting) {
      waiting = true;
      t0 = mono_ms();
      atomic_fetch_add(&s->waiters, 1);
      LM_CRASH_POINT();
      continue; /* check again now that settlements will wake us */
    }
    int64_t left = call->wait_ms - (mono_ms() - t0);
    if (left <= 0)
      break;
    /* Sleep until a settlement, at most a second at a time so leases of
     * processes that died meanwhile get reclaimed. */
    int64_t slice = left < 1000 ? left : 1000;
    struct timespec ts = {slice / 1000, (slice % 1000) * 1000000};
    lm_shm_futex(&s->wake, FUTEX_WAIT, w, &ts);
    if (slice == 1000 || mono_ms() - t0 >= 1000)
      reclaimed_once = 0;
    now = lm_budget_now(b);
  }
  if (waiting) {
    atomic_fetch_sub(&s->waiters, 1);
    why->waited_ms = mono_ms() - t0;
  }
  return -1;
}

/* A refused call counts as denied in the total and its rows (one step);
 * its lease is emptied (l->slot UINT32_MAX: nothing to settle). */
static void admit_deny(struct lm_budget *b, struct lm_lease *l) {
  struct lm_segment *s = SEG(b);
  if (lm_shm_step_begin(s) == 0) {
    lm_shm_roll_lease(s, l->model_row, l->agent_row, 0, lm_budget_now(b));
    struct lm_amounts d = {.denied = 1};
    lm_shm_apply_lease(s, l->model_row, l->agent_row, 0, &d);
    lm_shm_step_end(s);
  }
  memset(l, 0, sizeof(*l));
  l->slot = UINT32_MAX;
}

int lm_shm_admit(struct lm_budget *b, const struct lm_call *call,
                 struct lm_lease *l, struct lm_denial *why) {
  struct lm_segment *s = SEG(b);
  int64_t now = lm_budget_now(b);
  int wk = lm_shm_window_kind(s);
  uint32_t me = lm_shm_my_pid();
  struct lm_shm_rates rates;

  admit_begin(b, call, l, why);
  if (lm_budget_over_time(b, 0, why))
    goto denied; /* past the deadline, or out of LLM time */
  if (over_caps(s, l->rule_mask, call, (l->flags & LM_LEASEF_DOLLARS) != 0,
                l->reserved_pusd, call->est_input_tokens,
                call->est_output_tokens, why))
    goto denied; /* a cap on the call itself: nothing to wait for */
  if (admit_rates(b, call, l, &rates, &now, why) != 0)
    goto denied;
  int rc = reserve_or_wait(b, call, l, me, wk, now, why);
  if (rc == 0)
    return 0;
  lm_shm_rates_give_back(&rates); /* refused after all: give our turns back */
  if (rc == -2) {
    memset(l, 0, sizeof(*l));
    l->slot = UINT32_MAX;
    return -1;
  }
denied:
  admit_deny(b, l);
  return -1;
}
