/* shm_counters.c — the counter sets of a shared-memory budget: their
 * windows, and the amounts a lease applies to every set it touches.
 *
 * Every counted thing (the total, each model and agent row, each rule) is
 * one struct lm_counters. A lease's step (reserve, charge, settle, refund)
 * is one struct lm_amounts applied to the total, to its model and agent
 * rows and, for money, to the spend rules it matched. Every write here is
 * journaled (lm_shm_jset) inside a step (shm_journal.c): a process killed
 * halfway through leaves nothing that the next step does not roll back.
 *
 * Windows. Each counter set carries the window it counts. A step moves the
 * sets it touches to the step's window (lm_shm_step_window: never back)
 * before it counts: the window and the zeroed counts are one journaled
 * change, committed on its own, so a rollover happens exactly once and
 * never half. Reservations are in-flight money and are never reset.
 */
#include "shm_internal.h"

/* Zeroes what a window counts (not reservations: in-flight money). */
void lm_shm_zero_counters(struct lm_segment *s, struct lm_counters *c) {
  _Atomic int64_t *i64[] = {&c->spent};
  _Atomic uint64_t *u64[] = {&c->requests, &c->denied, &c->unmetered,
                             &c->unpriced};
  for (unsigned i = 0; i < sizeof(i64) / sizeof(i64[0]); i++)
    if (atomic_load_explicit(i64[i], memory_order_relaxed))
      lm_shm_jset(s, i64[i], 0);
  for (unsigned i = 0; i < sizeof(u64) / sizeof(u64[0]); i++)
    if (atomic_load_explicit(u64[i], memory_order_relaxed))
      lm_shm_jset(s, u64[i], 0);
  for (int k = 0; k < LM_TOK_KINDS; k++)
    if (atomic_load_explicit(&c->tokens[k], memory_order_relaxed))
      lm_shm_jset(s, &c->tokens[k], 0);
}

void lm_shm_roll_slow(struct lm_segment *s, struct lm_counters *c,
                      int64_t win) {
  lm_shm_zero_counters(s, c);
  lm_shm_jset(s, &c->window, (uint64_t)win);
  lm_shm_step_commit(s); /* a rollover stands on its own */
}

void lm_shm_apply_counters(struct lm_segment *s, struct lm_counters *c,
                           const struct lm_amounts *a) {
  lm_shm_jadd(s, &c->spent, (uint64_t)a->spent);
  lm_shm_jadd(s, &c->reserved, (uint64_t)a->reserved);
  lm_shm_jadd(s, &c->requests, (uint64_t)a->requests);
  lm_shm_jadd(s, &c->reserved_requests, (uint64_t)a->reserved_requests);
  lm_shm_jadd(s, &c->reserved_tokens, (uint64_t)a->reserved_tokens);
  if (a->tokens) {
    uint64_t add[LM_TOK_KINDS];
    lm_usage_kinds(a->tokens, add);
    for (int k = 0; k < LM_TOK_KINDS; k++) /* modular: a snapshot that went
                                               down wraps back */
      lm_shm_jadd(s, &c->tokens[k], add[k]);
  }
  lm_shm_jadd(s, &c->denied, a->denied);
  lm_shm_jadd(s, &c->unmetered, a->unmetered);
  lm_shm_jadd(s, &c->unpriced, a->unpriced);
}

/* Applies to the total, the lease's rows, and (money only) its rules. */
void lm_shm_apply_lease(struct lm_segment *s, uint32_t model_row,
                        uint32_t agent_row, uint32_t rule_mask,
                        const struct lm_amounts *a) {
  lm_shm_apply_counters(s, &s->total, a);
  /* Admission reserves tokens on the total only (the token limit is
   * budget-wide): rows must not give back what they never held. */
  struct lm_amounts row = *a;
  row.reserved_tokens = 0;
  if (model_row <= LM_ROW_OTHER)
    lm_shm_apply_counters(s, &s->models[model_row].c, &row);
  if (agent_row <= LM_ROW_OTHER)
    lm_shm_apply_counters(s, &s->agents[agent_row].c, &row);
  if (rule_mask && (a->spent || a->reserved)) {
    struct lm_amounts money = {.spent = a->spent, .reserved = a->reserved};
    for (uint32_t m = rule_mask; m; m &= m - 1) {
      struct lm_rule *r = &s->rules[__builtin_ctz(m)];
      if (LM_RULE_MEASURE(r->kind) == LM_RULE_SPEND)
        lm_shm_apply_counters(s, &r->c, &money);
    }
  }
}

void lm_shm_roll_lease(struct lm_segment *s, uint32_t model_row,
                       uint32_t agent_row, uint32_t rule_mask, int64_t now) {
  int64_t win = lm_shm_step_window(s, now);
  lm_shm_roll(s, &s->total, win);
  if (model_row <= LM_ROW_OTHER)
    lm_shm_roll(s, &s->models[model_row].c, win);
  if (agent_row <= LM_ROW_OTHER)
    lm_shm_roll(s, &s->agents[agent_row].c, win);
  for (uint32_t m = rule_mask; m; m &= m - 1) /* each rule bit set */
    lm_shm_roll(s, &s->rules[__builtin_ctz(m)].c, win);
}
