/* shm_counters.c — the counter sets of a shared-memory budget: their
 * windows, and the amounts a lease applies to every set it touches.
 *
 * Every counted thing (the total, each model and agent row, each rule) is
 * one struct lm_counters of atomics. A lease's step (reserve, charge,
 * settle, refund) is one struct lm_amounts applied to the total, to its
 * model and agent rows and, for money, to the spend rules it matched, each
 * counter with its own atomic add, never a lock. Reservations change only
 * while their lease is APPLYING (shm_lease.c): that is how a process killed
 * halfway through a step is caught, and the reservations rebuilt.
 *
 * Windows. Each counter set carries the window it counts; the first process
 * to see a newer window swings it by CAS and subtracts what it read, so the
 * reset happens exactly once and no concurrent charge is lost. The roll
 * itself (lm_shm_roll) is inline in shm_internal.h: every admission and
 * charge calls it on each set, and it almost always returns at once.
 */
#include "crashpoint.h"
#include "shm_internal.h"

/* Zeroes what a window counts (not reservations: in-flight money) by
 * subtracting what was read, so a concurrent charge is never lost. */
void lm_shm_zero_counters(struct lm_counters *c) {
  atomic_fetch_sub(&c->spent, atomic_load(&c->spent));
  LM_CRASH_POINT();
  atomic_fetch_sub(&c->requests, atomic_load(&c->requests));
  LM_CRASH_POINT();
  for (int k = 0; k < LM_TOK_KINDS; k++)
    atomic_fetch_sub(&c->tokens[k], atomic_load(&c->tokens[k]));
  LM_CRASH_POINT();
  atomic_fetch_sub(&c->denied, atomic_load(&c->denied));
  LM_CRASH_POINT();
  atomic_fetch_sub(&c->unmetered, atomic_load(&c->unmetered));
  LM_CRASH_POINT();
  atomic_fetch_sub(&c->unpriced, atomic_load(&c->unpriced));
  LM_CRASH_POINT();
}

void lm_shm_apply_counters(struct lm_counters *c, const struct lm_amounts *a) {
  if (a->spent)
    atomic_fetch_add(&c->spent, a->spent);
  LM_CRASH_POINT();
  if (a->reserved)
    atomic_fetch_add(&c->reserved, a->reserved);
  LM_CRASH_POINT();
  if (a->requests)
    atomic_fetch_add(&c->requests, (uint64_t)a->requests);
  LM_CRASH_POINT();
  if (a->reserved_requests)
    atomic_fetch_add(&c->reserved_requests, (uint64_t)a->reserved_requests);
  LM_CRASH_POINT();
  if (a->reserved_tokens)
    atomic_fetch_add(&c->reserved_tokens, (uint64_t)a->reserved_tokens);
  LM_CRASH_POINT();
  if (a->tokens) {
    uint64_t add[LM_TOK_KINDS];
    lm_usage_kinds(a->tokens, add);
    for (int k = 0; k < LM_TOK_KINDS; k++)
      if (add[k]) /* modular: a usage snapshot that went down wraps back */
        atomic_fetch_add(&c->tokens[k], add[k]);
    LM_CRASH_POINT();
  }
  if (a->denied)
    atomic_fetch_add(&c->denied, a->denied);
  LM_CRASH_POINT();
  if (a->unmetered)
    atomic_fetch_add(&c->unmetered, a->unmetered);
  LM_CRASH_POINT();
  if (a->unpriced)
    atomic_fetch_add(&c->unpriced, a->unpriced);
  LM_CRASH_POINT();
}

/* Applies to the total, the lease's rows, and (money only) its rules. */
void lm_shm_apply_lease(struct lm_segment *s, uint32_t model_row,
                        uint32_t agent_row, uint32_t rule_mask,
                        const struct lm_amounts *a) {
  lm_shm_apply_counters(&s->total, a);
  /* Admission reserves tokens on the total only (the token limit is
   * budget-wide): rows must not give back what they never held. */
  struct lm_amounts row = *a;
  row.reserved_tokens = 0;
  if (model_row <= LM_ROW_OTHER)
    lm_shm_apply_counters(&s->models[model_row].c, &row);
  if (agent_row <= LM_ROW_OTHER)
    lm_shm_apply_counters(&s->agents[agent_row].c, &row);
  if (rule_mask && (a->spent || a->reserved)) {
    struct lm_amounts money = {.spent = a->spent, .reserved = a->reserved};
    for (int r = 0; r < LM_RULES; r++)
      if ((rule_mask & (1u << r)) &&
          LM_RULE_MEASURE(s->rules[r].kind) == LM_RULE_SPEND)
        lm_shm_apply_counters(&s->rules[r].c, &money);
  }
}
