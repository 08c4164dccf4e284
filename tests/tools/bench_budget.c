/* bench_budget.c — budget engine throughput and exactness under contention.
 *
 * usage: bench_budget OPS PROCS...
 * For each PROCS (e.g. 1 2 16): a fresh shared-memory budget without
 * limits; PROCS forked processes (1: this process) each run OPS/PROCS
 * calls of lm_budget_admit + lm_budget_settle on one model, and (second
 * pass) admit + charge(3 in, 2 out, 7 pico-USD) + settle. Then the totals
 * are checked exactly: requests, spent, tokens, nothing reserved or in
 * flight (exit 1 if not, or if the reference below fails). Prints, per
 * PROCS:
 *   budget PROCS admit_settle_per_s=X admit_charge_settle_per_s=Y exact=yes|no
 *          DETAIL atomic_add_per_s=Z admit_settle_per_atomic_add=X/Z
 * (one admit+settle pair counts as one operation).
 *
 * Absolute rates differ about 3x between machine kinds, so each row also
 * measures a physical reference the same way: the same number of forked
 * processes, each attaching with shm_open + mmap as lm_budget_open does,
 * run atomic_fetch_add on one shared word, the cheapest thing a process
 * can do to a counter that other processes also count on. The word is at
 * the offset of total.requests (the counter every settle adds to) in a
 * second segment of the same size, created the same way (O_EXCL, 0600,
 * ftruncate, MAP_SHARED), so the budget's own totals stay untouched for
 * the exactness check. One reference pass runs just before the
 * admit+settle pass and one just after, and the rate is over both, so a
 * change of load during the row weighs on both sides of the ratio.
 */
#include <fcntl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "budget.h"
#include "segment.h"

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
  struct lm_call call = {.model = "gpt-4o-mini",
                         .agent = "bench",
                         .est_pusd = 1000000,
                         .est_tokens = 100};
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

/* The reference segment's size: the budget segment's, page-rounded as
 * segment.c does, so the counter word sits at the same page offset. */
static size_t ref_size(void) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  return (sizeof(struct lm_segment) + page - 1) / page * page;
}

static int ref_create(const char *name) {
  int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0)
    return -1;
  int rc = ftruncate(fd, (off_t)ref_size());
  close(fd);
  return rc;
}

/* One process of the reference: attach, n atomic adds on the word at
 * total.requests' offset, detach. */
static int run_atomic_add(const char *name, long n) {
  int fd = shm_open(name, O_RDWR, 0);
  if (fd < 0) {
    perror("bench_budget: shm_open (reference)");
    return 1;
  }
  size_t size = ref_size();
  void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (m == MAP_FAILED) {
    perror("bench_budget: mmap (reference)");
    return 1;
  }
  _Atomic uint64_t *word = (_Atomic uint64_t *)((char *)m +
                                                offsetof(struct lm_segment,
                                                         total.requests));
  for (long i = 0; i < n; i++)
    atomic_fetch_add(word, 1);
  munmap(m, size);
  return 0;
}

/* Runs procs × n calls, or atomic adds on the reference segment when ref;
 * returns them per second, or -1. */
static double pass(const char *name, int procs, long n, int charge, int ref) {
  double t0 = now_s();
  if (procs == 1) {
    if (ref ? run_atomic_add(name, n) : run(name, n, charge))
      return -1;
  } else {
    for (int p = 0; p < procs; p++) {
      pid_t pid = fork();
      if (pid == 0)
        _exit(ref ? run_atomic_add(name, n) : run(name, n, charge));
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

/* An atomic add takes a few ns, a pair one or two hundred: REF_SCALE
 * times as many adds as pairs keep a reference pass about as long as the
 * pass it is compared with, so that fork and attach weigh alike on both. */
#define REF_SCALE 64

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
    char ref[80];
    snprintf(ref, sizeof ref, "/%s-ref", name);
    if (ref_create(ref) != 0) {
      perror("bench_budget: reference segment");
      return 1;
    }
    long ref_n = n * REF_SCALE;
    double ref_before = pass(ref, procs, ref_n, 0, 1);
    double as = pass(name, procs, n, 0, 0);
    double ref_after = pass(ref, procs, ref_n, 0, 1);
    double acs = pass(name, procs, n, 1, 0);
    shm_unlink(ref);
    /* Adds per second over the time of both reference passes. */
    double adds = ref_before > 0 && ref_after > 0
                      ? 2.0 / (1.0 / ref_before + 1.0 / ref_after)
                      : -1;
    if (adds < 0) {
      fprintf(stderr, "bench_budget: the atomic-add reference failed\n");
      rc = 1;
    }
    struct lm_snapshot *s = malloc(sizeof *s);
    int snap = s ? lm_budget_snapshot(b, s) : -1;
    unsigned long long calls = 2ULL * (unsigned long long)procs *
                               (unsigned long long)n;
    unsigned long long charged = (unsigned long long)procs *
                                 (unsigned long long)n;
    int exact = snap == 0 && as > 0 && acs > 0 && s->total.requests == calls &&
                s->total.spent == (int64_t)(7 * charged) &&
                s->total.reserved == 0 && s->total.reserved_requests == 0 &&
                s->total.tokens[LM_TOK_INPUT] == 3 * charged &&
                s->total.tokens[LM_TOK_OUTPUT] == 2 * charged &&
                s->active_leases == 0;
    printf(
        "budget %d admit_settle_per_s=%.0f admit_charge_settle_per_s=%.0f "
        "exact=%s requests=%llu/%llu spent_pusd=%lld/%llu "
        "tokens=%llu+%llu reserved=%lld in_flight=%llu leases=%u "
        "atomic_add_per_s=%.0f admit_settle_per_atomic_add=%.5f\n",
        procs, as, acs, exact ? "yes" : "no",
        snap == 0 ? (unsigned long long)s->total.requests : 0ULL, calls,
        snap == 0 ? (long long)s->total.spent : -1LL, 7 * charged,
        snap == 0 ? (unsigned long long)s->total.tokens[LM_TOK_INPUT] : 0ULL,
        snap == 0 ? (unsigned long long)s->total.tokens[LM_TOK_OUTPUT] : 0ULL,
        snap == 0 ? (long long)s->total.reserved : -1LL,
        snap == 0 ? (unsigned long long)s->total.reserved_requests : 0ULL,
        snap == 0 ? s->active_leases : 0u, adds, adds > 0 ? as / adds : -1.0);
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
