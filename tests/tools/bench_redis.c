/* bench_redis.c — the Redis backend's throughput and exactness.
 *
 * usage: bench_redis URL OPS PROCS...
 * For each PROCS: the budget URL is created afresh (no limits); PROCS
 * forked processes (1: this process) each run OPS/PROCS calls of
 * admit + charge (3 in, 2 out, 7 pico-USD) + settle, each process with
 * its own connection, as a swarm has. Then the totals are checked
 * exactly (requests, spent, tokens; nothing reserved or in flight).
 * Prints, per PROCS:
 *   redis PROCS admit_settle_per_s=X exact=yes|no
 * Exit 1 if a call is refused or the totals are inexact.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "budget.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run(const char *url, long n) {
  struct lm_budget *b;
  char err[256];
  if (lm_budget_open(url, false, &b, err, sizeof err)) {
    fprintf(stderr, "bench_redis: %s\n", err);
    return 1;
  }
  struct lm_call call = {.model = "gpt-4o-mini",
                         .agent = "bench",
                         .est_pusd = 1000000,
                         .est_tokens = 100,
                         .max_call_pusd = -1,
                         .max_call_input_tokens = -1,
                         .max_call_output_tokens = -1};
  struct lm_usage u = {.input = 3, .output = 2};
  for (long i = 0; i < n; i++) {
    struct lm_lease l;
    struct lm_denial why;
    if (lm_budget_admit(b, &call, &l, &why)) {
      fprintf(stderr, "bench_redis: admission refused (kind %d: %s)\n",
              why.kind, why.subject);
      return 1;
    }
    lm_budget_charge(b, &l, &u, 7);
    lm_budget_settle(b, &l, 0);
  }
  lm_budget_close(b);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: bench_redis URL OPS PROCS...\n");
    return 2;
  }
  const char *url = argv[1];
  long ops = atol(argv[2]);
  int bad = 0;
  static struct lm_snapshot s;
  for (int a = 3; a < argc; a++) {
    int procs = atoi(argv[a]);
    long n = ops / procs;
    struct lm_budget *b;
    char err[256];
    struct lm_limit_config cfg = LM_LIMITS_NONE;
    if (procs < 1 || lm_budget_create(url, true, &cfg, &b, err, sizeof err)) {
      fprintf(stderr, "bench_redis: %s\n", procs < 1 ? "bad PROCS" : err);
      return 1;
    }
    double t0 = now_s();
    int failed = 0;
    if (procs == 1) {
      failed = run(url, n);
    } else {
      for (int p = 0; p < procs; p++) {
        pid_t pid = fork();
        if (pid == 0)
          _exit(run(url, n));
        if (pid < 0)
          failed = 1;
      }
      int st;
      while (wait(&st) > 0)
        failed |= !WIFEXITED(st) || WEXITSTATUS(st);
    }
    double rate = (double)procs * (double)n / (now_s() - t0);
    uint64_t want = (uint64_t)procs * (uint64_t)n;
    int exact = !failed && lm_budget_snapshot(b, &s) == 0 &&
                s.total.requests == want &&
                s.total.spent == (int64_t)want * 7 &&
                s.total.tokens[LM_TOK_INPUT] == want * 3 &&
                s.total.tokens[LM_TOK_OUTPUT] == want * 2 &&
                s.total.reserved == 0 && s.active_leases == 0;
    printf("redis %d admit_settle_per_s=%.0f exact=%s\n", procs, rate,
           exact ? "yes" : "no");
    fflush(stdout);
    bad |= !exact;
    lm_budget_close(b);
  }
  return bad;
}
