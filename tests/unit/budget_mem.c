/* budget_mem.c — the budget engine a second time: in memory, one mutex.
 *
 * Why it exists: budget.h is the seam between the meter and where budgets
 * live, and a seam is proven complete only by a second implementation that
 * passes the same tests. This one is written from the interface's
 * documented semantics (budget_shm.c was read only where the header is
 * silent), shares no code with the shared-memory backend, and
 * test_budget.c runs every test on both.
 *
 * How it is built: simplicity over speed. All budgets live in one arena, an
 * anonymous MAP_SHARED mapping made on first use, so processes fork()ed
 * after that share them, and a registry of named slots in the arena lets
 * lm_budget_open of a name find the same budget anywhere in that process
 * tree (a process that is not a descendant of the first user sees an arena
 * of its own). One robust, process-shared mutex guards all of it; one
 * condition variable wakes the admissions waiting for in-flight calls to
 * settle.
 *
 * Crash safety: a process SIGKILLed while it holds the mutex must not leave
 * half an update behind (the kill -9 storm test checks exact totals). Every
 * write to a live budget goes through jset(), which first records the old
 * bytes in an undo journal; unlocking empties the journal, and the next
 * locker that gets EOWNERDEAD rolls the dead holder's writes back before it
 * marks the mutex consistent. Each lease records its owner's pid and start
 * time, so reclaim refunds the leases of dead processes. Never prints.
 */
#include "budget_mem.h"

#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "money.h"
#include "window.h"

#define MEM_BUDGETS 16 /* budgets that can exist at once */
#define JOURNAL_ENTRIES 4096
#define JOURNAL_BYTES (128 * 1024)
#define MINUTE_NS 60000000000LL
#define NO_LEASE UINT32_MAX

/* ---- the arena ----------------------------------------------------------- */

/* What a window counts: zeroed as one block when the window rolls over. */
struct mem_window_counts {
  int64_t spent;
  uint64_t requests;
  uint64_t tokens[LM_TOK_KINDS];
  uint64_t denied, unmetered, unpriced;
};

struct mem_counters {
  int64_t window; /* start of the window that `w` counts */
  struct mem_window_counts w;
  int64_t reserved; /* in-flight money: never reset */
  uint64_t reserved_requests, reserved_tokens;
  int64_t first_activity, last_activity;
};

struct mem_row {
  char name[LM_NAME_MAX];
  char provider[LM_PROVIDER_MAX]; /* model rows: per model and provider */
  uint64_t flags;                 /* LM_ROWF_* */
  struct mem_counters c;
};

enum { RULE_UNUSED = 0, RULE_ACTIVE, RULE_RETIRED };

/* Retired rules keep their slot, so a lease that still carries a rule's
 * bit never touches a newer rule. */
struct mem_rule {
  int64_t state;
  int64_t kind;  /* lm_rule_kind | lm_rule_measure */
  int64_t limit; /* pico-USD, tokens, or units per minute, by measure */
  char pattern[LM_NAME_MAX];
  struct mem_counters c; /* spend rules: the money of every match */
  int64_t tat;           /* rate rules: the bucket (see rate_take) */
};

struct mem_lease {
  int64_t id; /* 0: free; else the admission's number, the lease's word */
  int64_t owner_pid, owner_start;
  int64_t reserved_pusd; /* what is left of the estimate */
  int64_t charged_pusd;
  uint64_t reserved_tokens; /* what is left of the token estimate */
  int64_t model_row, agent_row, rule_mask, dollars;
};

struct mem_limits {
  int64_t hard_pusd, soft_pusd, tokens, requests;
  int64_t max_call_pusd, max_call_input_tokens, max_call_output_tokens;
  int64_t rpm, tpm, itpm, otpm, deadline, max_llm_ns;
  int64_t window, mode;
};

enum { BUCKET_RPM, BUCKET_TPM, BUCKET_ITPM, BUCKET_OTPM, BUCKETS };

struct mem_state {
  int64_t in_use;
  int64_t generation; /* tells the budget a handle opened from a reuse */
  char name[LM_BUDGET_NAME_MAX];
  int64_t created_at, reset_at;
  struct mem_limits lim;
  char on_soft[256];
  char downgrade[512];
  int64_t tat[BUCKETS];
  int64_t llm_ns;
  int64_t soft_window; /* 1 + start of the window the soft limit was
                          crossed in; 0: not yet */
  int64_t waiters, reclaimed, last_lease_id;
  int64_t unmetered_denied, unmetered_warned; /* the leak guard's counts */
  struct mem_counters total;
  int64_t n_models, n_agents; /* named rows; [LM_ROW_OTHER] holds the rest */
  struct mem_row models[LM_ROWS + 1];
  struct mem_row agents[LM_ROWS + 1];
  struct mem_rule rules[LM_RULES];
  struct mem_lease leases[LM_LEASES];
};

/* The undo journal of the current lock holder: entry i says that `len`
 * bytes at arena offset `off` were old[at..at+len) before it wrote them. */
struct mem_undo {
  uint32_t off, len, at;
};
struct mem_journal {
  uint32_t n, used;
  struct mem_undo e[JOURNAL_ENTRIES];
  unsigned char old[JOURNAL_BYTES];
};

struct mem_arena {
  pthread_mutex_t lock;   /* robust, process-shared: guards everything */
  pthread_cond_t settled; /* broadcast whenever money or a slot frees up */
  int64_t generations;
  struct mem_journal journal;
  struct mem_state budgets[MEM_BUDGETS];
};

/* A handle: which slot, and which budget in it. */
struct mem_budget {
  struct lm_budget base;
  int slot;
  int64_t generation;
};

static struct mem_arena *arena;
static pthread_once_t arena_once = PTHREAD_ONCE_INIT;

static void arena_create(void) {
  void *p = mmap(NULL, sizeof(struct mem_arena), PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return;
  struct mem_arena *a = p; /* zeroed by the kernel */
  pthread_mutexattr_t ma;
  pthread_condattr_t ca;
  int bad = pthread_mutexattr_init(&ma) ||
            pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED) ||
            pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST) ||
            pthread_mutex_init(&a->lock, &ma);
  pthread_mutexattr_destroy(&ma);
  bad = bad || pthread_condattr_init(&ca) ||
        pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED) ||
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) ||
        pthread_cond_init(&a->settled, &ca);
  pthread_condattr_destroy(&ca);
  if (bad) {
    munmap(p, sizeof(struct mem_arena));
    return;
  }
  arena = a;
}

static struct mem_arena *arena_get(void) {
  pthread_once(&arena_once, arena_create);
  return arena;
}

/* ---- the journal and the lock -------------------------------------------- */

/* Writes len bytes at dst (inside the arena), journaling the old ones
 * first. The fences keep the compiler from moving the write ahead of the
 * journal entry that undoes it: a kill lands between two instructions. */
static void jset(void *dst, const void *src, size_t len) {
  struct mem_journal *j = &arena->journal;
  size_t off = (size_t)((char *)dst - (char *)arena);
  if (off + len > sizeof(*arena) || j->n >= JOURNAL_ENTRIES ||
      len > JOURNAL_BYTES - j->used)
    abort(); /* a bound in this file is wrong: fail loudly */
  memcpy(j->old + j->used, dst, len);
  j->e[j->n] = (struct mem_undo){(uint32_t)off, (uint32_t)len, j->used};
  j->used += (uint32_t)len;
  atomic_signal_fence(memory_order_seq_cst);
  j->n++;
  atomic_signal_fence(memory_order_seq_cst);
  memcpy(dst, src, len);
}

#define JSET(field, value)             \
  do {                                 \
    __typeof__(field) jv_ = (value);   \
    jset(&(field), &jv_, sizeof(jv_)); \
  } while (0)
#define JADD(field, delta) JSET(field, (field) + (delta))

/* Undoes what a dead holder wrote, newest first. Idempotent: a holder that
 * dies while undoing leaves the journal whole for the next one. */
static void journal_undo(struct mem_arena *a) {
  struct mem_journal *j = &a->journal;
  for (uint32_t i = j->n < JOURNAL_ENTRIES ? j->n : JOURNAL_ENTRIES; i-- > 0;) {
    const struct mem_undo *u = &j->e[i];
    if (u->off + (size_t)u->len <= sizeof(*a) &&
        u->at + (size_t)u->len <= JOURNAL_BYTES)
      memcpy((char *)a + u->off, j->old + u->at, u->len);
  }
  atomic_signal_fence(memory_order_seq_cst);
  j->n = 0;
  j->used = 0;
}

/* Everything written so far stands (before unlocking or waiting). */
static void journal_commit(struct mem_arena *a) {
  a->journal.n = 0;
  atomic_signal_fence(memory_order_seq_cst);
  a->journal.used = 0;
}

static int recover(struct mem_arena *a) {
  journal_undo(a);
  return pthread_mutex_consistent(&a->lock);
}

static int arena_lock(struct mem_arena *a) {
  int rc = pthread_mutex_lock(&a->lock);
  return rc == EOWNERDEAD ? recover(a) : rc;
}

static void arena_unlock(struct mem_arena *a) {
  journal_commit(a);
  pthread_mutex_unlock(&a->lock);
}

/* Sleeps until a settlement or `until` (CLOCK_MONOTONIC). Returns 0 or
 * ETIMEDOUT, with the lock held again either way. */
static int arena_wait(struct mem_arena *a, const struct timespec *until) {
  journal_commit(a); /* waiting unlocks: what was written so far stands */
  int rc = pthread_cond_timedwait(&a->settled, &a->lock, until);
  if (rc == EOWNERDEAD)
    rc = recover(a);
  return rc == ETIMEDOUT ? ETIMEDOUT : 0;
}

static void wake_waiters(void) { pthread_cond_broadcast(&arena->settled); }

static bool state_is(const struct mem_state *s, const struct mem_budget *m) {
  return s->in_use && s->generation == m->generation;
}

/* Locks the arena and returns the handle's budget, or NULL (unlocked) if it
 * was removed or replaced, or the lock cannot be had. */
static struct mem_state *lock_budget(struct lm_budget *b) {
  struct mem_budget *m = (struct mem_budget *)b;
  if (!arena || arena_lock(arena) != 0)
    return NULL;
  struct mem_state *s = &arena->budgets[m->slot];
  if (state_is(s, m))
    return s;
  arena_unlock(arena);
  return NULL;
}

static void unlock_budget(void) { arena_unlock(arena); }

/* ---- processes ----------------------------------------------------------- */

/* Start time of a process (/proc/PID/stat field 22, clock ticks since
 * boot), 0 if unreadable; *zombie says whether it has exited. */
static int64_t proc_start(int64_t pid, bool *zombie) {
  char path[64], buf[1024];
  snprintf(path, sizeof(path), "/proc/%lld/stat", (long long)pid);
  *zombie = false;
  FILE *f = fopen(path, "re");
  if (!f)
    return 0;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = 0;
  const char *p = strrchr(buf, ')'); /* the name may hold anything */
  if (!p || p[1] != ' ')
    return 0;
  p += 2; /* field 3, the state */
  *zombie = *p == 'Z' || *p == 'X';
  for (int field = 3; field < 22; field++) {
    p = strchr(p, ' ');
    if (!p)
      return 0;
    p++;
  }
  return strtoll(p, NULL, 10);
}

/* This process's pid and start time, read once per process. */
static void self_id(int64_t *pid, int64_t *start) {
  static __thread int64_t cached_pid, cached_start;
  int64_t me = (int64_t)getpid();
  if (cached_pid != me) {
    bool zombie;
    cached_start = proc_start(me, &zombie);
    cached_pid = me;
  }
  *pid = me;
  *start = cached_start;
}

/* Alive: the pid exists, has not exited, and is the process that took the
 * lease (a reused pid has another start time). */
static bool owner_alive(int64_t pid, int64_t start) {
  if (pid <= 0)
    return false;
  if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
    return false;
  bool zombie;
  int64_t now_start = proc_start(pid, &zombie);
  if (zombie)
    return false;
  return now_start == 0 || start == 0 || now_start == start;
}

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- counters, windows, limits ------------------------------------------- */

static int window_kind(const struct mem_state *s) {
  return s->lim.window >= 0 && s->lim.window < LM_WINDOW_KINDS
             ? (int)s->lim.window
             : LM_WINDOW_NONE;
}

/* Moves counters into the window `win` (zeroing what windows count). */
static void roll(struct mem_counters *c, int64_t win) {
  if (c->window >= win)
    return;
  JSET(c->window, win);
  JSET(c->w, (struct mem_window_counts){0});
}

/* What a window counts, as of `win` (a stale window counts nothing). */
static const struct mem_window_counts *current(const struct mem_counters *c,
                                               int64_t win) {
  static const struct mem_window_counts nothing;
  return c->window >= win ? &c->w : &nothing;
}

static void touch(struct mem_counters *c, int64_t now) {
  if (!c->first_activity)
    JSET(c->first_activity, now);
  JSET(c->last_activity, now);
}

/* The soft limit in force: the one set, else 80 % of the hard limit
 * (rounded down, exactly), else none (-1). */
static int64_t soft_limit(const struct mem_state *s) {
  if (s->lim.soft_pusd >= 0)
    return s->lim.soft_pusd;
  if (s->lim.hard_pusd < 0)
    return -1;
  return (int64_t)((__int128)s->lim.hard_pusd * 4 / 5);
}

static bool valid_row(int64_t row) { return row >= 0 && row <= LM_ROW_OTHER; }

/* What one step of a call changes, applied to each counter set it touches. */
struct mem_delta {
  int64_t spent, reserved, requests, reserved_requests;
  const struct lm_usage *tokens;
  int64_t denied, unmetered, unpriced;
};

static void apply(struct mem_counters *c, const struct mem_delta *d) {
  if (d->spent)
    JSET(c->w.spent, lm_money_add(c->w.spent, d->spent));
  if (d->reserved)
    JSET(c->reserved, lm_money_add(c->reserved, d->reserved));
  if (d->requests)
    JADD(c->w.requests, (uint64_t)d->requests);
  if (d->reserved_requests)
    JADD(c->reserved_requests, (uint64_t)d->reserved_requests);
  if (d->tokens) {
    uint64_t add[LM_TOK_KINDS];
    lm_usage_kinds(d->tokens, add);
    for (int k = 0; k < LM_TOK_KINDS; k++)
      if (add[k]) /* modular: a usage snapshot that went down wraps back */
        JADD(c->w.tokens[k], add[k]);
  }
  if (d->denied)
    JADD(c->w.denied, (uint64_t)d->denied);
  if (d->unmetered)
    JADD(c->w.unmetered, (uint64_t)d->unmetered);
  if (d->unpriced)
    JADD(c->w.unpriced, (uint64_t)d->unpriced);
}

static bool is_spend_rule(const struct mem_rule *r) {
  return r->state == RULE_ACTIVE && LM_RULE_MEASURE(r->kind) == LM_RULE_SPEND;
}

/* Applies d to the total and the call's rows, and its money to the spend
 * rules in mask. (Reserved tokens are the total's alone: see callers.) */
static void apply_call(struct mem_state *s, int64_t mrow, int64_t arow,
                       int64_t mask, const struct mem_delta *d) {
  apply(&s->total, d);
  if (valid_row(mrow))
    apply(&s->models[mrow].c, d);
  if (valid_row(arow))
    apply(&s->agents[arow].c, d);
  struct mem_delta money = {.spent = d->spent, .reserved = d->reserved};
  for (int r = 0; r < LM_RULES && (money.spent || money.reserved); r++)
    if ((mask & (1LL << r)) && is_spend_rule(&s->rules[r]))
      apply(&s->rules[r].c, &money);
}

/* Brings every counter set a call touches into the window `win`. */
static void roll_call(struct mem_state *s, int64_t mrow, int64_t arow,
                      int64_t mask, int64_t win) {
  roll(&s->total, win);
  if (valid_row(mrow))
    roll(&s->models[mrow].c, win);
  if (valid_row(arow))
    roll(&s->agents[arow].c, win);
  for (int r = 0; r < LM_RULES; r++)
    if (mask & (1LL << r))
      roll(&s->rules[r].c, win);
}

/* ---- rows and rules ------------------------------------------------------ */

/* The row counting (`name`, `provider`) (truncated to a row's fields),
 * made if new; the shared "(other)" row once every named row is taken. */
static int64_t row_find(struct mem_row *rows, int64_t *n, const char *name,
                        const char *provider) {
  char key[LM_NAME_MAX] = {0}, prov[LM_PROVIDER_MAX] = {0};
  memcpy(key, name, strnlen(name, LM_NAME_MAX - 1));
  if (provider)
    memcpy(prov, provider, strnlen(provider, LM_PROVIDER_MAX - 1));
  for (int64_t i = 0; i < *n; i++)
    if (strcmp(rows[i].name, key) == 0 && strcmp(rows[i].provider, prov) == 0)
      return i;
  if (*n >= LM_ROWS)
    return LM_ROW_OTHER;
  jset(rows[*n].name, key, sizeof(key));
  jset(rows[*n].provider, prov, sizeof(prov));
  JADD(*n, 1);
  return *n - 1;
}

static int64_t rules_matching(const struct mem_state *s, const char *model,
                              const char *agent) {
  int64_t mask = 0;
  for (int r = 0; r < LM_RULES; r++) {
    const struct mem_rule *rule = &s->rules[r];
    if (rule->state != RULE_ACTIVE)
      continue;
    const char *subject = LM_RULE_TARGET(rule->kind) == LM_RULE_AGENT ? agent
                                                                      : model;
    if (fnmatch(rule->pattern, subject, 0) == 0)
      mask |= 1LL << r;
  }
  return mask;
}

/* ---- denials, caps, time ------------------------------------------------- */

static void deny(struct lm_denial *why, enum lm_deny_kind kind,
                 const char *subject, int64_t limit, int64_t used, int wk,
                 int64_t now) {
  lm_denial_fill(why, kind, subject, limit, used, wk, now);
}

/* The call's per-call caps: the tightest of the budget's, the call's own
 * (call->max_call_*, > 0) and the cap rules it matches. Values are
 * estimates at admission and running totals mid-stream. */
static bool over_caps(const struct mem_state *s, int64_t mask,
                      const struct lm_call *call, bool dollars, int64_t pusd,
                      uint64_t in, uint64_t out, struct lm_denial *why) {
  static const int64_t measures[3] = {LM_RULE_CALL_USD, LM_RULE_CALL_INPUT,
                                      LM_RULE_CALL_OUTPUT};
  static const enum lm_deny_kind kinds[3] = {
      LM_DENY_CALL_USD, LM_DENY_CALL_INPUT, LM_DENY_CALL_OUTPUT};
  int64_t cap[3] = {s->lim.max_call_pusd, s->lim.max_call_input_tokens,
                    s->lim.max_call_output_tokens};
  int64_t own[3] = {call ? call->max_call_pusd : 0,
                    call ? call->max_call_input_tokens : 0,
                    call ? call->max_call_output_tokens : 0};
  const char *subject[3] = {NULL, NULL, NULL};
  int64_t value[3] = {dollars ? pusd : 0, (int64_t)in, (int64_t)out};
  for (int k = 0; k < 3; k++) {
    if (own[k] > 0 && (cap[k] < 0 || own[k] < cap[k]))
      cap[k] = own[k];
    for (int r = 0; r < LM_RULES; r++) {
      const struct mem_rule *rule = &s->rules[r];
      if (!(mask & (1LL << r)) || rule->state != RULE_ACTIVE ||
          LM_RULE_MEASURE(rule->kind) != measures[k] || rule->limit < 0 ||
          (cap[k] >= 0 && rule->limit >= cap[k]))
        continue;
      cap[k] = rule->limit;
      subject[k] = rule->pattern;
    }
  }
  for (int k = 0; k < 3; k++) {
    if (cap[k] < 0 || value[k] <= cap[k])
      continue;
    deny(why, kinds[k], subject[k], cap[k], value[k], LM_WINDOW_NONE, 0);
    return true;
  }
  return false;
}

static bool over_time(struct lm_budget *b, const struct mem_state *s,
                      int64_t inflight_ns, struct lm_denial *why) {
  if (s->lim.deadline >= 0 && lm_budget_now(b) >= s->lim.deadline) {
    deny(why, LM_DENY_DEADLINE, NULL, s->lim.deadline, 0, LM_WINDOW_NONE, 0);
    return true;
  }
  if (s->lim.max_llm_ns >= 0) {
    int64_t used = lm_money_add(s->llm_ns, inflight_ns > 0 ? inflight_ns : 0);
    if (used >= s->lim.max_llm_ns) {
      deny(why, LM_DENY_LLM_TIME, NULL, s->lim.max_llm_ns, used, LM_WINDOW_NONE,
           0);
      return true;
    }
  }
  return false;
}

/* ---- rates ----------------------------------------------------------------
 *
 * A bucket of per_min units refills continuously and holds one minute's
 * worth (the burst). Its state is one number, the theoretical arrival time
 * (monotonic ns) of the next unit: taking n units moves it n/per_min
 * minutes later, and a take is allowed while that stays within a minute of
 * now. A caller that may wait takes its turn ahead of time and sleeps until
 * it comes, which paces every process of the tree exactly. */

struct bucket {
  int64_t *tat;
  int64_t per_min, units;
  bool requests; /* counts requests: its take is never corrected */
  const char *name;
};

static int64_t rate_ns(int64_t per_min, int64_t units) {
  __int128 ns = (__int128)units * MINUTE_NS / per_min;
  const int64_t far = INT64_MAX / 4; /* saturate: never overflow a tat */
  return ns > far ? far : ns < -far ? -far : (int64_t)ns;
}

static int add_bucket(struct bucket *bk, int n, int64_t *tat, int64_t per_min,
                      bool requests, int64_t units, const char *name) {
  if (per_min < 0)
    return n; /* no such limit */
  bk[n] = (struct bucket){tat, per_min, units, requests, name};
  return n + 1;
}

/* The buckets a call of in + out (estimated) tokens draws from. */
static int buckets_of(struct mem_state *s, int64_t mask, uint64_t in,
                      uint64_t out, struct bucket *bk) {
  int64_t all = (int64_t)(in + out);
  int n = 0;
  n = add_bucket(bk, n, &s->tat[BUCKET_RPM], s->lim.rpm, true, 1, "rpm");
  n = add_bucket(bk, n, &s->tat[BUCKET_TPM], s->lim.tpm, false, all, "tpm");
  n = add_bucket(bk, n, &s->tat[BUCKET_ITPM], s->lim.itpm, false, (int64_t)in,
                 "input tpm");
  n = add_bucket(bk, n, &s->tat[BUCKET_OTPM], s->lim.otpm, false, (int64_t)out,
                 "output tpm");
  for (int r = 0; r < LM_RULES; r++) {
    struct mem_rule *rule = &s->rules[r];
    int64_t m = LM_RULE_MEASURE(rule->kind);
    if (!(mask & (1LL << r)) || rule->state != RULE_ACTIVE ||
        (m != LM_RULE_RPM && m != LM_RULE_TPM))
      continue;
    n = add_bucket(bk, n, &rule->tat, rule->limit, m == LM_RULE_RPM,
                   m == LM_RULE_RPM ? 1 : all, rule->pattern);
  }
  return n;
}

/* Takes a bucket's units: 0 (taken; *wait_ns until the turn comes, >= 0)
 * or -1 (not taken: the turn is *wait_ns away, more than max_wait_ns;
 * INT64_MAX for never). */
static int rate_take(const struct bucket *k, int64_t now, int64_t max_wait_ns,
                     int64_t *wait_ns) {
  *wait_ns = 0;
  if (k->units <= 0)
    return 0;
  if (k->per_min == 0) {
    *wait_ns = INT64_MAX;
    return -1;
  }
  int64_t base = *k->tat > now ? *k->tat : now;
  int64_t next = base + rate_ns(k->per_min, k->units);
  int64_t wait = next - MINUTE_NS - now;
  if (wait > max_wait_ns) {
    *wait_ns = wait;
    return -1;
  }
  JSET(*k->tat, next);
  *wait_ns = wait > 0 ? wait : 0;
  return 0;
}

/* Gives units back (negative: takes more, a correction). */
static void rate_give(const struct bucket *k, int64_t units) {
  if (k->per_min > 0 && units)
    JSET(*k->tat, *k->tat - rate_ns(k->per_min, units));
}

/* Units used in the last minute, as the bucket sees it. */
static int64_t rate_used(int64_t tat, int64_t per_min, int64_t now) {
  if (per_min <= 0 || tat <= now)
    return 0;
  return (int64_t)((__int128)(tat - now) * per_min / MINUTE_NS);
}

/* Takes the call's turn in every bucket or in none; *turn_ns is how long
 * to sleep before the call may go. */
static int take_rates(const struct bucket *bk, int nb, int64_t max_wait_ns,
                      int64_t *turn_ns, struct lm_denial *why) {
  int64_t now = nb ? mono_ns() : 0;
  *turn_ns = 0;
  for (int i = 0; i < nb; i++) {
    int64_t wait;
    if (rate_take(&bk[i], now, max_wait_ns, &wait) == 0) {
      if (wait > *turn_ns)
        *turn_ns = wait;
      continue;
    }
    for (int k = 0; k < i; k++)
      rate_give(&bk[k], bk[k].units);
    deny(why, LM_DENY_RATE, bk[i].name, bk[i].per_min,
         rate_used(*bk[i].tat, bk[i].per_min, now), LM_WINDOW_NONE, 0);
    why->retry_after_s = wait == INT64_MAX ? -1
                                           : (wait + 999999999) / 1000000000;
    return -1;
  }
  return 0;
}

/* ---- admission ----------------------------------------------------------- */

/* Whether `est` more fits under `limit`: 0 yes; 1 only in-flight
 * reservations stand in the way (they may settle for less: worth
 * waiting); -1 no. Optimistic admits while spent + reserved is below the
 * limit (overshoot: at most the calls in flight); strict only if spent +
 * reserved + est fits. */
static int fits(bool strict, int64_t spent, int64_t reserved, int64_t est,
                int64_t limit) {
  __int128 sp = spent, with = (__int128)spent + reserved;
  if (strict ? with + est <= limit : with < limit)
    return 0;
  return (strict ? sp + est <= limit : sp < limit) ? 1 : -1;
}

static int64_t clamp64(__int128 v) {
  return v > INT64_MAX ? INT64_MAX : v < INT64_MIN ? INT64_MIN : (int64_t)v;
}

/* Reserves what the call needs (a request, its tokens and, if it costs
 * dollars, its estimate on the budget and on each spend rule it matches),
 * all or nothing. Returns 0, or fits()'s 1 or -1 with why filled. */
static int reserve_all(struct mem_state *s, const struct lm_lease *l,
                       int64_t est, uint64_t est_tokens, int wk, int64_t now,
                       struct lm_denial *why) {
  struct mem_counters *t = &s->total;
  bool strict = s->lim.mode == LM_MODE_STRICT;
  int64_t mask = l->rule_mask;
  if (s->lim.requests >= 0 &&
      t->w.requests + t->reserved_requests + 1 > (uint64_t)s->lim.requests) {
    deny(why, LM_DENY_REQUESTS, NULL, s->lim.requests,
         (int64_t)(t->w.requests + t->reserved_requests), wk, now);
    return -1; /* a request is a request: nothing to wait for */
  }
  if (s->lim.tokens >= 0) {
    int64_t settled = clamp64((__int128)t->w.tokens[LM_TOK_INPUT] +
                              t->w.tokens[LM_TOK_OUTPUT]);
    int64_t held = clamp64(t->reserved_tokens), want = clamp64(est_tokens);
    int rc = fits(strict, settled, held, want, s->lim.tokens);
    if (rc) {
      deny(why, LM_DENY_TOKENS, NULL, s->lim.tokens,
           clamp64((__int128)settled + held), wk, now);
      why->spent = settled;
      return rc;
    }
  }
  if (l->flags & LM_LEASEF_DOLLARS) {
    int rc = s->lim.hard_pusd < 0
                 ? 0
                 : fits(strict, t->w.spent, t->reserved, est, s->lim.hard_pusd);
    if (rc) {
      deny(why, LM_DENY_HARD, NULL, s->lim.hard_pusd,
           lm_money_add(t->w.spent, t->reserved), wk, now);
      why->spent = t->w.spent;
      return rc;
    }
    for (int r = 0; r < LM_RULES; r++) {
      const struct mem_rule *rule = &s->rules[r];
      if (!(mask & (1LL << r)) || !is_spend_rule(rule))
        continue;
      rc = fits(strict, rule->c.w.spent, rule->c.reserved, est, rule->limit);
      if (rc) {
        deny(why,
             LM_RULE_TARGET(rule->kind) == LM_RULE_AGENT ? LM_DENY_AGENT
                                                         : LM_DENY_MODEL,
             rule->pattern, rule->limit,
             lm_money_add(rule->c.w.spent, rule->c.reserved), wk, now);
        why->spent = rule->c.w.spent;
        return rc;
      }
    }
  }
  struct mem_delta d = {.reserved = est, .reserved_requests = 1};
  apply_call(s, l->model_row, l->agent_row, mask, &d);
  JADD(t->reserved_tokens, est_tokens);
  return 0;
}

static int64_t free_lease(const struct mem_state *s) {
  for (int64_t i = 0; i < LM_LEASES; i++)
    if (!s->leases[i].id)
      return i;
  return -1;
}

/* Refunds the leases of dead processes (caller holds the lock). */
static int reclaim_locked(struct lm_budget *b, struct mem_state *s) {
  int64_t me, me_start;
  self_id(&me, &me_start);
  int64_t win = lm_window_start(window_kind(s), lm_budget_now(b));
  int n = 0;
  for (int i = 0; i < LM_LEASES; i++) {
    struct mem_lease *ls = &s->leases[i];
    if (!ls->id || ls->owner_pid == me ||
        owner_alive(ls->owner_pid, ls->owner_start))
      continue;
    roll_call(s, ls->model_row, ls->agent_row, ls->rule_mask, win);
    struct mem_delta d = {
        .reserved = -(ls->reserved_pusd > 0 ? ls->reserved_pusd : 0),
        .reserved_requests = -1,
        .requests = ls->charged_pusd > 0};
    apply_call(s, ls->model_row, ls->agent_row, ls->rule_mask, &d);
    JSET(s->total.reserved_tokens,
         s->total.reserved_tokens - ls->reserved_tokens);
    JSET(*ls, (struct mem_lease){0});
    JADD(s->reclaimed, 1);
    journal_commit(arena); /* each refund stands alone: bounds the journal */
    n++;
  }
  if (n)
    wake_waiters();
  return n;
}

static struct timespec mono_at(int64_t ns) {
  return (struct timespec){ns / 1000000000, ns % 1000000000};
}

static int mem_admit(struct lm_budget *b, const struct lm_call *call,
                     struct lm_lease *l, struct lm_denial *why) {
  struct mem_budget *m = (struct mem_budget *)b;
  memset(l, 0, sizeof(*l));
  l->slot = NO_LEASE;
  memset(why, 0, sizeof(*why));
  int64_t me, me_start;
  self_id(&me, &me_start);
  struct mem_state *s = lock_budget(b);
  if (!s) {
    deny(why, LM_DENY_ERROR, NULL, 0, 0, LM_WINDOW_NONE, 0);
    return -1;
  }
  const char *model = call->model && *call->model ? call->model : "unknown";
  const char *agent = call->agent && *call->agent ? call->agent : "unknown";
  int64_t now = lm_budget_now(b);
  int wk = window_kind(s);
  int64_t win = lm_window_start(wk, now);
  bool dollars = !call->zero_priced;
  int64_t est = dollars && call->est_pusd > 0 ? call->est_pusd : 0;
  l->model_row = (uint32_t)row_find(s->models, &s->n_models, model,
                                    call->provider);
  l->agent_row = (uint32_t)row_find(s->agents, &s->n_agents, agent, NULL);
  l->rule_mask = (uint32_t)rules_matching(s, model, agent);
  l->flags = dollars ? LM_LEASEF_DOLLARS : 0;
  roll_call(s, l->model_row, l->agent_row, l->rule_mask, win);

  struct bucket bk[BUCKETS + LM_RULES];
  int nb = 0;
  int64_t turn = 0, t0 = 0;
  bool waiting = false, reclaimed = false;
  if (free_lease(s) < 0 && reclaim_locked(b, s) == 0) {
    deny(why, LM_DENY_BUSY, NULL, LM_LEASES, LM_LEASES, LM_WINDOW_NONE, now);
    why->retry_after_s = 1;
    goto refused;
  }
  if (over_time(b, s, 0, why) ||
      over_caps(s, l->rule_mask, call, dollars, est, call->est_input_tokens,
                call->est_output_tokens, why))
    goto refused; /* nothing to wait for */
  nb = buckets_of(s, l->rule_mask, call->est_input_tokens,
                  call->est_output_tokens, bk);
  if (take_rates(bk, nb, call->wait_ms * 1000000, &turn, why) != 0) {
    nb = 0;
    goto refused;
  }
  if (turn > 0) { /* paced: sleep until the turn comes, unlocked */
    unlock_budget();
    struct timespec ts = mono_at(turn);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
      ;
    if (!(s = lock_budget(b))) {
      deny(why, LM_DENY_ERROR, NULL, 0, 0, LM_WINDOW_NONE, 0);
      memset(l, 0, sizeof(*l));
      l->slot = NO_LEASE;
      return -1;
    }
  }

  /* Wait (up to call->wait_ms) only while in-flight reservations, not
   * spending, stand in the way; every settlement broadcasts. */
  for (;;) {
    now = lm_budget_now(b);
    win = lm_window_start(wk, now);
    roll_call(s, l->model_row, l->agent_row, l->rule_mask, win);
    int64_t slot = free_lease(s);
    int rc = -1;
    if (slot < 0) {
      deny(why, LM_DENY_BUSY, NULL, LM_LEASES, LM_LEASES, LM_WINDOW_NONE, now);
      why->retry_after_s = 1;
    } else
      rc = reserve_all(s, l, est, call->est_tokens, wk, now, why);
    if (rc == 0) {
      JADD(s->last_lease_id, 1);
      JSET(s->leases[slot],
           ((struct mem_lease){.id = s->last_lease_id,
                               .owner_pid = me,
                               .owner_start = me_start,
                               .reserved_pusd = est,
                               .reserved_tokens = call->est_tokens,
                               .model_row = l->model_row,
                               .agent_row = l->agent_row,
                               .rule_mask = l->rule_mask,
                               .dollars = dollars}));
      touch(&s->total, now);
      if (waiting)
        JADD(s->waiters, -1);
      l->slot = (uint32_t)slot;
      l->state_word = (uint64_t)s->last_lease_id;
      unlock_budget();
      l->reserved_pusd = est;
      l->reserved_tokens = call->est_tokens;
      l->rate_in = call->est_input_tokens;
      l->rate_out = call->est_output_tokens;
      return 0;
    }
    /* Dead processes may hold what we need: refund them once, retry. */
    if (!reclaimed && why->kind != LM_DENY_REQUESTS) {
      reclaimed = true;
      if (reclaim_locked(b, s) > 0)
        continue;
    }
    if (rc < 0 || call->wait_ms <= 0)
      break;
    if (!waiting) {
      waiting = true;
      t0 = mono_ns();
      JADD(s->waiters, 1);
    }
    int64_t left = t0 + call->wait_ms * 1000000 - mono_ns();
    if (left <= 0)
      break;
    /* At most a second at a time, to reclaim owners that died meanwhile. */
    struct timespec until = mono_at(mono_ns() +
                                    (left < 1000000000 ? left : 1000000000));
    if (arena_wait(arena, &until) == ETIMEDOUT)
      reclaimed = false;
    if (!state_is(s, m)) { /* removed while we slept */
      unlock_budget();
      deny(why, LM_DENY_ERROR, NULL, 0, 0, LM_WINDOW_NONE, 0);
      memset(l, 0, sizeof(*l));
      l->slot = NO_LEASE;
      return -1;
    }
  }
  if (waiting) {
    JADD(s->waiters, -1);
    why->waited_ms = (mono_ns() - t0) / 1000000;
  }
refused:
  for (int i = 0; i < nb; i++) /* refused after all: give the turns back */
    rate_give(&bk[i], bk[i].units);
  struct mem_delta d = {.denied = 1};
  apply_call(s, l->model_row, l->agent_row, 0, &d);
  unlock_budget();
  memset(l, 0, sizeof(*l));
  l->slot = NO_LEASE;
  return -1;
}

/* ---- charge, settle, release --------------------------------------------- */

/* The lease's slot, if it is still this lease's (not reclaimed). */
static struct mem_lease *lease_of(struct mem_state *s,
                                  const struct lm_lease *l) {
  struct mem_lease *ls = &s->leases[l->slot];
  return l->state_word && ls->id == (int64_t)l->state_word ? ls : NULL;
}

static void mem_charge(struct lm_budget *b, struct lm_lease *l,
                       const struct lm_usage *delta, int64_t pusd) {
  if (l->slot >= LM_LEASES)
    return;
  struct mem_state *s = lock_budget(b);
  if (!s)
    return;
  int64_t now = lm_budget_now(b);
  roll_call(s, l->model_row, l->agent_row, l->rule_mask,
            lm_window_start(window_kind(s), now));
  struct mem_lease *ls = lease_of(s, l);
  if (pusd < 0 && -pusd > l->charged_pusd) /* a refund (a usage snapshot */
    pusd = -l->charged_pusd;               /* went down): never below 0 */
  /* The charge comes out of what is left of the reservation. */
  int64_t take = 0;
  if (ls && ls->dollars && pusd > 0 && ls->reserved_pusd > 0)
    take = pusd < ls->reserved_pusd ? pusd : ls->reserved_pusd;
  int64_t tokens = delta ? (int64_t)(delta->input + delta->output) : 0;
  uint64_t ttake = 0;
  if (ls && tokens > 0)
    ttake = (uint64_t)tokens < ls->reserved_tokens ? (uint64_t)tokens
                                                   : ls->reserved_tokens;
  l->charged_pusd = lm_money_add(l->charged_pusd, pusd);
  l->charged_tokens += (uint64_t)tokens;
  if (ls) {
    JSET(ls->charged_pusd, l->charged_pusd);
    JSET(ls->reserved_pusd, ls->reserved_pusd - take);
    JSET(ls->reserved_tokens, ls->reserved_tokens - ttake);
  }
  struct mem_delta d = {.spent = pusd, .reserved = -take, .tokens = delta};
  apply_call(s, l->model_row, l->agent_row, l->rule_mask, &d);
  JSET(s->total.reserved_tokens, s->total.reserved_tokens - ttake);
  touch(&s->total, now);
  unlock_budget();
}

/* Ends a call: returns what is left of its reservation and counts it. */
static void finish(struct lm_budget *b, struct lm_lease *l, unsigned flags,
                   bool count_request) {
  if (l->slot >= LM_LEASES)
    return;
  struct mem_state *s = lock_budget(b);
  if (!s) {
    l->slot = NO_LEASE;
    return;
  }
  roll_call(s, l->model_row, l->agent_row, l->rule_mask,
            lm_window_start(window_kind(s), lm_budget_now(b)));
  struct mem_lease *ls = lease_of(s, l);
  if (ls) {
    struct mem_delta d = {
        .reserved = -(ls->reserved_pusd > 0 ? ls->reserved_pusd : 0),
        .reserved_requests = -1,
        .requests = count_request,
        .unmetered = (flags & LM_SETTLE_UNMETERED) != 0,
        .unpriced = (flags & LM_SETTLE_UNPRICED) != 0};
    apply_call(s, l->model_row, l->agent_row, l->rule_mask, &d);
    JSET(s->total.reserved_tokens,
         s->total.reserved_tokens - ls->reserved_tokens);
    JSET(*ls, (struct mem_lease){0});
  } else if (count_request) { /* reclaimed under us: the call still counts */
    struct mem_delta d = {.requests = 1};
    apply_call(s, l->model_row, l->agent_row, 0, &d);
  }
  if ((flags & LM_SETTLE_UNPRICED) && valid_row(l->model_row))
    JSET(s->models[l->model_row].flags,
         s->models[l->model_row].flags | LM_ROWF_UNPRICED);
  wake_waiters();
  unlock_budget();
  /* The rest of the lease stays readable (rate_correct runs after). */
  l->slot = NO_LEASE;
}

static void mem_settle(struct lm_budget *b, struct lm_lease *l,
                       unsigned flags) {
  finish(b, l, flags, true);
}

static void mem_release(struct lm_budget *b, struct lm_lease *l) {
  /* A call that was charged something did happen: it counts. */
  finish(b, l, 0, l->charged_pusd > 0 || l->charged_tokens > 0);
}

static int mem_reclaim(struct lm_budget *b) {
  struct mem_state *s = lock_budget(b);
  if (!s)
    return 0;
  int n = reclaim_locked(b, s);
  unlock_budget();
  return n;
}

/* ---- snapshot ------------------------------------------------------------ */

static void snap_counters(const struct mem_counters *c, int64_t win,
                          struct lm_snap_counters *o) {
  const struct mem_window_counts *w = current(c, win);
  memset(o, 0, sizeof(*o));
  o->spent = w->spent;
  o->requests = w->requests;
  o->denied = w->denied;
  o->unmetered = w->unmetered;
  o->unpriced = w->unpriced;
  memcpy(o->tokens, w->tokens, sizeof(o->tokens));
  o->reserved = c->reserved;
  o->reserved_requests = c->reserved_requests;
  o->reserved_tokens = c->reserved_tokens;
  o->first_activity = c->first_activity;
  o->last_activity = c->last_activity;
}

static int snap_rows(const struct mem_row *rows, int64_t n, int64_t win,
                     struct lm_snap_row *out) {
  int k = 0;
  for (int64_t i = 0; i < n; i++, k++) {
    snprintf(out[k].name, sizeof(out[k].name), "%s", rows[i].name);
    snprintf(out[k].provider, sizeof(out[k].provider), "%s", rows[i].provider);
    out[k].flags = (uint32_t)rows[i].flags;
    snap_counters(&rows[i].c, win, &out[k].c);
  }
  struct lm_snap_counters other;
  snap_counters(&rows[LM_ROW_OTHER].c, win, &other);
  if (other.requests || other.reserved_requests || other.denied ||
      other.spent) {
    snprintf(out[k].name, sizeof(out[k].name), "(other)");
    out[k].flags = (uint32_t)rows[LM_ROW_OTHER].flags;
    out[k++].c = other;
  }
  return k;
}

static int mem_snapshot(struct lm_budget *b, struct lm_snapshot *o) {
  memset(o, 0, sizeof(*o));
  struct mem_state *s = lock_budget(b);
  if (!s)
    return -1;
  int64_t now = lm_budget_now(b), nn = mono_ns();
  int wk = window_kind(s);
  int64_t win = lm_window_start(wk, now);
  const struct mem_limits *lim = &s->lim;
  snprintf(o->name, sizeof(o->name), "%s", b->name);
  o->now = now;
  o->created_at = s->created_at;
  o->reset_at = s->reset_at;
  o->hard_pusd = lim->hard_pusd;
  o->soft_pusd = soft_limit(s);
  o->tokens_limit = lim->tokens;
  o->requests_limit = lim->requests;
  o->max_call_pusd = lim->max_call_pusd;
  o->max_call_input_tokens = lim->max_call_input_tokens;
  o->max_call_output_tokens = lim->max_call_output_tokens;
  o->rpm = lim->rpm;
  o->tpm = lim->tpm;
  o->itpm = lim->itpm;
  o->otpm = lim->otpm;
  o->deadline = lim->deadline;
  o->max_llm_ns = lim->max_llm_ns;
  o->llm_ns = s->llm_ns;
  o->rpm_used = rate_used(s->tat[BUCKET_RPM], lim->rpm, nn);
  o->tpm_used = rate_used(s->tat[BUCKET_TPM], lim->tpm, nn);
  o->itpm_used = rate_used(s->tat[BUCKET_ITPM], lim->itpm, nn);
  o->otpm_used = rate_used(s->tat[BUCKET_OTPM], lim->otpm, nn);
  o->soft_crossed = s->soft_window == win + 1;
  snprintf(o->on_soft, sizeof(o->on_soft), "%s", s->on_soft);
  snprintf(o->downgrade, sizeof(o->downgrade), "%s", s->downgrade);
  o->window = wk;
  o->mode = lim->mode == LM_MODE_STRICT;
  o->window_start = win;
  o->resets_in_s = wk == LM_WINDOW_NONE ? -1 : lm_window_next(wk, now) - now;
  snap_counters(&s->total, win, &o->total);
  o->n_models = snap_rows(s->models, s->n_models, win, o->models);
  o->n_agents = snap_rows(s->agents, s->n_agents, win, o->agents);
  for (int i = 0; i < LM_RULES; i++) {
    const struct mem_rule *r = &s->rules[i];
    if (r->state != RULE_ACTIVE)
      continue;
    struct lm_snap_rule *sr = &o->rules[o->n_rules++];
    int64_t m = LM_RULE_MEASURE(r->kind);
    sr->kind = (int)r->kind;
    snprintf(sr->pattern, sizeof(sr->pattern), "%s", r->pattern);
    sr->limit_pusd = r->limit;
    if (m == LM_RULE_RPM || m == LM_RULE_TPM)
      sr->rate_used = rate_used(r->tat, r->limit, nn);
    snap_counters(&r->c, win, &sr->c);
  }
  for (int i = 0; i < LM_LEASES; i++)
    o->active_leases += s->leases[i].id != 0;
  o->waiters = (uint32_t)s->waiters;
  o->reclaimed = (uint64_t)s->reclaimed;
  o->reconciles = 0; /* nothing to reconcile under one mutex */
  o->unmetered_denied = (uint64_t)s->unmetered_denied;
  o->unmetered_warned = (uint64_t)s->unmetered_warned;
  unlock_budget();
  return 0;
}

/* ---- configuration, rules, reset ----------------------------------------- */

static void set_limit(int64_t *field, int64_t v) {
  if (v != LM_KEEP)
    JSET(*field, v < 0 ? -1 : v);
}

static int mem_configure(struct lm_budget *b, const struct lm_limit_config *c) {
  struct mem_state *s = lock_budget(b);
  if (!s)
    return -1;
  struct mem_limits *lim = &s->lim;
  set_limit(&lim->hard_pusd, c->hard_pusd);
  set_limit(&lim->soft_pusd, c->soft_pusd);
  set_limit(&lim->tokens, c->tokens);
  set_limit(&lim->requests, c->requests);
  set_limit(&lim->max_call_pusd, c->max_call_pusd);
  set_limit(&lim->max_call_input_tokens, c->max_call_input_tokens);
  set_limit(&lim->max_call_output_tokens, c->max_call_output_tokens);
  set_limit(&lim->rpm, c->rpm);
  set_limit(&lim->tpm, c->tpm);
  set_limit(&lim->itpm, c->itpm);
  set_limit(&lim->otpm, c->otpm);
  set_limit(&lim->deadline, c->deadline);
  set_limit(&lim->max_llm_ns, c->max_llm_ns);
  if (c->window >= 0 && c->window < LM_WINDOW_KINDS)
    JSET(lim->window, c->window);
  if (c->mode == LM_MODE_OPTIMISTIC || c->mode == LM_MODE_STRICT)
    JSET(lim->mode, c->mode);
  if (c->on_soft) {
    char v[sizeof(s->on_soft)] = {0};
    snprintf(v, sizeof(v), "%s", c->on_soft);
    jset(s->on_soft, v, sizeof(v));
  }
  if (c->downgrade) {
    char v[sizeof(s->downgrade)] = {0};
    snprintf(v, sizeof(v), "%s", c->downgrade);
    jset(s->downgrade, v, sizeof(v));
  }
  wake_waiters(); /* a raised limit may let waiters in */
  unlock_budget();
  return 0;
}

static bool rule_kind_valid(int kind) {
  int target = (int)LM_RULE_TARGET(kind), measure = (int)LM_RULE_MEASURE(kind);
  return kind >= 0 && (kind & ~0xffff) == 0 &&
         (target == LM_RULE_MODEL || target == LM_RULE_AGENT) &&
         measure <= LM_RULE_TPM;
}

static int mem_add_rule(struct lm_budget *b, int kind, const char *pattern,
                        int64_t limit, char *err, size_t errlen) {
  if (!pattern || !*pattern || strlen(pattern) >= LM_NAME_MAX ||
      !rule_kind_valid(kind)) {
    snprintf(err, errlen, "invalid limit pattern '%s'", pattern ? pattern : "");
    return -1;
  }
  struct mem_state *s = lock_budget(b);
  if (!s) {
    snprintf(err, errlen, "budget '%s' is gone", b->name);
    return -1;
  }
  int spare = -1;
  for (int i = 0; i < LM_RULES; i++) {
    struct mem_rule *r = &s->rules[i];
    if (r->state == RULE_ACTIVE && r->kind == kind &&
        strcmp(r->pattern, pattern) == 0) {
      if (limit < 0) /* a negative limit removes the rule */
        JSET(r->state, RULE_RETIRED);
      else
        JSET(r->limit, limit);
      unlock_budget();
      return 0;
    }
    if (r->state == RULE_UNUSED && spare < 0)
      spare = i;
  }
  if (limit < 0) { /* removing a rule that does not exist */
    unlock_budget();
    return 0;
  }
  if (spare < 0) {
    unlock_budget();
    snprintf(err, errlen, "budget '%s' already has %d limit rules", b->name,
             LM_RULES);
    return -1;
  }
  struct mem_rule r = {.state = RULE_ACTIVE, .kind = kind, .limit = limit};
  snprintf(r.pattern, sizeof(r.pattern), "%s", pattern);
  r.c.window = lm_window_start(window_kind(s), lm_budget_now(b));
  /* A spend rule added live starts from what its rows spent this window. */
  const struct mem_row *rows = LM_RULE_TARGET(kind) == LM_RULE_AGENT
                                   ? s->agents
                                   : s->models;
  int64_t n = LM_RULE_TARGET(kind) == LM_RULE_AGENT ? s->n_agents : s->n_models;
  for (int64_t i = 0; i < n && LM_RULE_MEASURE(kind) == LM_RULE_SPEND; i++)
    if (fnmatch(pattern, rows[i].name, 0) == 0)
      r.c.w.spent = lm_money_add(r.c.w.spent,
                                 current(&rows[i].c, r.c.window)->spent);
  JSET(s->rules[spare], r);
  unlock_budget();
  return 0;
}

static int mem_reset(struct lm_budget *b) {
  struct mem_state *s = lock_budget(b);
  if (!s)
    return -1;
  const struct mem_window_counts zero = {0};
  JSET(s->total.w, zero);
  for (int64_t i = 0; i <= LM_ROW_OTHER; i++) {
    if (i >= s->n_models && i < LM_ROW_OTHER)
      continue;
    JSET(s->models[i].c.w, zero);
    JSET(s->models[i].flags, 0);
  }
  for (int64_t i = 0; i <= LM_ROW_OTHER; i++)
    if (i < s->n_agents || i == LM_ROW_OTHER)
      JSET(s->agents[i].c.w, zero);
  for (int i = 0; i < LM_RULES; i++)
    if (s->rules[i].state != RULE_UNUSED)
      JSET(s->rules[i].c.w, zero);
  JSET(s->reset_at, lm_budget_now(b));
  JSET(s->soft_window, 0);
  JSET(s->llm_ns, 0);
  JSET(s->unmetered_denied, 0);
  JSET(s->unmetered_warned, 0);
  wake_waiters();
  unlock_budget();
  return 0;
}

static void mem_close(struct lm_budget *b) { free(b); }

/* ---- the questions asked mid-call ---------------------------------------- */

static bool mem_over_hard(struct lm_budget *b, const struct lm_lease *l) {
  if (!(l->flags & LM_LEASEF_DOLLARS))
    return false;
  struct mem_state *s = lock_budget(b);
  if (!s)
    return false;
  int64_t win = lm_window_start(window_kind(s), lm_budget_now(b));
  bool over = s->lim.hard_pusd >= 0 &&
              current(&s->total, win)->spent >= s->lim.hard_pusd;
  for (int r = 0; r < LM_RULES && !over; r++) {
    const struct mem_rule *rule = &s->rules[r];
    over = (l->rule_mask & (1u << r)) && is_spend_rule(rule) &&
           rule->limit >= 0 && current(&rule->c, win)->spent >= rule->limit;
  }
  unlock_budget();
  return over;
}

static bool mem_over_call_caps(struct lm_budget *b, const struct lm_lease *l,
                               const struct lm_call *call,
                               const struct lm_usage *total, int64_t cost,
                               struct lm_denial *why) {
  struct mem_state *s = lock_budget(b);
  if (!s)
    return false;
  bool over = over_caps(
      s, l->rule_mask, call, (l->flags & LM_LEASEF_DOLLARS) != 0, cost,
      total ? total->input : 0, total ? total->output : 0, why);
  unlock_budget();
  return over;
}

static void mem_add_llm_time(struct lm_budget *b, int64_t ns) {
  if (ns <= 0)
    return;
  struct mem_state *s = lock_budget(b);
  if (!s)
    return;
  JSET(s->llm_ns, lm_money_add(s->llm_ns, ns));
  unlock_budget();
}

static bool mem_over_time(struct lm_budget *b, int64_t inflight_ns,
                          struct lm_denial *why) {
  struct mem_state *s = lock_budget(b);
  if (!s)
    return false;
  bool over = over_time(b, s, inflight_ns, why);
  unlock_budget();
  return over;
}

static void mem_rate_correct(struct lm_budget *b, const struct lm_lease *l,
                             const struct lm_usage *actual) {
  if (!actual)
    return;
  struct mem_state *s = lock_budget(b);
  if (!s)
    return;
  struct bucket est[BUCKETS + LM_RULES], got[BUCKETS + LM_RULES];
  int n = buckets_of(s, l->rule_mask, l->rate_in, l->rate_out, est);
  buckets_of(s, l->rule_mask, actual->input, actual->output, got);
  for (int i = 0; i < n; i++) /* a request is a request: rpm stays */
    if (!est[i].requests)
      rate_give(&est[i], est[i].units - got[i].units);
  unlock_budget();
}

static bool mem_soft_crossed(struct lm_budget *b, char *cmd, size_t cmdlen) {
  struct mem_state *s = lock_budget(b);
  if (!s)
    return false;
  int64_t soft = soft_limit(s);
  int64_t win = lm_window_start(window_kind(s), lm_budget_now(b));
  bool first = soft >= 0 && current(&s->total, win)->spent >= soft &&
               s->soft_window != win + 1;
  if (first) {
    JSET(s->soft_window, win + 1);
    if (cmd && cmdlen)
      snprintf(cmd, cmdlen, "%s", s->on_soft);
  }
  unlock_budget();
  return first;
}

static bool mem_downgrade(struct lm_budget *b, const char *model, char *out,
                          size_t outlen) {
  struct mem_state *s = lock_budget(b);
  if (!s)
    return false;
  int64_t soft = soft_limit(s);
  int64_t win = lm_window_start(window_kind(s), lm_budget_now(b));
  bool applies = s->downgrade[0] && soft >= 0 &&
                 current(&s->total, win)->spent >= soft;
  char map[sizeof(s->downgrade)];
  snprintf(map, sizeof(map), "%s", s->downgrade);
  unlock_budget();
  if (!applies || !model) /* model NULL: could a rule apply now? */
    return applies;
  /* "pattern=target,...": the first pattern matching the model wins. */
  char *save = NULL;
  for (char *e = strtok_r(map, ",", &save); e && *model;
       e = strtok_r(NULL, ",", &save)) {
    char *target = strchr(e, '=');
    if (!target)
      continue;
    *target++ = 0;
    if (fnmatch(e, model, 0) == 0 && *target && strcmp(target, model) != 0) {
      snprintf(out, outlen, "%s", target);
      return true;
    }
  }
  return false;
}

static bool mem_hard_limit(struct lm_budget *b) {
  struct mem_state *s = lock_budget(b);
  if (!s)
    return false;
  bool hard = s->lim.hard_pusd >= 0;
  for (int r = 0; r < LM_RULES && !hard; r++)
    hard = is_spend_rule(&s->rules[r]) && s->rules[r].limit >= 0;
  unlock_budget();
  return hard;
}

static void mem_count_unmetered(struct lm_budget *b, bool denied) {
  struct mem_state *s = lock_budget(b);
  if (!s)
    return;
  if (denied)
    JADD(s->unmetered_denied, 1);
  else
    JADD(s->unmetered_warned, 1);
  unlock_budget();
}

static const struct lm_budget_ops mem_ops = {
    .admit = mem_admit,
    .charge = mem_charge,
    .settle = mem_settle,
    .release = mem_release,
    .snapshot = mem_snapshot,
    .reclaim = mem_reclaim,
    .configure = mem_configure,
    .add_rule = mem_add_rule,
    .reset = mem_reset,
    .close = mem_close,
    .over_hard = mem_over_hard,
    .over_call_caps = mem_over_call_caps,
    .add_llm_time = mem_add_llm_time,
    .over_time = mem_over_time,
    .rate_correct = mem_rate_correct,
    .soft_crossed = mem_soft_crossed,
    .downgrade = mem_downgrade,
    .hard_limit = mem_hard_limit,
    .count_unmetered = mem_count_unmetered,
};

/* ---- the registry: opening, creating, removing --------------------------- */

static int find_budget(const struct mem_arena *a, const char *name) {
  for (int i = 0; i < MEM_BUDGETS; i++)
    if (a->budgets[i].in_use && strcmp(a->budgets[i].name, name) == 0)
      return i;
  return -1;
}

/* Makes a budget with no limits in a free slot. The slot is written
 * unjournaled while it is free; only marking it in use is journaled. */
static int new_budget(struct mem_arena *a, const char *name) {
  int i = 0;
  while (i < MEM_BUDGETS && a->budgets[i].in_use)
    i++;
  if (i == MEM_BUDGETS)
    return -1;
  struct mem_state *s = &a->budgets[i];
  memset(s, 0, sizeof(*s));
  snprintf(s->name, sizeof(s->name), "%s", name);
  s->created_at = (int64_t)time(NULL);
  s->lim = (struct mem_limits){.hard_pusd = -1,
                               .soft_pusd = -1,
                               .tokens = -1,
                               .requests = -1,
                               .max_call_pusd = -1,
                               .max_call_input_tokens = -1,
                               .max_call_output_tokens = -1,
                               .rpm = -1,
                               .tpm = -1,
                               .itpm = -1,
                               .otpm = -1,
                               .deadline = -1,
                               .max_llm_ns = -1,
                               .window = LM_WINDOW_NONE,
                               .mode = LM_MODE_OPTIMISTIC};
  JADD(a->generations, 1);
  s->generation = a->generations;
  JSET(s->in_use, 1);
  return i;
}

static struct mem_budget *handle_new(const char *name, char *err, size_t errlen,
                                     int *rc) {
  char full[LM_BUDGET_NAME_MAX + 1];
  lm_budget_resolve_name(name, NULL, full, sizeof(full));
  *rc = LM_SEG_OK;
  if (!full[0] || strlen(full) >= LM_BUDGET_NAME_MAX) {
    snprintf(err, errlen, "invalid budget name '%s'", name ? name : "");
    *rc = LM_SEG_ENAME;
    return NULL;
  }
  struct mem_budget *m = calloc(1, sizeof(*m));
  if (!m || !arena_get()) {
    snprintf(err, errlen, "budget '%s': out of memory", full);
    free(m);
    *rc = LM_SEG_ESYS;
    return NULL;
  }
  lm_budget_init_base(&m->base, &mem_ops, full);
  return m;
}

static int handle_finish(struct mem_budget *m, int slot, struct lm_budget **out,
                         char *err, size_t errlen) {
  if (slot < 0) {
    unlock_budget();
    snprintf(err, errlen, "budget '%s': all %d in-memory slots are in use",
             m->base.name, MEM_BUDGETS);
    free(m);
    return LM_SEG_ESYS;
  }
  m->slot = slot;
  m->generation = arena->budgets[slot].generation;
  unlock_budget();
  *out = &m->base;
  return LM_SEG_OK;
}

static int mem_open(const char *name, bool create, struct lm_budget **out,
                    char *err, size_t errlen) {
  int rc;
  struct mem_budget *m = handle_new(name, err, errlen, &rc);
  if (!m)
    return rc;
  if (arena_lock(arena) != 0) {
    free(m);
    snprintf(err, errlen, "budget '%s': lock unusable", name ? name : "");
    return LM_SEG_ESYS;
  }
  int slot = find_budget(arena, m->base.name);
  if (slot < 0 && !create) {
    unlock_budget();
    snprintf(err, errlen, "budget '%s' does not exist", m->base.name);
    free(m);
    return LM_SEG_ENOENT;
  }
  if (slot < 0)
    slot = new_budget(arena, m->base.name);
  return handle_finish(m, slot, out, err, errlen);
}

static int mem_create(const char *name, bool force, struct lm_budget **out,
                      char *err, size_t errlen) {
  int rc;
  struct mem_budget *m = handle_new(name, err, errlen, &rc);
  if (!m)
    return rc;
  if (arena_lock(arena) != 0) {
    free(m);
    snprintf(err, errlen, "budget '%s': lock unusable", name ? name : "");
    return LM_SEG_ESYS;
  }
  int old = find_budget(arena, m->base.name);
  if (old >= 0 && !force) {
    unlock_budget();
    snprintf(err, errlen, "budget '%s' already exists", m->base.name);
    free(m);
    return LM_SEG_EEXIST;
  }
  int slot = new_budget(arena, m->base.name);
  if (slot >= 0 && old >= 0) { /* replaced: handles on the old one stop */
    JSET(arena->budgets[old].in_use, 0);
    wake_waiters();
  }
  return handle_finish(m, slot, out, err, errlen);
}

int lm_budget_mem_remove(const char *name) {
  if (!name || !arena_get() || arena_lock(arena) != 0)
    return LM_SEG_ENOENT;
  int slot = find_budget(arena, name);
  if (slot >= 0) {
    JSET(arena->budgets[slot].in_use, 0);
    wake_waiters(); /* its waiters notice and give up */
  }
  unlock_budget();
  return slot >= 0 ? LM_SEG_OK : LM_SEG_ENOENT;
}

const struct lm_budget_backend lm_budget_backend_mem = {
    .kind = "memory", .open = mem_open, .create = mem_create};
