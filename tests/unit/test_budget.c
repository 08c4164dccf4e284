/* test_budget.c — the budget engine: limits, windows, leases, crashes.
 *
 * Every test uses its own budget (removed afterwards) and, for the
 * multi-process cases, real fork()ed processes. The whole list runs twice:
 * on the shared-memory backend (real segments), then on the in-memory
 * backend of budget_mem.c through lm_budget_force_backend, which shows
 * that nothing a test needs goes around the lm_budget_ops seam but removing
 * a budget (the interface has no such operation: each backend's own remove
 * is called). Lines are suffixed [shm] and [mem]. No test is shm-only: none
 * reads /dev/shm or a segment's bytes (the window and money tests touch no
 * budget at all, and simply run twice).
 */
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "budget.h"
#include "budget_mem.h"
#include "lm_test.h"
#include "money.h"
#include "window.h"

#define USD(x) ((int64_t)((x)*1000000) * 1000000LL) /* exact for 6 dp */

static char bname[64];
static int seq;

/* The backend under test: how its budgets are created (lm_budget_create
 * through the forced backend, or the name's own) and removed. */
struct backend_case {
  const char *suffix;
  const struct lm_budget_backend *forced; /* NULL: chosen by the name */
  int (*remove)(const char *name);
};

static int shm_remove(const char *name) {
  return lm_segment_remove(name, NULL, 0);
}

static const struct backend_case backend_shm = {"[shm]", NULL, shm_remove};
static const struct backend_case backend_mem = {"[mem]", &lm_budget_backend_mem,
                                                lm_budget_mem_remove};
static const struct backend_case *backend = &backend_shm;

static void remove_budget(const char *name) { backend->remove(name); }

static struct lm_budget *fresh(int64_t hard, int window, int strict) {
  snprintf(bname, sizeof(bname), "lmtest-%d-%d", (int)getpid(), seq++);
  struct lm_limit_config c = LM_LIMITS_NONE;
  c.hard_pusd = hard;
  c.window = window;
  c.mode = strict;
  struct lm_budget *b = NULL;
  char err[256];
  if (lm_budget_create(bname, true, &c, &b, err, sizeof(err)) != 0) {
    fprintf(stderr, "create: %s\n", err);
    exit(2);
  }
  return b;
}

static void done(struct lm_budget *b) {
  lm_budget_close(b);
  remove_budget(bname);
}

static struct lm_call call_of(const char *model, int64_t est) {
  struct lm_call c = {
      .model = model, .agent = "tester", .est_pusd = est, .est_tokens = 100};
  return c;
}

static void snap(struct lm_budget *b, struct lm_snapshot *s) {
  lm_budget_snapshot(b, s);
}

static struct lm_snapshot S; /* big: keep it off the stack */

LM_TEST(test_admit_charge_settle_moves_reservation_to_spent) {
  struct lm_budget *b = fresh(USD(10), LM_WINDOW_NONE, LM_MODE_OPTIMISTIC);
  struct lm_lease l;
  struct lm_denial why;
  struct lm_call c = call_of("gpt-4o", USD(1));
  CHECK(lm_budget_admit(b, &c, &l, &why) == 0);
  snap(b, &S);
  CHECK_EQ_I64(S.total.reserved, USD(1));
  CHECK_EQ_U64(S.total.reserved_requests, 1);
  struct lm_usage u = {.input = 100, .output = 20};
  lm_budget_charge(b, &l, &u, USD(0.25));
  snap(b, &S);
  CHECK_EQ_I64(S.total.spent, USD(0.25));
  CHECK_EQ_I64(S.total.reserved, USD(0.75));
  lm_budget_settle(b, &l, 0);
  snap(b, &S);
  CHECK_EQ_I64(S.total.spent, USD(0.25));
  CHECK_EQ_I64(S.total.reserved, 0);
  CHECK_EQ_U64(S.total.requests, 1);
  CHECK_EQ_U64(S.total.reserved_requests, 0);
  CHECK_EQ_U64(S.total.tokens[LM_TOK_INPUT], 100);
  CHECK_EQ_U64(S.total.tokens[LM_TOK_OUTPUT], 20);
  CHECK_EQ_U64(S.active_leases, 0);
  CHECK(S.n_models == 1 && strcmp(S.models[0].name, "gpt-4o") == 0);
  CHECK_EQ_I64(S.models[0].c.spent, USD(0.25));
  CHECK(S.n_agents == 1 && strcmp(S.agents[0].name, "tester") == 0);
  done(b);
}

LM_TEST(test_charge_beyond_estimate_is_charged_in_full) {
  struct lm_budget *b = fresh(USD(10), LM_WINDOW_NONE, LM_MODE_OPTIMISTIC);
  struct lm_lease l;
  struct lm_denial why;
  struct lm_call c = call_of("m", USD(1));
  CHECK(lm_budget_admit(b, &c, &l, &why) == 0);
  lm_budget_charge(b, &l, NULL, USD(3));
  snap(b, &S);
  CHECK_EQ_I64(S.total.spent, USD(3));
  CHECK_EQ_I64(S.total.reserved, 0);
  lm_budget_settle(b, &l, 0);
  snap(b, &S);
  CHECK_EQ_I64(S.total.reserved, 0);
  done(b);
}

LM_TEST(test_release_refunds_everything) {
  struct lm_budget *b = fresh(USD(10), LM_WINDOW_NONE, LM_MODE_OPTIMISTIC);
  struct lm_lease l;
  struct lm_denial why;
  struct lm_call c = call_of("m", USD(2));
  CHECK(lm_budget_admit(b, &c, &l, &why) == 0);
  lm_budget_release(b, &l);
  snap(b, &S);
  CHECK_EQ_I64(S.total.spent, 0);
  CHECK_EQ_I64(S.total.reserved, 0);
  CHECK_EQ_U64(S.total.requests, 0);
  CHECK_EQ_U64(S.total.reserved_requests, 0);
  done(b);
}

LM_TEST(test_hard_limit_denies_with_reason_once_spent) {
  struct lm_budget *b = fresh(USD(1), LM_WINDOW_NONE, LM_MODE_OPTIMISTIC);
  struct lm_lease l;
  struct lm_denial why;
  struct lm_call c = call_of("m", USD(0.5));
  CHECK(lm_budget_admit(b, &c, &l, &why) == 0);
  lm_budget_charge(b, &l, NULL, USD(1));
  lm_budget_settle(b, &l, 0);
  CHECK(lm_budget_admit(b, &c, &l, &why) == -1);
  CHECK_EQ_I64(why.kind, LM_DENY_HARD);
  CHECK_EQ_I64(why.limit, USD(1));
  CHECK_EQ_I64(why.retry_after_s, -1);
  char line[256];
  lm_denial_format(&why, "b", line, sizeof(line));
  CHECK(strstr(line, "hard limit $1.00 reached") != NULL);
  snap(b, &S);
  CHECK_EQ_U64(S.total.denied, 1);
  CHECK_EQ_U64(S.models[0].c.denied, 1);
  done(b);
}

LM_TEST(test_optimistic_overshoot_is_at_most_one_request) {
  struct lm_budget *b = fresh(USD(1), LM_WINDOW_NONE, LM_MODE_OPTIMISTIC);
  struct lm_lease l1, l2;
  struct lm_denial why;
  struct lm_call c = call_of("m", USD(0.6));
  CHECK(lm_budget_admit(b, &c, &l1, &why) == 0); /* 0 + 0 < 1 */
  CHECK(lm_budget_admit(b, &c, &l2, &why) == 0); /* 0 + 0.6 < 1 */
  struct lm_lease l3;
  CHECK(lm_budget_admit(b, &c, &l3, &why) == -1); /* 0 + 1.2 >= 1 */
  lm_budget_settle(b, &l1, 0);
  lm_budget_settle(b, &l2, 0);
  done(b);
}

LM_TEST(test_strict_admits_only_what_fits) {
  struct lm_budget *b = fresh(USD(1), LM_WINDOW_NONE, LM_MODE_STRICT);
  struct lm_lease l1, l2;
  struct lm_denial why;
  struct lm_call c = call_of("m", USD(0.6));
  CHECK(lm_budget_admit(b, &c, &l1, &why) == 0);
  CHECK(lm_budget_admit(b, &c, &l2, &why) == -1);
  CHECK_EQ_I64(why.kind, LM_DENY_HARD);
  CHECK_EQ_I64(why.used, USD(0.6));
  struct lm_call small = call_of("m", USD(0.4));
  CHECK(lm_budget_admit(b, &small, &l2, &why) == 0); /* exactly fits */
  lm_budget_settle(b, &l1, 0);
  lm_budget_settle(b, &l2, 0);
  done(b);
}

LM_TEST(test_zero_priced_call_ignores_dollar_limit_but_not_requests) {
  struct lm_budget *b = fresh(USD(1), LM_WINDOW_NONE, LM_MODE_STRICT);
  struct lm_limit_config cfg = LM_LIMITS_KEEP;
  cfg.requests = 2;
  lm_budget_configure(b, &cfg);
  struct lm_lease l;
  struct lm_denial why;
  struct lm_call paid = call_of("gpt", USD(1));
  CHECK(lm_budget_admit(b, &paid, &l, &why) == 0);
  lm_budget_charge(b, &l, NULL, USD(1));
  lm_budget_settle(b, &l, 0);
  struct lm_call local = call_of("llama3", 0);
  local.zero_priced = true;
  CHECK(lm_budget_admit(b, &local, &l, &why) == 0); /* $ limit reached */
  lm_budget_settle(b, &l, 0);
  CHECK(lm_budget_admit(b, &local, &l, &why) == -1);
  CHECK_EQ_I64(why.kind, LM_DENY_REQUESTS);
  CHECK_EQ_I64(why.limit, 2);
  done(b);
}

LM_TEST(test_token_limit_counts_input_and_output) {
  struct lm_budget *b = fresh(-1, LM_WINDOW_NONE, LM_MODE_OPTIMISTIC);
  struct lm_limit_config cfg = LM_LIMITS_KEEP;
  cfg.tokens = 1000;
  lm_budget_configure(b, &cfg);
  struct lm_lease l;
  struct lm_denial why;
  struct lm_call c = call_of("m", 0);
  c.est_tokens = 10;
  CHECK(lm_budget_admit(b, &c, &l, &why) == 0);
  struct lm_usage u = {.input = 900, .output = 100};
  lm_budget_charge(b, &l, &u, 0);
  lm_budget_settle(b, &l, 0);
  CHECK(lm_budget_admit(b, &c, &l, &why) == -1);
  CHECK_EQ_I64(why.kind, LM_DENY_TOKENS);
  CHECK_EQ_I64(why.used, 1000);
  done(b);
}

LM_TEST(test_model_glob_limit_counts_matching_models_together) {
  struct lm_budget *b = fresh(USD(100), LM_WINDOW_NONE, LM_MODE_OPTIMISTIC);
  char err[128];
  CHECK(lm_budget_add_rule(b, LM_RULE_MODEL, "claude-*", USD(2.5), err,
                           sizeof(err)) == 0);
  struct lm_lease l;
  struct lm_denial why;
  struct lm_call a = call_of("claude-sonnet-4-5", USD(0.1));
  struct lm_call h = call_of("claude-haiku-4-5", USD(0.1));
  struct lm_call g = call_of("gpt-4o", USD(0.1));
  CHECK(lm_budget_admit(b, &a, &l, &why) == 0);
  lm_budget_charge(b, &l, NULL, USD(1.5));
  lm_budget_settle(b, &l, 0);
  CHECK(lm_budget_admit(b, &h, &l, &why) == 0);
  lm_budget_charge(b, &l, NULL, USD(1));
  lm_budget_settle(b, &l, 0);
  CHECK(lm_budget_admit(b, &a, &l, &why) == -1); /* 2.5 spent by claude-* */
  CHECK_EQ_I64(why.kind, LM_DENY_MODEL);
  CHECK_STR(why.subject, "claude-*");
  char line[256];
  lm_denial_format(&why, "b", line, sizeof(line));
  CHECK(strstr(line, "model limit claude-*=$2.50") != NULL);
  CHECK(lm_budget_admit(b, &g, &l, &why) == 0); /* other models unaffected */
  lm_budget_settle(b, &l, 0);
  done(b);
}

LM_TEST(test_agent_limit_and_rule_added_live_counts_past_spend) {
  struct lm_budget *b = fresh(-1, LM_WINDOW_NONE, LM_MODE_OPTIMISTIC);
  struct lm_lease l;
  struct lm_denial why;
  struct lm_call c = call_of("m", USD(0.1));
  c.agent = "planner";
  CHECK(lm_budget_admit(b, &c, &l, &why) == 0);
  lm_budget_charge(b, &l, NULL, USD(1));
  lm_budget_settle(b, &l, 0);
  char err[128];
  CHECK(lm_budget_add_rule(b, LM_RULE_AGENT, "planner", USD(1), err,
                           sizeof(err)) == 0);
  CHECK(lm_budget_admit(b, &c, &l, &why) == -1);
  CHECK_EQ_I64(why.kind, LM_DENY_AGENT);
  c.agent = "coder";
  CHECK(lm_budget_admit(b, &c, &l, &why) == 0);
  lm_budget_settle(b, &l, 0);
  /* Removing the rule (negative limit) lets the planner through again. */
  CHECK(lm_budget_add_rule(b, LM_RULE_AGENT, "planner", -1, err, sizeof(err)) ==
        0);
  c.agent = "planner";
  CHECK(lm_budget_admit(b, &c, &l, &why) == 0);
  lm_budget_settle(b, &l, 0);
  done(b);
}

/* The admission memo (rows and rule mask of the thread's last call) must
 * never carry over from one budget handle to another, nor from a closed
 * handle to a new one mapped where the old one was. */
LM_TEST(test_admission_memo_is_per_handle) {
  struct lm_budget *a = fresh(-1, LM_WINDOW_NONE, LM_MODE_OPTIMISTIC);
  char aname[64];
  snprintf(aname, sizeof(aname), "%s", bname);
  struct lm_lease l;
  struct lm_denial why;
  struct lm_call c = call_of("zz-model", USD(0.1));
  c.agent = "zz-agent";
  CHECK(lm_budget_admit(a, &c, &l, &why) == 0);
  lm_budget_settle(a, &l, 0);
  /* the same call on a second budget, whose rows are still empty */
  struct lm_budget *b = fresh(-1, LM_WINDOW_NONE, LM_MODE_OPTIMISTIC);
  CHECK(lm_budget_admit(b, &c, &l, &why) == 0);
  lm_budget_charge(b, &l, NULL, USD(0.5));
  lm_budget_settle(b, &l, 0);
  snap(b, &S);
  CHECK_EQ_I64(S.n_models, 1);
  CHECK_EQ_I64(S.n_agents, 1);
  int found = 0;
  for (int i = 0; i < S.n_models; i++)
    if (strcmp(S.models[i].name, "zz-model") == 0) {
      found = 1;
      CHECK_EQ_I64(S.models[i].c.spent, USD(0.5));
    }
  CHECK(found);
  snap(a, &S);
  CHECK_EQ_I64(S.n_models, 1);
  CHECK_EQ_I64(S.models[0].c.spent, 0);
  done(b);
  lm_budget_close(a);
  remove_budget(aname);
}

static int64_t fake_now;
static int64_t fake_clock(void *ctx) {
  (void)ctx;
  return fake_now;
}

LM_TEST(test_day_window_resets_spend_once_and_keeps_reservations) {
  struct lm_budget *b = fresh(USD(1), LM_WINDOW_DAY, LM_MODE_OPTIMISTIC);
  fake_now = 1764115200 + 86400 - 10; /* 2025-11-26 23:59:50 UTC */
  lm_budget_set_clock(b, fake_clock, NULL);
  struct lm_lease l, inflight;
  struct lm_denial why;
  struct lm_call c = call_of("m", USD(0.1));
  CHECK(lm_budget_admit(b, &c, &l, &why) == 0);
  lm_budget_charge(b, &l, NULL, USD(1));
  lm_budget_settle(b, &l, 0);
  CHECK(lm_budget_admit(b, &c, &l, &why) == -1);
  CHECK_EQ_I64(why.retry_after_s, 10);
  char line[256];
  lm_denial_format(&why, "b", line, sizeof(line));
  CHECK(strstr(line, "retry after 10s (day window)") != NULL);
  fake_now += 10; /* midnight */
  snap(b, &S);
  CHECK_EQ_I64(S.total.spent, 0);
  CHECK_EQ_I64(S.resets_in_s, 86400);
  CHECK(lm_budget_admit(b, &c, &inflight, &why) == 0);
  lm_budget_charge(b, &inflight, NULL, USD(0.2));
  fake_now += 86400; /* next day, with a call still in flight */
  snap(b, &S);
  CHECK_EQ_I64(S.total.spent, 0);
  CHECK_EQ_I64(S.total.reserved, 0); /* its rest was taken by the charge */
  lm_budget_settle(b, &inflight, 0);
  snap(b, &S);
  CHECK_EQ_I64(S.total.reserved, 0);
  CHECK_EQ_I64(S.total.spent, 0);
  done(b);
}

LM_TEST(test_window_boundaries_are_calendar_utc) {
  int64_t t = 1764160496; /* 2025-11-26 12:34:56 UTC, a Wednesday */
  CHECK_EQ_I64(lm_window_start(LM_WINDOW_HOUR, t), 1764158400);
  CHECK_EQ_I64(lm_window_start(LM_WINDOW_DAY, t), 1764115200);
  CHECK_EQ_I64(lm_window_start(LM_WINDOW_WEEK, t), 1763942400);  /* Mon 24th */
  CHECK_EQ_I64(lm_window_start(LM_WINDOW_MONTH, t), 1761955200); /* Nov 1 */
  CHECK_EQ_I64(lm_window_next(LM_WINDOW_MONTH, t), 1764547200);  /* Dec 1 */
  CHECK_EQ_I64(lm_window_next(LM_WINDOW_MONTH, 1765000000), 1767225600);
  CHECK_EQ_I64(lm_window_start(LM_WINDOW_NONE, t), 0);
  CHECK_EQ_I64(lm_window_parse("week"), LM_WINDOW_WEEK);
  CHECK_EQ_I64(lm_window_parse("fortnight"), -1);
}

LM_TEST(test_rollover_races_reset_exactly_once) {
  /* 8 processes cross the hour boundary together, each charging 1000
   * calls of 1 pUSD after it: the new hour must hold all 8000. */
  struct lm_budget *b = fresh(-1, LM_WINDOW_HOUR, LM_MODE_OPTIMISTIC);
  fake_now = 1764158400 - 1;
  lm_budget_set_clock(b, fake_clock, NULL);
  struct lm_lease l;
  struct lm_denial why;
  struct lm_call c = call_of("m", 1);
  for (int i = 0; i < 500; i++) { /* old hour spend */
    lm_budget_admit(b, &c, &l, &why);
    lm_budget_charge(b, &l, NULL, 1);
    lm_budget_settle(b, &l, 0);
  }
  fake_now += 1;
  pid_t kids[8];
  for (int k = 0; k < 8; k++) {
    if ((kids[k] = fork()) == 0) {
      for (int i = 0; i < 1000; i++) {
        if (lm_budget_admit(b, &c, &l, &why) != 0)
          _exit(3);
        lm_budget_charge(b, &l, NULL, 1);
        lm_budget_settle(b, &l, 0);
      }
      _exit(0);
    }
  }
  int ok = 1;
  for (int k = 0; k < 8; k++) {
    int st;
    waitpid(kids[k], &st, 0);
    ok &= WIFEXITED(st) && WEXITSTATUS(st) == 0;
  }
  CHECK(ok);
  snap(b, &S);
  CHECK_EQ_I64(S.total.spent, 8000);
  CHECK_EQ_U64(S.total.requests, 8000);
  done(b);
}

LM_TEST(test_processes_in_parallel_give_exact_totals) {
  struct lm_budget *b = fresh(-1, LM_WINDOW_NONE, LM_MODE_OPTIMISTIC);
  enum { P = 8, M = 5000 };
  pid_t kids[P];
  for (int k = 0; k < P; k++) {
    if ((kids[k] = fork()) == 0) {
      struct lm_lease l;
      struct lm_denial why;
      char model[16];
      snprintf(model, sizeof(model), "model-%d", k % 3);
      struct lm_call c = call_of(model, 1000);
      for (int i = 0; i < M; i++) {
        if (lm_budget_admit(b, &c, &l, &why) != 0)
          _exit(3);
        struct lm_usage u = {.input = 3, .output = 2, .cache_read = 1};
        lm_budget_charge(b, &l, &u, 37500);
        lm_budget_settle(b, &l, 0);
      }
      _exit(0);
    }
  }
  int ok = 1;
  for (int k = 0; k < P; k++) {
    int st;
    waitpid(kids[k], &st, 0);
    ok &= WIFEXITED(st) && WEXITSTATUS(st) == 0;
  }
  CHECK(ok);
  snap(b, &S);
  CHECK_EQ_I64(S.total.spent, (int64_t)P * M * 37500);
  CHECK_EQ_U64(S.total.requests, (uint64_t)P * M);
  CHECK_EQ_U64(S.total.tokens[LM_TOK_INPUT], (uint64_t)P * M * 3);
  CHECK_EQ_U64(S.total.tokens[LM_TOK_CACHE_READ], (uint64_t)P * M);
  CHECK_EQ_I64(S.total.reserved, 0);
  CHECK_EQ_U64(S.total.reserved_requests, 0);
  CHECK_EQ_I64(S.n_models, 3);
  int64_t sum = 0;
  for (int i = 0; i < S.n_models; i++)
    sum += S.models[i].c.spent;
  CHECK_EQ_I64(sum, S.total.spent);
  done(b);
}

LM_TEST(test_kill9_storm_leaves_no_reserved_residue) {
  struct lm_budget *b = fresh(USD(1000), LM_WINDOW_NONE, LM_MODE_OPTIMISTIC);
  enum { P = 12 };
  /* Children loop admit/charge/settle; a pipe tells us each is running
   * (it has completed at least one call) so the kill lands mid-work. */
  for (int round = 0; round < 4; round++) {
    pid_t kids[P];
    int fds[2];
    if (pipe(fds) != 0)
      break;
    for (int k = 0; k < P; k++) {
      if ((kids[k] = fork()) == 0) {
        close(fds[0]);
        struct lm_lease l;
        struct lm_denial why;
        struct lm_call c = call_of("m", 5000);
        for (long i = 0;; i++) {
          if (lm_budget_admit(b, &c, &l, &why) != 0)
            continue;
          lm_budget_charge(b, &l, NULL, 7);
          if (i == 1 && write(fds[1], "x", 1) != 1)
            _exit(4);
          lm_budget_settle(b, &l, 0);
        }
      }
    }
    close(fds[1]);
    char x;
    for (int k = 0; k < P; k++)
      if (read(fds[0], &x, 1) != 1)
        break;
    close(fds[0]);
    for (int k = 0; k < P; k++)
      kill(kids[k], SIGKILL);
    for (int k = 0; k < P; k++)
      waitpid(kids[k], NULL, 0);
  }
  lm_budget_reclaim(b);
  snap(b, &S);
  CHECK_EQ_I64(S.total.reserved, 0);
  CHECK_EQ_U64(S.total.reserved_requests, 0);
  CHECK_EQ_U64(S.total.reserved_tokens, 0);
  CHECK_EQ_U64(S.active_leases, 0);
  CHECK(S.total.spent > 0);
  /* Every charge is 7 pUSD: spent is a whole number of charges. */
  CHECK_EQ_I64(S.total.spent % 7, 0);
  /* And the budget still works: no lock left behind. */
  struct lm_lease l;
  struct lm_denial why;
  struct lm_call c = call_of("m", 5000);
  CHECK(lm_budget_admit(b, &c, &l, &why) == 0);
  lm_budget_settle(b, &l, 0);
  done(b);
}

LM_TEST(test_dead_lease_is_reclaimed_by_admission_that_needs_room) {
  struct lm_budget *b = fresh(USD(1), LM_WINDOW_NONE, LM_MODE_STRICT);
  int fds[2];
  CHECK(pipe(fds) == 0);
  pid_t kid = fork();
  if (kid == 0) {
    struct lm_lease l;
    struct lm_denial why;
    struct lm_call c = call_of("m", USD(0.9));
    if (lm_budget_admit(b, &c, &l, &why) == 0)
      (void)!write(fds[1], "x", 1);
    pause();
    _exit(0);
  }
  char x;
  CHECK(read(fds[0], &x, 1) == 1);
  kill(kid, SIGKILL);
  waitpid(kid, NULL, 0);
  struct lm_lease l;
  struct lm_denial why;
  struct lm_call c = call_of("m", USD(0.5));
  CHECK(lm_budget_admit(b, &c, &l, &why) == 0); /* room made by reclaim */
  snap(b, &S);
  CHECK_EQ_I64(S.total.reserved, USD(0.5));
  CHECK(S.reclaimed >= 1);
  lm_budget_settle(b, &l, 0);
  done(b);
}

LM_TEST(test_reset_zeroes_spend_keeps_limits) {
  struct lm_budget *b = fresh(USD(1), LM_WINDOW_NONE, LM_MODE_OPTIMISTIC);
  struct lm_lease l;
  struct lm_denial why;
  struct lm_call c = call_of("m", USD(0.1));
  CHECK(lm_budget_admit(b, &c, &l, &why) == 0);
  lm_budget_charge(b, &l, NULL, USD(1));
  lm_budget_settle(b, &l, 0);
  CHECK(lm_budget_admit(b, &c, &l, &why) == -1);
  CHECK(lm_budget_reset(b) == 0);
  snap(b, &S);
  CHECK_EQ_I64(S.total.spent, 0);
  CHECK_EQ_I64(S.hard_pusd, USD(1));
  CHECK_EQ_I64(S.soft_pusd, USD(0.8));
  CHECK(lm_budget_admit(b, &c, &l, &why) == 0);
  lm_budget_settle(b, &l, 0);
  done(b);
}

/* The leak guard's two questions: is there a limit that refuses calls
 * (the hard limit or a spend rule; caps and rates are not), and its counts
 * of unmetered processes, which reset zeroes. */
LM_TEST(test_hard_limit_and_unmetered_process_counts) {
  struct lm_budget *b = fresh(-1, LM_WINDOW_NONE, LM_MODE_OPTIMISTIC);
  char err[128];
  CHECK(!lm_budget_hard_limit(b));
  CHECK(lm_budget_add_rule(b, LM_RULE_MODEL | LM_RULE_CALL_USD, "gpt-*", USD(1),
                           err, sizeof(err)) == 0);
  CHECK(!lm_budget_hard_limit(b)); /* a per-call cap stops no bill */
  CHECK(lm_budget_add_rule(b, LM_RULE_AGENT, "planner", USD(1), err,
                           sizeof(err)) == 0);
  CHECK(lm_budget_hard_limit(b));
  CHECK(lm_budget_add_rule(b, LM_RULE_AGENT, "planner", -1, err, sizeof(err)) ==
        0);
  CHECK(!lm_budget_hard_limit(b));
  struct lm_limit_config c = LM_LIMITS_KEEP;
  c.hard_pusd = USD(5);
  CHECK(lm_budget_configure(b, &c) == 0);
  CHECK(lm_budget_hard_limit(b));
  lm_budget_count_unmetered(b, true);
  lm_budget_count_unmetered(b, false);
  lm_budget_count_unmetered(b, false);
  snap(b, &S);
  CHECK_EQ_U64(S.unmetered_denied, 1);
  CHECK_EQ_U64(S.unmetered_warned, 2);
  CHECK(lm_budget_reset(b) == 0);
  snap(b, &S);
  CHECK_EQ_U64(S.unmetered_denied + S.unmetered_warned, 0);
  done(b);
}

LM_TEST(test_exact_pico_usd_money_arithmetic) {
  int64_t v;
  CHECK(lm_money_parse("0.0375", (size_t)-1, 6, 0, &v) == 0);
  CHECK_EQ_I64(v, 37500); /* $0.0375 / Mtok = 37,500 pUSD per token */
  CHECK(lm_money_parse("3e-06", (size_t)-1, 12, 0, &v) == 0);
  CHECK_EQ_I64(v, 3000000); /* LiteLLM USD per token */
  CHECK(lm_money_parse("1.25E-7", (size_t)-1, 12, 0, &v) == 0);
  CHECK_EQ_I64(v, 125000);
  CHECK(lm_money_parse("1e-13", (size_t)-1, 12, 0, &v) == -1); /* inexact */
  CHECK(lm_money_parse("abc", (size_t)-1, 12, 0, &v) == -1);
  CHECK(lm_money_parse("-1", (size_t)-1, 12, 0, &v) == -1);
  CHECK(lm_money_parse("1e400", (size_t)-1, 12, 0, &v) == -1);
  CHECK(lm_money_parse_usd("$2.50", &v) == 0);
  CHECK_EQ_I64(v, 2500000000000LL);
  char buf[32];
  CHECK_STR(lm_money_format(2500000000000LL, 2, buf, sizeof(buf)), "2.50");
  CHECK_STR(lm_money_format_exact(1375000, buf, sizeof(buf)), "0.000001375");
  CHECK_STR(lm_money_format(4999999, 6, buf, sizeof(buf)), "0.000005");
  /* 1,000,000 tokens at 37,500 pUSD each is exactly $0.0375 */
  CHECK_EQ_I64(lm_money_mul(1000000, 37500), 37500000000LL);
  CHECK_EQ_I64(lm_money_mul(INT64_MAX, 2), INT64_MAX);
}

/* A child holds a big reservation until told to settle for little. */
static pid_t holder(struct lm_budget *b, int64_t est, int64_t actual,
                    int *go_fd, int *ready_fd) {
  int go[2], ready[2];
  if (pipe(go) || pipe(ready))
    return -1;
  pid_t kid = fork();
  if (kid == 0) {
    close(go[1]);
    close(ready[0]);
    struct lm_lease l;
    struct lm_denial why;
    struct lm_call c = call_of("m", est);
    if (lm_budget_admit(b, &c, &l, &why) != 0)
      _exit(3);
    (void)!write(ready[1], "r", 1);
    char x;
    if (read(go[0], &x, 1) == 1) {
      lm_budget_charge(b, &l, NULL, actual);
      lm_budget_settle(b, &l, 0);
    }
    _exit(0);
  }
  close(go[0]);
  close(ready[1]);
  *go_fd = go[1];
  *ready_fd = ready[0];
  return kid;
}

LM_TEST(test_call_blocked_by_reservations_waits_and_is_admitted) {
  struct lm_budget *b = fresh(USD(1), LM_WINDOW_NONE, LM_MODE_STRICT);
  int go, ready;
  pid_t kid = holder(b, USD(0.9), USD(0.01), &go, &ready);
  char x;
  CHECK(read(ready, &x, 1) == 1);
  /* A second child waits; the holder settles only after it is waiting. */
  int fds[2];
  CHECK(pipe(fds) == 0);
  pid_t waiter = fork();
  if (waiter == 0) {
    struct lm_lease l;
    struct lm_denial why;
    struct lm_call c = call_of("m", USD(0.5));
    c.wait_ms = 20000;
    int rc = lm_budget_admit(b, &c, &l, &why);
    if (rc == 0)
      lm_budget_settle(b, &l, 0);
    (void)!write(fds[1], rc == 0 ? "A" : "D", 1);
    _exit(0);
  }
  /* Settle only once the waiter is asleep on the budget (it counts itself
   * in the segment's waiters), so this proves it waited. */
  int registered = 0;
  for (int i = 0; i < 200000 && !registered; i++) {
    snap(b, &S);
    registered = S.waiters == 1;
    if (!registered)
      sched_yield();
  }
  CHECK(registered);
  (void)!write(go, "g", 1);
  char verdict = 0;
  CHECK(read(fds[0], &verdict, 1) == 1);
  CHECK_EQ_I64(verdict, 'A');
  waitpid(kid, NULL, 0);
  waitpid(waiter, NULL, 0);
  snap(b, &S);
  CHECK_EQ_I64(S.total.spent, USD(0.01));
  CHECK_EQ_I64(S.total.reserved, 0);
  CHECK_EQ_U64(S.total.denied, 0);
  done(b);
}

LM_TEST(test_wait_is_bounded_and_the_reason_says_so) {
  struct lm_budget *b = fresh(USD(1), LM_WINDOW_NONE, LM_MODE_STRICT);
  int go, ready;
  pid_t kid = holder(b, USD(0.9), USD(0.01), &go, &ready);
  char x;
  CHECK(read(ready, &x, 1) == 1);
  struct lm_lease l;
  struct lm_denial why;
  struct lm_call c = call_of("m", USD(0.5));
  c.wait_ms = 300;
  CHECK(lm_budget_admit(b, &c, &l, &why) == -1);
  CHECK_EQ_I64(why.kind, LM_DENY_HARD);
  CHECK(why.waited_ms >= 300);
  char line[256];
  lm_denial_format(&why, "b", line, sizeof(line));
  CHECK(strstr(line, "waited 0s for in-flight calls") != NULL ||
        strstr(line, "waited 1s for in-flight calls") != NULL);
  (void)!write(go, "g", 1);
  waitpid(kid, NULL, 0);
  done(b);
}

/* Strict: refused because this call's estimate does not fit what is left,
 * not because the limit is reached; the line says which. */
LM_TEST(test_strict_refusal_says_the_estimate_does_not_fit) {
  struct lm_budget *b = fresh(USD(1), LM_WINDOW_NONE, LM_MODE_STRICT);
  struct lm_lease l;
  struct lm_denial why;
  struct lm_call c = call_of("m", USD(2));
  CHECK(lm_budget_admit(b, &c, &l, &why) == -1);
  CHECK_EQ_I64(why.kind, LM_DENY_HARD);
  char line[256];
  lm_denial_format(&why, "b", line, sizeof(line));
  CHECK(strstr(line, "estimate does not fit") != NULL);
  CHECK(strstr(line, "reached") == NULL);
  done(b);
}

LM_TEST(test_limit_really_reached_denies_without_waiting) {
  struct lm_budget *b = fresh(USD(1), LM_WINDOW_NONE, LM_MODE_OPTIMISTIC);
  struct lm_lease l;
  struct lm_denial why;
  struct lm_call c = call_of("m", USD(0.1));
  CHECK(lm_budget_admit(b, &c, &l, &why) == 0);
  lm_budget_charge(b, &l, NULL, USD(1));
  lm_budget_settle(b, &l, 0);
  c.wait_ms = 60000;
  CHECK(lm_budget_admit(b, &c, &l, &why) == -1);
  CHECK_EQ_I64(why.waited_ms, 0);
  char line[256];
  lm_denial_format(&why, "b", line, sizeof(line));
  CHECK(strstr(line, "hard limit $1.00 reached") != NULL);
  done(b);
}

LM_TEST(test_per_call_caps_deny_before_and_cut_during) {
  struct lm_budget *b = fresh(-1, LM_WINDOW_NONE, LM_MODE_OPTIMISTIC);
  struct lm_limit_config cfg = LM_LIMITS_KEEP;
  cfg.max_call_pusd = USD(0.5);
  cfg.max_call_output_tokens = 1000;
  lm_budget_configure(b, &cfg);
  char err[128];
  CHECK(lm_budget_add_rule(b, LM_RULE_MODEL | LM_RULE_CALL_INPUT, "gpt-*", 5000,
                           err, sizeof(err)) == 0);
  struct lm_lease l;
  struct lm_denial why;
  struct lm_call c = call_of("gpt-4o", USD(0.6));
  CHECK(lm_budget_admit(b, &c, &l, &why) == -1);
  CHECK_EQ_I64(why.kind, LM_DENY_CALL_USD);
  char line[256];
  lm_denial_format(&why, "b", line, sizeof(line));
  CHECK(strstr(line, "per-call cap $0.5000 exceeded") != NULL);
  c.est_pusd = USD(0.1);
  c.est_output_tokens = 2000;
  CHECK(lm_budget_admit(b, &c, &l, &why) == -1);
  CHECK_EQ_I64(why.kind, LM_DENY_CALL_OUTPUT);
  c.est_output_tokens = 500;
  c.est_input_tokens = 6000;
  CHECK(lm_budget_admit(b, &c, &l, &why) == -1);
  CHECK_EQ_I64(why.kind, LM_DENY_CALL_INPUT);
  CHECK_STR(why.subject, "gpt-*");
  struct lm_call other = call_of("claude-x", USD(0.1));
  other.est_input_tokens = 6000; /* the rule is for gpt-* only */
  CHECK(lm_budget_admit(b, &other, &l, &why) == 0);
  lm_budget_settle(b, &l, 0);
  c.est_input_tokens = 100;
  c.max_call_pusd = USD(0.05); /* the environment's cap is tighter */
  CHECK(lm_budget_admit(b, &c, &l, &why) == -1);
  c.max_call_pusd = 0;
  CHECK(lm_budget_admit(b, &c, &l, &why) == 0);
  struct lm_usage u = {.input = 100, .output = 1001};
  CHECK(lm_budget_over_call_caps(b, &l, &c, &u, USD(0.01), &why));
  CHECK_EQ_I64(why.kind, LM_DENY_CALL_OUTPUT);
  u.output = 10;
  CHECK(!lm_budget_over_call_caps(b, &l, &c, &u, USD(0.01), &why));
  CHECK(lm_budget_over_call_caps(b, &l, &c, &u, USD(0.51), &why));
  lm_budget_settle(b, &l, 0);
  done(b);
}

LM_TEST(test_snapshot_that_goes_down_is_refunded_not_charged_twice) {
  /* Gemini usage snapshots are not monotonic: 100, then 40, then 100 must
   * end at 100 charged, not 160. */
  struct lm_budget *b = fresh(USD(10), LM_WINDOW_NONE, LM_MODE_OPTIMISTIC);
  struct lm_lease l;
  struct lm_denial why;
  struct lm_call c = call_of("gemini-2.5-flash", 1000);
  c.est_tokens = 1000;
  CHECK(lm_budget_admit(b, &c, &l, &why) == 0);
  struct lm_usage up = {.input = 10, .output = 90};
  lm_budget_charge(b, &l, &up, 100);
  struct lm_usage down = {.input = 0, .output = (uint64_t)-60};
  lm_budget_charge(b, &l, &down, -60);
  struct lm_usage again = {.input = 0, .output = 60};
  lm_budget_charge(b, &l, &again, 60);
  lm_budget_settle(b, &l, 0);
  snap(b, &S);
  CHECK_EQ_I64(S.total.spent, 100);
  CHECK_EQ_U64(S.total.tokens[LM_TOK_OUTPUT], 90);
  CHECK_EQ_U64(S.total.reserved_tokens, 0);
  CHECK_EQ_I64(S.total.reserved, 0);
  done(b);
}

LM_TEST(test_parts_and_searches_are_counted_per_kind_and_row) {
  /* Audio, image, video, the counts beside the totals and web searches go
   * to their own counters, in the total and in the model and agent rows;
   * a snapshot that goes down takes them back; cached parts and requests
   * have no counter of their own. */
  struct lm_budget *b = fresh(USD(10), LM_WINDOW_NONE, LM_MODE_OPTIMISTIC);
  struct lm_lease l;
  struct lm_denial why;
  struct lm_call c = call_of("gpt-audio", USD(1));
  CHECK(lm_budget_admit(b, &c, &l, &why) == 0);
  struct lm_usage u = {.input = 1000,
                       .input_audio = 800,
                       .cache_audio_read = 100,
                       .cache_read = 100,
                       .input_image = 50,
                       .input_video = 20,
                       .output = 100,
                       .output_audio = 60,
                       .output_image = 7,
                       .output_video = 3,
                       .citation = 11,
                       .separate_reasoning = 13,
                       .web_searches = 2,
                       .requests = 1};
  lm_budget_charge(b, &l, &u, USD(0.03));
  struct lm_usage down = {.web_searches = (uint64_t)-1,
                          .output_audio = (uint64_t)-10};
  lm_budget_charge(b, &l, &down, 0);
  lm_budget_settle(b, &l, 0);
  snap(b, &S);
  const struct {
    int kind;
    uint64_t want;
  } want[] = {
      {LM_TOK_INPUT, 1000},
      {LM_TOK_CACHE_READ, 100},
      {LM_TOK_OUTPUT, 100},
      {LM_TOK_INPUT_AUDIO, 800},
      {LM_TOK_OUTPUT_AUDIO, 50},
      {LM_TOK_INPUT_IMAGE, 50},
      {LM_TOK_OUTPUT_IMAGE, 7},
      {LM_TOK_INPUT_VIDEO, 20},
      {LM_TOK_OUTPUT_VIDEO, 3},
      {LM_TOK_CITATION, 11},
      {LM_TOK_SEPARATE_REASONING, 13},
      {LM_TOK_WEB_SEARCHES, 1},
  };
  for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
    CHECK_EQ_U64(S.total.tokens[want[i].kind], want[i].want);
    CHECK_EQ_U64(S.models[0].c.tokens[want[i].kind], want[i].want);
    CHECK_EQ_U64(S.agents[0].c.tokens[want[i].kind], want[i].want);
  }
  CHECK_EQ_U64(S.total.requests, 1); /* the call, not usage.requests */
  CHECK_EQ_I64(S.total.spent, USD(0.03));
  done(b);
}

/* ---- the ops no test above asks about -------------------------------------
 * Rates, time, the soft limit, downgrade, mid-stream cuts and opening by
 * name were covered only by the integration scripts, which run on shared
 * memory alone; these make both backends answer them. */

LM_TEST(test_open_by_name_finds_the_same_budget_in_every_process) {
  struct lm_budget *b = fresh(-1, LM_WINDOW_NONE, LM_MODE_OPTIMISTIC);
  struct lm_budget *again = NULL, *none = NULL;
  char err[256];
  CHECK(lm_budget_open(bname, false, &again, err, sizeof(err)) == 0);
  CHECK(lm_budget_open("lmtest-no-such-budget", false, &none, err,
                       sizeof(err)) == LM_SEG_ENOENT);
  pid_t kid = fork();
  if (kid == 0) {
    struct lm_budget *mine = NULL;
    struct lm_lease l;
    struct lm_denial why;
    struct lm_call c = call_of("m", 10);
    if (lm_budget_open(bname, false, &mine, err, sizeof(err)) != 0 ||
        lm_budget_admit(mine, &c, &l, &why) != 0)
      _exit(3);
    lm_budget_charge(mine, &l, NULL, 7);
    lm_budget_settle(mine, &l, 0);
    lm_budget_close(mine);
    _exit(0);
  }
  int st = 0;
  waitpid(kid, &st, 0);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  if (again) {
    snap(again, &S);
    CHECK_EQ_I64(S.total.spent, 7);
    CHECK_EQ_U64(S.total.requests, 1);
    lm_budget_close(again);
  }
  done(b);
}

LM_TEST(test_rpm_counts_requests_even_refunded_ones) {
  struct lm_budget *b = fresh(-1, LM_WINDOW_NONE, LM_MODE_OPTIMISTIC);
  struct lm_limit_config cfg = LM_LIMITS_KEEP;
  cfg.rpm = 2;
  lm_budget_configure(b, &cfg);
  struct lm_lease l;
  struct lm_denial why;
  struct lm_call c = call_of("m", 10);
  CHECK(lm_budget_admit(b, &c, &l, &why) == 0);
  lm_budget_settle(b, &l, 0);
  CHECK(lm_budget_admit(b, &c, &l, &why) == 0);
  lm_budget_release(b, &l); /* the request was made: its turn is spent */
  CHECK(lm_budget_admit(b, &c, &l, &why) == -1);
  CHECK_EQ_I64(why.kind, LM_DENY_RATE);
  CHECK_STR(why.subject, "rpm");
  CHECK_EQ_I64(why.limit, 2);
  CHECK(why.retry_after_s >= 29 && why.retry_after_s <= 30);
  char line[256];
  lm_denial_format(&why, "b", line, sizeof(line));
  CHECK(strstr(line, "rate limit rpm 2/min reached") != NULL);
  snap(b, &S);
  CHECK_EQ_I64(S.rpm, 2);
  CHECK(S.rpm_used >= 1 && S.rpm_used <= 2); /* rounded down as time moves */
  CHECK_EQ_U64(S.total.denied, 1);
  done(b);
}

LM_TEST(test_tpm_takes_the_estimate_and_correction_gives_it_back) {
  struct lm_budget *b = fresh(-1, LM_WINDOW_NONE, LM_MODE_OPTIMISTIC);
  struct lm_limit_config cfg = LM_LIMITS_KEEP;
  cfg.tpm = 1000;
  lm_budget_configure(b, &cfg);
  struct lm_lease l1, l2;
  struct lm_denial why;
  struct lm_call c = call_of("m", 10);
  c.est_input_tokens = 900;
  CHECK(lm_budget_admit(b, &c, &l1, &why) == 0);
  snap(b, &S);
  CHECK(S.tpm_used >= 899 && S.tpm_used <= 900);
  CHECK(lm_budget_admit(b, &c, &l2, &why) == -1); /* 1800 > 1000 a minute */
  CHECK_EQ_I64(why.kind, LM_DENY_RATE);
  CHECK_STR(why.subject, "tpm");
  CHECK_EQ_I64(why.retry_after_s, 48); /* 800 tokens over, at 1000/min */
  struct lm_usage actual = {.input = 100, .output = 0};
  lm_budget_charge(b, &l1, &actual, 5);
  lm_budget_settle(b, &l1, 0);
  lm_budget_rate_correct(b, &l1, &actual); /* after settle, as the meter does */
  CHECK(lm_budget_admit(b, &c, &l2, &why) == 0); /* 100 + 900 fit */
  lm_budget_settle(b, &l2, 0);
  done(b);
}

LM_TEST(test_rate_rule_limits_only_matching_models) {
  struct lm_budget *b = fresh(-1, LM_WINDOW_NONE, LM_MODE_OPTIMISTIC);
  char err[128];
  CHECK(lm_budget_add_rule(b, LM_RULE_MODEL | LM_RULE_RPM, "gpt-*", 1, err,
                           sizeof(err)) == 0);
  struct lm_lease l;
  struct lm_denial why;
  struct lm_call g = call_of("gpt-4o", 10), o = call_of("claude-x", 10);
  CHECK(lm_budget_admit(b, &g, &l, &why) == 0);
  lm_budget_settle(b, &l, 0);
  CHECK(lm_budget_admit(b, &g, &l, &why) == -1);
  CHECK_EQ_I64(why.kind, LM_DENY_RATE);
  CHECK_STR(why.subject, "gpt-*");
  CHECK(lm_budget_admit(b, &o, &l, &why) == 0);
  lm_budget_settle(b, &l, 0);
  snap(b, &S);
  CHECK_EQ_I64(S.n_rules, 1);
  CHECK_EQ_I64(S.rules[0].kind, LM_RULE_MODEL | LM_RULE_RPM);
  CHECK_EQ_I64(S.rules[0].limit_pusd, 1);
  done(b);
}

LM_TEST(test_deadline_and_llm_time_refuse_and_cut) {
  struct lm_budget *b = fresh(-1, LM_WINDOW_NONE, LM_MODE_OPTIMISTIC);
  fake_now = 1764115200;
  lm_budget_set_clock(b, fake_clock, NULL);
  struct lm_limit_config cfg = LM_LIMITS_KEEP;
  cfg.deadline = fake_now + 10;
  cfg.max_llm_ns = 2000000000;
  lm_budget_configure(b, &cfg);
  struct lm_lease l;
  struct lm_denial why;
  struct lm_call c = call_of("m", 10);
  CHECK(!lm_budget_over_time(b, 0, &why));
  lm_budget_add_llm_time(b, 1500000000);
  CHECK(!lm_budget_over_time(b, 400000000, &why));
  CHECK(lm_budget_over_time(b, 600000000, &why)); /* a transfer still running */
  CHECK_EQ_I64(why.kind, LM_DENY_LLM_TIME);
  CHECK_EQ_I64(why.used, 2100000000);
  CHECK(lm_budget_admit(b, &c, &l, &why) == 0);
  lm_budget_settle(b, &l, 0);
  lm_budget_add_llm_time(b, 500000000);
  CHECK(lm_budget_admit(b, &c, &l, &why) == -1);
  CHECK_EQ_I64(why.kind, LM_DENY_LLM_TIME);
  cfg = LM_LIMITS_KEEP;
  cfg.max_llm_ns = -1;
  lm_budget_configure(b, &cfg);
  fake_now += 10;
  CHECK(lm_budget_admit(b, &c, &l, &why) == -1);
  CHECK_EQ_I64(why.kind, LM_DENY_DEADLINE);
  CHECK_EQ_I64(why.limit, fake_now);
  char line[256];
  lm_denial_format(&why, "b", line, sizeof(line));
  CHECK(strstr(line, "deadline 2025-11-26T00:00:10Z has passed") != NULL);
  snap(b, &S);
  CHECK_EQ_I64(S.llm_ns, 2000000000);
  done(b);
}

LM_TEST(test_soft_limit_is_crossed_once_per_window) {
  struct lm_budget *b = fresh(USD(10), LM_WINDOW_DAY, LM_MODE_OPTIMISTIC);
  fake_now = 1764115200 + 3600;
  lm_budget_set_clock(b, fake_clock, NULL);
  struct lm_limit_config cfg = LM_LIMITS_KEEP;
  cfg.soft_pusd = USD(1);
  cfg.on_soft = "notify-me";
  lm_budget_configure(b, &cfg);
  struct lm_lease l;
  struct lm_denial why;
  struct lm_call c = call_of("m", USD(0.1));
  char cmd[64] = "";
  CHECK(lm_budget_admit(b, &c, &l, &why) == 0);
  lm_budget_charge(b, &l, NULL, USD(0.5));
  CHECK(!lm_budget_soft_crossed(b, cmd, sizeof(cmd)));
  lm_budget_charge(b, &l, NULL, USD(0.5));
  CHECK(lm_budget_soft_crossed(b, cmd, sizeof(cmd)));
  CHECK_STR(cmd, "notify-me");
  CHECK(!lm_budget_soft_crossed(b, cmd, sizeof(cmd))); /* once */
  lm_budget_settle(b, &l, 0);
  snap(b, &S);
  CHECK(S.soft_crossed);
  CHECK_STR(S.on_soft, "notify-me");
  fake_now += 86400; /* a new day: a new crossing */
  CHECK(lm_budget_admit(b, &c, &l, &why) == 0);
  lm_budget_charge(b, &l, NULL, USD(0.5));
  CHECK(!lm_budget_soft_crossed(b, cmd, sizeof(cmd)));
  lm_budget_charge(b, &l, NULL, USD(0.5));
  lm_budget_settle(b, &l, 0);
  CHECK(lm_budget_soft_crossed(b, NULL, 0));
  done(b);
}

LM_TEST(test_downgrade_rewrites_listed_models_above_the_soft_limit) {
  struct lm_budget *b = fresh(-1, LM_WINDOW_NONE, LM_MODE_OPTIMISTIC);
  struct lm_limit_config cfg = LM_LIMITS_KEEP;
  cfg.soft_pusd = USD(1);
  cfg.downgrade = "gpt-4o=gpt-4o-mini,claude-opus-*=claude-haiku-4-5";
  lm_budget_configure(b, &cfg);
  char to[64] = "";
  CHECK(!lm_budget_downgrade(b, NULL, NULL, 0)); /* below the soft limit */
  CHECK(!lm_budget_downgrade(b, "gpt-4o", to, sizeof(to)));
  struct lm_lease l;
  struct lm_denial why;
  struct lm_call c = call_of("gpt-4o", USD(0.1));
  CHECK(lm_budget_admit(b, &c, &l, &why) == 0);
  lm_budget_charge(b, &l, NULL, USD(1));
  lm_budget_settle(b, &l, 0);
  CHECK(lm_budget_downgrade(b, NULL, NULL, 0));
  CHECK(lm_budget_downgrade(b, "gpt-4o", to, sizeof(to)));
  CHECK_STR(to, "gpt-4o-mini");
  CHECK(lm_budget_downgrade(b, "claude-opus-4-1", to, sizeof(to)));
  CHECK_STR(to, "claude-haiku-4-5");
  CHECK(!lm_budget_downgrade(b, "gpt-4.1", to, sizeof(to))); /* unlisted */
  CHECK(!lm_budget_downgrade(b, "", to, sizeof(to)));
  snap(b, &S);
  CHECK_STR(S.downgrade, "gpt-4o=gpt-4o-mini,claude-opus-*=claude-haiku-4-5");
  done(b);
}

LM_TEST(test_over_hard_cuts_paid_streams_not_free_ones) {
  struct lm_budget *b = fresh(USD(1), LM_WINDOW_NONE, LM_MODE_OPTIMISTIC);
  char err[128];
  CHECK(lm_budget_add_rule(b, LM_RULE_AGENT, "cheap", USD(0.2), err,
                           sizeof(err)) == 0);
  struct lm_lease paid, local, capped;
  struct lm_denial why;
  struct lm_call c = call_of("m", USD(0.1));
  struct lm_call z = call_of("llama3", 0);
  z.zero_priced = true;
  struct lm_call k = call_of("m", USD(0.1));
  k.agent = "cheap";
  CHECK(lm_budget_admit(b, &c, &paid, &why) == 0);
  CHECK(lm_budget_admit(b, &z, &local, &why) == 0);
  CHECK(lm_budget_admit(b, &k, &capped, &why) == 0);
  CHECK(!lm_budget_over_hard(b, &paid));
  lm_budget_charge(b, &capped, NULL, USD(0.2)); /* the agent rule's limit */
  CHECK(lm_budget_over_hard(b, &capped));
  CHECK(!lm_budget_over_hard(b, &paid));
  lm_budget_charge(b, &paid, NULL, USD(0.8));
  CHECK(lm_budget_over_hard(b, &paid));
  CHECK(!lm_budget_over_hard(b, &local)); /* $ limits never cut a $0 call */
  lm_budget_settle(b, &paid, 0);
  lm_budget_settle(b, &local, 0);
  lm_budget_settle(b, &capped, 0);
  snap(b, &S);
  CHECK_EQ_I64(S.total.spent, USD(1));
  CHECK_EQ_I64(S.total.reserved, 0);
  done(b);
}

/* Found by review: rows never held reserved tokens, so giving them back
 * wrapped the counter below zero. */
LM_TEST(test_row_token_reservations_never_wrap) {
  struct lm_budget *b = fresh(USD(10), LM_WINDOW_NONE, LM_MODE_OPTIMISTIC);
  struct lm_lease l;
  struct lm_denial why;
  struct lm_call c = call_of("gpt-4o", USD(0.01));
  for (int i = 0; i < 3; i++) {
    CHECK(lm_budget_admit(b, &c, &l, &why) == 0);
    struct lm_usage u = {.input = 10, .output = 5};
    lm_budget_charge(b, &l, &u, USD(0.001));
    lm_budget_settle(b, &l, 0);
  }
  snap(b, &S);
  CHECK_EQ_U64(S.total.reserved_tokens, 0);
  CHECK(S.n_models == 1);
  CHECK_EQ_U64(S.models[0].c.reserved_tokens, 0);
  CHECK_EQ_U64(S.agents[0].c.reserved_tokens, 0);
  done(b);
}

/* Found by review: a turned window counted yesterday's spend for the soft
 * limit and --downgrade until the first admission rolled it, and a call
 * settled in a new window lost its request count. */
LM_TEST(test_new_window_counts_from_zero_for_soft_downgrade_and_settle) {
  struct lm_budget *b = fresh(USD(1), LM_WINDOW_DAY, LM_MODE_OPTIMISTIC);
  struct lm_limit_config cfg = LM_LIMITS_KEEP;
  cfg.soft_pusd = USD(0.5);
  cfg.downgrade = "big=small";
  lm_budget_configure(b, &cfg);
  fake_now = 1764115200 + 86400 - 10; /* 23:59:50 UTC */
  lm_budget_set_clock(b, fake_clock, NULL);
  struct lm_lease l, late;
  struct lm_denial why;
  struct lm_call c = call_of("big", USD(0.1));
  CHECK(lm_budget_admit(b, &c, &l, &why) == 0);
  lm_budget_charge(b, &l, NULL, USD(0.6));
  lm_budget_settle(b, &l, 0);
  char out[64];
  CHECK(lm_budget_downgrade(b, "big", out, sizeof(out)));
  CHECK(lm_budget_admit(b, &c, &late, &why) == 0); /* in flight at midnight */
  fake_now += 10; /* midnight: nothing admitted yet in the new day */
  CHECK(!lm_budget_downgrade(b, NULL, NULL, 0));
  CHECK(!lm_budget_downgrade(b, "big", out, sizeof(out)));
  char cmd[16];
  CHECK(!lm_budget_soft_crossed(b, cmd, sizeof(cmd)));
  lm_budget_settle(b, &late, 0); /* settles in the new day */
  snap(b, &S);
  CHECK_EQ_U64(S.total.requests, 1);
  CHECK_EQ_I64(S.total.spent, 0);
  done(b);
}

/* Found by review: an untagged call's row is "unknown", and so is the name
 * its agent rules match. */
LM_TEST(test_untagged_calls_are_agent_unknown_for_rules_too) {
  struct lm_budget *b = fresh(USD(10), LM_WINDOW_NONE, LM_MODE_OPTIMISTIC);
  char err[128];
  CHECK(lm_budget_add_rule(b, LM_RULE_AGENT, "unknown", USD(0.001), err,
                           sizeof(err)) == 0);
  struct lm_lease l;
  struct lm_denial why;
  struct lm_call c = call_of("m", USD(0.01));
  c.agent = NULL;
  CHECK(lm_budget_admit(b, &c, &l, &why) == 0);
  lm_budget_charge(b, &l, NULL, USD(0.002));
  lm_budget_settle(b, &l, 0);
  CHECK(lm_budget_admit(b, &c, &l, &why) == -1);
  CHECK(why.kind == LM_DENY_AGENT);
  snap(b, &S);
  CHECK(S.n_agents == 1 && strcmp(S.agents[0].name, "unknown") == 0);
  done(b);
}

static void all_tests(void) {
  LM_RUN(test_admit_charge_settle_moves_reservation_to_spent);
  LM_RUN(test_charge_beyond_estimate_is_charged_in_full);
  LM_RUN(test_release_refunds_everything);
  LM_RUN(test_hard_limit_denies_with_reason_once_spent);
  LM_RUN(test_optimistic_overshoot_is_at_most_one_request);
  LM_RUN(test_strict_admits_only_what_fits);
  LM_RUN(test_zero_priced_call_ignores_dollar_limit_but_not_requests);
  LM_RUN(test_token_limit_counts_input_and_output);
  LM_RUN(test_model_glob_limit_counts_matching_models_together);
  LM_RUN(test_agent_limit_and_rule_added_live_counts_past_spend);
  LM_RUN(test_admission_memo_is_per_handle);
  LM_RUN(test_day_window_resets_spend_once_and_keeps_reservations);
  LM_RUN(test_window_boundaries_are_calendar_utc);
  LM_RUN(test_rollover_races_reset_exactly_once);
  LM_RUN(test_processes_in_parallel_give_exact_totals);
  LM_RUN(test_kill9_storm_leaves_no_reserved_residue);
  LM_RUN(test_dead_lease_is_reclaimed_by_admission_that_needs_room);
  LM_RUN(test_reset_zeroes_spend_keeps_limits);
  LM_RUN(test_hard_limit_and_unmetered_process_counts);
  LM_RUN(test_exact_pico_usd_money_arithmetic);
  LM_RUN(test_call_blocked_by_reservations_waits_and_is_admitted);
  LM_RUN(test_wait_is_bounded_and_the_reason_says_so);
  LM_RUN(test_limit_really_reached_denies_without_waiting);
  LM_RUN(test_strict_refusal_says_the_estimate_does_not_fit);
  LM_RUN(test_per_call_caps_deny_before_and_cut_during);
  LM_RUN(test_snapshot_that_goes_down_is_refunded_not_charged_twice);
  LM_RUN(test_parts_and_searches_are_counted_per_kind_and_row);
  LM_RUN(test_open_by_name_finds_the_same_budget_in_every_process);
  LM_RUN(test_rpm_counts_requests_even_refunded_ones);
  LM_RUN(test_tpm_takes_the_estimate_and_correction_gives_it_back);
  LM_RUN(test_rate_rule_limits_only_matching_models);
  LM_RUN(test_deadline_and_llm_time_refuse_and_cut);
  LM_RUN(test_soft_limit_is_crossed_once_per_window);
  LM_RUN(test_downgrade_rewrites_listed_models_above_the_soft_limit);
  LM_RUN(test_over_hard_cuts_paid_streams_not_free_ones);
  LM_RUN(test_row_token_reservations_never_wrap);
  LM_RUN(test_new_window_counts_from_zero_for_soft_downgrade_and_settle);
  LM_RUN(test_untagged_calls_are_agent_unknown_for_rules_too);
}

/* Debug builds (make asan, DEBUG=1) check the shared-memory budget's
 * invariants after every step (src/budget/shm_journal.c): reservations
 * equal the live leases', the rows sum to the total. Every test above ran
 * with them; this one says they were on. */
#ifdef LM_DEBUG_INVARIANTS
uint64_t lm_shm_invariant_checks(void);
LM_TEST(test_debug_build_checked_the_invariants_after_every_step) {
  uint64_t n = lm_shm_invariant_checks();
  printf("budget invariants: checked after %llu steps\n",
         (unsigned long long)n);
  CHECK(n > 1000);
}
#endif

static void run_on(const struct backend_case *c) {
  backend = c;
  lm_budget_force_backend(c->forced);
  LM_TEST_SUFFIX(c->suffix);
  all_tests();
}

int main(void) {
  run_on(&backend_shm);
  run_on(&backend_mem);
  lm_budget_force_backend(NULL);
#ifdef LM_DEBUG_INVARIANTS
  LM_TEST_SUFFIX("");
  LM_RUN(test_debug_build_checked_the_invariants_after_every_step);
#endif
  LM_TEST_END();
}
