/* budget_shm.c — the budget engine on a POSIX shared-memory segment.
 *
 * Implements budget.h for every process of one machine. The hot path
 * (admit, charge, settle) is lock-free: C11 atomics on counters, and a
 * lease table whose slots are claimed with a CAS on a state word holding
 * the owner's pid. A process killed at any instruction leaves no lock held.
 *
 * Crash safety. A lease records its owner (pid + start time). A dead
 * owner's ACTIVE lease is refunded by the next admission that needs room
 * and by `llmmeter status` (reclaim). A lease caught dead in APPLYING (the
 * few instructions in which its counters change) is ambiguous: some of its
 * counter updates may have landed. Reservations are then recomputed from the
 * lease table (reconcile) behind a gate that every APPLYING step checks
 * (Dekker-style, seq_cst), so no live update is lost while the sums are
 * rebuilt. Spent money is never recomputed: it is history, not state.
 *
 * Windows. Each counter set carries the window it counts; the first process
 * to see a newer window swings it by CAS and subtracts what it read, so the
 * reset happens exactly once and no concurrent charge is lost.
 */
#include <errno.h>
#include <pthread.h>
#include <fnmatch.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "budget.h"
#include "budget_backend.h"
#include "money.h"
#include "window.h"

/* A shared-memory budget handle: the shared part, then the mapping. */
struct shm_budget {
  struct lm_budget base;
  struct lm_segment_map map;
};
#define SEG(b) (((struct shm_budget *)(b))->map.seg)
#define MAP(b) (((struct shm_budget *)(b))->map)

/* ---- small helpers ---------------------------------------------------- */

#define ST_MASK 0xffu
static inline uint64_t lease_word(uint32_t pid, unsigned st) {
  return ((uint64_t)pid << 8) | st;
}

static int64_t clock_now(struct lm_budget *b) { return lm_budget_now(b); }

static uint32_t fnv1a(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

static long futex(_Atomic uint32_t *addr, int op, uint32_t val,
                  const struct timespec *ts) {
  return syscall(SYS_futex, (uint32_t *)addr, op, val, ts, NULL, 0);
}

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
 * (registered once, on first use, never at load). */
static _Atomic uint32_t pid_cache;
static pthread_once_t pid_once = PTHREAD_ONCE_INIT;
static void pid_forget(void) { atomic_store(&pid_cache, 0); }
static void pid_register(void) { pthread_atfork(NULL, NULL, pid_forget); }
static uint32_t my_pid(void) {
  uint32_t p = atomic_load_explicit(&pid_cache, memory_order_relaxed);
  if (p)
    return p;
  pthread_once(&pid_once, pid_register);
  p = (uint32_t)getpid();
  atomic_store_explicit(&pid_cache, p, memory_order_relaxed);
  return p;
}

static _Atomic uint64_t self_start_cache; /* (pid << 40 | start) cache */
static uint64_t self_start(void) {
  uint32_t pid = my_pid();
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
static int owner_alive(uint32_t pid, uint64_t start, int check_start) {
  if (pid == 0)
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

/* ---- counters and windows --------------------------------------------- */

/* Zeroes what a window counts (not reservations: in-flight money) by
 * subtracting what was read, so a concurrent charge is never lost. */
static void zero_counters(struct lm_counters *c) {
  atomic_fetch_sub(&c->spent, atomic_load(&c->spent));
  atomic_fetch_sub(&c->requests, atomic_load(&c->requests));
  for (int k = 0; k < LM_TOK_KINDS; k++)
    atomic_fetch_sub(&c->tokens[k], atomic_load(&c->tokens[k]));
  atomic_fetch_sub(&c->denied, atomic_load(&c->denied));
  atomic_fetch_sub(&c->unmetered, atomic_load(&c->unmetered));
  atomic_fetch_sub(&c->unpriced, atomic_load(&c->unpriced));
}

static void roll(struct lm_counters *c, int64_t win) {
  int64_t w = atomic_load(&c->window);
  if (w >= win)
    return; /* current, or a process with a later clock already rolled */
  if (!atomic_compare_exchange_strong(&c->window, &w, win))
    return; /* someone else did it, exactly once */
  zero_counters(c);
}

static void touch(struct lm_counters *c, int64_t now) {
  int64_t z = 0;
  atomic_compare_exchange_strong(&c->first_activity, &z, now);
  atomic_store_explicit(&c->last_activity, now, memory_order_relaxed);
}

/* The soft limit in force: the one set, else 80 % of the hard limit
 * (exactly, in integers), else none (-1). */
static int64_t soft_limit(struct lm_segment *s) {
  int64_t soft = atomic_load(&s->limits.soft_pusd);
  int64_t hard = atomic_load(&s->limits.hard_pusd);
  if (soft < 0 && hard >= 0)
    soft = hard / 5 * 4 + (hard % 5) * 4 / 5;
  return soft;
}

static int window_kind(struct lm_segment *s) {
  uint32_t k = atomic_load(&s->limits.window_kind);
  return k < LM_WINDOW_KINDS ? (int)k : LM_WINDOW_NONE;
}

/* ---- rows --------------------------------------------------------------- */

static uint32_t row_find(struct lm_row *rows, const char *name, int create) {
  char key[LM_NAME_MAX] = {0};
  const char *src = (name && *name) ? name : "unknown";
  size_t kl = strnlen(src, LM_NAME_MAX - 1);
  memcpy(key, src, kl);
  uint32_t h = fnv1a(key);
  uint32_t me = my_pid();
  for (uint32_t i = 0; i < LM_ROWS; i++) {
    struct lm_row *r = &rows[(h + i) % LM_ROWS];
    for (int spins = 0;; spins++) {
      uint64_t w = atomic_load_explicit(&r->state, memory_order_acquire);
      unsigned st = (unsigned)(w & 3);
      if (st == LM_ROW_READY) {
        if (r->hash == h && strncmp(r->name, key, LM_NAME_MAX) == 0)
          return (uint32_t)(r - rows);
        break;
      }
      if (st == LM_ROW_CLAIMED) {
        /* Another process is writing this row's name: wait for it, but
         * never forever (it may have died; then the row stays unused). */
        if (spins > 2000 || !owner_alive((uint32_t)(w >> 2), 0, 0))
          break;
        sched_yield();
        continue;
      }
      if (!create)
        return LM_ROW_NONE;
      uint64_t expect = 0;
      if (!atomic_compare_exchange_strong(&r->state, &expect,
                                          ((uint64_t)me << 2) | LM_ROW_CLAIMED))
        continue; /* lost the race: look at this row again */
      r->hash = h;
      memcpy(r->name, key, LM_NAME_MAX);
      atomic_store_explicit(&r->state, ((uint64_t)me << 2) | LM_ROW_READY,
                            memory_order_release);
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
    if (atomic_load_explicit(&r->state, memory_order_acquire) !=
        LM_RULE_ACTIVE)
      continue;
    char pat[LM_NAME_MAX];
    memcpy(pat, r->pattern, LM_NAME_MAX);
    pat[LM_NAME_MAX - 1] = 0; /* never trust a string from shared memory */
    const char *subject =
        LM_RULE_TARGET(r->kind) == LM_RULE_AGENT ? agent : model;
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
  char model[LM_NAME_MAX], agent[LM_NAME_MAX];
};
static __thread struct admit_memo admit_memo
    __attribute__((tls_model("initial-exec")));

static void admit_rows(struct lm_budget *b, const char *model,
                       const char *agent, struct lm_lease *l) {
  struct lm_segment *s = SEG(b);
  struct admit_memo *m = &admit_memo;
  const char *ag = agent ? agent : ""; /* row_find maps "" to "unknown" */
  uint32_t gen = atomic_load_explicit(&s->rules_gen, memory_order_acquire);
  if (m->serial == b->serial && m->rules_gen == gen &&
      strcmp(m->model, model) == 0 && strcmp(m->agent, ag) == 0) {
    l->model_row = m->model_row;
    l->agent_row = m->agent_row;
    l->rule_mask = m->rule_mask;
    return;
  }
  l->model_row = row_find(s->models, model, 1);
  l->agent_row = row_find(s->agents, ag, 1);
  l->rule_mask = rules_match(s, model, agent);
  size_t ml = strlen(model), al = strlen(ag);
  if (ml >= LM_NAME_MAX || al >= LM_NAME_MAX) {
    m->serial = 0; /* truncated names: not worth a memo */
    return;
  }
  memcpy(m->model, model, ml + 1);
  memcpy(m->agent, ag, al + 1);
  m->model_row = l->model_row;
  m->agent_row = l->agent_row;
  m->rule_mask = l->rule_mask;
  m->rules_gen = gen;
  m->serial = b->serial;
}

/* ---- the gate (see reconcile) ----------------------------------------- */

/* Waits for a reconcile to open the gate. A reconcile takes microseconds:
 * a gate held by a dead process, by a pid that cannot exist, or for more
 * than two seconds (its pid reused by another process, or a hostile
 * segment) is forced open. *waited_ms accumulates across calls. */
static void wait_gate(struct lm_segment *s, uint32_t g, int64_t *waited_ms) {
  struct timespec ts = {0, 50 * 1000 * 1000};
  futex(&s->gate, FUTEX_WAIT, g, &ts);
  *waited_ms += 50;
  if (atomic_load(&s->gate) == g &&
      (g > (1u << 22) || *waited_ms > 2000 || !owner_alive(g, 0, 0))) {
    uint32_t expect = g;
    atomic_compare_exchange_strong(&s->gate, &expect, 0);
  }
}

/* Moves a slot from `from` to APPLYING, unless a reconcile is running.
 * Returns 0, or -1 if the slot is no longer in state `from`. */
static int enter_applying(struct lm_segment *s, struct lm_lease_slot *slot,
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
    wait_gate(s, g, &waited);
  }
}

static void leave_applying(struct lm_lease_slot *slot, uint64_t to) {
  atomic_store(&slot->state, to);
}

static void wake_waiters(struct lm_segment *s) {
  if (atomic_load_explicit(&s->waiters, memory_order_relaxed) == 0)
    return;
  atomic_fetch_add(&s->wake, 1);
  futex(&s->wake, FUTEX_WAKE, INT_MAX, NULL);
}

/* Rebuilds every reservation counter from the lease table. Caller holds the
 * segment lock. */
static void reconcile(struct lm_budget *b) {
  struct lm_segment *s = SEG(b);
  uint32_t me = my_pid();
  atomic_store(&s->gate, me);
  /* Let live APPLYING steps finish; new ones now see the gate and back
   * off. The reconciling thread itself applies nothing now, but other
   * threads of this process may. One still applying (a stopped process)
   * means the sums cannot be rebuilt safely: give up, totals untouched. */
  for (int i = 0; i < LM_LEASES; i++) {
    struct lm_lease_slot *slot = &s->leases[i];
    for (int spins = 0;; spins++) {
      uint64_t w = atomic_load(&slot->state);
      if ((w & ST_MASK) != LM_LEASE_APPLYING ||
          !owner_alive((uint32_t)(w >> 8), 0, 0))
        break;
      if (spins > 100000) {
        atomic_store(&s->gate, 0);
        futex(&s->gate, FUTEX_WAKE, INT_MAX, NULL);
        return;
      }
      sched_yield();
    }
  }
  static struct {
    int64_t money;
    uint64_t tokens, requests;
  } tot, models[LM_ROWS + 1], agents[LM_ROWS + 1], rules[LM_RULES];
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
    if (!owner_alive((uint32_t)(w >> 8), slot->owner_start,
                     st != LM_LEASE_CLAIMED)) {
      atomic_compare_exchange_strong(&slot->state, &w, 0);
      atomic_fetch_add(&s->reclaimed, 1);
      continue;
    }
    if (st != LM_LEASE_ACTIVE)
      continue; /* CLAIMED: nothing applied yet */
    int64_t money = slot->reserved_pusd > 0 ? slot->reserved_pusd : 0;
    uint64_t toks = slot->reserved_tokens;
    tot.money += money;
    tot.tokens += toks;
    tot.requests++;
    if (slot->model_row <= LM_ROW_OTHER) {
      models[slot->model_row].money += money;
      models[slot->model_row].requests++;
    }
    if (slot->agent_row <= LM_ROW_OTHER) {
      agents[slot->agent_row].money += money;
      agents[slot->agent_row].requests++;
    }
    for (int r = 0; r < LM_RULES; r++)
      if (slot->rule_mask & (1u << r))
        rules[r].money += money;
  }
  atomic_store(&s->total.reserved, tot.money);
  atomic_store(&s->total.reserved_tokens, tot.tokens);
  atomic_store(&s->total.reserved_requests, tot.requests);
  for (int i = 0; i <= LM_ROW_OTHER; i++) {
    atomic_store(&s->models[i].c.reserved, models[i].money);
    atomic_store(&s->models[i].c.reserved_requests, models[i].requests);
    atomic_store(&s->agents[i].c.reserved, agents[i].money);
    atomic_store(&s->agents[i].c.reserved_requests, agents[i].requests);
  }
  for (int i = 0; i < LM_RULES; i++)
    atomic_store(&s->rules[i].c.reserved, rules[i].money);
  atomic_fetch_add(&s->reconciles, 1);
  atomic_store(&s->gate, 0);
  futex(&s->gate, FUTEX_WAKE, INT_MAX, NULL);
}

/* ---- applying a lease's amounts to every counter set it touches -------- */

struct lm_amounts {
  int64_t spent, reserved;
  int64_t requests, reserved_requests;
  int64_t reserved_tokens;
  const struct lm_usage *tokens;
  uint64_t denied, unmetered, unpriced;
};

static void apply_counters(struct lm_counters *c, const struct lm_amounts *a) {
  if (a->spent)
    atomic_fetch_add(&c->spent, a->spent);
  if (a->reserved)
    atomic_fetch_add(&c->reserved, a->reserved);
  if (a->requests)
    atomic_fetch_add(&c->requests, (uint64_t)a->requests);
  if (a->reserved_requests)
    atomic_fetch_add(&c->reserved_requests, (uint64_t)a->reserved_requests);
  if (a->reserved_tokens)
    atomic_fetch_add(&c->reserved_tokens, (uint64_t)a->reserved_tokens);
  if (a->tokens) {
    const struct lm_usage *u = a->tokens;
    if (u->input)
      atomic_fetch_add(&c->tokens[LM_TOK_INPUT], u->input);
    if (u->cache_read)
      atomic_fetch_add(&c->tokens[LM_TOK_CACHE_READ], u->cache_read);
    if (u->cache_write)
      atomic_fetch_add(&c->tokens[LM_TOK_CACHE_WRITE], u->cache_write);
    if (u->output)
      atomic_fetch_add(&c->tokens[LM_TOK_OUTPUT], u->output);
    if (u->reasoning)
      atomic_fetch_add(&c->tokens[LM_TOK_REASONING], u->reasoning);
  }
  if (a->denied)
    atomic_fetch_add(&c->denied, a->denied);
  if (a->unmetered)
    atomic_fetch_add(&c->unmetered, a->unmetered);
  if (a->unpriced)
    atomic_fetch_add(&c->unpriced, a->unpriced);
}

/* Applies to the total, the lease's rows, and (money only) its rules. */
static void apply_lease(struct lm_segment *s, uint32_t model_row,
                        uint32_t agent_row, uint32_t rule_mask,
                        const struct lm_amounts *a) {
  apply_counters(&s->total, a);
  if (model_row <= LM_ROW_OTHER)
    apply_counters(&s->models[model_row].c, a);
  if (agent_row <= LM_ROW_OTHER)
    apply_counters(&s->agents[agent_row].c, a);
  if (rule_mask && (a->spent || a->reserved)) {
    struct lm_amounts money = {.spent = a->spent, .reserved = a->reserved};
    for (int r = 0; r < LM_RULES; r++)
      if ((rule_mask & (1u << r)) &&
          LM_RULE_MEASURE(s->rules[r].kind) == LM_RULE_SPEND)
        apply_counters(&s->rules[r].c, &money);
  }
}

/* ---- admission ---------------------------------------------------------- */

/* Reserves `est` on c against `limit` (-1: none). Optimistic: admitted while
 * spent + reserved (before us) is below the limit. Strict: admitted only if
 * spent + reserved + est fits. Returns 0 (reserved), -1 (over: spent alone
 * rules it out) or 1 (blocked only by other calls' reservations, which may
 * settle for less); *used and *spent say why. */
static int reserve_money(struct lm_counters *c, int64_t limit, int64_t est,
                         int strict, int64_t *used, int64_t *spent) {
  if (limit < 0) {
    if (est)
      atomic_fetch_add(&c->reserved, est);
    return 0;
  }
  if (!strict) {
    int64_t prev = atomic_fetch_add(&c->reserved, est);
    int64_t sp = atomic_load(&c->spent);
    int64_t u = lm_money_add(sp, prev);
    if (u < limit)
      return 0;
    atomic_fetch_sub(&c->reserved, est);
    *used = u;
    *spent = sp;
    return sp < limit ? 1 : -1;
  }
  int64_t r = atomic_load(&c->reserved);
  for (;;) {
    int64_t sp = atomic_load(&c->spent);
    int64_t u = lm_money_add(sp, r);
    if (lm_money_add(u, est) > limit) {
      *used = u;
      *spent = sp;
      return lm_money_add(sp, est) <= limit ? 1 : -1;
    }
    if (atomic_compare_exchange_weak(&c->reserved, &r, r + est))
      return 0;
  }
}

static int reserve_tokens(struct lm_counters *c, int64_t limit, uint64_t est,
                          int strict, int64_t *used, int64_t *spent) {
  if (limit < 0) {
    if (est)
      atomic_fetch_add(&c->reserved_tokens, est);
    return 0;
  }
  uint64_t settled =
      atomic_load(&c->tokens[LM_TOK_INPUT]) + atomic_load(&c->tokens[LM_TOK_OUTPUT]);
  *spent = (int64_t)settled;
  if (!strict) {
    uint64_t prev = atomic_fetch_add(&c->reserved_tokens, est);
    if (settled + prev < (uint64_t)limit)
      return 0;
    atomic_fetch_sub(&c->reserved_tokens, est);
    *used = (int64_t)(settled + prev);
    return settled < (uint64_t)limit ? 1 : -1;
  }
  uint64_t r = atomic_load(&c->reserved_tokens);
  for (;;) {
    if (settled + r + est > (uint64_t)limit) {
      *used = (int64_t)(settled + r);
      return settled + est <= (uint64_t)limit ? 1 : -1;
    }
    if (atomic_compare_exchange_weak(&c->reserved_tokens, &r, r + est))
      return 0;
  }
}

static int reserve_request(struct lm_counters *c, int64_t limit,
                           int64_t *used) {
  uint64_t r = atomic_load(&c->reserved_requests);
  for (;;) {
    uint64_t done = atomic_load(&c->requests);
    if (limit >= 0 && done + r + 1 > (uint64_t)limit) {
      *used = (int64_t)(done + r);
      return -1;
    }
    if (atomic_compare_exchange_weak(&c->reserved_requests, &r, r + 1))
      return 0;
  }
}

static int claim_slot(struct lm_segment *s, uint32_t me, uint32_t *idx) {
  /* Start where this process usually finds room, to spread contention. */
  uint32_t start = (me * 2654435761u) % LM_LEASES;
  for (uint32_t i = 0; i < LM_LEASES; i++) {
    uint32_t k = (start + i) % LM_LEASES;
    uint64_t expect = 0;
    if (atomic_load_explicit(&s->leases[k].state, memory_order_relaxed) != 0)
      continue;
    if (atomic_compare_exchange_strong(&s->leases[k].state, &expect,
                                       lease_word(me, LM_LEASE_CLAIMED))) {
      *idx = k;
      return 0;
    }
  }
  return -1;
}

static void fill_denial(struct lm_denial *why, enum lm_deny_kind kind,
                        const char *subject, int64_t limit, int64_t used,
                        int wk, int64_t now) {
  memset(why, 0, sizeof(*why));
  why->kind = kind;
  if (subject)
    snprintf(why->subject, sizeof(why->subject), "%s", subject);
  why->limit = limit;
  why->used = used;
  why->window = (enum lm_window_kind)wk;
  why->retry_after_s =
      wk == LM_WINDOW_NONE ? -1 : lm_window_next(wk, now) - now;
}

/* Tries to reserve everything the call needs; all or nothing. Returns 0,
 * -1 (refused) or 1 (refused only because of in-flight reservations). */
static int reserve_all(struct lm_budget *b, const struct lm_lease *l,
                       int64_t est, uint64_t est_tokens, int wk, int64_t now,
                       struct lm_denial *why) {
  struct lm_segment *s = SEG(b);
  int strict = atomic_load(&s->limits.mode) == LM_MODE_STRICT;
  int64_t used = 0, spent = 0;
  int dollars = (l->flags & LM_LEASEF_DOLLARS) != 0;
  int rc;

  if (reserve_request(&s->total, atomic_load(&s->limits.requests), &used)) {
    fill_denial(why, LM_DENY_REQUESTS, NULL,
                atomic_load(&s->limits.requests), used, wk, now);
    return -1; /* a request is a request: nothing to wait for */
  }
  rc = reserve_tokens(&s->total, atomic_load(&s->limits.tokens), est_tokens,
                      strict, &used, &spent);
  if (rc) {
    fill_denial(why, LM_DENY_TOKENS, NULL, atomic_load(&s->limits.tokens),
                used, wk, now);
    why->spent = spent;
    goto undo_request;
  }
  if (dollars) {
    int64_t hard = atomic_load(&s->limits.hard_pusd);
    rc = reserve_money(&s->total, hard, est, strict, &used, &spent);
    if (rc) {
      fill_denial(why, LM_DENY_HARD, NULL, hard, used, wk, now);
      why->spent = spent;
      goto undo_tokens;
    }
    uint32_t done = 0;
    for (int r = 0; r < LM_RULES; r++) {
      struct lm_rule *rule = &s->rules[r];
      if (!(l->rule_mask & (1u << r)) ||
          LM_RULE_MEASURE(rule->kind) != LM_RULE_SPEND)
        continue;
      int64_t lim = atomic_load(&rule->limit_pusd);
      rc = reserve_money(&rule->c, lim, est, strict, &used, &spent);
      if (rc) {
        char pat[LM_NAME_MAX];
        memcpy(pat, rule->pattern, LM_NAME_MAX);
        pat[LM_NAME_MAX - 1] = 0;
        fill_denial(why,
                    LM_RULE_TARGET(rule->kind) == LM_RULE_AGENT ? LM_DENY_AGENT
                                                                : LM_DENY_MODEL,
                    pat, lim, used, wk, now);
        why->spent = spent;
        for (int u = 0; u < r; u++)
          if (done & (1u << u))
            atomic_fetch_sub(&s->rules[u].c.reserved, est);
        atomic_fetch_sub(&s->total.reserved, est);
        goto undo_tokens;
      }
      done |= 1u << r;
    }
  }
  /* The rows only count; they never refuse. */
  struct lm_amounts row = {.reserved = dollars ? est : 0,
                           .reserved_requests = 1};
  if (l->model_row <= LM_ROW_OTHER)
    apply_counters(&s->models[l->model_row].c, &row);
  if (l->agent_row <= LM_ROW_OTHER)
    apply_counters(&s->agents[l->agent_row].c, &row);
  return 0;

undo_tokens:
  atomic_fetch_sub(&s->total.reserved_tokens, est_tokens);
undo_request:
  atomic_fetch_sub(&s->total.reserved_requests, 1);
  return rc;
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
  int64_t own[3] = {call ? call->max_call_pusd : -1,
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
    int k = m == LM_RULE_CALL_USD ? 0 : m == LM_RULE_CALL_INPUT ? 1
            : m == LM_RULE_CALL_OUTPUT ? 2 : -1;
    int64_t lim = atomic_load(&rule->limit_pusd);
    if (k < 0 || lim < 0 || (best[k].lim >= 0 && lim >= best[k].lim))
      continue;
    best[k].lim = lim;
    best[k].subject = rule->pattern;
  }
  int64_t val[3] = {dollars ? pusd : 0, (int64_t)in, (int64_t)out};
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

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- rate limits: token buckets as GCRA on one atomic word --------------
 *
 * A bucket of `per_min` units refills continuously and holds one minute's
 * worth. Its whole state is the theoretical arrival time (TAT, monotonic
 * ns) of the next unit: taking n units moves it n*60s/per_min later; the
 * take is allowed when TAT - now stays within one minute (the burst). A
 * caller may also take units up to `max_wait` ahead of time and sleep until
 * its turn, which paces a swarm exactly. One CAS per bucket: lock-free,
 * exact under contention, and a process that dies holds nothing. */

#define MINUTE_NS 60000000000LL

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t rate_inc(int64_t per_min, int64_t units) {
  return (int64_t)((__int128)units * MINUTE_NS / per_min);
}

/* Returns 0 (taken; *wait ns to sleep first, >= 0) or -1 (nothing taken:
 * the turn is *wait ns away, more than max_wait). per_min < 0: no limit. */
static int rate_take(_Atomic int64_t *tat, int64_t per_min, int64_t units,
                     int64_t now, int64_t max_wait, int64_t *wait) {
  *wait = 0;
  if (per_min < 0 || units <= 0)
    return 0;
  if (per_min == 0) {
    *wait = INT64_MAX;
    return -1;
  }
  int64_t inc = rate_inc(per_min, units);
  int64_t old = atomic_load(tat);
  for (;;) {
    int64_t base = old > now ? old : now;
    int64_t next = base + inc;
    int64_t w = next - MINUTE_NS - now;
    if (w > max_wait) {
      *wait = w;
      return -1;
    }
    if (atomic_compare_exchange_weak(tat, &old, next)) {
      *wait = w > 0 ? w : 0;
      return 0;
    }
  }
}

/* Gives units back (or, negative, takes more: a correction). */
static void rate_adjust(_Atomic int64_t *tat, int64_t per_min, int64_t units) {
  if (per_min <= 0 || units == 0)
    return;
  atomic_fetch_sub(tat, rate_inc(per_min, units));
}

/* Units used in the last minute, as the bucket sees it. */
static int64_t rate_used(_Atomic int64_t *tat, int64_t per_min, int64_t now) {
  if (per_min <= 0)
    return 0;
  int64_t ahead = atomic_load(tat) - now;
  if (ahead <= 0)
    return 0;
  return (int64_t)((__int128)ahead * per_min / MINUTE_NS);
}

/* What a bucket counts: requests, all tokens, input or output tokens. */
enum { RATE_REQ, RATE_TOK, RATE_IN, RATE_OUT };

struct rate_bucket {
  _Atomic int64_t *tat;
  int64_t per_min, units;
  int what;
  const char *name;
};

static int64_t rate_units(int what, uint64_t in, uint64_t out) {
  return what == RATE_REQ ? 1
         : what == RATE_TOK ? (int64_t)(in + out)
         : what == RATE_IN  ? (int64_t)in
                            : (int64_t)out;
}

static int rate_add(struct rate_bucket *bk, int n, _Atomic int64_t *tat,
                    int64_t per_min, int what, uint64_t in, uint64_t out,
                    const char *name) {
  if (per_min < 0)
    return n; /* no limit: the bucket is not drawn from (nor the clock read) */
  bk[n] = (struct rate_bucket){tat, per_min, rate_units(what, in, out), what,
                               name};
  return n + 1;
}

/* The buckets a call draws from: those of the budget's rpm/tpm/itpm/otpm
 * and of the rate rules matching it that have a limit. */
static int rate_buckets(struct lm_segment *s, uint32_t mask, uint64_t in,
                        uint64_t out, struct rate_bucket *bk) {
  int n = 0;
  n = rate_add(bk, n, &s->rpm_tat, atomic_load(&s->limits.rpm), RATE_REQ, in,
               out, "rpm");
  n = rate_add(bk, n, &s->tpm_tat, atomic_load(&s->limits.tpm), RATE_TOK, in,
               out, "tpm");
  n = rate_add(bk, n, &s->itpm_tat, atomic_load(&s->limits.itpm), RATE_IN, in,
               out, "input tpm");
  n = rate_add(bk, n, &s->otpm_tat, atomic_load(&s->limits.otpm), RATE_OUT,
               in, out, "output tpm");
  for (int r = 0; r < LM_RULES && mask; r++) {
    if (!(mask & (1u << r)))
      continue;
    struct lm_rule *rule = &s->rules[r];
    uint32_t m = LM_RULE_MEASURE(rule->kind);
    if (m != LM_RULE_RPM && m != LM_RULE_TPM)
      continue;
    n = rate_add(bk, n, &rule->tat, atomic_load(&rule->limit_pusd),
                 m == LM_RULE_RPM ? RATE_REQ : RATE_TOK, in, out,
                 rule->pattern);
  }
  return n;
}

static int shm_admit(struct lm_budget *b, const struct lm_call *call,
                     struct lm_lease *l, struct lm_denial *why) {
  struct lm_segment *s = SEG(b);
  int64_t now = clock_now(b);
  int wk = window_kind(s);
  int64_t win = lm_window_start(wk, now);
  uint32_t me = my_pid();
  const char *agent = call->agent ? call->agent : "";
  const char *model = (call->model && *call->model) ? call->model : "unknown";

  memset(l, 0, sizeof(*l));
  memset(why, 0, sizeof(*why));
  roll(&s->total, win);
  admit_rows(b, model, agent, l);
  roll(&s->models[l->model_row].c, win);
  roll(&s->agents[l->agent_row].c, win);
  for (int r = 0; r < LM_RULES; r++)
    if (l->rule_mask & (1u << r))
      roll(&s->rules[r].c, win);
  l->flags = call->zero_priced ? 0 : LM_LEASEF_DOLLARS;
  int64_t est = (l->flags & LM_LEASEF_DOLLARS) && call->est_pusd > 0
                    ? call->est_pusd
                    : 0;
  l->reserved_pusd = est;
  l->reserved_tokens = call->est_tokens;

  uint32_t idx;
  if (claim_slot(s, me, &idx) != 0) {
    lm_budget_reclaim(b);
    if (claim_slot(s, me, &idx) != 0) {
      fill_denial(why, LM_DENY_BUSY, NULL, LM_LEASES, LM_LEASES, LM_WINDOW_NONE,
                  now);
      why->retry_after_s = 1;
      goto denied;
    }
  }
  struct lm_lease_slot *slot = &s->leases[idx];
  uint64_t claimed = lease_word(me, LM_LEASE_CLAIMED);
  slot->owner_start = self_start();
  slot->reserved_pusd = est;
  slot->charged_pusd = 0;
  slot->reserved_tokens = call->est_tokens;
  slot->model_row = l->model_row;
  slot->agent_row = l->agent_row;
  slot->rule_mask = l->rule_mask;
  slot->flags = l->flags;
  slot->admitted_at = now;

  if (lm_budget_over_time(b, 0, why))
    goto refuse; /* past the deadline, or out of LLM time */
  if (over_caps(s, l->rule_mask, call, (l->flags & LM_LEASEF_DOLLARS) != 0,
                est, call->est_input_tokens, call->est_output_tokens, why))
    goto refuse; /* a cap on the call itself: nothing to wait for */

  /* Rates: take our turn in every bucket, or none; then wait for it. */
  struct rate_bucket bk[4 + LM_RULES];
  int nb = rate_buckets(s, l->rule_mask, call->est_input_tokens,
                        call->est_output_tokens, bk);
  int64_t now_ns = nb ? mono_ns() : 0, turn = 0;
  for (int i = 0; i < nb; i++) {
    int64_t w;
    if (rate_take(bk[i].tat, bk[i].per_min, bk[i].units, now_ns,
                  call->wait_ms * 1000000, &w) != 0) {
      for (int k = 0; k < i; k++)
        rate_adjust(bk[k].tat, bk[k].per_min, bk[k].units);
      memset(why, 0, sizeof(*why));
      why->kind = LM_DENY_RATE;
      /* a rule's pattern lives in shared memory: copy it bounded */
      memcpy(why->subject, bk[i].name, strnlen(bk[i].name, LM_NAME_MAX - 1));
      why->limit = bk[i].per_min;
      why->used = rate_used(bk[i].tat, bk[i].per_min, now_ns);
      why->retry_after_s = w == INT64_MAX ? -1 : (w + 999999999) / 1000000000;
      goto refuse;
    }
    if (w > turn)
      turn = w;
  }
  l->rate_in = call->est_input_tokens;
  l->rate_out = call->est_output_tokens;
  if (turn > 0) { /* paced: sleep until our turn (computed, not polled) */
    struct timespec ts = {turn / 1000000000, turn % 1000000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
      ;
    now = clock_now(b);
  }

  /* Waiting (bounded by call->wait_ms) happens only while other calls'
   * reservations, not spending, stand in the way; every settlement bumps
   * the futex word `wake`, and we count ourselves in `waiters` before
   * reading it so no wake-up can slip between our check and our sleep. */
  int64_t t0 = 0, waited = 0;
  bool waiting = false;
  for (int reclaimed_once = 0;;) {
    uint32_t w = atomic_load(&s->wake);
    if (enter_applying(s, slot, claimed) != 0)
      break; /* cannot happen while we live; treat as denial */
    int rc = reserve_all(b, l, est, call->est_tokens, wk, now, why);
    if (rc == 0) {
      uint64_t active = lease_word(me, LM_LEASE_ACTIVE);
      leave_applying(slot, active);
      if (waiting)
        atomic_fetch_sub(&s->waiters, 1);
      l->slot = idx;
      l->state_word = active;
      touch(&s->total, now);
      return 0;
    }
    leave_applying(slot, claimed);
    /* Dead processes may hold reservations: refund them once and retry. */
    if (!reclaimed_once && why->kind != LM_DENY_REQUESTS) {
      reclaimed_once = 1;
      if (lm_budget_reclaim(b) > 0)
        continue;
    }
    if (rc < 0 || call->wait_ms <= 0)
      break;
    if (!waiting) {
      waiting = true;
      t0 = mono_ms();
      atomic_fetch_add(&s->waiters, 1);
      continue; /* check again now that settlements will wake us */
    }
    waited = mono_ms() - t0;
    int64_t left = call->wait_ms - waited;
    if (left <= 0)
      break;
    /* Sleep until a settlement, at most a second at a time so leases of
     * processes that died meanwhile get reclaimed. */
    int64_t slice = left < 1000 ? left : 1000;
    struct timespec ts = {slice / 1000, (slice % 1000) * 1000000};
    futex(&s->wake, FUTEX_WAIT, w, &ts);
    if (slice == 1000 || mono_ms() - t0 >= 1000)
      reclaimed_once = 0;
    now = clock_now(b);
  }
  if (waiting) {
    atomic_fetch_sub(&s->waiters, 1);
    why->waited_ms = mono_ms() - t0;
  }
  for (int i = 0; i < nb; i++) /* refused after all: give our turns back */
    rate_adjust(bk[i].tat, bk[i].per_min, bk[i].units);
refuse:
  atomic_store(&slot->state, 0);
denied:;
  struct lm_amounts d = {.denied = 1};
  apply_lease(s, l->model_row, l->agent_row, 0, &d);
  memset(l, 0, sizeof(*l));
  l->slot = UINT32_MAX;
  return -1;
}

/* ---- charge / settle / release ---------------------------------------- */

static void shm_charge(struct lm_budget *b, struct lm_lease *l,
                       const struct lm_usage *delta, int64_t pusd) {
  struct lm_segment *s = SEG(b);
  if (l->slot >= LM_LEASES)
    return;
  struct lm_lease_slot *slot = &s->leases[l->slot];
  int64_t now = clock_now(b);
  int wk = window_kind(s);
  int64_t win = lm_window_start(wk, now);
  roll(&s->total, win);
  roll(&s->models[l->model_row].c, win);
  roll(&s->agents[l->agent_row].c, win);
  /* pusd < 0 is a refund: a usage snapshot that went down (Gemini). */
  if (pusd < 0 && -pusd > l->charged_pusd)
    pusd = -l->charged_pusd; /* never below nothing charged */
  int lost = enter_applying(s, slot, l->state_word) != 0;
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
  uint64_t ttake = lost || t <= 0 ? 0 : ((uint64_t)t < trem ? (uint64_t)t : trem);
  l->charged_pusd = lm_money_add(l->charged_pusd, pusd);
  l->charged_tokens += (uint64_t)t;
  if (!lost) {
    slot->charged_pusd = l->charged_pusd;
    slot->reserved_pusd -= take;
    slot->reserved_tokens -= ttake;
  }
  for (int r = 0; r < LM_RULES; r++)
    if (l->rule_mask & (1u << r))
      roll(&s->rules[r].c, win);
  struct lm_amounts a = {.spent = pusd,
                         .reserved = -take,
                         .reserved_tokens = -(int64_t)ttake,
                         .tokens = delta};
  apply_lease(s, l->model_row, l->agent_row, l->rule_mask, &a);
  touch(&s->total, now);
  if (!lost)
    leave_applying(slot, l->state_word);
}

static void finish(struct lm_budget *b, struct lm_lease *l, unsigned flags,
                   int count_request) {
  struct lm_segment *s = SEG(b);
  if (l->slot >= LM_LEASES)
    return;
  struct lm_lease_slot *slot = &s->leases[l->slot];
  int lost = enter_applying(s, slot, l->state_word) != 0;
  if (!lost) {
    int64_t rem = slot->reserved_pusd > 0 ? slot->reserved_pusd : 0;
    struct lm_amounts a = {
        .reserved = -rem,
        .reserved_tokens = -(int64_t)slot->reserved_tokens,
        .reserved_requests = -1,
        .requests = count_request,
        .unmetered = (flags & LM_SETTLE_UNMETERED) ? 1 : 0,
        .unpriced = (flags & LM_SETTLE_UNPRICED) ? 1 : 0,
    };
    apply_lease(s, l->model_row, l->agent_row, l->rule_mask, &a);
    leave_applying(slot, 0);
  } else if (count_request) {
    /* A reclaimer refunded us (it wrongly thought us dead); still count. */
    struct lm_amounts a = {.requests = 1};
    apply_lease(s, l->model_row, l->agent_row, 0, &a);
  }
  if (flags & LM_SETTLE_UNPRICED && l->model_row <= LM_ROW_OTHER)
    __atomic_fetch_or(&s->models[l->model_row].flags, LM_ROWF_UNPRICED,
                      __ATOMIC_RELAXED);
  l->slot = UINT32_MAX;
  wake_waiters(s);
}

static void shm_settle(struct lm_budget *b, struct lm_lease *l,
                       unsigned flags) {
  finish(b, l, flags, 1);
}

static void shm_release(struct lm_budget *b, struct lm_lease *l) {
  /* A call that was charged something did happen: it counts. */
  finish(b, l, 0, l->charged_pusd > 0 || l->charged_tokens > 0);
}

/* ---- reclaim ------------------------------------------------------------ */

static int shm_reclaim(struct lm_budget *b) {
  struct lm_segment *s = SEG(b);
  uint32_t me = my_pid();
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
    if (owner_alive(pid, slot->owner_start, st == LM_LEASE_ACTIVE))
      continue;
    if (st == LM_LEASE_CLAIMED) {
      if (atomic_compare_exchange_strong(&slot->state, &w, 0))
        n++;
    } else if (st == LM_LEASE_ACTIVE) {
      /* Take the dead lease over, then undo what it still reserves. */
      if (enter_applying(s, slot, w) != 0)
        continue;
      int64_t rem = slot->reserved_pusd > 0 ? slot->reserved_pusd : 0;
      uint32_t mrow = slot->model_row <= LM_ROW_OTHER ? slot->model_row
                                                      : LM_ROW_NONE;
      uint32_t arow = slot->agent_row <= LM_ROW_OTHER ? slot->agent_row
                                                      : LM_ROW_NONE;
      struct lm_amounts a = {.reserved = -rem,
                             .reserved_tokens = -(int64_t)slot->reserved_tokens,
                             .reserved_requests = -1,
                             .requests = slot->charged_pusd > 0 ? 1 : 0};
      apply_lease(s, mrow, arow, slot->rule_mask, &a);
      leave_applying(slot, 0);
      atomic_fetch_add(&s->reclaimed, 1);
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
    wake_waiters(s);
  return n;
}

/* ---- snapshot, configuration, rules, reset ---------------------------- */

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
    if (i == LM_ROW_OTHER && o->c.requests == 0 && o->c.reserved_requests == 0 &&
        o->c.denied == 0 && o->c.spent == 0)
      continue;
    memcpy(o->name, r->name, LM_NAME_MAX);
    o->name[LM_NAME_MAX - 1] = 0;
    o->flags = r->flags;
    n++;
  }
  return n;
}

static int shm_snapshot(struct lm_budget *b, struct lm_snapshot *o) {
  struct lm_segment *s = SEG(b);
  memset(o, 0, sizeof(*o));
  int64_t now = clock_now(b);
  int wk = window_kind(s);
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
  int64_t nn = mono_ns();
  o->rpm_used = rate_used(&s->rpm_tat, o->rpm, nn);
  o->tpm_used = rate_used(&s->tpm_tat, o->tpm, nn);
  o->itpm_used = rate_used(&s->itpm_tat, o->itpm, nn);
  o->otpm_used = rate_used(&s->otpm_tat, o->otpm, nn);
  o->soft_crossed = atomic_load(&s->soft_window) == win + 1;
  if (lm_segment_lock(s) == 0) {
    memcpy(o->on_soft, s->on_soft, sizeof(o->on_soft));
    memcpy(o->downgrade, s->downgrade, sizeof(o->downgrade));
    lm_segment_unlock(s);
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
      sr->rate_used = rate_used((_Atomic int64_t *)&r->tat, sr->limit_pusd,
                                mono_ns());
    snap_counters(&r->c, win, &sr->c);
  }
  for (int i = 0; i < LM_LEASES; i++)
    if ((atomic_load(&s->leases[i].state) & ST_MASK) != LM_LEASE_FREE)
      o->active_leases++;
  o->waiters = atomic_load(&s->waiters);
  o->reclaimed = atomic_load(&s->reclaimed);
  o->reconciles = atomic_load(&s->reconciles);
  return 0;
}

static int shm_configure(struct lm_budget *b, const struct lm_limit_config *c) {
  struct lm_segment *s = SEG(b);
  if (c->hard_pusd != LM_KEEP)
    atomic_store(&s->limits.hard_pusd, c->hard_pusd < 0 ? -1 : c->hard_pusd);
  if (c->soft_pusd != LM_KEEP)
    atomic_store(&s->limits.soft_pusd, c->soft_pusd < 0 ? -1 : c->soft_pusd);
  if (c->tokens != LM_KEEP)
    atomic_store(&s->limits.tokens, c->tokens < 0 ? -1 : c->tokens);
  if (c->requests != LM_KEEP)
    atomic_store(&s->limits.requests, c->requests < 0 ? -1 : c->requests);
  if (c->max_call_pusd != LM_KEEP)
    atomic_store(&s->limits.max_call_pusd,
                 c->max_call_pusd < 0 ? -1 : c->max_call_pusd);
  if (c->max_call_input_tokens != LM_KEEP)
    atomic_store(&s->limits.max_call_input_tokens,
                 c->max_call_input_tokens < 0 ? -1 : c->max_call_input_tokens);
  if (c->max_call_output_tokens != LM_KEEP)
    atomic_store(&s->limits.max_call_output_tokens,
                 c->max_call_output_tokens < 0 ? -1
                                               : c->max_call_output_tokens);
  const int64_t *vals[6] = {&c->rpm, &c->tpm, &c->itpm, &c->otpm,
                            &c->deadline, &c->max_llm_ns};
  _Atomic int64_t *dst[6] = {&s->limits.rpm, &s->limits.tpm,
                             &s->limits.itpm, &s->limits.otpm,
                             &s->limits.deadline, &s->limits.max_llm_ns};
  for (int i = 0; i < 6; i++)
    if (*vals[i] != LM_KEEP)
      atomic_store(dst[i], *vals[i] < 0 ? -1 : *vals[i]);
  if (c->on_soft || c->downgrade) {
    if (lm_segment_lock(s) == 0) {
      if (c->on_soft)
        snprintf(s->on_soft, sizeof(s->on_soft), "%s", c->on_soft);
      if (c->downgrade)
        snprintf(s->downgrade, sizeof(s->downgrade), "%s", c->downgrade);
      lm_segment_unlock(s);
    }
  }
  if (c->window >= 0 && c->window < LM_WINDOW_KINDS)
    atomic_store(&s->limits.window_kind, (uint32_t)c->window);
  if (c->mode >= 0 && c->mode <= LM_MODE_STRICT)
    atomic_store(&s->limits.mode, (uint32_t)c->mode);
  wake_waiters(s); /* a raised limit may let waiters in */
  return 0;
}

static int shm_add_rule(struct lm_budget *b, int kind, const char *pattern,
                        int64_t limit, char *err, size_t errlen) {
  struct lm_segment *s = SEG(b);
  if (!pattern || !*pattern || strlen(pattern) >= LM_NAME_MAX ||
      (LM_RULE_TARGET(kind) != LM_RULE_MODEL &&
       LM_RULE_TARGET(kind) != LM_RULE_AGENT) ||
      LM_RULE_MEASURE(kind) > LM_RULE_TPM) {
    snprintf(err, errlen, "invalid limit pattern '%s'", pattern ? pattern : "");
    return -1;
  }
  if (lm_segment_lock(s) != 0) {
    snprintf(err, errlen, "cannot lock budget '%s'", b->name);
    return -1;
  }
  int64_t now = clock_now(b);
  int64_t win = lm_window_start(window_kind(s), now);
  int rc = 0, free_slot = -1;
  for (int i = 0; i < LM_RULES; i++) {
    struct lm_rule *r = &s->rules[i];
    uint32_t st = atomic_load(&r->state);
    if (st == LM_RULE_ACTIVE && (int)r->kind == kind &&
        strncmp(r->pattern, pattern, LM_NAME_MAX) == 0) {
      if (limit < 0)
        atomic_store(&r->state, LM_RULE_RETIRED);
      else
        atomic_store(&r->limit_pusd, limit);
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
  /* A rule added live starts from what its rows already spent. */
  struct lm_row *rows =
      LM_RULE_TARGET(kind) == LM_RULE_AGENT ? s->agents : s->models;
  int64_t spent = 0;
  for (int i = 0; i < LM_ROWS && LM_RULE_MEASURE(kind) == LM_RULE_SPEND;
       i++) {
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
  atomic_store_explicit(&r->state, LM_RULE_ACTIVE, memory_order_release);
done:
  atomic_fetch_add(&s->rules_gen, 1);
  lm_segment_unlock(s);
  return rc;
}

static int shm_reset(struct lm_budget *b) {
  struct lm_segment *s = SEG(b);
  if (lm_segment_lock(s) != 0)
    return -1;
  zero_counters(&s->total);
  for (int i = 0; i <= LM_ROW_OTHER; i++) {
    zero_counters(&s->models[i].c);
    zero_counters(&s->agents[i].c);
    __atomic_store_n(&s->models[i].flags, 0, __ATOMIC_RELAXED);
  }
  for (int i = 0; i < LM_RULES; i++)
    zero_counters(&s->rules[i].c);
  atomic_store(&s->reset_at, clock_now(b));
  atomic_store(&s->soft_window, 0);
  atomic_store(&s->llm_ns, 0);
  lm_segment_unlock(s);
  wake_waiters(s);
  return 0;
}

static void shm_close(struct lm_budget *b) {
  lm_segment_detach(&MAP(b));
  free(b);
}

static bool shm_over_hard(struct lm_budget *b, const struct lm_lease *l) {
  struct lm_segment *s = SEG(b);
  if (!(l->flags & LM_LEASEF_DOLLARS))
    return false;
  int64_t hard = atomic_load(&s->limits.hard_pusd);
  if (hard >= 0 && atomic_load(&s->total.spent) >= hard)
    return true;
  for (int r = 0; r < LM_RULES; r++) {
    if (!(l->rule_mask & (1u << r)))
      continue;
    int64_t lim = atomic_load(&s->rules[r].limit_pusd);
    if (atomic_load(&s->rules[r].state) == LM_RULE_ACTIVE && lim >= 0 &&
        atomic_load(&s->rules[r].c.spent) >= lim)
      return true;
  }
  return false;
}

static bool shm_over_call_caps(struct lm_budget *b, const struct lm_lease *l,
                               const struct lm_call *call,
                               const struct lm_usage *total, int64_t cost,
                               struct lm_denial *why) {
  return over_caps(SEG(b), l->rule_mask, call,
                   (l->flags & LM_LEASEF_DOLLARS) != 0, cost,
                   total ? total->input : 0, total ? total->output : 0, why);
}

static void shm_add_llm_time(struct lm_budget *b, int64_t ns) {
  if (ns > 0)
    atomic_fetch_add(&SEG(b)->llm_ns, ns);
}

static bool shm_over_time(struct lm_budget *b, int64_t inflight_ns,
                          struct lm_denial *why) {
  struct lm_segment *s = SEG(b);
  int64_t deadline = atomic_load(&s->limits.deadline);
  int64_t max_ns = atomic_load(&s->limits.max_llm_ns);
  if (deadline >= 0 && clock_now(b) >= deadline) {
    memset(why, 0, sizeof(*why));
    why->kind = LM_DENY_DEADLINE;
    why->limit = deadline;
    why->retry_after_s = -1;
    return true;
  }
  if (max_ns >= 0) {
    int64_t used = atomic_load(&s->llm_ns) + (inflight_ns > 0 ? inflight_ns : 0);
    if (used >= max_ns) {
      memset(why, 0, sizeof(*why));
      why->kind = LM_DENY_LLM_TIME;
      why->limit = max_ns;
      why->used = used;
      why->retry_after_s = -1;
      return true;
    }
  }
  return false;
}

static void shm_rate_correct(struct lm_budget *b, const struct lm_lease *l,
                             const struct lm_usage *actual) {
  struct lm_segment *s = SEG(b);
  struct rate_bucket bk[4 + LM_RULES];
  int n = rate_buckets(s, l->rule_mask, l->rate_in, l->rate_out, bk);
  for (int i = 0; i < n; i++) /* a request is a request: rpm stays */
    if (bk[i].what != RATE_REQ)
      rate_adjust(bk[i].tat, bk[i].per_min,
                  bk[i].units - rate_units(bk[i].what, actual->input,
                                           actual->output));
}

static bool shm_soft_crossed(struct lm_budget *b, char *cmd, size_t cmdlen) {
  struct lm_segment *s = SEG(b);
  int64_t soft = soft_limit(s);
  if (soft < 0 || atomic_load(&s->total.spent) < soft)
    return false;
  int64_t mark = lm_window_start(window_kind(s), clock_now(b)) + 1;
  int64_t old = atomic_load(&s->soft_window);
  if (old == mark || !atomic_compare_exchange_strong(&s->soft_window, &old,
                                                     mark))
    return false; /* already recorded in this window */
  if (cmd && cmdlen) {
    cmd[0] = 0;
    if (lm_segment_lock(s) == 0) {
      memcpy(cmd, s->on_soft, cmdlen < sizeof(s->on_soft) ? cmdlen
                                                          : sizeof(s->on_soft));
      lm_segment_unlock(s);
    }
    cmd[cmdlen - 1] = 0;
  }
  return true;
}

static bool shm_downgrade(struct lm_budget *b, const char *model, char *out,
                          size_t outlen) {
  struct lm_segment *s = SEG(b);
  if (!s->downgrade[0])
    return false;
  int64_t soft = soft_limit(s);
  if (soft < 0 || atomic_load(&s->total.spent) < soft)
    return false;
  if (!model) /* the question was only: could a rule apply now? */
    return true;
  if (!*model)
    return false;
  char map[sizeof(s->downgrade)];
  if (lm_segment_lock(s) != 0)
    return false;
  memcpy(map, s->downgrade, sizeof(map));
  lm_segment_unlock(s);
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

static const struct lm_budget_ops shm_ops = {
    .admit = shm_admit,
    .charge = shm_charge,
    .settle = shm_settle,
    .release = shm_release,
    .snapshot = shm_snapshot,
    .reclaim = shm_reclaim,
    .configure = shm_configure,
    .add_rule = shm_add_rule,
    .reset = shm_reset,
    .close = shm_close,
    .over_hard = shm_over_hard,
    .over_call_caps = shm_over_call_caps,
    .add_llm_time = shm_add_llm_time,
    .over_time = shm_over_time,
    .rate_correct = shm_rate_correct,
    .soft_crossed = shm_soft_crossed,
    .downgrade = shm_downgrade,
};

/* ---- opening ------------------------------------------------------------ */

static struct shm_budget *shm_new(const char *name, char *err, size_t errlen) {
  struct shm_budget *b = calloc(1, sizeof(*b));
  if (!b) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  lm_budget_init_base(&b->base, &shm_ops, name);
  return b;
}

static int shm_open_budget(const char *name, bool create,
                           struct lm_budget **out, char *err, size_t errlen) {
  struct shm_budget *b = shm_new(name, err, errlen);
  if (!b)
    return LM_SEG_ESYS;
  const char *nm = b->base.name;
  int rc = lm_segment_attach(nm, &b->map, err, errlen);
  if (rc == LM_SEG_ENOENT && create) {
    rc = lm_segment_create(nm, 0, &b->map, err, errlen);
    if (rc == LM_SEG_EEXIST) /* lost a creation race: use the winner's */
      rc = lm_segment_attach(nm, &b->map, err, errlen);
  }
  if (rc != LM_SEG_OK) {
    free(b);
    return rc;
  }
  *out = &b->base;
  return 0;
}

static int shm_create_budget(const char *name, bool force,
                             struct lm_budget **out, char *err,
                             size_t errlen) {
  struct shm_budget *b = shm_new(name, err, errlen);
  if (!b)
    return LM_SEG_ESYS;
  int rc = lm_segment_create(b->base.name, force, &b->map, err, errlen);
  if (rc != LM_SEG_OK) {
    free(b);
    return rc;
  }
  *out = &b->base;
  return 0;
}

const struct lm_budget_backend lm_budget_backend_shm = {
    .kind = "shm", .open = shm_open_budget, .create = shm_create_budget};
