/* fuzz_segment.c — libFuzzer target for hostile budget segments: attach
 * (lm_budget_open, the real shm_open/fstat/mmap path), then what `llmmeter
 * status` does (reclaim, snapshot, the table, JSON and Prometheus text) and
 * one call's admit, charge and settle on whatever was accepted.
 *
 * Input: [mode][flags][call] records...
 *   mode % 3 == 0  the object is the rest of the input as is (a truncated
 *                  file: attach must refuse it);
 *   mode % 3 == 1  the rest of the input over a zeroed segment of the right
 *                  size (random bytes);
 *   mode % 3 == 2  a valid segment (made once per process by the engine:
 *                  limits, rules, model and agent rows, settled, denied and
 *                  one in-flight call) with up to MAX_EDITS single-field
 *                  edits, records of [field][index:2][value:8] (a record
 *                  whose field byte has bit 7 set is applied after
 *                  admission: another process scribbling on a live call).
 * Checks: no crash, no UB, no index out of range (ASan, UBSan); a refusal
 * is one line; a snapshot's counts and strings are in bounds; an admitted
 * lease's slot and rows are in range; a denial is one line.
 *
 * Not fuzzed: the robust mutex's bytes (another process of the user may
 * hold the lock: that is a wait, not a question of reading the segment).
 * Waits are short-circuited so the rate stays high: FUTEX_WAIT returns at
 * once (as a timeout) and nanosleep returns at once; the code's own bounds
 * (spins, waited_ms) still end every wait. The special values give owners
 * that cannot exist, not live ones: a row CLAIMED by a live process is
 * waited for by design (2,000 bounded spins, each reading /proc), which
 * took the rate from 2,500 to 450 runs a second. The undo journal at the
 * segment's end (layout 5) is replayed by the first step after a random
 * or edited segment: its entries are bounds-checked before any is used.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "budget.h"
#include "status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void __sanitizer_set_death_callback(void (*cb)(void));

#define USD(x) ((int64_t)((x)*1000000) * 1000000LL)
#define MAX_EDITS 8

/* ---- waits short-circuited --------------------------------------------- */

static long fuzz_real_syscall(long n, long a, long b, long c, long d, long e,
                              long f) {
  static long (*real)(long, ...);
  if (!real)
    real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
  return real(n, a, b, c, d, e, f);
}

long syscall(long n, ...) {
  va_list ap;
  long a[6];
  va_start(ap, n);
  for (int i = 0; i < 6; i++)
    a[i] = va_arg(ap, long);
  va_end(ap);
  if (n == SYS_futex && (a[1] & FUTEX_CMD_MASK) == FUTEX_WAIT) {
    errno = ETIMEDOUT;
    return -1;
  }
  return fuzz_real_syscall(n, a[0], a[1], a[2], a[3], a[4], a[5]);
}

int nanosleep(const struct timespec *req, struct timespec *rem) {
  (void)req;
  if (rem)
    rem->tv_sec = rem->tv_nsec = 0;
  return 0;
}

/* ---- the segment under test -------------------------------------------- */

static char seg_name[64], trunc_name[64];
static size_t seg_size;
static struct lm_segment *live; /* our own mapping of seg_name */
static struct lm_segment *tmpl; /* the valid segment, as made */
static uint32_t busy_slots[64]; /* the template's non-free lease slots */
static int n_busy;
static FILE *devnull;

static void cleanup(void) {
  if (seg_name[0])
    shm_unlink(seg_name);
  if (trunc_name[0])
    shm_unlink(trunc_name);
}

static void die(const char *what, const char *err) {
  fprintf(stderr, "fuzz_segment: %s: %s\n", what, err);
  cleanup();
  abort();
}

static void one_call(struct lm_budget *b, const char *model,
                     const char *provider, const char *agent, int64_t est,
                     int64_t cost, int settle) {
  struct lm_call c = {.model = model,
                      .provider = provider,
                      .agent = agent,
                      .est_pusd = est,
                      .est_tokens = 300,
                      .est_input_tokens = 200,
                      .est_output_tokens = 100};
  struct lm_lease l;
  struct lm_denial why;
  if (lm_budget_admit(b, &c, &l, &why) != 0)
    return;
  struct lm_usage u = {.input = 180, .output = 90, .cache_read = 20};
  lm_budget_charge(b, &l, &u, cost);
  if (settle == 1)
    lm_budget_settle(b, &l, 0);
  else if (settle == 2)
    lm_budget_release(b, &l);
  /* 0: left in flight (an ACTIVE lease of ours in the template) */
}

static void build_template(void) {
  char err[256];
  snprintf(seg_name, sizeof(seg_name), "llmmeter-fuzz-%d", (int)getpid());
  snprintf(trunc_name, sizeof(trunc_name), "llmmeter-fuzz-%d-t", (int)getpid());
  atexit(cleanup);
  __sanitizer_set_death_callback(cleanup);
  struct lm_limit_config c = LM_LIMITS_NONE;
  c.hard_pusd = USD(5);
  c.tokens = 10000000;
  c.requests = 100000;
  c.max_call_pusd = USD(1);
  c.rpm = 100000;
  c.tpm = 100000000;
  c.max_llm_ns = 3600LL * 1000000000;
  c.window = LM_WINDOW_DAY;
  c.on_soft = "echo soft";
  c.downgrade = "gpt-4o=gpt-4o-mini,claude-*=claude-haiku";
  struct lm_budget *b = NULL;
  if (lm_budget_create(seg_name, true, &c, &b, err, sizeof(err)) != 0)
    die("create", err);
  static const struct {
    int kind;
    const char *pat;
    int64_t lim;
  } rules[] = {
      {LM_RULE_MODEL | LM_RULE_SPEND, "gpt-*", USD(2)},
      {LM_RULE_AGENT | LM_RULE_SPEND, "agent-*", USD(3)},
      {LM_RULE_MODEL | LM_RULE_CALL_INPUT, "claude-*", 100000},
      {LM_RULE_MODEL | LM_RULE_CALL_OUTPUT, "claude-*", 50000},
      {LM_RULE_AGENT | LM_RULE_RPM, "agent-b", 6000},
      {LM_RULE_MODEL | LM_RULE_TPM, "llama*", 1000000},
      {LM_RULE_MODEL | LM_RULE_CALL_USD, "*", USD(0.5)},
      {LM_RULE_MODEL | LM_RULE_SPEND, "retired", USD(1)},
  };
  for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
    if (lm_budget_add_rule(b, rules[i].kind, rules[i].pat, rules[i].lim, err,
                           sizeof(err)) != 0)
      die("add_rule", err);
  lm_budget_add_rule(b, LM_RULE_MODEL | LM_RULE_SPEND, "retired", -1, err,
                     sizeof(err));
  static const char *const models[][2] = {{"gpt-4o", "openai"},
                                          {"claude-3", "anthropic"},
                                          {"llama-3", "groq"},
                                          {"llama-3", "openrouter"}};
  static const char *const agents[] = {"agent-a", "agent-b", ""};
  for (int m = 0; m < 4; m++)
    for (int a = 0; a < 3; a++)
      one_call(b, models[m][0], models[m][1], agents[a], USD(0.01),
               USD(0.001) * (m + a + 1), (m + a) % 4 == 3 ? 2 : 1);
  one_call(b, "gpt-4o", "openai", "agent-a", USD(0.9), 0, 1); /* denied */
  one_call(b, "claude-3", "anthropic", "agent-b", USD(0.02), USD(0.005), 0);
  lm_budget_close(b);

  int fd = shm_open(seg_name, O_RDWR, 0);
  if (fd < 0)
    die("shm_open", strerror(errno));
  long page = sysconf(_SC_PAGESIZE);
  seg_size = (sizeof(struct lm_segment) + page - 1) / page * page;
  live = mmap(NULL, seg_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (live == MAP_FAILED)
    die("mmap", strerror(errno));
  tmpl = malloc(seg_size);
  if (!tmpl)
    die("malloc", "out of memory");
  memcpy(tmpl, live, seg_size);
  for (uint32_t i = 0; i < LM_LEASES && n_busy < 64; i++)
    if (tmpl->leases[i].state)
      busy_slots[n_busy++] = i;
  if (n_busy == 0)
    die("template", "no lease in flight");
  devnull = fopen("/dev/null", "w");
  if (!devnull)
    die("/dev/null", strerror(errno));
}

/* ---- single-field edits ------------------------------------------------ */

enum fkind { F_INT, F_STR, F_RAW };
struct field {
  size_t off, stride;
  uint32_t count, width; /* F_STR: width is the string's size */
  enum fkind kind;
};

#define SEGF(m, w) \
  { offsetof(struct lm_segment, m), 0, 1, w, F_INT }
#define SEGS(m)                                                                \
  {                                                                            \
    offsetof(struct lm_segment, m), 0, 1, sizeof(((struct lm_segment *)0)->m), \
        F_STR                                                                  \
  }
#define ARR(a, n, m, w)                                                   \
  {                                                                       \
    offsetof(struct lm_segment, a) + offsetof(__typeof__(tmpl->a[0]), m), \
        sizeof(tmpl->a[0]), n, w, F_INT                                   \
  }
#define ARRS(a, n, m)                                                     \
  {                                                                       \
    offsetof(struct lm_segment, a) + offsetof(__typeof__(tmpl->a[0]), m), \
        sizeof(tmpl->a[0]), n, sizeof(tmpl->a[0].m), F_STR                \
  }
#define CNT(base, n, m, w)                                               \
  {                                                                      \
    offsetof(struct lm_segment, base) + offsetof(struct lm_counters, m), \
        n > 1 ? sizeof(tmpl->base) / n : 0, n, w, F_INT                  \
  }
#define ROWC(a, m, w)                                             \
  {                                                               \
    offsetof(struct lm_segment, a) + offsetof(struct lm_row, c) + \
        offsetof(struct lm_counters, m),                          \
        sizeof(struct lm_row), LM_ROWS + 1, w, F_INT              \
  }
#define RULEC(m, w)                                                    \
  {                                                                    \
    offsetof(struct lm_segment, rules) + offsetof(struct lm_rule, c) + \
        offsetof(struct lm_counters, m),                               \
        sizeof(struct lm_rule), LM_RULES, w, F_INT                     \
  }

static const struct field fields[] = {
    SEGF(magic, 8),
    SEGF(version, 4),
    SEGF(header_size, 4),
    SEGF(total_size, 8),
    SEGF(owner_uid, 4),
    SEGF(row_count, 4),
    SEGF(rule_count, 4),
    SEGF(lease_count, 4),
    SEGF(created_at, 8),
    SEGS(name),
    SEGF(limits.hard_pusd, 8),
    SEGF(limits.soft_pusd, 8),
    SEGF(limits.tokens, 8),
    SEGF(limits.requests, 8),
    SEGF(limits.window_kind, 4),
    SEGF(limits.mode, 4),
    SEGF(limits.max_call_pusd, 8),
    SEGF(limits.max_call_input_tokens, 8),
    SEGF(limits.max_call_output_tokens, 8),
    SEGF(limits.rpm, 8),
    SEGF(limits.tpm, 8),
    SEGF(limits.itpm, 8),
    SEGF(limits.otpm, 8),
    SEGF(limits.deadline, 8),
    SEGF(limits.max_llm_ns, 8),
    SEGF(rules_gen, 4),
    SEGF(wake, 4),
    SEGF(waiters, 4),
    SEGF(gate, 4),
    SEGF(reclaimed, 8),
    SEGF(reconciles, 8),
    SEGF(unmetered_denied, 8),
    SEGF(unmetered_warned, 8),
    SEGF(reset_at, 8),
    SEGF(rpm_tat, 8),
    SEGF(tpm_tat, 8),
    SEGF(itpm_tat, 8),
    SEGF(otpm_tat, 8),
    SEGF(llm_ns, 8),
    SEGF(soft_window, 8),
    SEGS(on_soft),
    SEGS(downgrade),
    CNT(total, 1, window, 8),
    CNT(total, 1, spent, 8),
    CNT(total, 1, reserved, 8),
    CNT(total, 1, requests, 8),
    CNT(total, 1, reserved_requests, 8),
    CNT(total, 1, reserved_tokens, 8),
    CNT(total, 1, denied, 8),
    CNT(total, 1, tokens[0], 8),
    CNT(total, 1, first_activity, 8),
    CNT(total, 1, last_activity, 8),
    ARR(models, LM_ROWS + 1, state, 8),
    ARR(models, LM_ROWS + 1, hash, 4),
    ARR(models, LM_ROWS + 1, flags, 4),
    ARRS(models, LM_ROWS + 1, name),
    ARRS(models, LM_ROWS + 1, provider),
    ROWC(models, window, 8),
    ROWC(models, spent, 8),
    ROWC(models, reserved, 8),
    ROWC(models, requests, 8),
    ROWC(models, reserved_requests, 8),
    ROWC(models, tokens[1], 8),
    ARR(agents, LM_ROWS + 1, state, 8),
    ARR(agents, LM_ROWS + 1, hash, 4),
    ARRS(agents, LM_ROWS + 1, name),
    ROWC(agents, window, 8),
    ROWC(agents, spent, 8),
    ROWC(agents, reserved, 8),
    ARR(rules, LM_RULES, state, 4),
    ARR(rules, LM_RULES, kind, 4),
    ARR(rules, LM_RULES, limit_pusd, 8),
    ARRS(rules, LM_RULES, pattern),
    ARR(rules, LM_RULES, tat, 8),
    RULEC(window, 8),
    RULEC(spent, 8),
    RULEC(reserved, 8),
    ARR(leases, LM_LEASES, state, 8),
    ARR(leases, LM_LEASES, owner_start, 8),
    ARR(leases, LM_LEASES, reserved_pusd, 8),
    ARR(leases, LM_LEASES, charged_pusd, 8),
    ARR(leases, LM_LEASES, reserved_tokens, 8),
    ARR(leases, LM_LEASES, model_row, 4),
    ARR(leases, LM_LEASES, agent_row, 4),
    ARR(leases, LM_LEASES, rule_mask, 4),
    ARR(leases, LM_LEASES, flags, 4),
    ARR(leases, LM_LEASES, admitted_at, 8),
    {0, 0, 1, 4, F_RAW}, /* 4 bytes anywhere in the segment */
};
#define N_FIELDS (sizeof(fields) / sizeof(fields[0]))

static const uint64_t specials[16] = {
    0,
    1,
    (uint64_t)-1,
    0x7fffffffffffffffULL,
    0x8000000000000000ULL,
    LM_ROWS,
    LM_ROWS + 1,
    LM_ROW_NONE,
    LM_RULES,
    LM_LEASES,
    0xffffffffULL,
    0x80000000ULL,
    /* state words of a pid that cannot exist (dead at once: no stall) */
    (((1ULL << 22) + 1) << 8) | 3, /* lease: ACTIVE */
    (((1ULL << 22) + 1) << 8) | 2, /* lease: APPLYING */
    (((1ULL << 22) + 1) << 2) | 1, /* row: CLAIMED */
    0x0000ffff00000003ULL,
};

static uint64_t rd64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

static int in_lock(size_t off, size_t n) {
  size_t lo = offsetof(struct lm_segment, lock);
  size_t hi = offsetof(struct lm_segment, limits);
  return off < hi && off + n > lo;
}

/* One record: [field][index lo][index hi][value: 8]. */
static void apply_edit(uint8_t *seg, const uint8_t *r) {
  const struct field *f = &fields[(r[0] & 0x7f) % N_FIELDS];
  uint32_t idx = (uint32_t)r[1] | (uint32_t)r[2] << 8;
  const uint8_t *val = r + 3;
  if (f->kind == F_RAW) {
    uint32_t off = (uint32_t)rd64(val) %
                   (uint32_t)(sizeof(struct lm_segment) - 4);
    if (!in_lock(off, 4))
      memcpy(seg + off, val + 4, 4);
    return;
  }
  uint32_t el;
  if (f->stride == sizeof(struct lm_lease_slot) && (idx & 0x8000))
    el = busy_slots[idx % (uint32_t)n_busy]; /* a lease in use */
  else
    el = idx % f->count;
  uint8_t *p = seg + f->off + (size_t)el * f->stride;
  if (f->kind == F_STR) {
    if (val[2] & 1)
      memset(p, val[1] ? val[1] : 'x', f->width); /* no NUL anywhere */
    else
      p[val[0] % f->width] = val[1];
    return;
  }
  uint64_t v = val[0] < 16 ? specials[val[0]] : rd64(val);
  memcpy(p, &v, f->width); /* little-endian: the low bytes */
}

/* ---- checks ------------------------------------------------------------ */

static void check_line(const char *what, const char *s, size_t cap) {
  size_t n = strnlen(s, cap);
  if (n == 0 || n == cap || memchr(s, '\n', n)) {
    fprintf(stderr, "fuzz_segment: %s is not one line: '%.*s'\n", what, (int)n,
            s);
    abort();
  }
}

static void check_str(const char *s, size_t cap) {
  if (strnlen(s, cap) >= cap)
    abort(); /* unterminated string in a snapshot */
}

static void check_snapshot(const struct lm_snapshot *o) {
  if (o->n_models < 0 || o->n_models > LM_ROWS + 1 || o->n_agents < 0 ||
      o->n_agents > LM_ROWS + 1 || o->n_rules < 0 || o->n_rules > LM_RULES ||
      o->active_leases > LM_LEASES || o->window < 0 ||
      o->window >= LM_WINDOW_KINDS || (o->mode != 0 && o->mode != 1))
    abort();
  check_str(o->name, sizeof(o->name));
  check_str(o->on_soft, sizeof(o->on_soft));
  check_str(o->downgrade, sizeof(o->downgrade));
  for (int i = 0; i < o->n_models; i++) {
    check_str(o->models[i].name, LM_NAME_MAX);
    check_str(o->models[i].provider, LM_PROVIDER_MAX);
  }
  for (int i = 0; i < o->n_agents; i++)
    check_str(o->agents[i].name, LM_NAME_MAX);
  for (int i = 0; i < o->n_rules; i++)
    check_str(o->rules[i].pattern, LM_NAME_MAX);
}

static const char *const call_models[4] = {
    "gpt-4o", "claude-3", "llama-3",
    "a-model-name-longer-than-any-row-can-hold-so-it-is-truncated-at-63"};
static const char *const call_agents[4] = {"agent-a", "agent-b", "", "other"};
static const char *const call_providers[4] = {"openai", "anthropic", "groq",
                                              NULL};

static void do_call(struct lm_budget *b, uint8_t flags, uint8_t call,
                    const uint8_t *late, size_t n_late) {
  struct lm_call c = {.model = call_models[call & 3],
                      .provider = call_providers[(call >> 2) & 3],
                      .agent = call_agents[(call >> 4) & 3],
                      .est_pusd = (call & 0x40) ? USD(0.01) : USD(2),
                      .est_tokens = 300,
                      .est_input_tokens = 200,
                      .est_output_tokens = 100,
                      .zero_priced = (flags & 8) != 0};
  struct lm_lease l;
  struct lm_denial why;
  char line[512];
  if (lm_budget_admit(b, &c, &l, &why) != 0) {
    lm_denial_format(&why, lm_budget_name(b), line, sizeof(line));
    check_line("denial", line, sizeof(line));
    return;
  }
  if (l.slot >= LM_LEASES || l.model_row > LM_ROW_OTHER ||
      l.agent_row > LM_ROW_OTHER)
    abort();
  /* another process scribbles on the segment while the call runs */
  for (size_t i = 0; i < n_late; i++)
    apply_edit((uint8_t *)live, late + i * 11);
  struct lm_usage u = {.input = 150, .output = 80, .reasoning = 10};
  lm_budget_charge(b, &l, &u, USD(0.004));
  if (lm_budget_over_call_caps(b, &l, &c, &u, USD(0.004), &why)) {
    lm_denial_format(&why, lm_budget_name(b), line, sizeof(line));
    check_line("cap", line, sizeof(line));
  }
  lm_budget_over_hard(b, &l);
  if (lm_budget_over_time(b, 2000000000, &why)) { /* 2 s into a transfer */
    lm_denial_format(&why, lm_budget_name(b), line, sizeof(line));
    check_line("time", line, sizeof(line));
  }
  lm_budget_rate_correct(b, &l, &u);
  char cmd[256], to[LM_NAME_MAX];
  lm_budget_soft_crossed(b, cmd, sizeof(cmd));
  lm_budget_downgrade(b, c.model, to, sizeof(to));
  if (flags & 4)
    lm_budget_release(b, &l);
  else
    lm_budget_settle(b, &l, (flags & 0x10) ? LM_SETTLE_UNPRICED : 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!tmpl)
    build_template();
  if (size < 3)
    return 0;
  uint8_t mode = data[0] % 3, flags = data[1], call = data[2];
  const uint8_t *rest = data + 3;
  size_t n = size - 3;
  char err[256] = "";

  if (mode == 0) { /* a truncated object: attach must refuse it */
    int fd = shm_open(trunc_name, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
      die("shm_open", strerror(errno));
    if (n && write(fd, rest, n) != (ssize_t)n)
      die("write", strerror(errno));
    close(fd);
    struct lm_budget *b = NULL;
    if (lm_budget_open(trunc_name, false, &b, err, sizeof(err)) == 0)
      abort(); /* smaller than a segment, and accepted */
    check_line("refusal", err, sizeof(err));
    return 0;
  }

  uint8_t late[MAX_EDITS * 11];
  size_t n_late = 0;
  if (mode == 1) {
    memset(live, 0, seg_size);
    memcpy(live, rest, n < seg_size ? n : seg_size);
  } else {
    for (size_t i = 0, k = 0; i + 11 <= n && k < MAX_EDITS; i += 11, k++) {
      if (rest[i] & 0x80)
        memcpy(late + 11 * n_late++, rest + i, 11);
      else
        apply_edit((uint8_t *)live, rest + i);
    }
  }
  /* the mutex is not fuzzed (see the top) */
  memcpy(&live->lock, &tmpl->lock,
         offsetof(struct lm_segment, limits) -
             offsetof(struct lm_segment, lock));

  struct lm_budget *b = NULL;
  int rc = lm_budget_open(seg_name, false, &b, err, sizeof(err));
  if (rc != 0) {
    check_line("refusal", err, sizeof(err));
  } else {
    static struct lm_snapshot snap;
    if (flags & 1)
      lm_budget_reclaim(b);
    if (lm_budget_snapshot(b, &snap) != 0)
      abort();
    check_snapshot(&snap);
    lm_status_print(devnull, &snap, LM_FMT_TABLE);
    lm_status_print(devnull, &snap, LM_FMT_JSON);
    lm_status_print(devnull, &snap, LM_FMT_PROM);
    if (flags & 2)
      do_call(b, flags, call, late, n_late);
    lm_budget_hard_limit(b);
    lm_budget_close(b);
  }
  memcpy(live, tmpl, seg_size); /* the next input starts from the template */
  return 0;
}
