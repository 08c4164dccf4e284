/* shm_internal.h — what the files of the shared-memory backend share, and
 * nothing outside them sees.
 *
 * The backend is one module in several files, one concern each:
 *   budget_shm.c   the ops table, open and create (the entry point)
 *   shm_admit.c    admission: rows, rule matching, reservations, waiting
 *   shm_journal.c  steps: the lock, the undo journal, recovery from a
 *                  holder that died mid-step, the debug invariants
 *   shm_lease.c    lease slots, owner liveness, reclaim and the
 *                  reservation rebuild; charge, settle, release
 *   shm_counters.c counter sets: windows and the amounts a lease applies
 *   shm_rate.c     rate buckets (GCRA)
 *   shm_rules.c    configure, rules, reset, snapshot, soft limit,
 *                  downgrade, deadline and LLM time
 * This header owns the handle (struct shm_budget), the lm_shm_* functions
 * that cross those files, and the few small helpers the hot path (admit,
 * charge, settle) calls from more than one of them. Those are static inline
 * here, not functions in one file: the build has no LTO, and they were
 * inlined when the backend was one file, so splitting it must not turn them
 * into calls. Include it only from budget_shm.c and shm_*.c.
 */
#ifndef LM_SHM_INTERNAL_H
#define LM_SHM_INTERNAL_H

#include <linux/futex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "budget.h"
#include "budget_backend.h"
#include "crashpoint.h"
#include "window.h"
#include "segment.h"

/* A shared-memory budget handle: the shared part, then the mapping. */
struct shm_budget {
  struct lm_budget base;
  struct lm_segment_map map;
};
#define SEG(b) (((struct shm_budget *)(b))->map.seg)
#define MAP(b) (((struct shm_budget *)(b))->map)

/* ---- the operations (the ops table is in budget_shm.c) ----------------- */

int lm_shm_admit(struct lm_budget *b, const struct lm_call *call,
                 struct lm_lease *l, struct lm_denial *why);
bool lm_shm_over_call_caps(struct lm_budget *b, const struct lm_lease *l,
                           const struct lm_call *call,
                           const struct lm_usage *total, int64_t cost,
                           struct lm_denial *why);
void lm_shm_charge(struct lm_budget *b, struct lm_lease *l,
                   const struct lm_usage *delta, int64_t pusd);
void lm_shm_settle(struct lm_budget *b, struct lm_lease *l, unsigned flags);
void lm_shm_release(struct lm_budget *b, struct lm_lease *l);
int lm_shm_reclaim(struct lm_budget *b);
void lm_shm_rate_correct(struct lm_budget *b, const struct lm_lease *l,
                         const struct lm_usage *actual);
int lm_shm_snapshot(struct lm_budget *b, struct lm_snapshot *o);
int lm_shm_configure(struct lm_budget *b, const struct lm_limit_config *c);
int lm_shm_add_rule(struct lm_budget *b, int kind, const char *pattern,
                    int64_t limit, char *err, size_t errlen);
int lm_shm_reset(struct lm_budget *b);
bool lm_shm_over_hard(struct lm_budget *b, const struct lm_lease *l);
void lm_shm_add_llm_time(struct lm_budget *b, int64_t ns);
bool lm_shm_over_time(struct lm_budget *b, int64_t inflight_ns,
                      struct lm_denial *why);
bool lm_shm_soft_crossed(struct lm_budget *b, char *cmd, size_t cmdlen);
bool lm_shm_hard_limit(struct lm_budget *b);
void lm_shm_count_unmetered(struct lm_budget *b, bool denied);
bool lm_shm_downgrade(struct lm_budget *b, const char *model, char *out,
                      size_t outlen);

/* ---- small helpers ----------------------------------------------------- */

static inline long lm_shm_futex(_Atomic uint32_t *addr, int op, uint32_t val,
                                const struct timespec *ts) {
  return syscall(SYS_futex, (uint32_t *)addr, op, val, ts, NULL, 0);
}

/* The budget's window kind, validated (the segment may be hostile). */
static inline int lm_shm_window_kind(struct lm_segment *s) {
  uint32_t k = atomic_load(&s->limits.window_kind);
  return k < LM_WINDOW_KINDS ? (int)k : LM_WINDOW_NONE;
}

/* ---- steps and the undo journal (shm_journal.c) ------------------------ */

/* Begins a step: takes the segment lock, first rolling back what a holder
 * that died mid-step left. 0, or -1 (the lock is not to be had within two
 * seconds: a stopped holder or a hostile segment; nothing was changed). */
int lm_shm_step_begin(struct lm_segment *s);
/* Commits the step's changes so far (they stay, whatever happens next). */
static inline void lm_shm_step_commit(struct lm_segment *s) {
  LM_CRASH_POINT();
  atomic_store_explicit(&s->journal.n, 0, memory_order_release);
  LM_CRASH_POINT();
}
/* Commits, checks the invariants (debug builds) and unlocks. */
void lm_shm_step_end(struct lm_segment *s);
/* Rolls back every change since the last commit (a refused admission). */
void lm_shm_step_abort(struct lm_segment *s);

/* Records the old value of `words` 64-bit words at p in the journal; the
 * step may then write them as it likes. */
void lm_shm_jsave(struct lm_segment *s, void *p, unsigned words);
/* Journals a 64-bit counter word, then stores v / adds d (modular). */
static inline void lm_shm_jset(struct lm_segment *s, void *word, uint64_t v) {
  struct lm_journal *j = &s->journal;
  _Atomic uint64_t *w = (_Atomic uint64_t *)word;
  uint32_t n = atomic_load_explicit(&j->n, memory_order_relaxed);
  if (n >= LM_JOURNAL_MAX) { /* cannot happen: every step fits */
    lm_shm_step_commit(s);
    n = 0;
  }
  j->e[n].off = (uint64_t)((char *)word - (char *)s);
  j->e[n].old = atomic_load_explicit(w, memory_order_relaxed);
  LM_CRASH_POINT();
  atomic_store_explicit(&j->n, n + 1, memory_order_release);
  LM_CRASH_POINT();
  atomic_store_explicit(w, v, memory_order_release);
  LM_CRASH_POINT();
}
static inline void lm_shm_jadd(struct lm_segment *s, void *word, uint64_t d) {
  if (d)
    lm_shm_jset(
        s, word,
        atomic_load_explicit((_Atomic uint64_t *)word, memory_order_relaxed) +
            d);
}

/* Debug builds (-DLM_DEBUG_INVARIANTS: DEBUG=1, SAN=1, the crash test):
 * every step ends by checking that the reservation counters equal the
 * sums of the live leases and the rows sum to the total; a violation
 * aborts. Returns how many checks this process made (0: not built in). */
uint64_t lm_shm_invariant_checks(void);
/* Turns the checks off in this process (a test that writes garbage into
 * segments on purpose: their sums mean nothing). */
void lm_shm_invariants_off(void);

/* ---- owners and lease slots (shm_lease.c) ------------------------------ */

/* A lease slot's state word: (pid << 8) | enum lm_lease_state. */
#define ST_MASK 0xffu
static inline uint64_t lm_shm_lease_word(uint32_t pid, unsigned st) {
  return ((uint64_t)pid << 8) | st;
}

/* getpid() is a system call: cached (and forgotten in a fork()ed child). */
extern _Atomic uint32_t lm_shm_pid_cache;
uint32_t lm_shm_my_pid_slow(void);
static inline uint32_t lm_shm_my_pid(void) {
  uint32_t p = atomic_load_explicit(&lm_shm_pid_cache, memory_order_relaxed);
  if (p)
    return p;
  return lm_shm_my_pid_slow();
}

/* Whether pid is alive, not a zombie, and (check_start) started at start. */
int lm_shm_owner_alive(uint32_t pid, uint64_t start, int check_start);

/* Claims a free slot for l as `me`, inside a step, ACTIVE at once (the
 * step's counters change with it, or neither does). Returns 0 and *idx,
 * or -1 if none is free. */
int lm_shm_lease_claim(struct lm_segment *s, uint32_t me,
                       const struct lm_lease *l, int64_t now, uint32_t *idx);

/* Sums the reservations of the ACTIVE leases into every reservation
 * counter (the rebuild after a hostile lease table). Inside a step. */
void lm_shm_rebuild_reservations(struct lm_segment *s);

/* Wakes the calls waiting for money to free up, if there are any. */
void lm_shm_wake_waiters(struct lm_segment *s);

/* ---- counter sets (shm_counters.c) ------------------------------------- */

/* Zeroes what a window counts (not reservations: in-flight money), inside
 * a step. */
void lm_shm_zero_counters(struct lm_segment *s, struct lm_counters *c);

/* Moves c to window `win` if it counts an older one, inside a step: its
 * counts zeroed and the window set in the same step, exactly once. */
void lm_shm_roll_slow(struct lm_segment *s, struct lm_counters *c, int64_t win);
static inline void lm_shm_roll(struct lm_segment *s, struct lm_counters *c,
                               int64_t win) {
  if (atomic_load_explicit(&c->window, memory_order_relaxed) < win)
    lm_shm_roll_slow(s, c, win); /* else current: the common case */
}

/* The window a step counts in: the one its clock says, or the one the
 * total already counts if that is later (a process whose clock lags
 * charges the current window, and every set of a lease the same one). */
static inline int64_t lm_shm_step_window(struct lm_segment *s, int64_t now) {
  int64_t win = lm_window_start(lm_shm_window_kind(s), now);
  int64_t cur = atomic_load_explicit(&s->total.window, memory_order_relaxed);
  return cur > win ? cur : win;
}

/* Activity stamps: not conservation, so not journaled (no step journals
 * them, so no roll-back can clobber them). Inside a step. */
static inline void lm_shm_touch(struct lm_counters *c, int64_t now) {
  if (atomic_load_explicit(&c->first_activity, memory_order_relaxed) == 0)
    atomic_store_explicit(&c->first_activity, now, memory_order_relaxed);
  atomic_store_explicit(&c->last_activity, now, memory_order_relaxed);
}

/* What one step of a lease adds to (negative: takes from) its counters. */
struct lm_amounts {
  int64_t spent, reserved;
  int64_t requests, reserved_requests;
  int64_t reserved_tokens;
  const struct lm_usage *tokens;
  uint64_t denied, unmetered, unpriced;
};

/* Inside a step: */
void lm_shm_apply_counters(struct lm_segment *s, struct lm_counters *c,
                           const struct lm_amounts *a);
/* Applies to the total, the lease's rows, and (money only) its rules. */
void lm_shm_apply_lease(struct lm_segment *s, uint32_t model_row,
                        uint32_t agent_row, uint32_t rule_mask,
                        const struct lm_amounts *a);
/* Rolls the total and a lease's rows and rules to the step's window. */
void lm_shm_roll_lease(struct lm_segment *s, uint32_t model_row,
                       uint32_t agent_row, uint32_t rule_mask, int64_t now);

/* ---- rate buckets (shm_rate.c) ----------------------------------------- */

/* One bucket a call draws from, and how many units. */
struct lm_shm_bucket {
  _Atomic int64_t *tat;
  int64_t per_min, units;
  int what;
  const char *name;
};

/* Every bucket one call draws from: the budget's rpm/tpm/itpm/otpm and its
 * matching rate rules'. turn_ns: how long the call must sleep for its turn. */
struct lm_shm_rates {
  struct lm_shm_bucket bk[4 + LM_RULES];
  int n;
  int64_t turn_ns;
};

/* CLOCK_MONOTONIC in ns: the rate buckets' clock. */
int64_t lm_shm_mono_ns(void);
/* Takes the call's turn in every bucket, or in none: returns 0 (turns
 * taken, r->turn_ns >= 0) or -1 (a turn is more than max_wait_ns away; why
 * filled). */
int lm_shm_rates_take(struct lm_segment *s, uint32_t rule_mask, uint64_t in,
                      uint64_t out, int64_t max_wait_ns, struct lm_shm_rates *r,
                      struct lm_denial *why);
/* Gives back every turn lm_shm_rates_take took (a refused call). */
void lm_shm_rates_give_back(const struct lm_shm_rates *r);
/* Units used in the last minute, as a bucket sees it. */
int64_t lm_shm_rate_used(_Atomic int64_t *tat, int64_t per_min, int64_t now);

#endif
