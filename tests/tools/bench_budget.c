/* bench_budget.c — budget engine throughput and exactness under contention.
 *
 * usage: bench_budget OPS PROCS...
 * For each PROCS (e.g. 1 2 16): a fresh shared-memory budget without
 * limits; PROCS forked processes (1: this process) each run OPS/PROCS
 * calls of lm_budget_admit + lm_budget_settle on one model, and (second
 * pass) admit + charge(3 in, 2 out, 7 pico-USD) + settle. Then the totals
 * are checked exactly: requests, spent, tokens, nothing reserved or in
 * flight. Prints, per PROCS:
 *   budget PROCS admit_settle_per_s=X admit_charge_settle_per_s=Y exact=yes|no DETAIL
 * (one admit+settle pair counts as one operation). Exit 1 if inexact.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "budget.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run(const char *name, long n, int charge) {
  struct lm_budget *b;
  char err[256];
  if (lm_budget_open(name, false, &b, err, sizeof err)) {
    fprintf(stderr, "bench_budget: %s\n", err);
    return 1;
  }
  struct lm_call call = {.model = "gpt-4o-mini", .agent = "bench",
                         .est_pusd = 1000000, .est_tokens = 100};
  call.max_call_pusd = call.max_call_input_tokens = -1; /* no per-call caps */
  call.max_call_output_tokens = -1;
  struct lm_usage u = {.input = 3, .output = 2};
  for (long i = 0; i < n; i++) {
    struct lm_lease l;
    struct lm_denial why;
    if (lm_budget_admit(b, &call, &l, &why)) {
      fprintf(stderr, "bench_budget: admission denied (kind %d)\n", why.kind);
      return 1;
    }
    if (charge)
      lm_budget_charge(b, &l, &u, 7);
    lm_budget_settle(b, &l, 0);
  }
  lm_budget_close(b);
  return 0;
}

/* Runs procs × n calls; returns calls per second, or -1. */
static double pass(const char *name, int procs, long n, int charge) {
  double t0 = now_s();
  if (procs == 1) {
    if (run(name, n, charge))
      return -1;
  } else {
    for (int p = 0; p < procs; p++) {
      pid_t pid = fork();
      if (pid == 0)
        _exit(run(name, n, charge));
      if (pid < 0)
        return -1;
    }
    int bad = 0, st;
    while (wait(&st) > 0)
      bad |= !WIFEXITED(st) || WEXITSTATUS(st);
    if (bad)
      return -1;
  }
  return (double)procs * (double)n / (now_s() - t0);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: bench_budget OPS PROCS...\n");
    return 2;
  }
  long ops = atol(argv[1]);
  int rc = 0;
  for (int a = 2; a < argc; a++) {
    int procs = atoi(argv[a]);
    if (procs < 1)
      return 2;
    long n = ops / procs;
    char name[64];
    snprintf(name, sizeof name, "llmmeter-bench-%d-%d", (int)getpid(), procs);
    struct lm_limit_config cfg = LM_LIMITS_NONE;
    struct lm_budget *b;
    char err[256];
    if (lm_budget_create(name, true, &cfg, &b, err, sizeof err)) {
      fprintf(stderr, "bench_budget: %s\n", err);
      return 1;
    }
    double as = pass(name, procs, n, 0);
    double acs = pass(name, procs, n, 1);
    struct lm_snapshot *s = malloc(sizeof *s);
    int snap = s ? lm_budget_snapshot(b, s) : -1;
    unsigned long long calls = 2ULL * (unsigned long long)procs * (unsigned long long)n;
    unsigned long long charged = (unsigned long long)procs * (unsigned long long)n;
    int exact = snap == 0 && as > 0 && acs > 0 && s->total.requests == calls &&
                s->total.spent == (int64_t)(7 * charged) &&
                s->total.reserved == 0 && s->total.reserved_requests == 0 &&
                s->total.tokens[LM_TOK_INPUT] == 3 * charged &&
                s->total.tokens[LM_TOK_OUTPUT] == 2 * charged &&
                s->active_leases == 0;
    printf("budget %d admit_settle_per_s=%.0f admit_charge_settle_per_s=%.0f "
           "exact=%s requests=%llu/%llu spent_pusd=%lld/%llu "
           "tokens=%llu+%llu reserved=%lld in_flight=%llu leases=%u\n",
           procs, as, acs, exact ? "yes" : "no",
           snap == 0 ? (unsigned long long)s->total.requests : 0ULL, calls,
           snap == 0 ? (long long)s->total.spent : -1LL, 7 * charged,
           snap == 0 ? (unsigned long long)s->total.tokens[LM_TOK_INPUT] : 0ULL,
           snap == 0 ? (unsigned long long)s->total.tokens[LM_TOK_OUTPUT] : 0ULL,
           snap == 0 ? (long long)s->total.reserved : -1LL,
           snap == 0 ? (unsigned long long)s->total.reserved_requests : 0ULL,
           snap == 0 ? s->active_leases : 0u);
    fflush(stdout);
    if (!exact)
      rc = 1;
    free(s);
    lm_budget_close(b);
    char path[128];
    snprintf(path, sizeof path, "/dev/shm/%s", name);
    unlink(path);
  }
  return rc;
}
