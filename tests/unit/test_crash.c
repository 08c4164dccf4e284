/* test_crash.c — no money lost, proven: a budget process killed at every
 * crash point, recovered by another process, every counter checked exactly.
 *
 * This binary links its own copy of the budget engine built with
 * -DLM_CRASHTEST (tests/mk/crash.mk), in which every LM_CRASH_POINT() (just
 * before and just after each store to the segment) counts, and the process
 * SIGKILLs itself at the armed number. A workload child is this binary
 * re-executed (fork + exec, a real process with its own mapping); it runs a
 * fixed list of operations on a shared budget (admit, charge, settle,
 * release, a refused call, a rule-matched call, a window rollover, a reset,
 * a live configure) and writes, in a test-owned shared mapping, the index
 * of the operation it is starting and of the last one it finished. The
 * parent then recovers the budget from its own process (reclaim, which
 * reconciles what it must) and checks, with exact integers:
 *   - spent, requests, each token kind, denied, unmetered and unpriced in
 *     the total, each model row, each agent row and each spend rule equal
 *     what the finished operations did (a refused call counts as denied; a
 *     lease of a dead process keeps what it was charged and counts as a
 *     request if it was charged), with the operation in flight at the kill
 *     either wholly applied or wholly not: the same choice for every
 *     counter; the rows and rules sum to the totals;
 *   - nothing is reserved (money, tokens, requests) and no lease is held
 *     once every process is gone: reserved equals the live reservations;
 *   - a window rolled over exactly once: what the old window counted is
 *     gone from the new one, and nothing of the new one was lost.
 * Sweep: one child per crash point N = 1..P of the workload (P counted by a
 * run that is never killed). Races: several children on one budget, each
 * killed at its own random point. Every run prints nothing unless it
 * violates; the summary says how many points, runs and violations.
 *
 * Recoveries: a child killed at a random point, then a first recoverer
 * (reclaim) killed at a random point of its own, then the check.
 *
 * usage: test_crash [--full]     (make test: every 3rd point, 40 races and
 *                                 40 recoveries; --full, make crashtest:
 *                                 every point, 400 and 400)
 *        test_crash --child BUDGET ID RACE CRASH_AT LOGFD GATE  (internal)
 *        test_crash --recover BUDGET CRASH_AT NOW               (internal)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "budget.h"
#include "crashpoint.h"
#include "lm_test.h"
#include "segment.h"

uint64_t lm_shm_invariant_checks(void); /* shm_internal.h */

#define T0 1767225700LL /* 2026-01-01 00:01:40 UTC: an hour window */
#define MAX_OPS 40
#define MAX_KIDS 4
#define MAX_LEASES 8

/* ---- the workload -------------------------------------------------------- */

enum op_kind {
  OP_ADMIT,
  OP_CHARGE,
  OP_SETTLE,
  OP_RELEASE,
  OP_DENY,      /* a call over its own cost cap: refused, counts as denied */
  OP_TICK,      /* the clock moves into the next hour window */
  OP_RESET,     /* llmmeter reset */
  OP_CONFIGURE, /* llmmeter set: a hard limit far above what is spent */
};

struct op {
  enum op_kind kind;
  int lease, model, agent; /* model, agent: 0 or 1 */
  int64_t pusd;            /* admit: estimate; charge: delta */
  uint64_t in, out, cache_read;
  unsigned flags; /* settle */
};

static const char *const models[2] = {"gpt-x", "claude-y"};
static const char *const providers[2] = {"openai", "anthropic"};
static const char *const agents[2] = {"agent-a", "agent-b"};
/* The spend rules: one on models, one on agents (index in the snapshot). */
static const char *const rule_pat[2] = {"gpt-*", "agent-a"};

/* The operations of child `id`. A race child skips what changes the whole
 * budget (tick, reset, configure), which would make its expected totals
 * depend on the other children's timing. */
static int workload(int id, int race, struct op *ops) {
  int n = 0, a = id % 2, b = 1 - a;
#define OP(k, ...) (ops[n++] = (struct op){.kind = k, __VA_ARGS__})
  OP(OP_ADMIT, .lease = 0, .model = a, .agent = a, .pusd = 5000, .in = 300);
  OP(OP_ADMIT, .lease = 1, .model = b, .agent = a, .pusd = 7000, .in = 200);
  OP(OP_CHARGE, .lease = 0, .pusd = 1100 + id, .in = 10, .out = 3,
     .cache_read = 2);
  OP(OP_DENY, .lease = 7, .model = a, .agent = b, .pusd = 5000);
  OP(OP_CHARGE, .lease = 1, .pusd = 2300, .in = 20, .out = 5);
  OP(OP_CHARGE, .lease = 0, .pusd = 900, .out = 7);
  OP(OP_SETTLE, .lease = 0);
  if (!race) {
    OP(OP_CONFIGURE, .lease = 0);
    OP(OP_TICK, .lease = 0);
  }
  OP(OP_ADMIT, .lease = 2, .model = a, .agent = b, .pusd = 3000, .in = 100);
  OP(OP_CHARGE, .lease = 1, .pusd = 400, .out = 2);
  OP(OP_CHARGE, .lease = 2, .pusd = 6000 + id, .in = 5, .out = 50);
  OP(OP_SETTLE, .lease = 1, .flags = LM_SETTLE_UNPRICED);
  OP(OP_CHARGE, .lease = 2, .pusd = -500);
  OP(OP_RELEASE, .lease = 2);
  if (!race)
    OP(OP_RESET, .lease = 0);
  OP(OP_ADMIT, .lease = 3, .model = b, .agent = b, .pusd = 0, .in = 40);
  OP(OP_CHARGE, .lease = 3, .pusd = 0, .in = 4);
  OP(OP_RELEASE, .lease = 3);
  OP(OP_ADMIT, .lease = 4, .model = a, .agent = a, .pusd = 800, .in = 9);
  OP(OP_RELEASE, .lease = 4);
  OP(OP_ADMIT, .lease = 5, .model = b, .agent = a, .pusd = 900, .in = 9);
  OP(OP_CHARGE, .lease = 5, .pusd = 100, .in = 1, .out = 1);
  OP(OP_SETTLE, .lease = 5, .flags = LM_SETTLE_UNMETERED);
  OP(OP_ADMIT, .lease = 6, .model = a, .agent = b, .pusd = 1200, .in = 30);
  OP(OP_CHARGE, .lease = 6, .pusd = 700, .in = 3, .out = 4);
  /* lease 6 is never finished: the child exits holding it */
#undef OP
  return n;
}

/* What a child writes where the parent reads it (a shared memfd). */
struct kid_log {
  _Atomic uint32_t started; /* ops begun: index of the one in flight + 1 */
  _Atomic uint32_t done;    /* ops finished */
  _Atomic uint64_t points;  /* crash points passed (an unkilled run) */
  _Atomic uint32_t failed;  /* the engine answered what it must not */
};

static int64_t kid_clock_now = T0;
static int64_t kid_clock(void *ctx) {
  (void)ctx;
  return kid_clock_now;
}

static int run_child(const char *budget, int id, int race, uint64_t crash_at,
                     struct kid_log *log, int gate_fd) {
  struct op ops[MAX_OPS];
  int n = workload(id, race, ops);
  struct lm_budget *b = NULL;
  char err[256];
  if (lm_budget_open(budget, false, &b, err, sizeof(err)) != 0) {
    fprintf(stderr, "child: %s\n", err);
    return 2;
  }
  lm_budget_set_clock(b, kid_clock, NULL);
  if (gate_fd >= 0) { /* a race: start when the parent says go */
    char c;
    while (read(gate_fd, &c, 1) < 0 && errno == EINTR)
      ;
  }
  struct lm_lease leases[MAX_LEASES];
  lm_crash_arm(crash_at);
  for (int i = 0; i < n; i++) {
    const struct op *o = &ops[i];
    struct lm_lease *l = &leases[o->lease];
    atomic_store(&log->started, (uint32_t)i + 1);
    struct lm_call call = {.model = models[o->model],
                           .provider = providers[o->model],
                           .agent = agents[o->agent],
                           .est_pusd = o->pusd,
                           .est_tokens = o->in,
                           .est_input_tokens = o->in};
    struct lm_denial why;
    struct lm_usage u = {
        .input = o->in, .output = o->out, .cache_read = o->cache_read};
    switch (o->kind) {
    case OP_ADMIT:
      if (lm_budget_admit(b, &call, l, &why) != 0)
        atomic_store(&log->failed, 1);
      break;
    case OP_DENY:
      call.max_call_pusd = 1;
      if (lm_budget_admit(b, &call, l, &why) == 0)
        atomic_store(&log->failed, 1);
      break;
    case OP_CHARGE:
      lm_budget_charge(b, l, o->in || o->out ? &u : NULL, o->pusd);
      break;
    case OP_SETTLE:
      lm_budget_settle(b, l, o->flags);
      break;
    case OP_RELEASE:
      lm_budget_release(b, l);
      break;
    case OP_TICK:
      kid_clock_now += 3600;
      break;
    case OP_RESET:
      lm_budget_reset(b);
      break;
    case OP_CONFIGURE: {
      struct lm_limit_config c = LM_LIMITS_KEEP;
      c.hard_pusd = 1000000000000LL; /* $1: far above the workload */
      lm_budget_configure(b, &c);
      break;
    }
    }
    atomic_store(&log->done, (uint32_t)i + 1);
  }
  atomic_store(&log->points, lm_crash_points());
  lm_budget_close(b); /* lease 6 stays held: the process ends as if killed */
  return 0;
}

/* ---- what the counters must say ------------------------------------------ */

/* The counted (windowed) quantities of one counter set. */
struct hist {
  int64_t spent;
  uint64_t requests, denied, unmetered, unpriced;
  uint64_t tokens[LM_TOK_KINDS];
};
/* Sets: 0 total, 1-2 model rows, 3-4 agent rows, 5-6 spend rules. */
#define SETS 7
struct expect {
  struct hist h[SETS];
  int window; /* 0 or 1: the window the last finished op ran in */
};

struct sim_lease {
  int live, model, agent;
  int64_t charged_pusd;
  uint64_t charged_tokens;
};

static void hist_add(struct expect *e, int model, int agent, int money_only,
                     const struct hist *d) {
  int sets[3] = {0, 1 + model, 3 + agent};
  for (int k = 0; k < 3 && !money_only; k++) {
    struct hist *h = &e->h[sets[k]];
    h->spent += d->spent;
    h->requests += d->requests;
    h->denied += d->denied;
    h->unmetered += d->unmetered;
    h->unpriced += d->unpriced;
    for (int t = 0; t < LM_TOK_KINDS; t++)
      h->tokens[t] += d->tokens[t];
  }
  if (model == 0) /* rule "gpt-*" */
    e->h[5].spent += d->spent;
  if (agent == 0) /* rule "agent-a" */
    e->h[6].spent += d->spent;
}

/* Adds to e what child `id` did when its first `n` ops took effect, and
 * what reclaiming its unfinished leases then adds. */
static void simulate(int id, int race, int n, struct expect *e) {
  struct op ops[MAX_OPS];
  workload(id, race, ops);
  struct sim_lease ls[MAX_LEASES] = {{0}};
  for (int i = 0; i < n; i++) {
    const struct op *o = &ops[i];
    struct sim_lease *l = &ls[o->lease];
    struct hist d = {0};
    switch (o->kind) {
    case OP_ADMIT:
      *l = (struct sim_lease){.live = 1, .model = o->model, .agent = o->agent};
      break;
    case OP_DENY:
      d.denied = 1;
      hist_add(e, o->model, o->agent, 0, &d);
      break;
    case OP_CHARGE: {
      int64_t pusd = o->pusd;
      if (pusd < 0 && -pusd > l->charged_pusd)
        pusd = -l->charged_pusd;
      struct lm_usage u = {
          .input = o->in, .output = o->out, .cache_read = o->cache_read};
      lm_usage_kinds(&u, d.tokens);
      d.spent = pusd;
      l->charged_pusd += pusd;
      l->charged_tokens += o->in + o->out;
      hist_add(e, l->model, l->agent, 0, &d);
      break;
    }
    case OP_SETTLE:
    case OP_RELEASE:
      d.requests = o->kind == OP_SETTLE || l->charged_pusd > 0 ||
                   l->charged_tokens > 0;
      d.unmetered = (o->flags & LM_SETTLE_UNMETERED) != 0;
      d.unpriced = (o->flags & LM_SETTLE_UNPRICED) != 0;
      hist_add(e, l->model, l->agent, 0, &d);
      l->live = 0;
      break;
    case OP_TICK:
    case OP_RESET:
      memset(e->h, 0, sizeof(e->h)); /* the new window counts from zero */
      e->window += o->kind == OP_TICK;
      break;
    case OP_CONFIGURE:
      break;
    }
  }
  for (int k = 0; k < MAX_LEASES; k++) /* reclaimed: kept, one request */
    if (ls[k].live && ls[k].charged_pusd > 0) {
      struct hist d = {.requests = 1};
      hist_add(e, ls[k].model, ls[k].agent, 0, &d);
    }
}

static const struct lm_snap_counters *find_row(const struct lm_snap_row *rows,
                                               int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (strcmp(rows[i].name, name) == 0)
      return &rows[i].c;
  return NULL;
}

static int hist_eq(const struct lm_snap_counters *c, const struct hist *h,
                   int money_only) {
  static const struct lm_snap_counters zero;
  if (!c)
    c = &zero; /* a row never made counts nothing */
  if (c->spent != h->spent)
    return 0;
  if (money_only)
    return 1;
  if (c->requests != h->requests || c->denied != h->denied ||
      c->unmetered != h->unmetered || c->unpriced != h->unpriced)
    return 0;
  for (int t = 0; t < LM_TOK_KINDS; t++)
    if (c->tokens[t] != h->tokens[t])
      return 0;
  return 1;
}

/* The counter sets of a snapshot, in the order of struct expect. */
static void snap_sets(const struct lm_snapshot *s,
                      const struct lm_snap_counters *c[SETS]) {
  c[0] = &s->total;
  for (int m = 0; m < 2; m++) {
    c[1 + m] = find_row(s->models, s->n_models, models[m]);
    c[3 + m] = find_row(s->agents, s->n_agents, agents[m]);
  }
  c[5] = c[6] = NULL;
  for (int r = 0; r < s->n_rules; r++)
    for (int k = 0; k < 2; k++)
      if (strcmp(s->rules[r].pattern, rule_pat[k]) == 0)
        c[5 + k] = &s->rules[r].c;
}

/* Whether the rows and the rules sum to the totals, and every reservation
 * is gone (no process is left). Returns a reason, or NULL. */
static const char *check_sums(const struct lm_snapshot *s) {
  struct lm_snap_counters sm = {0}, sa = {0};
  const struct lm_snap_counters *t = &s->total;
  for (int i = 0; i < s->n_models; i++) {
    sm.spent += s->models[i].c.spent;
    sm.requests += s->models[i].c.requests;
    sm.denied += s->models[i].c.denied;
    for (int k = 0; k < LM_TOK_KINDS; k++)
      sm.tokens[k] += s->models[i].c.tokens[k];
    if (s->models[i].c.reserved || s->models[i].c.reserved_requests)
      return "a model row still holds a reservation";
  }
  for (int i = 0; i < s->n_agents; i++) {
    sa.spent += s->agents[i].c.spent;
    sa.requests += s->agents[i].c.requests;
    sa.denied += s->agents[i].c.denied;
    for (int k = 0; k < LM_TOK_KINDS; k++)
      sa.tokens[k] += s->agents[i].c.tokens[k];
    if (s->agents[i].c.reserved || s->agents[i].c.reserved_requests)
      return "an agent row still holds a reservation";
  }
  if (sm.spent != t->spent || sa.spent != t->spent ||
      sm.requests != t->requests || sa.requests != t->requests ||
      sm.denied != t->denied || sa.denied != t->denied ||
      memcmp(sm.tokens, t->tokens, sizeof(sm.tokens)) != 0 ||
      memcmp(sa.tokens, t->tokens, sizeof(sa.tokens)) != 0)
    return "the model or agent rows do not sum to the total";
  for (int r = 0; r < s->n_rules; r++)
    if (s->rules[r].c.reserved)
      return "a rule still holds a reservation";
  if (t->reserved || t->reserved_requests || t->reserved_tokens)
    return "the total still holds a reservation";
  if (s->active_leases)
    return "a lease is still held";
  return NULL;
}

/* ---- one run ------------------------------------------------------------- */

struct run {
  int kids, race;
  uint64_t crash_at[MAX_KIDS];
  uint64_t recover_at; /* a first recoverer killed at this point (0: none) */
};

static int seq_no;
static struct kid_log *logs; /* MAX_KIDS of them, in a shared memfd */
static int log_fd = -1;
static int violations_shown;
static uint64_t recoverers_killed;

static void setup_budget(const char *name) {
  struct lm_limit_config cfg = LM_LIMITS_NONE;
  cfg.window = LM_WINDOW_HOUR;
  cfg.rpm = 1000000000; /* a rate that never paces: its bucket is drawn */
  struct lm_budget *b = NULL;
  char err[256];
  kid_clock_now = T0; /* the rules count from the workload's first window */
  if (lm_budget_create(name, true, &cfg, &b, err, sizeof(err)) != 0)
    goto fail;
  lm_budget_set_clock(b, kid_clock, NULL);
  if (lm_budget_add_rule(b, LM_RULE_MODEL, rule_pat[0], 1000000000000LL, err,
                         sizeof(err)) != 0 ||
      lm_budget_add_rule(b, LM_RULE_AGENT, rule_pat[1], 1000000000000LL, err,
                         sizeof(err)) != 0) {
  fail:
    fprintf(stderr, "setup: %s\n", err);
    exit(2);
  }
  lm_budget_close(b);
}

static pid_t spawn(const char *budget, int id, const struct run *r,
                   int gate_fd) {
  char sid[16], srace[16], sat[32], sfd[16], sgate[16];
  snprintf(sid, sizeof(sid), "%d", id);
  snprintf(srace, sizeof(srace), "%d", r->race);
  snprintf(sat, sizeof(sat), "%llu", (unsigned long long)r->crash_at[id]);
  snprintf(sfd, sizeof(sfd), "%d", log_fd);
  snprintf(sgate, sizeof(sgate), "%d", gate_fd);
  pid_t pid = fork();
  if (pid == 0) {
    execl("/proc/self/exe", "test_crash", "--child", budget, sid, srace, sat,
          sfd, sgate, (char *)NULL);
    _exit(127);
  }
  return pid;
}

/* Runs the children of r to their end (or their kill), recovers from this
 * process and checks. Returns 1 if the run violates, 0 if it holds; with
 * `points`, an unkilled solo run reports how many points it passed. */
static int run_once(const struct run *r, uint64_t *points) {
  char name[64];
  snprintf(name, sizeof(name), "lmcrash-%d-%d", (int)getpid(), seq_no++);
  setup_budget(name);
  memset(logs, 0, sizeof(*logs) * MAX_KIDS);
  int gate[2] = {-1, -1};
  /* the write end is not inherited: closing ours is the children's EOF */
  if (r->race && (pipe(gate) != 0 || fcntl(gate[1], F_SETFD, FD_CLOEXEC)))
    exit(2);
  pid_t pids[MAX_KIDS];
  for (int k = 0; k < r->kids; k++)
    pids[k] = spawn(name, k, r, gate[0]);
  if (r->race) { /* go: every child blocked on the pipe reads EOF at once */
    close(gate[0]);
    close(gate[1]);
  }
  int bad = 0;
  for (int k = 0; k < r->kids; k++) {
    int st;
    while (waitpid(pids[k], &st, 0) < 0 && errno == EINTR)
      ;
    int killed = WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
    int clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if ((!killed && !clean) || atomic_load(&logs[k].failed)) {
      fprintf(stderr, "  child %d (crash at %llu): status %d, failed %u\n", k,
              (unsigned long long)r->crash_at[k], st,
              atomic_load(&logs[k].failed));
      bad = 1;
    }
  }
  if (points)
    *points = atomic_load(&logs[0].points);

  /* Recover from here, another process: reclaim (and what it reconciles). */
  struct op ops[MAX_OPS];
  int tick = -1, n = workload(0, r->race, ops);
  for (int i = 0; i < n; i++)
    if (ops[i].kind == OP_TICK)
      tick = i;
  static int64_t now;
  now = T0;
  if (!r->race && tick >= 0 && atomic_load(&logs[0].done) > (uint32_t)tick)
    now = T0 + 3600;
  if (r->recover_at) { /* a recoverer that dies recovering, recovered */
    char sat[32], snow[32];
    snprintf(sat, sizeof(sat), "%llu", (unsigned long long)r->recover_at);
    snprintf(snow, sizeof(snow), "%lld", (long long)now);
    pid_t pid = fork();
    if (pid == 0) {
      execl("/proc/self/exe", "test_crash", "--recover", name, sat, snow,
            (char *)NULL);
      _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
      ;
    recoverers_killed += WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
    if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) &&
        !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
      fprintf(stderr, "  recoverer: status %d\n", st);
      bad = 1;
    }
  }
  struct lm_budget *b = NULL;
  char err[256];
  if (lm_budget_open(name, false, &b, err, sizeof(err)) != 0) {
    fprintf(stderr, "recover: %s\n", err);
    exit(2);
  }
  lm_budget_set_clock(b, kid_clock, NULL);
  kid_clock_now = now;
  lm_budget_reclaim(b);
  struct lm_snapshot *s = calloc(1, sizeof(*s));
  if (!s || lm_budget_snapshot(b, s) != 0)
    exit(2);
  lm_budget_close(b);
  if (!getenv("LMCRASH_KEEP"))
    lm_budget_remove(name, err, sizeof(err));

  const char *why = check_sums(s);
  /* Each child's op in flight took effect wholly or not at all: some
   * choice of those must give every counter exactly. */
  int amb[MAX_KIDS], nchoice = 1;
  for (int k = 0; k < r->kids; k++) {
    amb[k] = atomic_load(&logs[k].started) > atomic_load(&logs[k].done);
    nchoice <<= amb[k];
  }
  int matched = 0;
  struct expect last = {0};
  for (int c = 0; c < nchoice && !matched; c++) {
    struct expect e = {0};
    for (int k = 0, bit = 0; k < r->kids; k++) {
      int n_applied = (int)atomic_load(&logs[k].done);
      if (amb[k])
        n_applied += (c >> bit++) & 1;
      simulate(k, r->race, n_applied, &e);
    }
    const struct lm_snap_counters *got[SETS];
    snap_sets(s, got);
    matched = 1;
    for (int i = 0; i < SETS; i++)
      if (!hist_eq(got[i], &e.h[i], i >= 5))
        matched = 0;
    last = e;
  }
  if (!matched && !why)
    why = "no outcome of the operations in flight gives these counters";
  if (why || bad) {
    if (violations_shown++ < 8) {
      fprintf(stderr, "  violation:");
      for (int k = 0; k < r->kids; k++)
        fprintf(stderr, " child %d killed at point %llu (op %u of %d)", k,
                (unsigned long long)r->crash_at[k],
                atomic_load(&logs[k].started), n);
      fprintf(stderr, ": %s\n", why ? why : "the child failed");
      fprintf(stderr, "    total spent %lld requests %llu reserved %lld\n",
              (long long)s->total.spent, (unsigned long long)s->total.requests,
              (long long)s->total.reserved);
      const struct lm_snap_counters *got[SETS];
      snap_sets(s, got);
      for (int i = 0; i < SETS; i++)
        fprintf(stderr,
                "    set %d: spent %lld/%lld requests %llu/%llu denied "
                "%llu/%llu input %llu/%llu\n",
                i, got[i] ? (long long)got[i]->spent : 0,
                (long long)last.h[i].spent,
                got[i] ? (unsigned long long)got[i]->requests : 0,
                (unsigned long long)last.h[i].requests,
                got[i] ? (unsigned long long)got[i]->denied : 0,
                (unsigned long long)last.h[i].denied,
                got[i] ? (unsigned long long)got[i]->tokens[0] : 0,
                (unsigned long long)last.h[i].tokens[0]);
    }
    bad = 1;
  }
  free(s);
  return bad;
}

/* ---- the tests ----------------------------------------------------------- */

static int full;
static uint64_t total_points, total_runs, total_violations;

/* One solo child, killed at each point of its workload in turn. */
LM_TEST(test_crash_at_every_point_conserves_money_exactly) {
  struct run r = {.kids = 1};
  uint64_t points = 0;
  CHECK(run_once(&r, &points) == 0); /* never killed: the reference run */
  CHECK(points > 0);
  uint64_t runs = 0, bad = 0, step = full ? 1 : 3;
  for (uint64_t p = 1; p <= points; p += step) {
    r.crash_at[0] = p;
    bad += (uint64_t)run_once(&r, NULL);
    runs++;
  }
  printf("crash sweep: %llu crash points, %llu runs (every %spoint), "
         "%llu violations\n",
         (unsigned long long)points, (unsigned long long)runs,
         step == 1 ? "" : "3rd ", (unsigned long long)bad);
  total_points += points;
  total_runs += runs + 1;
  total_violations += bad;
  CHECK_EQ_U64(bad, 0);
}

/* Several children racing on one budget, each killed at a random point. */
LM_TEST(test_racing_processes_killed_at_random_points_conserve_exactly) {
  struct run r = {.kids = 3, .race = 1};
  uint64_t points = 0;
  struct run solo = {.kids = 1, .race = 1};
  CHECK(run_once(&solo, &points) == 0);
  uint64_t runs = full ? 400 : 40, bad = 0;
  unsigned seed = 12345;
  for (uint64_t i = 0; i < runs; i++) {
    for (int k = 0; k < r.kids; k++) /* a few beyond the end: not killed */
      r.crash_at[k] = 1 + (uint64_t)rand_r(&seed) % (points + points / 8);
    bad += (uint64_t)run_once(&r, NULL);
  }
  printf("crash races: %d processes, %llu crash points each, %llu runs, "
         "%llu violations\n",
         r.kids, (unsigned long long)points, (unsigned long long)runs,
         (unsigned long long)bad);
  total_runs += runs + 1;
  total_violations += bad;
  CHECK_EQ_U64(bad, 0);
}

/* A recoverer: reclaims (rolling back a dead step first), armed. */
static int run_recoverer(const char *budget, uint64_t crash_at, int64_t now) {
  struct lm_budget *b = NULL;
  char err[256];
  if (lm_budget_open(budget, false, &b, err, sizeof(err)) != 0)
    return 2;
  kid_clock_now = now;
  lm_budget_set_clock(b, kid_clock, NULL);
  lm_crash_arm(crash_at);
  lm_budget_reclaim(b);
  lm_budget_close(b);
  return 0;
}

/* A process killed at a random point, and the first process to recover
 * it killed at a random point of its recovery (the roll-back of the dead
 * step, the refunds): the next recoverer finishes both, exactly. */
LM_TEST(test_recovery_killed_midway_is_recovered_exactly) {
  struct run r = {.kids = 1};
  uint64_t points = 0;
  CHECK(run_once(&r, &points) == 0);
  uint64_t runs = full ? 400 : 40, bad = 0;
  unsigned seed = 777;
  for (uint64_t i = 0; i < runs; i++) {
    r.crash_at[0] = 1 + (uint64_t)rand_r(&seed) % points;
    r.recover_at = 1 + (uint64_t)rand_r(&seed) % 64;
    bad += (uint64_t)run_once(&r, NULL);
  }
  printf("crash recoveries: %llu runs, the first recoverer killed mid-way "
         "in %llu of them, %llu violations\n",
         (unsigned long long)runs, (unsigned long long)recoverers_killed,
         (unsigned long long)bad);
  total_runs += runs + 1;
  total_violations += bad;
  CHECK_EQ_U64(bad, 0);
}

/* The invariant checks are not vacuous: a model row's spent moved behind
 * the engine's back (what a lost add did) is caught by the next step,
 * which aborts. In a forked child, its stderr kept out of the log. */
LM_TEST(test_invariant_check_catches_a_row_out_of_step_with_the_total) {
  char name[64];
  snprintf(name, sizeof(name), "lmcrash-%d-inv", (int)getpid());
  setup_budget(name);
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2);
    struct lm_budget *b = NULL;
    char err[256];
    if (lm_budget_open(name, false, &b, err, sizeof(err)) != 0)
      _exit(2);
    lm_budget_set_clock(b, kid_clock, NULL);
    struct lm_call call = {
        .model = models[0], .agent = agents[0], .est_pusd = 10};
    struct lm_lease l;
    struct lm_denial why;
    if (lm_budget_admit(b, &call, &l, &why) != 0)
      _exit(3);
    lm_budget_charge(b, &l, NULL, 5);
    lm_budget_settle(b, &l, 0); /* every step so far checked and held */
    char path[80];
    snprintf(path, sizeof(path), "/%s", name);
    int fd = shm_open(path, O_RDWR, 0);
    struct lm_segment *seg = mmap(NULL, sizeof(*seg), PROT_READ | PROT_WRITE,
                                  MAP_SHARED, fd, 0);
    if (seg == MAP_FAILED)
      _exit(4);
    for (int i = 0; i < LM_ROWS; i++) /* half of a charge: the row only */
      if (strcmp(seg->models[i].name, models[0]) == 0)
        atomic_fetch_add(&seg->models[i].c.spent, 7);
    lm_budget_admit(b, &call, &l, &why); /* must abort at its step's end */
    _exit(0);
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
  char err[256];
  lm_budget_remove(name, err, sizeof(err));
}

int main(int argc, char **argv) {
  if (argc == 5 && strcmp(argv[1], "--recover") == 0)
    return run_recoverer(argv[2], strtoull(argv[3], NULL, 10),
                         strtoll(argv[4], NULL, 10));
  if (argc == 8 && strcmp(argv[1], "--child") == 0) {
    struct kid_log *kl = mmap(NULL, sizeof(*kl) * MAX_KIDS,
                              PROT_READ | PROT_WRITE, MAP_SHARED, atoi(argv[6]),
                              0);
    if (kl == MAP_FAILED)
      return 2;
    int id = atoi(argv[3]);
    return run_child(argv[2], id, atoi(argv[4]), strtoull(argv[5], NULL, 10),
                     &kl[id], atoi(argv[7]));
  }
  full = argc > 1 && strcmp(argv[1], "--full") == 0;
  log_fd = memfd_create("lmcrash-log", 0); /* inherited across exec */
  if (log_fd < 0 || ftruncate(log_fd, sizeof(*logs) * MAX_KIDS) != 0)
    return 2;
  logs = mmap(NULL, sizeof(*logs) * MAX_KIDS, PROT_READ | PROT_WRITE,
              MAP_SHARED, log_fd, 0);
  if (logs == MAP_FAILED)
    return 2;
  LM_RUN(test_crash_at_every_point_conserves_money_exactly);
  LM_RUN(test_racing_processes_killed_at_random_points_conserve_exactly);
  LM_RUN(test_recovery_killed_midway_is_recovered_exactly);
  LM_RUN(test_invariant_check_catches_a_row_out_of_step_with_the_total);
  printf("crash test: %llu crash points, %llu runs, %llu violations\n",
         (unsigned long long)total_points, (unsigned long long)total_runs,
         (unsigned long long)total_violations);
  /* this engine is built with the invariant checks (crash.mk): every
   * child checked them after each of its steps, the recoveries here too */
  printf("crash test: invariants checked after %llu recovery steps here\n",
         (unsigned long long)lm_shm_invariant_checks());
  LM_TEST_END();
}
