/* shm_rate.c — rate limits of a shared-memory budget: token buckets as GCRA
 * on one atomic word.
 *
 * A bucket of `per_min` units refills continuously and holds one minute's
 * worth. Its whole state is the theoretical arrival time (TAT, monotonic
 * ns) of the next unit: taking n units moves it n*60s/per_min later; the
 * take is allowed when TAT - now stays within one minute (the burst). A
 * caller may also take units up to `max_wait` ahead of time and sleep until
 * its turn, which paces a swarm exactly. One CAS per bucket: lock-free,
 * exact under contention, and a process that dies holds nothing.
 *
 * The buckets are the budget's rpm, tpm, itpm and otpm and the rate rules
 * (LM_RULE_RPM, LM_RULE_TPM) matching a call. Admission takes a turn in
 * each, or in none; once the call's actual tokens are known the token
 * buckets are corrected (lm_shm_rate_correct). Never sleeps: a paced
 * caller sleeps in admission.
 */
#include <string.h>

#include "shm_internal.h"

#define MINUTE_NS 60000000000LL

int64_t lm_shm_mono_ns(void) {
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
    if (inc > INT64_MAX - base) { /* a TAT no clock reaches (hostile) */
      *wait = INT64_MAX;
      return -1;
    }
    int64_t next = base + inc;
    int64_t w = next - MINUTE_NS - now;
    if (w > max_wait) {
      *wait = w;
      return -1;
    }
    LM_CRASH_POINT();
    if (atomic_compare_exchange_weak(tat, &old, next)) {
      LM_CRASH_POINT(); /* a turn taken by a process that dies is spent */
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
  LM_CRASH_POINT();
}

/* Units used in the last minute, as the bucket sees it. */
int64_t lm_shm_rate_used(_Atomic int64_t *tat, int64_t per_min, int64_t now) {
  if (per_min <= 0)
    return 0;
  int64_t t = atomic_load(tat);
  if (t <= now) /* before the subtraction: a hostile TAT may be INT64_MIN */
    return 0;
  int64_t ahead = t - now;
  return (int64_t)((__int128)ahead * per_min / MINUTE_NS);
}

/* What a bucket counts: requests, all tokens, input or output tokens. */
enum { RATE_REQ, RATE_TOK, RATE_IN, RATE_OUT };

static int64_t rate_units(int what, uint64_t in, uint64_t out) {
  return what == RATE_REQ   ? 1
         : what == RATE_TOK ? (int64_t)(in + out)
         : what == RATE_IN  ? (int64_t)in
                            : (int64_t)out;
}

static int rate_add(struct lm_shm_bucket *bk, int n, _Atomic int64_t *tat,
                    int64_t per_min, int what, uint64_t in, uint64_t out,
                    const char *name) {
  if (per_min < 0)
    return n; /* no limit: the bucket is not drawn from (nor the clock read) */
  bk[n] = (struct lm_shm_bucket){tat, per_min, rate_units(what, in, out), what,
                                 name};
  return n + 1;
}

/* The buckets a call draws from: those of the budget's rpm/tpm/itpm/otpm
 * and of the rate rules matching it that have a limit. */
static int rate_buckets(struct lm_segment *s, uint32_t mask, uint64_t in,
                        uint64_t out, struct lm_shm_bucket *bk) {
  int n = 0;
  n = rate_add(bk, n, &s->rpm_tat, atomic_load(&s->limits.rpm), RATE_REQ, in,
               out, "rpm");
  n = rate_add(bk, n, &s->tpm_tat, atomic_load(&s->limits.tpm), RATE_TOK, in,
               out, "tpm");
  n = rate_add(bk, n, &s->itpm_tat, atomic_load(&s->limits.itpm), RATE_IN, in,
               out, "input tpm");
  n = rate_add(bk, n, &s->otpm_tat, atomic_load(&s->limits.otpm), RATE_OUT, in,
               out, "output tpm");
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

int lm_shm_rates_take(struct lm_segment *s, uint32_t rule_mask, uint64_t in,
                      uint64_t out, int64_t max_wait_ns, struct lm_shm_rates *r,
                      struct lm_denial *why) {
  struct lm_shm_bucket *bk = r->bk;
  int nb = rate_buckets(s, rule_mask, in, out, bk);
  int64_t now_ns = nb ? lm_shm_mono_ns() : 0, turn = 0;
  r->n = nb;
  r->turn_ns = 0;
  for (int i = 0; i < nb; i++) {
    int64_t w;
    if (rate_take(bk[i].tat, bk[i].per_min, bk[i].units, now_ns, max_wait_ns,
                  &w) != 0) {
      for (int k = 0; k < i; k++)
        rate_adjust(bk[k].tat, bk[k].per_min, bk[k].units);
      r->n = 0; /* nothing taken: nothing to give back */
      memset(why, 0, sizeof(*why));
      why->kind = LM_DENY_RATE;
      /* a rule's pattern lives in shared memory: copy it bounded */
      memcpy(why->subject, bk[i].name, strnlen(bk[i].name, LM_NAME_MAX - 1));
      why->limit = bk[i].per_min;
      why->used = lm_shm_rate_used(bk[i].tat, bk[i].per_min, now_ns);
      why->retry_after_s = w == INT64_MAX ? -1 : (w + 999999999) / 1000000000;
      return -1;
    }
    if (w > turn)
      turn = w;
  }
  r->turn_ns = turn;
  return 0;
}

void lm_shm_rates_give_back(const struct lm_shm_rates *r) {
  for (int i = 0; i < r->n; i++)
    rate_adjust(r->bk[i].tat, r->bk[i].per_min, r->bk[i].units);
}

void lm_shm_rate_correct(struct lm_budget *b, const struct lm_lease *l,
                         const struct lm_usage *actual) {
  struct lm_segment *s = SEG(b);
  struct lm_shm_bucket bk[4 + LM_RULES];
  int n = rate_buckets(s, l->rule_mask, l->rate_in, l->rate_out, bk);
  for (int i = 0; i < n; i++) /* a request is a request: rpm stays */
    if (bk[i].what != RATE_REQ)
      rate_adjust(bk[i].tat, bk[i].per_min,
                  bk[i].units -
                      rate_units(bk[i].what, actual->input, actual->output));
}
