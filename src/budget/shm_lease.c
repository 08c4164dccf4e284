/* shm_lease.c — the lease table of a shared-memory budget: who owns a
 * lease and whether it is alive, the APPLYING gate, reconcile and reclaim,
 * and a lease's life after admission (charge, settle, release).
 *
 * Lock-free. A slot is claimed with a CAS on its state word, which holds
 * the owner's pid and the lease state (FREE, CLAIMED, APPLYING, ACTIVE);
 * every counter is an atomic. A process killed at any instruction leaves no
 * lock held.
 *
 * Crash safety. A lease records its owner (pid + start time). A dead
 * owner's ACTIVE lease is refunded by the next admission that needs room
 * and by `llmmeter status` (reclaim). A lease caught dead in APPLYING (the
 * few instructions in which its counters change) is ambiguous: some of its
 * counter updates may have landed. Reservations are then recomputed from the
 * lease table (reconcile) behind a gate that every APPLYING step checks
 * (Dekker-style, seq_cst), so no live update is lost while the sums are
 * rebuilt. Spent money is never recomputed: it is history, not state.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "money.h"
#include "crashpoint.h"
#include "shm_internal.h"
#include "window.h"

/* ---- owners: pid, start time, liveness --------------------------------- */

/* Start time of a process in clock ticks since boot (field 22 of
 * /proc/PID/stat), and whether it is a zombie. 0 if unreadable. */
static uint64_t proc_start(uint32_t pid, int *zombie) {
  char path[64], buf[1024];
  snprintf(path, sizeof(path), "/proc/%u/stat", pid);
  FILE *f = fopen(path, "re");
  if (zombie)
    *zombie = 0;
  if (!f)
    return 0;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')'); /* comm may contain spaces and parens */
  if (!p || p[1] != ' ')
    return 0;
  p += 2;
  if (zombie)
    *zombie = (*p == 'Z' || *p == 'X');
  /* p is at field 3 (state); field 22 is 19 fields further. */
  for (int field = 3; field < 22 && *p; p++)
    if (*p == ' ')
      field++;
  return strtoull(p, NULL, 10);
}

/* getpid() is a system call: cache it, and forget it in a fork()ed child
 * (registered once, on first use, never at load). The cached read is
 * lm_shm_my_pid, inline in shm_internal.h. */
_Atomic uint32_t lm_shm_pid_cache;
static pthread_once_t pid_once = PTHREAD_ONCE_INIT;
static void pid_forget(void) { atomic_store(&lm_shm_pid_cache, 0); }
static void pid_register(void) { pthread_atfork(NULL, NULL, pid_forget); }
uint32_t lm_shm_my_pid_slow(void) {
  pthread_once(&pid_once, pid_register);
  uint32_t p = (uint32_t)getpid();
  atomic_store_explicit(&lm_shm_pid_cache, p, memory_order_relaxed);
  LM_CRASH_POINT();
  return p;
}

static _Atomic uint64_t self_start_cache; /* (pid << 40 | start) cache */
static uint64_t self_start(void) {
  uint32_t pid = lm_shm_my_pid();
  uint64_t c = atomic_load_explicit(&self_start_cache, memory_order_relaxed);
  if (c && (c >> 40) == pid)
    return c & ((1ULL << 40) - 1);
  uint64_t st = proc_start(pid, NULL) & ((1ULL << 40) - 1);
  atomic_store_explicit(&self_start_cache, ((uint64_t)pid << 40) | st,
                        memory_order_relaxed);
  return st;
}

/* A lease owner is alive if its pid exists, is not a zombie, and started
 * when the lease says (pid reuse cannot fool us). */
int lm_shm_owner_alive(uint32_t pid, uint64_t start, int check_start) {
  /* Above PID_MAX_LIMIT no process exists, and as a pid_t the number may
   * be negative: kill() would ask about a process group (-1: every one). */
  if (pid == 0 || pid > (1u << 22))
    return 0;
  if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
    return 0;
  int zombie = 0;
  uint64_t st = proc_start(pid, &zombie);
  if (zombie)
    return 0;
  if (check_start && st && start && (st & ((1ULL << 40) - 1)) != start)
    return 0;
  return 1;
}

/* ---- lease slots ------------------------------------------------------- */

static int claim_slot(struct lm_segment *s, uint32_t me, uint32_t *idx) {
  /* Start where this process usually finds room, to spread contention. */
  uint32_t start = (me * 2654435761u) % LM_LEASES;
  for (uint32_t i = 0; i < LM_LEASES; i++) {
    uint32_t k = (start + i) % LM_LEASES;
    uint64_t expect = 0;
    if (atomic_load_explicit(&s->leases[k].state, memory_order_relaxed) != 0)
      continue;
    if (atomic_compare_exchange_strong(
            &s->leases[k].state, &expect,
            lm_shm_lease_word(me, LM_LEASE_CLAIMED))) {
      *idx = k;
      return 0;
    }
  }
  return -1;
}

int lm_shm_lease_claim(struct lm_segment *s, uint32_t me,
                       const struct lm_lease *l, int64_t now, uint32_t *idx) {
  if (claim_slot(s, me, idx) != 0)
    return -1;
  struct lm_lease_slot *slot = &s->leases[*idx];
  slot->owner_start = self_start();
  LM_CRASH_POINT();
  slot->reserved_pusd = l->reserved_pusd;
  LM_CRASH_POINT();
  slot->charged_pusd = 0;
  LM_CRASH_POINT();
  slot->reserved_tokens = l->reserved_tokens;
  LM_CRASH_POINT();
  slot->model_row = l->model_row;
  LM_CRASH_POINT();
  slot->agent_row = l->agent_row;
  LM_CRASH_POINT();
  slot->rule_mask = l->rule_mask;
  LM_CRASH_POINT();
  slot->flags = l->flags;
  LM_CRASH_POINT();
  slot->admitted_at = now;
  LM_CRASH_POINT();
  return 0;
}

/* ---- the gate (see reconcile) ------------------------------------------ */

/* Waits for a reconcile to open the gate. A reconcile takes microseconds:
 * a gate held by a dead process, by a pid that cannot exist, or for more
 * than two seconds (its pid reused by another process, or a hostile
 * segment) is forced open. *waited_ms accumulates across calls. */
static void wait_gate(struct lm_segment *s, uint32_t g, int64_t *waited_ms) {
  struct timespec ts = {0, 50 * 1000 * 1000};
  lm_shm_futex(&s->gate, FUTEX_WAIT, g, &ts);
  *waited_ms += 50;
  if (atomic_load(&s->gate) == g &&
      (g > (1u << 22) || *waited_ms > 2000 || !lm_shm_owner_alive(g, 0, 0))) {
    uint32_t expect = g;
    atomic_compare_exchange_strong(&s->gate, &expect, 0);
    LM_CRASH_POINT();
  }
}

/* Moves a slot from `from` to APPLYING, unless a reconcile is running.
 * Returns 0, or -1 if the slot is no longer in state `from`. */
int lm_shm_enter_applying(struct lm_segment *s, struct lm_lease_slot *slot,
                          uint64_t from) {
  uint64_t applying = (from & ~(uint64_t)ST_MASK) | LM_LEASE_APPLYING;
  int64_t waited = 0;
  for (;;) {
    uint64_t expect = from;
    if (!atomic_compare_exchange_strong(&slot->state, &expect, applying))
      return -1;
    uint32_t g = atomic_load(&s->gate); /* seq_cst after seq_cst CAS */
    if (g == 0)
      return 0;
    expect = applying;
    atomic_compare_exchange_strong(&slot->state, &expect, from);
    LM_CRASH_POINT();
    wait_gate(s, g, &waited);
  }
}

void lm_shm_wake_waiters(struct lm_segment *s) {
  /* seq_cst, paired with the waiter's count-then-check: a relaxed load
   * could miss a waiter on a weakly ordered CPU and let it sleep its slice */
  if (atomic_load(&s->waiters) == 0)
    return;
  atomic_fetch_add(&s->wake, 1);
  LM_CRASH_POINT();
  lm_shm_futex(&s->wake, FUTEX_WAKE, INT_MAX, NULL);
}

/* ---- reconcile --------------------------------------------------------- */

/* With the gate closed: lets live APPLYING steps finish; new ones now see
 * the gate and back off. The reconciling thread itself applies nothing now,
 * but other threads of this process may. One still applying (a stopped
 * process) means the sums cannot be rebuilt safely: returns -1 (give up,
 * totals untouched), else 0. */
static int reconcile_drain(struct lm_segment *s) {
  for (int i = 0; i < LM_LEASES; i++) {
    struct lm_lease_slot *slot = &s->leases[i];
    for (int spins = 0;; spins++) {
      uint64_t w = atomic_load(&slot->state);
      if ((w & ST_MASK) != LM_LEASE_APPLYING ||
          !lm_shm_owner_alive((uint32_t)(w >> 8), 0, 0))
        break;
      if (spins > 100000)
        return -1;
      sched_yield();
    }
  }
  return 0;
}

/* Sums what the ACTIVE leases of live owners reserve and stores the sums
 * as every reservation counter; frees dead owners' slots on the way. */
static void reconcile_rebuild(struct lm_segment *s) {
  /* Too big for a stack; the segment lock only serialises one budget, so
   * two budgets rebuilt by two threads need their own lock for these. */
  static pthread_mutex_t sums_lock = PTHREAD_MUTEX_INITIALIZER;
  static struct {
    int64_t money;
    uint64_t tokens, requests;
  } tot, models[LM_ROWS + 1], agents[LM_ROWS + 1], rules[LM_RULES];
  pthread_mutex_lock(&sums_lock);
  memset(&tot, 0, sizeof(tot));
  memset(models, 0, sizeof(models));
  memset(agents, 0, sizeof(agents));
  memset(rules, 0, sizeof(rules));
  for (int i = 0; i < LM_LEASES; i++) {
    struct lm_lease_slot *slot = &s->leases[i];
    uint64_t w = atomic_load(&slot->state);
    unsigned st = (unsigned)(w & ST_MASK);
    if (st == LM_LEASE_FREE)
      continue;
    if (!lm_shm_owner_alive((uint32_t)(w >> 8), slot->owner_start,
                            st != LM_LEASE_CLAIMED)) {
      atomic_compare_exchange_strong(&slot->state, &w, 0);
      LM_CRASH_POINT();
      atomic_fetch_add(&s->reclaimed, 1);
      LM_CRASH_POINT();
      continue;
    }
    if (st != LM_LEASE_ACTIVE)
      continue; /* CLAIMED: nothing applied yet */
    int64_t money = slot->reserved_pusd > 0 ? slot->reserved_pusd : 0;
    uint64_t toks = slot->reserved_tokens;
    tot.money = lm_money_add(tot.money, money); /* slots may hold anything */
    tot.tokens += toks;
    tot.requests++;
    if (slot->model_row <= LM_ROW_OTHER) {
      models[slot->model_row].money = lm_money_add(
          models[slot->model_row].money, money);
      models[slot->model_row].requests++;
    }
    if (slot->agent_row <= LM_ROW_OTHER) {
      agents[slot->agent_row].money = lm_money_add(
          agents[slot->agent_row].money, money);
      agents[slot->agent_row].requests++;
    }
    for (int r = 0; r < LM_RULES; r++) /* money rules only, as admission */
      if ((slot->rule_mask & (1u << r)) &&
          LM_RULE_MEASURE(s->rules[r].kind) == LM_RULE_SPEND)
        rules[r].money = lm_money_add(rules[r].money, money);
  }
  atomic_store(&s->total.reserved, tot.money);
  LM_CRASH_POINT();
  atomic_store(&s->total.reserved_tokens, tot.tokens);
  LM_CRASH_POINT();
  atomic_store(&s->total.reserved_requests, tot.requests);
  LM_CRASH_POINT();
  for (int i = 0; i <= LM_ROW_OTHER; i++) {
    atomic_store(&s->models[i].c.reserved, models[i].money);
    LM_CRASH_POINT();
    atomic_store(&s->models[i].c.reserved_requests, models[i].requests);
    LM_CRASH_POINT();
    atomic_store(&s->agents[i].c.reserved, agents[i].money);
    LM_CRASH_POINT();
    atomic_store(&s->agents[i].c.reserved_requests, agents[i].requests);
    LM_CRASH_POINT();
  }
  for (int i = 0; i < LM_RULES; i++)
    atomic_store(&s->rules[i].c.reserved, rules[i].money);
  LM_CRASH_POINT();
  pthread_mutex_unlock(&sums_lock);
}

/* Rebuilds every reservation counter from the lease table. Caller holds the
 * segment lock. */
static void reconcile(struct lm_budget *b) {
  struct lm_segment *s = SEG(b);
  uint32_t me = lm_shm_my_pid();
  atomic_store(&s->gate, me);
  LM_CRASH_POINT();
  if (reconcile_drain(s) == 0) {
    reconcile_rebuild(s);
    atomic_fetch_add(&s->reconciles, 1);
    LM_CRASH_POINT();
  }
  atomic_store(&s->gate, 0);
  LM_CRASH_POINT();
  lm_shm_futex(&s->gate, FUTEX_WAKE, INT_MAX, NULL);
}

/* ---- charge / settle / release ----------------------------------------- */

/* Moves the lease's counter sets to the current window (exactly once):
 * what a step adds must land in the window it happens in. */
static void roll_lease(struct lm_budget *b, const struct lm_lease *l,
                       int64_t now) {
  struct lm_segment *s = SEG(b);
  int64_t win = lm_window_start(lm_shm_window_kind(s), now);
  lm_shm_roll(&s->total, win);
  if (l->model_row <= LM_ROW_OTHER)
    lm_shm_roll(&s->models[l->model_row].c, win);
  if (l->agent_row <= LM_ROW_OTHER)
    lm_shm_roll(&s->agents[l->agent_row].c, win);
  for (int r = 0; r < LM_RULES; r++)
    if (l->rule_mask & (1u << r))
      lm_shm_roll(&s->rules[r].c, win);
}

void lm_shm_charge(struct lm_budget *b, struct lm_lease *l,
                   const struct lm_usage *delta, int64_t pusd) {
  struct lm_segment *s = SEG(b);
  if (l->slot >= LM_LEASES)
    return;
  struct lm_lease_slot *slot = &s->leases[l->slot];
  int64_t now = lm_budget_now(b);
  roll_lease(b, l, now);
  /* pusd < 0 is a refund: a usage snapshot that went down (Gemini). */
  if (pusd < 0 && -pusd > l->charged_pusd)
    pusd = -l->charged_pusd; /* never below nothing charged */
  int lost = lm_shm_enter_applying(s, slot, l->state_word) != 0;
  /* Move the charge out of the reservation, as far as it reaches. */
  int64_t take = 0;
  if (!lost && (l->flags & LM_LEASEF_DOLLARS) && pusd > 0) {
    int64_t rem = l->reserved_pusd - l->charged_pusd;
    take = rem <= 0 ? 0 : (pusd < rem ? pusd : rem);
  }
  /* Token deltas are modular: a snapshot that went down wraps. */
  int64_t t = delta ? (int64_t)(delta->input + delta->output) : 0;
  uint64_t trem = l->reserved_tokens > l->charged_tokens
                      ? l->reserved_tokens - l->charged_tokens
                      : 0;
  uint64_t ttake = lost || t <= 0 ? 0
                                  : ((uint64_t)t < trem ? (uint64_t)t : trem);
  l->charged_pusd = lm_money_add(l->charged_pusd, pusd);
  l->charged_tokens += (uint64_t)t;
  if (!lost) {
    slot->charged_pusd = l->charged_pusd;
    LM_CRASH_POINT();
    /* saturating: another process may have written anything here */
    slot->reserved_pusd = lm_money_add(slot->reserved_pusd, -take);
    LM_CRASH_POINT();
    slot->reserved_tokens -= ttake;
  }
  struct lm_amounts a = {.spent = pusd,
                         .reserved = -take,
                         .reserved_tokens = -(int64_t)ttake,
                         .tokens = delta};
  lm_shm_apply_lease(s, l->model_row, l->agent_row, l->rule_mask, &a);
  LM_CRASH_POINT();
  lm_shm_touch(&s->total, now);
  if (!lost)
    lm_shm_leave_applying(slot, l->state_word);
  LM_CRASH_POINT();
}

static void finish(struct lm_budget *b, struct lm_lease *l, unsigned flags,
                   int count_request) {
  struct lm_segment *s = SEG(b);
  if (l->slot >= LM_LEASES)
    return;
  roll_lease(b, l, lm_budget_now(b));
  struct lm_lease_slot *slot = &s->leases[l->slot];
  int lost = lm_shm_enter_applying(s, slot, l->state_word) != 0;
  if (!lost) {
    int64_t rem = slot->reserved_pusd > 0 ? slot->reserved_pusd : 0;
    struct lm_amounts a = {
        .reserved = -rem,
        .reserved_tokens = (int64_t)(0 - slot->reserved_tokens),
        .reserved_requests = -1,
        .requests = count_request,
        .unmetered = (flags & LM_SETTLE_UNMETERED) ? 1 : 0,
        .unpriced = (flags & LM_SETTLE_UNPRICED) ? 1 : 0,
    };
    lm_shm_apply_lease(s, l->model_row, l->agent_row, l->rule_mask, &a);
    LM_CRASH_POINT();
    lm_shm_leave_applying(slot, 0);
    LM_CRASH_POINT();
  } else if (count_request) {
    /* A reclaimer refunded us (it wrongly thought us dead); still count. */
    struct lm_amounts a = {.requests = 1};
    lm_shm_apply_lease(s, l->model_row, l->agent_row, 0, &a);
    LM_CRASH_POINT();
  }
  if (flags & LM_SETTLE_UNPRICED && l->model_row <= LM_ROW_OTHER)
    __atomic_fetch_or(&s->models[l->model_row].flags, LM_ROWF_UNPRICED,
                      __ATOMIC_RELAXED);
  l->slot = UINT32_MAX;
  lm_shm_wake_waiters(s);
}

void lm_shm_settle(struct lm_budget *b, struct lm_lease *l, unsigned flags) {
  finish(b, l, flags, 1);
}

void lm_shm_release(struct lm_budget *b, struct lm_lease *l) {
  /* A call that was charged something did happen: it counts. */
  finish(b, l, 0, l->charged_pusd > 0 || l->charged_tokens > 0);
}

/* ---- reclaim ----------------------------------------------------------- */

int lm_shm_reclaim(struct lm_budget *b) {
  struct lm_segment *s = SEG(b);
  uint32_t me = lm_shm_my_pid();
  int n = 0, ambiguous = 0;
  for (int i = 0; i < LM_LEASES; i++) {
    struct lm_lease_slot *slot = &s->leases[i];
    uint64_t w = atomic_load(&slot->state);
    unsigned st = (unsigned)(w & ST_MASK);
    uint32_t pid = (uint32_t)(w >> 8);
    if (st == LM_LEASE_FREE || pid == me)
      continue;
    if (st > LM_LEASE_ACTIVE) { /* hostile or corrupt: reconcile fixes it */
      ambiguous = 1;
      continue;
    }
    if (lm_shm_owner_alive(pid, slot->owner_start, st == LM_LEASE_ACTIVE))
      continue;
    if (st == LM_LEASE_CLAIMED) {
      if (atomic_compare_exchange_strong(&slot->state, &w, 0))
        n++;
    } else if (st == LM_LEASE_ACTIVE) {
      /* Take the dead lease over, then undo what it still reserves. */
      if (lm_shm_enter_applying(s, slot, w) != 0)
        continue;
      int64_t rem = slot->reserved_pusd > 0 ? slot->reserved_pusd : 0;
      uint32_t mrow = slot->model_row <= LM_ROW_OTHER ? slot->model_row
                                                      : LM_ROW_NONE;
      uint32_t arow = slot->agent_row <= LM_ROW_OTHER ? slot->agent_row
                                                      : LM_ROW_NONE;
      struct lm_amounts a = {
          .reserved = -rem,
          .reserved_tokens = (int64_t)(0 - slot->reserved_tokens),
          .reserved_requests = -1,
          .requests = slot->charged_pusd > 0 ? 1 : 0};
      lm_shm_apply_lease(s, mrow, arow, slot->rule_mask, &a);
      LM_CRASH_POINT();
      lm_shm_leave_applying(slot, 0);
      LM_CRASH_POINT();
      atomic_fetch_add(&s->reclaimed, 1);
      LM_CRASH_POINT();
      n++;
    } else {
      ambiguous = 1; /* died while applying */
    }
  }
  if (ambiguous && lm_segment_lock(s) == 0) {
    reconcile(b);
    lm_segment_unlock(s);
    n++;
  }
  if (n)
    lm_shm_wake_waiters(s);
  return n;
}
