/* shm_lease.c — the lease table of a shared-memory budget: who owns a
 * lease and whether it is alive, reclaim, and a lease's life after
 * admission (charge, settle, release).
 *
 * A slot's state word holds the owner's pid and the lease state (FREE or
 * ACTIVE). A slot is claimed, charged and freed only inside a step
 * (shm_journal.c), in the same journaled step as the counters it changes:
 * a lease and the totals it is counted in never disagree, whenever its
 * owner is killed.
 *
 * Crash safety. A lease records its owner (pid + start time). A dead
 * owner's ACTIVE lease is refunded by the next admission that needs room
 * and by `llmmeter status` (reclaim): its reservation is given back, what
 * it was charged stays spent, and a charged lease counts as a request.
 * Liveness is asked outside the lock (a /proc read per slot); the refund,
 * of a slot whose word has not changed, inside. A slot in a state no step
 * writes (a hostile segment, or layout 4's CLAIMED and APPLYING) is freed
 * and every reservation counter rebuilt from the lease table.
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

int lm_shm_lease_claim(struct lm_segment *s, uint32_t me,
                       const struct lm_lease *l, int64_t now, uint32_t *idx) {
  /* Start where this process usually finds room, to spread the slots. */
  uint32_t start = (me * 2654435761u) % LM_LEASES;
  for (uint32_t i = 0; i < LM_LEASES; i++) {
    uint32_t k = (start + i) % LM_LEASES;
    struct lm_lease_slot *slot = &s->leases[k];
    if (atomic_load_explicit(&slot->state, memory_order_relaxed) != 0)
      continue;
    lm_shm_jsave(s, slot, sizeof(*slot) / 8);
    slot->owner_start = self_start();
    slot->reserved_pusd = l->reserved_pusd;
    slot->charged_pusd = 0;
    slot->reserved_tokens = l->reserved_tokens;
    slot->model_row = l->model_row;
    slot->agent_row = l->agent_row;
    slot->rule_mask = l->rule_mask;
    slot->flags = l->flags;
    slot->admitted_at = now;
    LM_CRASH_POINT();
    atomic_store_explicit(&slot->state, lm_shm_lease_word(me, LM_LEASE_ACTIVE),
                          memory_order_release);
    LM_CRASH_POINT();
    *idx = k;
    return 0;
  }
  return -1;
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

/* ---- the reservation rebuild ------------------------------------------- */

/* Sums what the ACTIVE leases reserve and stores the sums as every
 * reservation counter. Inside a step, with the journal committed: not
 * journaled (a thousand words) but redone, by the intent flag, by whoever
 * next locks if this process dies in it. */
void lm_shm_rebuild_reservations(struct lm_segment *s) {
  /* Too big for a stack; the segment lock only serialises one budget, so
   * two budgets rebuilt by two threads need their own lock for these. */
  static pthread_mutex_t sums_lock = PTHREAD_MUTEX_INITIALIZER;
  static struct {
    int64_t money;
    uint64_t tokens, requests;
  } tot, models[LM_ROWS + 1], agents[LM_ROWS + 1], rules[LM_RULES];
  LM_CRASH_POINT();
  atomic_store(&s->journal.rebuild, 1);
  LM_CRASH_POINT();
  pthread_mutex_lock(&sums_lock);
  memset(&tot, 0, sizeof(tot));
  memset(models, 0, sizeof(models));
  memset(agents, 0, sizeof(agents));
  memset(rules, 0, sizeof(rules));
  for (int i = 0; i < LM_LEASES; i++) {
    struct lm_lease_slot *slot = &s->leases[i];
    uint64_t w = atomic_load(&slot->state);
    if ((w & ST_MASK) != LM_LEASE_ACTIVE)
      continue;
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
  atomic_store(&s->total.reserved_tokens, tot.tokens);
  atomic_store(&s->total.reserved_requests, tot.requests);
  LM_CRASH_POINT();
  for (int i = 0; i <= LM_ROW_OTHER; i++) {
    atomic_store(&s->models[i].c.reserved, models[i].money);
    atomic_store(&s->models[i].c.reserved_requests, models[i].requests);
    atomic_store(&s->agents[i].c.reserved, agents[i].money);
    atomic_store(&s->agents[i].c.reserved_requests, agents[i].requests);
  }
  LM_CRASH_POINT();
  for (int i = 0; i < LM_RULES; i++)
    atomic_store(&s->rules[i].c.reserved, rules[i].money);
  pthread_mutex_unlock(&sums_lock);
  LM_CRASH_POINT();
  atomic_store(&s->journal.rebuild, 0);
  LM_CRASH_POINT();
}

/* ---- charge / settle / release ----------------------------------------- */

/* Whether the lease still holds its slot (a reclaimer that wrongly took us
 * for dead may have refunded it). Inside the step. */
static struct lm_lease_slot *own_slot(struct lm_segment *s,
                                      const struct lm_lease *l) {
  struct lm_lease_slot *slot = &s->leases[l->slot];
  return atomic_load_explicit(&slot->state, memory_order_relaxed) ==
                 l->state_word
             ? slot
             : NULL;
}

void lm_shm_charge(struct lm_budget *b, struct lm_lease *l,
                   const struct lm_usage *delta, int64_t pusd) {
  struct lm_segment *s = SEG(b);
  if (l->slot >= LM_LEASES)
    return;
  int64_t now = lm_budget_now(b);
  /* pusd < 0 is a refund: a usage snapshot that went down (Gemini). */
  if (pusd < 0 && -pusd > l->charged_pusd)
    pusd = -l->charged_pusd; /* never below nothing charged */
  /* Token deltas are modular: a snapshot that went down wraps. */
  int64_t t = delta ? (int64_t)(delta->input + delta->output) : 0;
  if (lm_shm_step_begin(s) != 0)
    return; /* fail closed: admission refuses on this budget too */
  lm_shm_roll_lease(s, l->model_row, l->agent_row, l->rule_mask, now);
  struct lm_lease_slot *slot = own_slot(s, l);
  /* Move the charge out of the reservation, as far as it reaches. */
  int64_t take = 0;
  uint64_t ttake = 0;
  if (slot) {
    if ((l->flags & LM_LEASEF_DOLLARS) && pusd > 0) {
      int64_t rem = slot->reserved_pusd;
      take = rem <= 0 ? 0 : (pusd < rem ? pusd : rem);
    }
    if (t > 0)
      ttake = (uint64_t)t < slot->reserved_tokens ? (uint64_t)t
                                                  : slot->reserved_tokens;
    /* The lease's cumulative charge and what it still holds change in
     * the same step as the totals. */
    lm_shm_jset(s, &slot->charged_pusd,
                (uint64_t)lm_money_add(slot->charged_pusd, pusd));
    lm_shm_jset(s, &slot->reserved_pusd,
                (uint64_t)lm_money_add(slot->reserved_pusd, -take));
    lm_shm_jset(s, &slot->reserved_tokens, slot->reserved_tokens - ttake);
  }
  struct lm_amounts a = {.spent = pusd,
                         .reserved = -take,
                         .reserved_tokens = -(int64_t)ttake,
                         .tokens = delta};
  lm_shm_apply_lease(s, l->model_row, l->agent_row, l->rule_mask, &a);
  lm_shm_touch(&s->total, now);
  lm_shm_step_end(s);
  l->charged_pusd = lm_money_add(l->charged_pusd, pusd);
  l->charged_tokens += (uint64_t)t;
}

static void finish(struct lm_budget *b, struct lm_lease *l, unsigned flags,
                   int count_request) {
  struct lm_segment *s = SEG(b);
  if (l->slot >= LM_LEASES)
    return;
  if (lm_shm_step_begin(s) == 0) {
    lm_shm_roll_lease(s, l->model_row, l->agent_row, l->rule_mask,
                      lm_budget_now(b));
    struct lm_lease_slot *slot = own_slot(s, l);
    struct lm_amounts a = {.requests = count_request};
    if (slot) {
      a.reserved = -(slot->reserved_pusd > 0 ? slot->reserved_pusd : 0);
      a.reserved_tokens = (int64_t)(0 - slot->reserved_tokens);
      a.reserved_requests = -1;
      a.unmetered = (flags & LM_SETTLE_UNMETERED) ? 1 : 0;
      a.unpriced = (flags & LM_SETTLE_UNPRICED) ? 1 : 0;
      lm_shm_jset(s, &slot->state, 0);
    } /* else a reclaimer refunded us (it wrongly thought us dead): count */
    lm_shm_apply_lease(s, l->model_row, l->agent_row, slot ? l->rule_mask : 0,
                       &a);
    lm_shm_step_end(s);
  }
  if (flags & LM_SETTLE_UNPRICED && l->model_row <= LM_ROW_OTHER)
    __atomic_fetch_or(&s->models[l->model_row].flags, LM_ROWF_UNPRICED,
                      __ATOMIC_RELAXED);
  LM_CRASH_POINT();
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

/* Refunds one dead owner's slot, if its word is still w: its reservation
 * given back, what it was charged kept, a request if it was charged. One
 * step's worth (the caller holds the lock). */
static int refund_dead(struct lm_segment *s, struct lm_lease_slot *slot,
                       uint64_t w, int64_t now, int *hostile) {
  if (atomic_load(&slot->state) != w)
    return 0; /* settled, or refunded by another reclaimer meanwhile */
  if ((w & ST_MASK) != LM_LEASE_ACTIVE) {
    /* no step leaves a slot in this state: free it, rebuild the sums */
    lm_shm_jset(s, &slot->state, 0);
    *hostile = 1;
    return 1;
  }
  uint32_t mrow = slot->model_row <= LM_ROW_OTHER ? slot->model_row
                                                  : LM_ROW_NONE;
  uint32_t arow = slot->agent_row <= LM_ROW_OTHER ? slot->agent_row
                                                  : LM_ROW_NONE;
  lm_shm_roll_lease(s, mrow, arow, slot->rule_mask, now);
  struct lm_amounts a = {
      .reserved = -(slot->reserved_pusd > 0 ? slot->reserved_pusd : 0),
      .reserved_tokens = (int64_t)(0 - slot->reserved_tokens),
      .reserved_requests = -1,
      .requests = slot->charged_pusd > 0 ? 1 : 0};
  lm_shm_apply_lease(s, mrow, arow, slot->rule_mask, &a);
  lm_shm_jset(s, &slot->state, 0);
  lm_shm_step_commit(s);
  return 1;
}

int lm_shm_reclaim(struct lm_budget *b) {
  struct lm_segment *s = SEG(b);
  uint32_t me = lm_shm_my_pid();
  int64_t now = lm_budget_now(b);
  int n = 0, hostile = 0, locked = 0;
  /* First roll back what a holder that died mid-step left (locking does):
   * until then its slots say what its half step wrote, not what stands. */
  if (lm_shm_step_begin(s) != 0)
    return 0;
  lm_shm_step_end(s);
  for (int i = 0; i < LM_LEASES; i++) {
    struct lm_lease_slot *slot = &s->leases[i];
    uint64_t w = atomic_load(&slot->state);
    unsigned st = (unsigned)(w & ST_MASK);
    uint32_t pid = (uint32_t)(w >> 8);
    if (st == LM_LEASE_FREE || pid == me)
      continue;
    if (st == LM_LEASE_ACTIVE && lm_shm_owner_alive(pid, slot->owner_start, 1))
      continue; /* asked outside the lock: a /proc read */
    if (!locked) {
      if (lm_shm_step_begin(s) != 0)
        return n;
      locked = 1;
    }
    if (refund_dead(s, slot, w, now, &hostile)) {
      atomic_fetch_add(&s->reclaimed, 1);
      LM_CRASH_POINT();
      n++;
    }
  }
  if (hostile) {
    lm_shm_step_commit(s);
    lm_shm_rebuild_reservations(s);
    atomic_fetch_add(&s->reconciles, 1);
  }
  if (locked)
    lm_shm_step_end(s);
  if (n)
    lm_shm_wake_waiters(s);
  return n;
}
