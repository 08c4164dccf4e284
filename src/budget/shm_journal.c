/* shm_journal.c — steps on a shared-memory budget: the lock, the undo
 * journal, recovery from a holder killed mid-step, and (debug builds) the
 * invariants checked at the end of every step.
 *
 * Why a lock and a journal. A charge changes many counters (the total, a
 * model row, an agent row, each spend rule it matched: money, tokens by
 * kind). Done as independent atomic adds, a process killed between two of
 * them leaves some applied and some not, and no one can tell which: every
 * other process has moved the totals since. So every change to counters
 * and lease slots is a step: the segment's robust mutex is held, and each
 * word is written by lm_shm_jset, which records the word's offset and old
 * value in the journal, publishes the entry with one store of the entry
 * count, and only then stores the new value. Committing is one store (the
 * count back to 0). When a holder dies, the kernel hands the mutex to the
 * next locker with EOWNERDEAD; that locker rolls the journal back, last
 * entry first, to the values the words had when the dead step began. Since
 * nobody else writes those words while the lock is held, the roll-back is
 * exact: the step took effect wholly (it committed) or not at all. A
 * roll-back is itself idempotent, so a recoverer killed mid-way leaves the
 * journal for the next one. The lease slot is written in the same step as
 * the counters, so a lease and the totals it is counted in never disagree:
 * spent is the sum of what every settled and every dead lease was charged.
 *
 * The cost is two uncontended lock operations a step (trylock first: no
 * clock read) and a few plain stores a word; readers that need no
 * consistent view read the atomics without the lock. A lock not had in two
 * seconds (a stopped holder, a hostile segment) fails the step: admission
 * refuses, never hangs.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "money.h"
#include "shm_internal.h"

/* Whether a journal entry names a word a step may write: inside the
 * segment, aligned, and neither its identity, its lock nor the journal
 * (a hostile journal must not be a way to write those). */
static int entry_ok(const struct lm_journal_entry *e) {
  uint64_t lo = offsetof(struct lm_segment, limits);
  uint64_t hi = offsetof(struct lm_segment, journal);
  return e->off % 8 == 0 && e->off >= lo && e->off + 8 <= hi;
}

/* Rolls the journal back: every entry, last first, to its old value. */
static void undo(struct lm_segment *s) {
  struct lm_journal *j = &s->journal;
  uint32_t n = atomic_load(&j->n);
  if (n > LM_JOURNAL_MAX) { /* hostile: nothing in it can be trusted */
    n = 0;
    atomic_store(&j->rebuild, 1);
  }
  for (uint32_t i = n; i-- > 0;) {
    struct lm_journal_entry e = j->e[i];
    if (!entry_ok(&e))
      continue;
    LM_CRASH_POINT();
    atomic_store((_Atomic uint64_t *)((char *)s + e.off), e.old);
    LM_CRASH_POINT();
  }
  atomic_store(&j->n, 0);
  LM_CRASH_POINT();
}

/* What a holder that died mid-step left: its writes rolled back, and a
 * reservation rebuild it had begun done again. */
static void recover(struct lm_segment *s) {
  struct lm_journal *j = &s->journal;
  if (atomic_load(&j->n) != 0) {
    undo(s);
    atomic_fetch_add(&j->undone, 1);
    atomic_fetch_add(&s->reconciles, 1);
  }
  if (atomic_load(&j->rebuild)) {
    lm_shm_rebuild_reservations(s);
    atomic_fetch_add(&s->reconciles, 1);
  }
}

int lm_shm_step_begin(struct lm_segment *s) {
  int rc = lm_segment_lock(s);
  if (rc < 0)
    return -1;
  if (rc == 1 || atomic_load_explicit(&s->journal.n, memory_order_relaxed))
    recover(s); /* a journal left non-empty is a dead step's, whatever the
                   mutex said (a hostile segment may say anything) */
  return 0;
}

void lm_shm_step_abort(struct lm_segment *s) { undo(s); }

void lm_shm_jsave(struct lm_segment *s, void *p, unsigned words) {
  struct lm_journal *j = &s->journal;
  uint32_t n = atomic_load_explicit(&j->n, memory_order_relaxed);
  if (n + words > LM_JOURNAL_MAX) {
    lm_shm_step_commit(s);
    n = 0;
  }
  const _Atomic uint64_t *w = p;
  for (unsigned i = 0; i < words; i++) {
    j->e[n + i].off = (uint64_t)((const char *)&w[i] - (char *)s);
    j->e[n + i].old = atomic_load_explicit(&w[i], memory_order_relaxed);
  }
  LM_CRASH_POINT();
  atomic_store_explicit(&j->n, n + words, memory_order_release);
  LM_CRASH_POINT();
}

/* ---- invariants (debug builds) ------------------------------------------ */

#ifdef LM_DEBUG_INVARIANTS
static _Atomic uint64_t checks;
static _Atomic int checks_off;

void lm_shm_invariants_off(void) { atomic_store(&checks_off, 1); }

static void violated(const char *what, int64_t want, int64_t have) {
  fprintf(stderr, "llmmeter: budget invariant violated: %s (%lld != %lld)\n",
          what, (long long)want, (long long)have);
  abort();
}

/* What a window counts, as one vector: spent, requests, denied,
 * unmetered, unpriced, then each token kind. */
#define WINDOWED (5 + LM_TOK_KINDS)
static void windowed(const struct lm_counters *c, uint64_t v[WINDOWED]) {
  v[0] = (uint64_t)atomic_load(&c->spent);
  v[1] = atomic_load(&c->requests);
  v[2] = atomic_load(&c->denied);
  v[3] = atomic_load(&c->unmetered);
  v[4] = atomic_load(&c->unpriced);
  for (int k = 0; k < LM_TOK_KINDS; k++)
    v[5 + k] = atomic_load(&c->tokens[k]);
}
static const char *windowed_name(int k) {
  static const char *const names[5] = {
      "rows' spent sum to the total's", "rows' requests sum to the total's",
      "rows' denied sum to the total's", "rows' unmetered sum to the total's",
      "rows' unpriced sum to the total's"};
  return k < 5 ? names[k] : "rows' tokens of a kind sum to the total's";
}

/* Reservations equal the live leases' (money on the total, its rows and
 * its spend rules; tokens on the total; requests on the total and rows),
 * and the rows in the total's window sum to the total. Under the lock. */
static void check_invariants(struct lm_segment *s) {
  /* Too big for a stack, and two threads may check two budgets at once
   * (each holds only its own segment's lock): they take turns. */
  static pthread_mutex_t sums_lock = PTHREAD_MUTEX_INITIALIZER;
  static struct sums {
    int64_t money;
    uint64_t requests;
  } models[LM_ROWS + 1], agents[LM_ROWS + 1], rules[LM_RULES];
  pthread_mutex_lock(&sums_lock);
  int64_t money = 0;
  uint64_t tokens = 0, requests = 0;
  memset(models, 0, sizeof(models));
  memset(agents, 0, sizeof(agents));
  memset(rules, 0, sizeof(rules));
  for (int i = 0; i < LM_LEASES; i++) {
    const struct lm_lease_slot *l = &s->leases[i];
    if ((atomic_load(&l->state) & ST_MASK) != LM_LEASE_ACTIVE)
      continue;
    if (l->model_row > LM_ROW_OTHER || l->agent_row > LM_ROW_OTHER) {
      pthread_mutex_unlock(&sums_lock);
      return; /* a hostile slot: the sums mean nothing, nothing to check */
    }
    int64_t m = l->reserved_pusd > 0 ? l->reserved_pusd : 0;
    money = lm_money_add(money, m);
    tokens += l->reserved_tokens;
    requests++;
    models[l->model_row].money = lm_money_add(models[l->model_row].money, m);
    models[l->model_row].requests++;
    agents[l->agent_row].money = lm_money_add(agents[l->agent_row].money, m);
    agents[l->agent_row].requests++;
    for (int r = 0; r < LM_RULES; r++)
      if ((l->rule_mask & (1u << r)) &&
          LM_RULE_MEASURE(s->rules[r].kind) == LM_RULE_SPEND)
        rules[r].money = lm_money_add(rules[r].money, m);
  }
  if (money != atomic_load(&s->total.reserved))
    violated("total reserved == sum of live leases", money,
             atomic_load(&s->total.reserved));
  if (tokens != atomic_load(&s->total.reserved_tokens))
    violated("total reserved_tokens == sum of live leases", (int64_t)tokens,
             (int64_t)atomic_load(&s->total.reserved_tokens));
  if (requests != atomic_load(&s->total.reserved_requests))
    violated("total reserved_requests == live leases", (int64_t)requests,
             (int64_t)atomic_load(&s->total.reserved_requests));
  /* What the rows in the total's window count sums to what the total
   * counts, each quantity (modular, as the counters are: a refund may take
   * a row below zero). */
  int64_t win = atomic_load(&s->total.window);
  uint64_t want[WINDOWED], sum_m[WINDOWED] = {0}, sum_a[WINDOWED] = {0};
  windowed(&s->total, want);
  for (int i = 0; i <= LM_ROW_OTHER; i++) {
    const struct lm_counters *mc = &s->models[i].c, *ac = &s->agents[i].c;
    if (models[i].money != atomic_load(&mc->reserved) ||
        models[i].requests != atomic_load(&mc->reserved_requests))
      violated("model row reserved == its live leases", models[i].money,
               atomic_load(&mc->reserved));
    if (agents[i].money != atomic_load(&ac->reserved) ||
        agents[i].requests != atomic_load(&ac->reserved_requests))
      violated("agent row reserved == its live leases", agents[i].money,
               atomic_load(&ac->reserved));
    uint64_t v[WINDOWED];
    if (atomic_load(&mc->window) == win) {
      windowed(mc, v);
      for (int k = 0; k < WINDOWED; k++)
        sum_m[k] += v[k];
    }
    if (atomic_load(&ac->window) == win) {
      windowed(ac, v);
      for (int k = 0; k < WINDOWED; k++)
        sum_a[k] += v[k];
    }
  }
  for (int r = 0; r < LM_RULES; r++)
    if (rules[r].money != atomic_load(&s->rules[r].c.reserved))
      violated("rule reserved == its live leases", rules[r].money,
               atomic_load(&s->rules[r].c.reserved));
  for (int k = 0; k < WINDOWED; k++) {
    if (sum_m[k] != want[k])
      violated(windowed_name(k), (int64_t)want[k], (int64_t)sum_m[k]);
    if (sum_a[k] != want[k])
      violated(windowed_name(k), (int64_t)want[k], (int64_t)sum_a[k]);
  }
  pthread_mutex_unlock(&sums_lock);
  atomic_fetch_add(&checks, 1);
}

uint64_t lm_shm_invariant_checks(void) { return atomic_load(&checks); }
#else
uint64_t lm_shm_invariant_checks(void) { return 0; }
void lm_shm_invariants_off(void) {}
#endif

void lm_shm_step_end(struct lm_segment *s) {
  lm_shm_step_commit(s);
  atomic_fetch_add_explicit(&s->journal.steps, 1, memory_order_relaxed);
#ifdef LM_DEBUG_INVARIANTS
  if (!atomic_load_explicit(&checks_off, memory_order_relaxed))
    check_invariants(s);
#endif
  lm_segment_unlock(s);
}
