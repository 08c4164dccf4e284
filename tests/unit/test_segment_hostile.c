/* test_segment_hostile.c — a budget segment another process of the user
 * wrote garbage into: what tests/fuzz/fuzz_segment.c found, one test each.
 *
 * Each test makes a real segment, maps it beside the engine's handle and
 * writes what no llmmeter writes: a row state no row can be in, rate TATs
 * at the ends of int64, leases whose reservations overflow a sum, a dead
 * lease holding 2^63 tokens. The engine must neither hang, wrap, nor
 * overflow a signed integer: the overflows that happened to wrap back to
 * the right value fail only under SAN=1 (UBSan), the others in any build.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "budget.h"
#include "lm_test.h"
#include "money.h"
#include "status.h"

static char bname[64];
static int seq;

/* A fresh budget with cfg, and our own mapping of its segment. */
static struct lm_budget *fresh(const struct lm_limit_config *cfg,
                               struct lm_segment **seg) {
  snprintf(bname, sizeof(bname), "lmhostile-%d-%d", (int)getpid(), seq++);
  struct lm_budget *b = NULL;
  char err[256], path[80];
  if (lm_budget_create(bname, true, cfg, &b, err, sizeof(err)) != 0) {
    fprintf(stderr, "create: %s\n", err);
    exit(1);
  }
  snprintf(path, sizeof(path), "/%s", bname);
  int fd = shm_open(path, O_RDWR, 0);
  long page = sysconf(_SC_PAGESIZE);
  size_t size = (sizeof(struct lm_segment) + page - 1) / page * page;
  *seg = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (*seg == MAP_FAILED)
    exit(1);
  return b;
}

static void done(struct lm_budget *b, struct lm_segment *seg) {
  long page = sysconf(_SC_PAGESIZE);
  munmap(seg, (sizeof(struct lm_segment) + page - 1) / page * page);
  lm_budget_close(b);
  lm_segment_remove(bname, NULL, 0);
}

static struct lm_call call_for(const char *model) {
  return (struct lm_call){.model = model,
                          .agent = "a",
                          .est_pusd = 1000,
                          .est_tokens = 10,
                          .est_input_tokens = 5,
                          .est_output_tokens = 5};
}

/* A row state word with state bits 3 (no such state), or a pid in a free
 * row's word: the probe used to retry its CAS against 0 forever. */
LM_TEST(hostile_row_state_never_hangs) {
  struct lm_limit_config c = LM_LIMITS_NONE;
  struct lm_segment *seg;
  struct lm_budget *b = fresh(&c, &seg);
  for (int i = 0; i < LM_ROWS; i++)
    atomic_store(&seg->models[i].state, i % 2 ? 3 : 4);
  struct lm_call call = call_for("gpt-4o");
  struct lm_lease l;
  struct lm_denial why;
  alarm(20); /* the old probe spun here for ever */
  CHECK(lm_budget_admit(b, &call, &l, &why) == 0);
  alarm(0);
  CHECK_EQ_U64(l.model_row, LM_ROW_OTHER); /* no row was claimable */
  lm_budget_settle(b, &l, 0);
  done(b, seg);
}

/* A rate TAT of INT64_MIN: `llmmeter status` subtracted the clock from it
 * (overflow) and showed the wrapped difference as the rate in use. */
LM_TEST(hostile_rate_tat_snapshot) {
  struct lm_limit_config c = LM_LIMITS_NONE;
  c.rpm = 10;
  struct lm_segment *seg;
  struct lm_budget *b = fresh(&c, &seg);
  atomic_store(&seg->rpm_tat, INT64_MIN);
  static struct lm_snapshot s;
  CHECK(lm_budget_snapshot(b, &s) == 0);
  CHECK_EQ_I64(s.rpm_used, 0);
  done(b, seg);
}

/* A rate TAT near INT64_MAX: admission added a minute to it, then took a
 * minute off the sum: two signed overflows (caught under SAN=1; in a plain
 * build the wraps cancel). It must refuse the call and leave the TAT. */
LM_TEST(hostile_rate_tat_admit) {
  struct lm_limit_config c = LM_LIMITS_NONE;
  c.rpm = 1;
  struct lm_segment *seg;
  struct lm_budget *b = fresh(&c, &seg);
  atomic_store(&seg->rpm_tat, INT64_MAX - 1);
  struct lm_call call = call_for("gpt-4o");
  struct lm_lease l;
  struct lm_denial why;
  CHECK(lm_budget_admit(b, &call, &l, &why) != 0);
  CHECK_EQ_I64(why.kind, LM_DENY_RATE);
  CHECK_EQ_I64(atomic_load(&seg->rpm_tat), INT64_MAX - 1);
  done(b, seg);
}

/* Live leases whose reservations sum past INT64_MAX: reconcile's sum
 * overflowed and stored a negative reservation. */
LM_TEST(hostile_reconcile_sum_saturates) {
  struct lm_limit_config c = LM_LIMITS_NONE;
  struct lm_segment *seg;
  struct lm_budget *b = fresh(&c, &seg);
  uint32_t me = (uint32_t)getpid();
  for (int i = 0; i < 2; i++) {
    seg->leases[i].reserved_pusd = INT64_MAX;
    seg->leases[i].model_row = 0;
    seg->leases[i].agent_row = LM_ROW_NONE;
    atomic_store(&seg->leases[i].state, ((uint64_t)me << 8) | 3); /* ACTIVE */
  }
  /* a state no lease can be in (another pid's): reclaim reconciles */
  atomic_store(&seg->leases[2].state, (1ULL << 8) | 7);
  lm_budget_reclaim(b);
  static struct lm_snapshot s;
  lm_budget_snapshot(b, &s);
  CHECK_EQ_I64(s.total.reserved, INT64_MAX);
  CHECK_EQ_I64(atomic_load(&seg->models[0].c.reserved), INT64_MAX);
  done(b, seg);
}

/* A dead owner's lease holding 2^63 tokens: the refund negated it as a
 * signed number (overflow under SAN=1); it must give back exactly that. */
LM_TEST(hostile_dead_lease_tokens) {
  struct lm_limit_config c = LM_LIMITS_NONE;
  struct lm_segment *seg;
  struct lm_budget *b = fresh(&c, &seg);
  pid_t kid = fork();
  if (kid == 0)
    _exit(0);
  waitpid(kid, NULL, 0); /* its pid is now free */
  seg->leases[5].reserved_tokens = 1ULL << 63;
  seg->leases[5].model_row = LM_ROW_NONE;
  seg->leases[5].agent_row = LM_ROW_NONE;
  atomic_store(&seg->total.reserved_tokens, 1ULL << 63);
  atomic_store(&seg->total.reserved_requests, 1);
  atomic_store(&seg->leases[5].state, ((uint64_t)kid << 8) | 3);
  CHECK(lm_budget_reclaim(b) >= 1);
  CHECK_EQ_U64(atomic_load(&seg->total.reserved_tokens), 0);
  CHECK_EQ_U64(atomic_load(&seg->leases[5].state), 0);
  done(b, seg);
}

/* Our own live lease's reservation overwritten with INT64_MIN while the
 * call runs: charging took the charge off it with -= (overflow, and the
 * wrapped, huge reservation was then refunded at settlement). */
LM_TEST(hostile_live_slot_charge) {
  struct lm_limit_config c = LM_LIMITS_NONE;
  struct lm_segment *seg;
  struct lm_budget *b = fresh(&c, &seg);
  struct lm_call call = call_for("gpt-4o");
  struct lm_lease l;
  struct lm_denial why;
  CHECK(lm_budget_admit(b, &call, &l, &why) == 0);
  CHECK(l.slot < LM_LEASES);
  if (l.slot < LM_LEASES) {
    seg->leases[l.slot].reserved_pusd = INT64_MIN;
    struct lm_usage u = {.input = 5, .output = 5};
    lm_budget_charge(b, &l, &u, 400);
    CHECK_EQ_I64(seg->leases[l.slot].reserved_pusd, INT64_MIN);
    lm_budget_settle(b, &l, 0);
    /* the slot says nothing is left to refund: what it held stays
     * reserved (reconcile's to fix), never a wrapped refund below zero */
    CHECK(atomic_load(&seg->total.reserved) >= 0);
  }
  done(b, seg);
}

/* The LLM time used read as INT64_MAX: the meter's mid-transfer check
 * added the transfer's time to it (overflow) and saw a negative total,
 * under the limit. */
LM_TEST(hostile_llm_time) {
  struct lm_limit_config c = LM_LIMITS_NONE;
  c.max_llm_ns = 1000000000;
  struct lm_segment *seg;
  struct lm_budget *b = fresh(&c, &seg);
  atomic_store(&seg->llm_ns, INT64_MAX);
  struct lm_denial why;
  CHECK(lm_budget_over_time(b, 5000000000, &why));
  CHECK_EQ_I64(why.kind, LM_DENY_LLM_TIME);
  done(b, seg);
}

/* A lease owned by "pid" 0xffffffff: kill(-1, 0) asked about every process
 * and found one alive, so the forged lease held its reservation for ever. */
LM_TEST(hostile_impossible_pid) {
  struct lm_limit_config c = LM_LIMITS_NONE;
  struct lm_segment *seg;
  struct lm_budget *b = fresh(&c, &seg);
  seg->leases[9].reserved_pusd = 700;
  seg->leases[9].model_row = LM_ROW_NONE;
  seg->leases[9].agent_row = LM_ROW_NONE;
  atomic_store(&seg->total.reserved, 700);
  atomic_store(&seg->total.reserved_requests, 1);
  atomic_store(&seg->leases[9].state, (0xffffffffULL << 8) | 3);
  CHECK(lm_budget_reclaim(b) >= 1);
  CHECK_EQ_I64(atomic_load(&seg->total.reserved), 0);
  CHECK_EQ_U64(atomic_load(&seg->leases[9].state), 0);
  done(b, seg);
}

/* The segment's lock word names a thread that does not exist (a hostile
 * or corrupt segment; no process ever gets EOWNERDEAD for it): every step
 * waited for it for ever. Now a step waits at most two seconds, and
 * admission refuses (fail closed) with a reason; the snapshot still reads
 * the counters. */
LM_TEST(hostile_lock_fails_closed_in_bounded_time) {
  struct lm_limit_config c = LM_LIMITS_NONE;
  struct lm_segment *seg;
  struct lm_budget *b = fresh(&c, &seg);
  struct lm_call call = call_for("gpt-4o");
  struct lm_lease l;
  struct lm_denial why;
  CHECK(lm_budget_admit(b, &call, &l, &why) == 0); /* a lease held */
  lm_budget_charge(b, &l, NULL, 300);
  *(volatile int *)&seg->lock = 0x3ffffff0; /* __lock: the owner's tid */
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  struct lm_lease l2;
  CHECK(lm_budget_admit(b, &call, &l2, &why) == -1);
  CHECK_EQ_I64(why.kind, LM_DENY_BUSY);
  CHECK(l2.slot == UINT32_MAX);
  static struct lm_snapshot s;
  CHECK(lm_budget_snapshot(b, &s) == 0);
  CHECK_EQ_I64(s.total.spent, 300);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  CHECK(t1.tv_sec - t0.tv_sec < 6); /* two bounded waits, not a hang */
  *(volatile int *)&seg->lock = 0;
  lm_budget_settle(b, &l, 0);
  done(b, seg);
}

/* The undo journal (layout 5) written by someone else: an entry count
 * past the journal, and entries naming the segment's identity, its lock,
 * the journal itself and an offset past the end. A step must neither
 * write outside the counters nor trust the count: the identity stays, the
 * reservations are rebuilt from the lease table, the budget still works. */
LM_TEST(hostile_journal_is_bounds_checked) {
  struct lm_limit_config c = LM_LIMITS_NONE;
  struct lm_segment *seg;
  struct lm_budget *b = fresh(&c, &seg);
  struct lm_journal *j = &seg->journal;
  j->e[0] = (struct lm_journal_entry){0, 0}; /* the magic */
  j->e[1] = (struct lm_journal_entry){offsetof(struct lm_segment, lock), 7};
  j->e[2] = (struct lm_journal_entry){offsetof(struct lm_segment, journal), 9};
  j->e[3] = (struct lm_journal_entry){UINT64_MAX - 3, 1};
  j->e[4] = (struct lm_journal_entry){
      offsetof(struct lm_segment, total.reserved) + 3, 1}; /* unaligned */
  atomic_store(&j->n, 5);
  atomic_store(&seg->total.reserved, 12345); /* no lease holds it */
  struct lm_call call = call_for("gpt-4o");
  struct lm_lease l;
  struct lm_denial why;
  CHECK(lm_budget_admit(b, &call, &l, &why) == 0);
  lm_budget_settle(b, &l, 0);
  CHECK(atomic_load(&seg->magic) == LM_SEG_MAGIC);
  CHECK_EQ_U64(atomic_load(&j->n), 0);
  atomic_store(&j->n, LM_JOURNAL_MAX + 5); /* a count past the journal */
  CHECK(lm_budget_admit(b, &call, &l, &why) == 0);
  lm_budget_settle(b, &l, 0);
  CHECK_EQ_I64(atomic_load(&seg->total.reserved), 0); /* rebuilt */
  CHECK_EQ_U64(atomic_load(&j->rebuild), 0);
  done(b, seg);
}

/* The status text of a snapshot whose spent is INT64_MIN: hard - spent
 * overflowed, and the JSON said nothing remained. */
LM_TEST(hostile_status_remaining) {
  static struct lm_snapshot s;
  memset(&s, 0, sizeof(s));
  snprintf(s.name, sizeof(s.name), "x");
  s.hard_pusd = 5 * LM_PUSD_PER_USD;
  s.soft_pusd = 4 * LM_PUSD_PER_USD;
  s.total.spent = INT64_MIN;
  s.rpm = s.tpm = s.itpm = s.otpm = s.deadline = s.max_llm_ns = -1;
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  lm_status_print(f, &s, LM_FMT_JSON);
  lm_status_print(f, &s, LM_FMT_TABLE);
  fclose(f);
  CHECK(strstr(buf, "\"remaining_usd\":9223372.036854775807") != NULL);
  CHECK(strstr(buf, "remaining $9223372.0369") != NULL);
  free(buf);
  char m[40];
  CHECK_STR(lm_money_format_exact(INT64_MIN, m, sizeof(m)),
            "-9223372.036854775808");
}

/* Debug builds check the budget's invariants after every step; these
 * segments break them on purpose (shm_internal.h). */
void lm_shm_invariants_off(void);

int main(void) {
  lm_shm_invariants_off();
  LM_RUN(hostile_row_state_never_hangs);
  LM_RUN(hostile_rate_tat_snapshot);
  LM_RUN(hostile_rate_tat_admit);
  LM_RUN(hostile_reconcile_sum_saturates);
  LM_RUN(hostile_dead_lease_tokens);
  LM_RUN(hostile_lock_fails_closed_in_bounded_time);
  LM_RUN(hostile_journal_is_bounds_checked);
  LM_RUN(hostile_live_slot_charge);
  LM_RUN(hostile_llm_time);
  LM_RUN(hostile_impossible_pid);
  LM_RUN(hostile_status_remaining);
  LM_TEST_END();
}
