/* budget_redis.c — the budget engine on a Redis server: one budget for
 * every process on every machine and container that can reach it.
 *
 * A budget named redis://[:PASSWORD@]HOST:PORT[/DB]/NAME lives under the
 * keys llmmeter:{NAME}:* (one hash tag: one cluster slot). Every change is
 * one run of the server-side script (budget_redis.lua), so an admission
 * checks its limits and reserves in one atomic step, and a charge or a
 * settlement lands whole or not at all. Each call is a lease with a
 * deadline on the server's clock: a process that dies mid-call stops
 * extending it, and the next admission returns what it reserved.
 *
 * Round trips: admit and settle; a charge is held here and sent when it
 * goes past what the lease reserved, or when HOLD_MS have passed since
 * the last send (a stream extends its lease that way too), else with the
 * settle. Charges and settles carry the lease id and the call's cumulative
 * amounts, not deltas, so a retry after a lost reply applies nothing twice.
 *
 * What a caller asks between round trips (over_hard, the per-call caps,
 * the deadline) is answered from the limits and spend the last reply
 * carried. Redis unreachable, or an error: the call is refused with
 * LM_DENY_ERROR and one line naming Redis (the meter's LLMMETER_ON_ERROR
 * decides what happens then). Rates are the shm backend's GCRA buckets,
 * kept in the script on the server's clock: admission takes the call's
 * turn in each (a turn within LLMMETER_WAIT_S is slept for here), and the
 * settle corrects the token buckets by what the call used, in the same
 * round trip. --downgrade: the map comes with the open and every
 * admission's reply; a call whose model the map would rewrite asks the
 * server (one round trip) whether spent has reached the soft limit.
 */
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "budget_backend.h"
#include "money.h"
#include "redis_conn.h"
#include "window.h"

#define HOLD_MS 200 /* longest a running charge is held before it is sent */
#define TIMEOUT_MS 1000

struct redis_budget {
  struct lm_budget base;
  struct lm_redis *r;
  char key[96];   /* llmmeter:{NAME}:cfg */
  int64_t ttl_ms; /* a lease not extended this long is a dead call's */
  /* What the last reply said (read between round trips). */
  _Atomic int64_t spent, hard, mode, wk, mcu, mci, mco, deadline, mln, llm;
  _Atomic int64_t llm_pending; /* LLM ns not yet sent */
  _Atomic int crossed;         /* the soft limit was crossed by our charge */
  _Atomic int spend_rules;     /* it had spend rules when opened */
  char on_soft[256];
  pthread_mutex_t dg_mu; /* guards dg */
  char dg[512];          /* the --downgrade map the last reply carried */
};
#define RB(b) ((struct redis_budget *)(b))

/* ---- replies ----------------------------------------------------------- */

static const char *str_at(const redisReply *r, size_t i) {
  if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements)
    return "";
  const redisReply *e = r->element[i];
  if (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS)
    return e->str;
  return "";
}

static int64_t int_at(const redisReply *r, size_t i) {
  if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements)
    return 0;
  const redisReply *e = r->element[i];
  if (e->type == REDIS_REPLY_INTEGER)
    return e->integer;
  if (e->type == REDIS_REPLY_STRING)
    return strtoll(e->str, NULL, 10);
  return 0;
}

static int64_t num(const char *s, int64_t dflt) {
  if (!s || !*s)
    return dflt;
  return strtoll(s, NULL, 10);
}

/* ---- the script's arguments -------------------------------------------- */

/* ARGV[1..8]: op, the clock, (unused), the start of each window kind. */
struct args {
  const char *v[LM_REDIS_ARGS];
  char buf[LM_REDIS_ARGS][32];
  int n;
};

static void arg(struct args *a, const char *s) {
  if (a->n < LM_REDIS_ARGS)
    a->v[a->n++] = s;
}
static void argi(struct args *a, int64_t x) {
  if (a->n < LM_REDIS_ARGS) {
    snprintf(a->buf[a->n], sizeof(a->buf[0]), "%lld", (long long)x);
    a->v[a->n] = a->buf[a->n];
    a->n++;
  }
}
static void args_begin(struct args *a, struct lm_budget *b, const char *op) {
  a->n = 0;
  int64_t now = lm_budget_now(b);
  arg(a, op);
  argi(a, now);
  arg(a, "0");
  for (int k = 0; k < LM_WINDOW_KINDS; k++)
    argi(a, lm_window_start((enum lm_window_kind)k, now));
}

static redisReply *run(struct lm_budget *b, struct args *a, char *err,
                       size_t errlen) {
  return lm_redis_script(RB(b)->r, RB(b)->key, a->n, a->v, err, errlen);
}

static void error_denial(struct lm_denial *why, const char *err) {
  memset(why, 0, sizeof(*why));
  why->kind = LM_DENY_ERROR;
  why->retry_after_s = -1;
  snprintf(why->detail, sizeof(why->detail), "%s", err);
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The limits and spend an admission's reply carries from [first]. */
static void cache_limits(struct redis_budget *rb, const redisReply *r,
                         size_t first) {
  atomic_store(&rb->spent, int_at(r, first));
  atomic_store(&rb->hard, num(str_at(r, first + 1), -1));
  atomic_store(&rb->mode, int_at(r, first + 2));
  atomic_store(&rb->wk, int_at(r, first + 3));
  atomic_store(&rb->mcu, num(str_at(r, first + 4), -1));
  atomic_store(&rb->mci, num(str_at(r, first + 5), -1));
  atomic_store(&rb->mco, num(str_at(r, first + 6), -1));
  atomic_store(&rb->deadline, num(str_at(r, first + 7), -1));
  atomic_store(&rb->mln, num(str_at(r, first + 8), -1));
  atomic_store(&rb->llm, int_at(r, first + 9));
}

/* Keeps the --downgrade map a reply carried. */
static void cache_downgrade(struct redis_budget *rb, const char *map) {
  pthread_mutex_lock(&rb->dg_mu);
  snprintf(rb->dg, sizeof(rb->dg), "%s", map);
  pthread_mutex_unlock(&rb->dg_mu);
}

/* ---- admission --------------------------------------------------------- */

static const struct {
  const char *word;
  enum lm_deny_kind kind;
} deny_words[] = {
    {"hard", LM_DENY_HARD},
    {"tokens", LM_DENY_TOKENS},
    {"requests", LM_DENY_REQUESTS},
    {"call_usd", LM_DENY_CALL_USD},
    {"call_input", LM_DENY_CALL_INPUT},
    {"call_output", LM_DENY_CALL_OUTPUT},
    {"deadline", LM_DENY_DEADLINE},
    {"llm_time", LM_DENY_LLM_TIME},
    {"model", LM_DENY_MODEL},
    {"agent", LM_DENY_AGENT},
    {"rate", LM_DENY_RATE},
};
/* The lease's spend rule reached its limit (the last reply said so). */
#define LEASEF_RULE_OVER 0x100u
#define LEASEF_WHOLE 0x200u /* lm_call.whole_response */

/* A call's own caps (the environment's), checked before a round trip. */
static bool over_own_caps(const struct lm_call *call, bool dollars,
                          int64_t pusd, uint64_t in, uint64_t out,
                          const int64_t budget_caps[3], struct lm_denial *why) {
  const int64_t own[3] = {call ? call->max_call_pusd : -1,
                          call ? call->max_call_input_tokens : -1,
                          call ? call->max_call_output_tokens : -1};
  const int64_t val[3] = {dollars ? pusd : 0, (int64_t)in, (int64_t)out};
  static const enum lm_deny_kind kinds[3] = {
      LM_DENY_CALL_USD, LM_DENY_CALL_INPUT, LM_DENY_CALL_OUTPUT};
  for (int k = 0; k < 3; k++) {
    int64_t lim = budget_caps ? budget_caps[k] : -1;
    if (own[k] > 0 && (lim < 0 || own[k] < lim))
      lim = own[k];
    if (lim < 0 || val[k] <= lim)
      continue;
    memset(why, 0, sizeof(*why));
    why->kind = kinds[k];
    why->limit = lim;
    why->used = val[k];
    why->retry_after_s = -1;
    return true;
  }
  return false;
}

static uint64_t lease_id(void) {
  uint64_t id = 0;
  while (id == 0)
    if (getrandom(&id, sizeof(id), 0) != sizeof(id))
      id = ((uint64_t)mono_ms() << 20) ^ (uint64_t)getpid() ^
           (uint64_t)(uintptr_t)&id;
  return id;
}

/* One admission attempt, which may wait wait_ms for a rate turn. *wait:
 * refused only by in-flight reservations (not counted as denied: the
 * caller tries again); *turn_us: admitted, the call's rate turn is that
 * far away (the caller sleeps first). */
static int admit_once(struct lm_budget *b, const struct lm_call *call,
                      struct lm_lease *l, struct lm_denial *why,
                      int64_t wait_ms, bool *wait, int64_t *turn_us) {
  struct redis_budget *rb = RB(b);
  memset(l, 0, sizeof(*l));
  memset(why, 0, sizeof(*why));
  l->slot = UINT32_MAX;
  bool dollars = !call->zero_priced;
  int64_t est = dollars && call->est_pusd > 0 ? call->est_pusd : 0;
  if (over_own_caps(call, dollars, est, call->est_input_tokens,
                    call->est_output_tokens, NULL, why))
    return -1;
  uint64_t id = lease_id();
  char ids[24], err[160];
  snprintf(ids, sizeof(ids), "%016llx", (unsigned long long)id);
  struct args a;
  args_begin(&a, b, "admit");
  arg(&a, ids);
  argi(&a, RB(b)->ttl_ms);
  arg(&a, call->model && *call->model ? call->model : "unknown");
  arg(&a, call->provider ? call->provider : "");
  arg(&a, call->agent && *call->agent ? call->agent : "unknown");
  argi(&a, est);
  argi(&a, (int64_t)call->est_tokens);
  argi(&a, (int64_t)call->est_input_tokens);
  argi(&a, (int64_t)call->est_output_tokens);
  arg(&a, dollars ? "1" : "0");
  arg(&a, wait_ms > 0 ? "1" : "0");
  argi(&a, wait_ms > 0 ? wait_ms * 1000 : 0);
  *wait = false;
  *turn_us = 0;
  redisReply *r = run(b, &a, err, sizeof(err));
  if (!r) {
    error_denial(why, err);
    return -1;
  }
  const char *st = str_at(r, 0);
  int rc = -1;
  if (strcmp(st, "ok") == 0) {
    cache_limits(rb, r, 1);
    l->slot = 0;
    l->state_word = id;
    l->flags = (dollars ? LM_LEASEF_DOLLARS : 0) |
               (call->whole_response ? LEASEF_WHOLE : 0);
    l->model_row = l->agent_row = LM_ROW_NONE;
    l->reserved_pusd = est;
    l->reserved_tokens = call->est_tokens;
    l->rate_in = call->est_input_tokens;
    l->rate_out = call->est_output_tokens;
    l->sent_at_ms = mono_ms();
    *turn_us = int_at(r, 11);
    cache_downgrade(rb, str_at(r, 12));
    rc = 0;
  } else if (strcmp(st, "enoent") == 0) {
    error_denial(why, "no such budget in Redis");
  } else {
    enum lm_deny_kind kind = LM_DENY_ERROR;
    for (size_t i = 0; i < sizeof(deny_words) / sizeof(deny_words[0]); i++)
      if (strcmp(st, deny_words[i].word) == 0)
        kind = deny_words[i].kind;
    if (kind == LM_DENY_ERROR) {
      error_denial(why, "Redis: unexpected reply to an admission");
    } else {
      cache_limits(rb, r, 1);
      int wk = (int)atomic_load(&rb->wk);
      const char *subject = str_at(r, 14);
      lm_denial_fill(why, kind, *subject ? subject : NULL,
                     num(str_at(r, 11), 0), num(str_at(r, 12), 0), wk,
                     lm_budget_now(b));
      why->spent = num(str_at(r, 13), 0);
      *wait = int_at(r, 15) == 1;
      why->waitable = int_at(r, 18) == 1;
      cache_downgrade(rb, str_at(r, 17));
      if (kind == LM_DENY_RATE) /* the turn's, not the window's */
        why->retry_after_s = num(str_at(r, 16), -1);
      if (kind == LM_DENY_DEADLINE || kind == LM_DENY_LLM_TIME ||
          kind == LM_DENY_CALL_USD || kind == LM_DENY_CALL_INPUT ||
          kind == LM_DENY_CALL_OUTPUT)
        why->retry_after_s = -1;
    }
  }
  lm_redis_reply_free(r);
  return rc;
}

/* Admits, waiting up to call->wait_ms while only other calls'
 * reservations stand in the way (they may settle for less), polling with a
 * growing pause: Redis cannot wake us as the shm backend's futex does. A
 * rate turn within the remaining wait is taken by the script and slept
 * for here, computed, not polled (as on shm). */
static int redis_admit(struct lm_budget *b, const struct lm_call *call,
                       struct lm_lease *l, struct lm_denial *why) {
  int64_t t0 = mono_ms(), pause_ms = 10;
  bool waited = false;
  for (;;) {
    int64_t left = call->wait_ms - (mono_ms() - t0);
    bool wait;
    int64_t turn_us;
    int rc = admit_once(b, call, l, why, left, &wait, &turn_us);
    if (rc == 0 && turn_us > 0) {
      struct timespec ts = {turn_us / 1000000, (turn_us % 1000000) * 1000};
      while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    }
    if (rc == 0 || !wait) {
      if (rc != 0 && waited)
        why->waited_ms = mono_ms() - t0;
      return rc;
    }
    waited = true;
    int64_t ms = pause_ms < left ? pause_ms : left;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
    pause_ms = pause_ms * 2 > 250 ? 250 : pause_ms * 2;
  }
}

/* ---- charge, settle, release ------------------------------------------- */

/* Appends the lease's cumulative charges: money, then the 14 kinds. */
static void args_charges(struct args *a, const struct lm_lease *l) {
  argi(a, l->charged_pusd);
  for (int k = 0; k < LM_TOK_KINDS; k++)
    argi(a, l->held_tokens[k]);
}

/* The spend and the soft crossing a charge or settle reply carries. */
static void after_reply(struct redis_budget *rb, const redisReply *r) {
  atomic_store(&rb->spent, int_at(r, 1));
  if (int_at(r, 2) == 1) {
    snprintf(rb->on_soft, sizeof(rb->on_soft), "%s", str_at(r, 3));
    atomic_store(&rb->crossed, 1);
  }
}

static bool send_charge(struct lm_budget *b, struct lm_lease *l) {
  char ids[24], err[160];
  snprintf(ids, sizeof(ids), "%016llx", (unsigned long long)l->state_word);
  struct args a;
  args_begin(&a, b, "charge");
  arg(&a, ids);
  argi(&a, RB(b)->ttl_ms);
  args_charges(&a, l);
  redisReply *r = run(b, &a, err, sizeof(err));
  if (!r)
    return false; /* held; the next send or the settle carries it */
  after_reply(RB(b), r);
  if (int_at(r, 4) == 1)
    l->flags |= LEASEF_RULE_OVER;
  lm_redis_reply_free(r);
  l->sent_pusd = l->charged_pusd;
  l->sent_at_ms = mono_ms();
  return true;
}

/* A stream that is still flowing extends its lease (a third of the TTL
 * at the latest), carrying what it holds. */
static void redis_alive(struct lm_budget *b, struct lm_lease *l) {
  if (l->slot != UINT32_MAX && mono_ms() - l->sent_at_ms >= RB(b)->ttl_ms / 3)
    send_charge(b, l);
}

static void redis_charge(struct lm_budget *b, struct lm_lease *l,
                         const struct lm_usage *delta, int64_t pusd) {
  if (l->slot == UINT32_MAX)
    return;
  if (pusd < 0 && -pusd > l->charged_pusd)
    pusd = -l->charged_pusd; /* a refund: never below nothing charged */
  l->charged_pusd = lm_money_add(l->charged_pusd, pusd);
  if (delta) {
    uint64_t add[LM_TOK_KINDS];
    lm_usage_kinds(delta, add);
    for (int k = 0; k < LM_TOK_KINDS; k++) /* modular, as the other backends */
      l->held_tokens[k] = (int64_t)((uint64_t)l->held_tokens[k] + add[k]);
    l->charged_tokens += delta->input + delta->output;
  }
  /* Past what the lease reserved, the budget must see it now (a stream's
   * cut depends on it); within it, the reservation already counts against
   * every limit. A whole response's one charge rides with its settle,
   * which follows at once: two round trips a call, not three. */
  bool past = ((l->flags & LM_LEASEF_DOLLARS) &&
               l->charged_pusd > l->reserved_pusd &&
               l->charged_pusd != l->sent_pusd) ||
              l->charged_tokens > l->reserved_tokens;
  if (l->flags & LEASEF_WHOLE)
    return;
  if (past || mono_ms() - l->sent_at_ms >= HOLD_MS)
    send_charge(b, l);
}

static void finish(struct lm_budget *b, struct lm_lease *l, unsigned flags,
                   bool count) {
  if (l->slot == UINT32_MAX)
    return;
  struct redis_budget *rb = RB(b);
  char ids[24], err[160];
  snprintf(ids, sizeof(ids), "%016llx", (unsigned long long)l->state_word);
  int64_t llm = atomic_exchange(&rb->llm_pending, 0);
  struct args a;
  args_begin(&a, b, "settle");
  arg(&a, ids);
  arg(&a, count ? "1" : "0");
  args_charges(&a, l);
  arg(&a, (flags & LM_SETTLE_UNMETERED) ? "1" : "0");
  arg(&a, (flags & LM_SETTLE_UNPRICED) ? "1" : "0");
  argi(&a, llm);
  /* A reply lost to a timeout is retried: the settle carries the lease id
   * and cumulative amounts, so a settle that did land applies nothing. */
  redisReply *r = NULL;
  for (int attempt = 0; attempt < 3 && !r; attempt++)
    r = run(b, &a, err, sizeof(err));
  if (r) {
    after_reply(rb, r);
    lm_redis_reply_free(r);
  } else {
    atomic_fetch_add(&rb->llm_pending, llm);
  }
  l->slot = UINT32_MAX;
}

static void redis_settle(struct lm_budget *b, struct lm_lease *l,
                         unsigned flags) {
  finish(b, l, flags, true);
}

static void redis_release(struct lm_budget *b, struct lm_lease *l) {
  finish(b, l, 0, l->charged_pusd > 0 || l->charged_tokens > 0);
}

static int redis_reclaim(struct lm_budget *b) {
  char err[160];
  struct args a;
  args_begin(&a, b, "reclaim");
  redisReply *r = run(b, &a, err, sizeof(err));
  int n = r && r->type == REDIS_REPLY_INTEGER ? (int)r->integer : 0;
  lm_redis_reply_free(r);
  return n;
}

/* ---- the snapshot ------------------------------------------------------ */

/* Looks a field up in an HGETALL reply (pairs). */
static const char *field(const redisReply *h, const char *name) {
  if (!h || h->type != REDIS_REPLY_ARRAY)
    return NULL;
  for (size_t i = 0; i + 1 < h->elements; i += 2)
    if (h->element[i]->type == REDIS_REPLY_STRING &&
        strcmp(h->element[i]->str, name) == 0 &&
        h->element[i + 1]->type == REDIS_REPLY_STRING)
      return h->element[i + 1]->str;
  return NULL;
}

static void snap_counters(const redisReply *h, int64_t win,
                          struct lm_snap_counters *o) {
  memset(o, 0, sizeof(*o));
  bool current = num(field(h, "w"), 0) >= win; /* a stale window: nothing */
  if (current) {
    o->spent = num(field(h, "sp"), 0);
    o->requests = (uint64_t)num(field(h, "rq"), 0);
    o->denied = (uint64_t)num(field(h, "dn"), 0);
    o->unmetered = (uint64_t)num(field(h, "um"), 0);
    o->unpriced = (uint64_t)num(field(h, "up"), 0);
    for (int k = 0; k < LM_TOK_KINDS; k++) {
      char f[8];
      snprintf(f, sizeof(f), "t%d", k);
      o->tokens[k] = (uint64_t)num(field(h, f), 0);
    }
  }
  o->reserved = num(field(h, "rs"), 0);
  o->reserved_requests = (uint64_t)num(field(h, "rr"), 0);
  o->reserved_tokens = (uint64_t)num(field(h, "rt"), 0);
  o->first_activity = num(field(h, "fa"), 0);
  o->last_activity = num(field(h, "la"), 0);
}

static int redis_snapshot(struct lm_budget *b, struct lm_snapshot *o) {
  char err[160];
  struct args a;
  args_begin(&a, b, "snapshot");
  redisReply *r = run(b, &a, err, sizeof(err));
  memset(o, 0, sizeof(*o));
  if (!r || strcmp(str_at(r, 0), "ok") != 0 || r->elements < 6) {
    lm_redis_reply_free(r);
    return -1;
  }
  const redisReply *cfg = r->element[2], *tot = r->element[3];
  int64_t now = lm_budget_now(b), win = int_at(r, 1);
  snprintf(o->name, sizeof(o->name), "%s", b->name);
  o->now = now;
  o->created_at = num(field(cfg, "ca"), 0);
  o->reset_at = num(field(cfg, "ra"), 0);
  o->hard_pusd = num(field(cfg, "hard"), -1);
  o->soft_pusd = num(field(cfg, "soft"), -1);
  if (o->soft_pusd < 0 && o->hard_pusd >= 0)
    o->soft_pusd = (int64_t)((__int128)o->hard_pusd * 4 / 5);
  o->tokens_limit = num(field(cfg, "tok"), -1);
  o->requests_limit = num(field(cfg, "rql"), -1);
  o->max_call_pusd = num(field(cfg, "mcu"), -1);
  o->max_call_input_tokens = num(field(cfg, "mci"), -1);
  o->max_call_output_tokens = num(field(cfg, "mco"), -1);
  o->rpm = num(field(cfg, "rpm"), -1);
  o->tpm = num(field(cfg, "tpm"), -1);
  o->itpm = num(field(cfg, "itpm"), -1);
  o->otpm = num(field(cfg, "otpm"), -1);
  const redisReply *used = r->element[5]; /* on the server's clock */
  o->rpm_used = int_at(used, 0);
  o->tpm_used = int_at(used, 1);
  o->itpm_used = int_at(used, 2);
  o->otpm_used = int_at(used, 3);
  o->deadline = num(field(cfg, "dl"), -1);
  o->max_llm_ns = num(field(cfg, "mln"), -1);
  o->llm_ns = num(field(cfg, "llm"), 0);
  o->soft_crossed = num(field(cfg, "sw"), 0) == win + 1;
  const char *ons = field(cfg, "ons");
  snprintf(o->on_soft, sizeof(o->on_soft), "%s", ons ? ons : "");
  const char *dg = field(cfg, "dg");
  snprintf(o->downgrade, sizeof(o->downgrade), "%s", dg ? dg : "");
  int wk = (int)num(field(cfg, "win"), 0);
  o->window = wk >= 0 && wk < LM_WINDOW_KINDS ? wk : LM_WINDOW_NONE;
  o->mode = (int)num(field(cfg, "mode"), 0);
  o->window_start = win;
  o->resets_in_s = o->window == LM_WINDOW_NONE
                       ? -1
                       : lm_window_next((enum lm_window_kind)o->window, now) -
                             now;
  snap_counters(tot, win, &o->total);
  o->active_leases = (uint32_t)int_at(r, 4);
  o->reclaimed = (uint64_t)num(field(cfg, "reclaimed"), 0);
  o->unmetered_denied = (uint64_t)num(field(cfg, "ud"), 0);
  o->unmetered_warned = (uint64_t)num(field(cfg, "uw"), 0);
  for (size_t i = 6; i + 1 < r->elements; i += 2) {
    const char *kind = str_at(r, i);
    const redisReply *h = r->element[i + 1];
    if (kind[0] == 'r') { /* a rule: "KIND|LIMIT|PATTERN" and its counters */
      const char *def = field(h, "def");
      char *end;
      if (!def || o->n_rules >= LM_RULES)
        continue;
      struct lm_snap_rule *ru = &o->rules[o->n_rules];
      ru->kind = (int)strtol(def, &end, 10);
      if (*end != '|')
        continue;
      ru->limit_pusd = strtoll(end + 1, &end, 10);
      if (*end != '|')
        continue;
      snprintf(ru->pattern, sizeof(ru->pattern), "%s", end + 1);
      ru->rate_used = num(field(h, "ru"), 0);
      snap_counters(h, win, &ru->c);
      o->n_rules++;
      continue;
    }
    bool model = kind[0] == 'm';
    int *n = model ? &o->n_models : &o->n_agents;
    struct lm_snap_row *row = model ? &o->models[*n] : &o->agents[*n];
    if (*n > LM_ROWS)
      continue;
    const char *nm = field(h, "n"), *pv = field(h, "p"), *fl = field(h, "f");
    snprintf(row->name, sizeof(row->name), "%s", nm ? nm : "");
    snprintf(row->provider, sizeof(row->provider), "%s", pv ? pv : "");
    row->flags = fl && *fl == '1' ? LM_ROWF_UNPRICED : 0;
    snap_counters(h, win, &row->c);
    (*n)++;
  }
  lm_redis_reply_free(r);
  return 0;
}

/* ---- configuration ----------------------------------------------------- */

static void set_field(struct args *a, const char *f, int64_t v) {
  if (v == LM_KEEP)
    return;
  arg(a, f);
  argi(a, v < 0 ? -1 : v);
}

static int redis_configure(struct lm_budget *b,
                           const struct lm_limit_config *c) {
  char err[160];
  struct args a;
  args_begin(&a, b, "configure");
  set_field(&a, "hard", c->hard_pusd);
  set_field(&a, "soft", c->soft_pusd);
  set_field(&a, "tok", c->tokens);
  set_field(&a, "rql", c->requests);
  set_field(&a, "mcu", c->max_call_pusd);
  set_field(&a, "mci", c->max_call_input_tokens);
  set_field(&a, "mco", c->max_call_output_tokens);
  set_field(&a, "dl", c->deadline);
  set_field(&a, "mln", c->max_llm_ns);
  set_field(&a, "rpm", c->rpm);
  set_field(&a, "tpm", c->tpm);
  set_field(&a, "itpm", c->itpm);
  set_field(&a, "otpm", c->otpm);
  if (c->window >= 0 && c->window < LM_WINDOW_KINDS)
    set_field(&a, "win", c->window);
  if (c->mode >= 0)
    set_field(&a, "mode", c->mode);
  if (c->on_soft) {
    arg(&a, "ons");
    arg(&a, *c->on_soft ? c->on_soft : "-");
  }
  if (c->downgrade) {
    arg(&a, "dg");
    arg(&a, *c->downgrade ? c->downgrade : "-");
  }
  redisReply *r = run(b, &a, err, sizeof(err));
  int rc = r ? 0 : -1;
  lm_redis_reply_free(r);
  return rc;
}

static int redis_add_rule(struct lm_budget *b, int kind, const char *pattern,
                          int64_t limit, char *err, size_t errlen) {
  unsigned target = LM_RULE_TARGET((unsigned)kind);
  unsigned measure = LM_RULE_MEASURE((unsigned)kind);
  if (!pattern || !*pattern || strlen(pattern) >= LM_NAME_MAX ||
      strchr(pattern, '|') ||
      (target != LM_RULE_MODEL && target != LM_RULE_AGENT) ||
      measure > LM_RULE_TPM) {
    snprintf(err, errlen, "invalid limit pattern '%s'", pattern ? pattern : "");
    return -1;
  }
  struct args a;
  args_begin(&a, b, "rule");
  argi(&a, kind);
  argi(&a, limit < 0 ? -1 : limit);
  arg(&a, pattern);
  redisReply *r = run(b, &a, err, errlen);
  int rc = 0;
  if (!r)
    rc = -1;
  else if (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING) {
    if (strcmp(r->str, "full") == 0) {
      snprintf(err, errlen, "budget '%s' already has %d limit rules", b->name,
               LM_RULES);
      rc = -1;
    }
  }
  lm_redis_reply_free(r);
  return rc;
}

static int redis_reset(struct lm_budget *b) {
  char err[160];
  struct args a;
  args_begin(&a, b, "reset");
  redisReply *r = run(b, &a, err, sizeof(err));
  int rc = r ? 0 : -1;
  lm_redis_reply_free(r);
  return rc;
}

static void redis_close(struct lm_budget *b) {
  lm_redis_free(RB(b)->r);
  pthread_mutex_destroy(&RB(b)->dg_mu);
  free(b);
}

/* ---- questions between round trips ------------------------------------- */

static bool redis_over_hard(struct lm_budget *b, const struct lm_lease *l) {
  if (!(l->flags & LM_LEASEF_DOLLARS))
    return false;
  if (l->flags & LEASEF_RULE_OVER)
    return true;
  int64_t hard = atomic_load(&RB(b)->hard);
  return hard >= 0 && atomic_load(&RB(b)->spent) >= hard;
}

static bool redis_over_call_caps(struct lm_budget *b, const struct lm_lease *l,
                                 const struct lm_call *call,
                                 const struct lm_usage *total, int64_t cost,
                                 struct lm_denial *why) {
  const int64_t caps[3] = {atomic_load(&RB(b)->mcu), atomic_load(&RB(b)->mci),
                           atomic_load(&RB(b)->mco)};
  return over_own_caps(call, (l->flags & LM_LEASEF_DOLLARS) != 0, cost,
                       total ? total->input : 0, total ? total->output : 0,
                       caps, why);
}

static void redis_add_llm_time(struct lm_budget *b, int64_t ns) {
  if (ns > 0) /* sent with the next settle */
    atomic_fetch_add(&RB(b)->llm_pending, ns);
}

static bool redis_over_time(struct lm_budget *b, int64_t inflight_ns,
                            struct lm_denial *why) {
  struct redis_budget *rb = RB(b);
  int64_t used = lm_money_add(/* saturating: Redis's values are not ours */
                              lm_money_add(atomic_load(&rb->llm),
                                           atomic_load(&rb->llm_pending)),
                              inflight_ns > 0 ? inflight_ns : 0);
  return lm_denial_time(atomic_load(&rb->deadline), lm_budget_now(b),
                        atomic_load(&rb->mln), used, why);
}

/* Nothing to send: the settle (or release) corrected the lease's token
 * buckets by the tokens it carried, in the same step, without a third
 * round trip. The meter calls this after settling, with those tokens. */
static void redis_rate_correct(struct lm_budget *b, const struct lm_lease *l,
                               const struct lm_usage *actual) {
  (void)b, (void)l, (void)actual;
}

static bool redis_soft_crossed(struct lm_budget *b, char *cmd, size_t cmdlen) {
  if (!atomic_exchange(&RB(b)->crossed, 0))
    return false;
  snprintf(cmd, cmdlen, "%s", RB(b)->on_soft);
  return true;
}

/* The model map's rewrite of model, as the shm backend reads it: the
 * first FROM_GLOB=TO entry whose glob matches and whose TO differs. */
static bool downgrade_match(const char *map, const char *model, char *out,
                            size_t outlen) {
  char copy[sizeof(((struct redis_budget *)0)->dg)];
  snprintf(copy, sizeof(copy), "%s", map);
  char *save = NULL;
  for (char *e = strtok_r(copy, ",", &save); e;
       e = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(e, '=');
    if (!eq)
      continue;
    *eq = 0;
    if (fnmatch(e, model, 0) == 0 && eq[1] && strcmp(eq + 1, model) != 0) {
      if (out && outlen)
        snprintf(out, outlen, "%s", eq + 1);
      return true;
    }
  }
  return false;
}

/* With model NULL: whether a map is configured (the soft limit is asked
 * only for a model the map would rewrite). Else one round trip, only then:
 * is spent past the soft limit now, and what the map is now. */
static bool redis_downgrade(struct lm_budget *b, const char *model, char *out,
                            size_t outlen) {
  struct redis_budget *rb = RB(b);
  char map[sizeof(rb->dg)];
  pthread_mutex_lock(&rb->dg_mu);
  memcpy(map, rb->dg, sizeof(map));
  pthread_mutex_unlock(&rb->dg_mu);
  if (!map[0])
    return false;
  if (!model)
    return true;
  if (!*model || !downgrade_match(map, model, NULL, 0))
    return false;
  char err[160];
  struct args a;
  args_begin(&a, b, "downgrade");
  redisReply *r = run(b, &a, err, sizeof(err));
  if (!r)
    return false; /* the admission that follows says why Redis failed */
  bool over = int_at(r, 0) == 1;
  snprintf(map, sizeof(map), "%s", str_at(r, 1));
  lm_redis_reply_free(r);
  cache_downgrade(rb, map);
  return over && downgrade_match(map, model, out, outlen);
}

static bool redis_hard_limit(struct lm_budget *b) {
  return atomic_load(&RB(b)->hard) >= 0 || atomic_load(&RB(b)->spend_rules);
}

static void redis_count_unmetered(struct lm_budget *b, bool denied) {
  char err[160];
  struct args a;
  args_begin(&a, b, "unmetered");
  arg(&a, denied ? "1" : "0");
  lm_redis_reply_free(run(b, &a, err, sizeof(err)));
}

static const struct lm_budget_ops redis_ops = {
    .admit = redis_admit,
    .charge = redis_charge,
    .settle = redis_settle,
    .release = redis_release,
    .snapshot = redis_snapshot,
    .reclaim = redis_reclaim,
    .configure = redis_configure,
    .add_rule = redis_add_rule,
    .reset = redis_reset,
    .close = redis_close,
    .over_hard = redis_over_hard,
    .over_call_caps = redis_over_call_caps,
    .add_llm_time = redis_add_llm_time,
    .over_time = redis_over_time,
    .rate_correct = redis_rate_correct,
    .soft_crossed = redis_soft_crossed,
    .downgrade = redis_downgrade,
    .hard_limit = redis_hard_limit,
    .count_unmetered = redis_count_unmetered,
    .alive = redis_alive,
};

/* ---- opening ----------------------------------------------------------- */

static struct redis_budget *redis_new(const char *url, char *err,
                                      size_t errlen) {
  struct lm_redis_url u;
  if (lm_redis_parse_url(url, &u, err, errlen) != 0)
    return NULL;
  const struct lm_budget_env *env = lm_budget_get_env();
  if (!u.password[0] && env->redis_password)
    snprintf(u.password, sizeof(u.password), "%s", env->redis_password);
  struct redis_budget *rb = calloc(1, sizeof(*rb));
  if (!rb || !(rb->r = lm_redis_new(&u, TIMEOUT_MS))) {
    free(rb);
    snprintf(err, errlen, "out of memory");
    memset(&u, 0, sizeof(u));
    return NULL;
  }
  char shown[LM_BUDGET_NAME_MAX * 4];
  lm_redis_redacted(&u, shown, sizeof(shown));
  lm_budget_init_base(&rb->base, &redis_ops, shown);
  pthread_mutex_init(&rb->dg_mu, NULL);
  snprintf(rb->key, sizeof(rb->key), "llmmeter:{%s}:cfg", u.name);
  rb->ttl_ms = env->lease_ttl_ms > 0 ? env->lease_ttl_ms : 120000;
  atomic_store(&rb->hard, -1);
  atomic_store(&rb->mcu, -1);
  atomic_store(&rb->mci, -1);
  atomic_store(&rb->mco, -1);
  atomic_store(&rb->deadline, -1);
  atomic_store(&rb->mln, -1);
  memset(&u, 0, sizeof(u));
  return rb;
}

/* Opening an existing budget (create false: the CLI, LLMMETER_LIMIT_USD
 * after its create) asks Redis once whether it is there, so a wrong
 * password or a missing budget is one clear line. Opening with create (a
 * metered process's first LLM call) makes it if missing, but a Redis that
 * cannot be reached then does not fail the open: the handle connects on
 * each call, and each call is refused with Redis's line until it answers
 * (an open that failed would leave the process without a budget for
 * good). */
static int redis_open(const char *name, bool create, struct lm_budget **out,
                      char *err, size_t errlen) {
  struct redis_budget *rb = redis_new(name, err, errlen);
  if (!rb)
    return LM_SEG_ENAME;
  struct args a;
  char why[160];
  /* One round trip either way: "open" creates a missing budget first. */
  args_begin(&a, &rb->base, create ? "open" : "exists");
  redisReply *r = run(&rb->base, &a, why, sizeof(why));
  int rc = 0;
  if (!create && !r) {
    snprintf(err, errlen, "%s", why);
    rc = LM_SEG_ESYS;
  } else if (!create && int_at(r, 0) == 0) {
    snprintf(err, errlen, "no budget '%s'", rb->base.name);
    rc = LM_SEG_ENOENT;
  } else if (r) { /* what the leak guard asks before any admission */
    atomic_store(&rb->hard, num(str_at(r, 1), -1));
    atomic_store(&rb->spend_rules, int_at(r, 2) > 0);
    cache_downgrade(rb, str_at(r, 3));
  }
  lm_redis_reply_free(r);
  if (rc != 0) {
    redis_close(&rb->base);
    return rc;
  }
  *out = &rb->base;
  return 0;
}

static int redis_create(const char *name, bool force, struct lm_budget **out,
                        char *err, size_t errlen) {
  struct redis_budget *rb = redis_new(name, err, errlen);
  if (!rb)
    return LM_SEG_ENAME;
  struct args a;
  args_begin(&a, &rb->base, "create");
  arg(&a, force ? "1" : "0");
  redisReply *r = run(&rb->base, &a, err, errlen);
  int rc = 0;
  if (!r)
    rc = LM_SEG_ESYS;
  else if (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING) {
    if (strcmp(r->str, "eexist") == 0) {
      snprintf(err, errlen, "budget '%s' exists (use --force to replace it)",
               rb->base.name);
      rc = LM_SEG_EEXIST;
    }
  }
  lm_redis_reply_free(r);
  if (rc != 0) {
    redis_close(&rb->base);
    return rc;
  }
  *out = &rb->base;
  return 0;
}

int lm_budget_redis_remove(const char *name, char *err, size_t errlen) {
  struct redis_budget *rb = redis_new(name, err, errlen);
  if (!rb)
    return LM_SEG_ENAME;
  struct args a;
  args_begin(&a, &rb->base, "remove");
  redisReply *r = run(&rb->base, &a, err, errlen);
  int rc = !r                                                    ? LM_SEG_ESYS
           : (r->type == REDIS_REPLY_INTEGER && r->integer == 0) ? LM_SEG_ENOENT
                                                                 : 0;
  if (rc == LM_SEG_ENOENT)
    snprintf(err, errlen, "no budget '%s'", rb->base.name);
  lm_redis_reply_free(r);
  redis_close(&rb->base);
  return rc;
}

const struct lm_budget_backend lm_budget_backend_redis = {
    .kind = "redis", .open = redis_open, .create = redis_create};

/* ---- listing ----------------------------------------------------------- */

static int name_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts names and frees the repeats (SCAN may return a key twice, and a
 * cluster's nodes are listed one after another): the count kept. */
static size_t sort_unique(char **names, size_t n) {
  if (n)
    qsort(names, n, sizeof(*names), name_cmp);
  size_t kept = 0;
  for (size_t i = 0; i < n; i++) {
    if (kept && strcmp(names[kept - 1], names[i]) == 0)
      free(names[i]);
    else
      names[kept++] = names[i];
  }
  return kept;
}

/* A growing list of budget names. */
struct names {
  char **v;
  size_t n, cap;
};

static void names_free(struct names *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = l->cap = 0;
}

/* Appends the names of a server's budgets, by SCAN over their
 * configuration keys (never KEYS: it stops a busy server). 0, or -1 (err;
 * what was appended stays, for the caller to free). */
static int scan_names(struct lm_redis *r, struct names *l, char *err,
                      size_t errlen) {
  char cursor[32] = "0";
  int rc = 0;
  do {
    const char *av[] = {"SCAN",  cursor, "MATCH", "llmmeter:{*}:cfg",
                        "COUNT", "1000"};
    redisReply *rep = lm_redis_command(r, 6, av, err, errlen);
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[1]->type != REDIS_REPLY_ARRAY) {
      if (rep)
        snprintf(err, errlen, "Redis: unexpected reply to SCAN");
      lm_redis_reply_free(rep);
      return -1;
    }
    snprintf(cursor, sizeof(cursor), "%s", str_at(rep, 0));
    const redisReply *keys = rep->element[1];
    for (size_t i = 0; i < keys->elements && rc == 0; i++) {
      const char *k = keys->element[i]->type == REDIS_REPLY_STRING
                          ? keys->element[i]->str
                          : "";
      size_t len = strlen(k);
      /* llmmeter:{NAME}:cfg, NAME as the URL allows (checked at open) */
      if (len <= 15 || len - 15 >= LM_BUDGET_NAME_MAX)
        continue;
      if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 64;
        char **nv = realloc(l->v, nc * sizeof(*l->v));
        if (!nv) {
          snprintf(err, errlen, "out of memory");
          rc = -1;
          break;
        }
        l->v = nv;
        l->cap = nc;
      }
      if (!(l->v[l->n] = strndup(k + 10, len - 15))) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
        break;
      }
      l->n++;
    }
    lm_redis_reply_free(rep);
  } while (rc == 0 && strcmp(cursor, "0") != 0);
  return rc;
}

#define CLUSTER_MASTERS 64 /* nodes of a cluster listed at most */

/* A Redis Cluster's masters, from the named node's CLUSTER NODES (a line
 * a node: "ID HOST:PORT@BUS[,NAME] FLAGS ..."): each as a copy of u with
 * its host and port. 0 when the server is no cluster (the command is an
 * error there): only it is listed. */
static int cluster_masters(struct lm_redis *r, const struct lm_redis_url *u,
                           struct lm_redis_url *out, int max) {
  char err[256];
  const char *av[] = {"CLUSTER", "NODES"};
  redisReply *rep = lm_redis_command(r, 2, av, err, sizeof(err));
  int n = 0;
  const char *line = rep && rep->type == REDIS_REPLY_STRING ? rep->str : "";
  while (*line && n < max) {
    const char *eol = strchr(line, '\n');
    size_t len = eol ? (size_t)(eol - line) : strlen(line);
    char id[64], addr[300], flags[128];
    char buf[512];
    snprintf(buf, sizeof(buf), "%.*s", (int)(len < 511 ? len : 511), line);
    line += len + (eol ? 1 : 0);
    if (sscanf(buf, "%63s %299s %127s", id, addr, flags) != 3 ||
        !strstr(flags, "master") || strstr(flags, "noaddr") ||
        strstr(flags, "handshake"))
      continue;
    char *at = strchr(addr, '@');
    if (at)
      *at = '\0';
    char *colon = strrchr(addr, ':');
    char *end;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || *end || port <= 0 || port > 65535 ||
        (size_t)(colon - addr) >= sizeof(out->host))
      continue;
    out[n] = *u;
    if (colon > addr) /* an empty host is the node named */
      snprintf(out[n].host, sizeof(out[n].host), "%.*s", (int)(colon - addr),
               addr);
    out[n].port = (int)port;
    n++;
  }
  lm_redis_reply_free(rep);
  return n;
}

/* Every budget of the server, or of every master of its cluster: sorted,
 * each once (SCAN may return a key twice). The count, or -1 (err). */
static int list_names(const struct lm_redis_url *u, char ***out, char *err,
                      size_t errlen) {
  struct lm_redis *r = lm_redis_new(u, TIMEOUT_MS);
  if (!r) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  struct names l = {NULL, 0, 0};
  struct lm_redis_url *nodes = calloc(CLUSTER_MASTERS, sizeof(*nodes));
  int nn = nodes ? cluster_masters(r, u, nodes, CLUSTER_MASTERS) : 0;
  int rc = nn == 0 ? scan_names(r, &l, err, errlen) : 0;
  lm_redis_free(r);
  for (int i = 0; i < nn && rc == 0; i++) {
    struct lm_redis *nr = lm_redis_new(&nodes[i], TIMEOUT_MS);
    if (!nr)
      snprintf(err, errlen, "out of memory");
    rc = nr ? scan_names(nr, &l, err, errlen) : -1;
    lm_redis_free(nr);
  }
  for (int i = 0; i < nn; i++)
    memset(nodes[i].password, 0, sizeof(nodes[i].password));
  free(nodes);
  if (rc != 0) {
    names_free(&l);
    return -1;
  }
  *out = l.v;
  return (int)sort_unique(l.v, l.n);
}

int lm_budget_redis_list(const char *server,
                         void (*fn)(const char *name, void *ctx), void *ctx,
                         char *err, size_t errlen) {
  struct lm_redis_url u;
  if (lm_redis_parse_server(server, &u, err, errlen) != 0)
    return LM_SEG_ENAME;
  const struct lm_budget_env *env = lm_budget_get_env();
  if (!u.password[0] && env->redis_password)
    snprintf(u.password, sizeof(u.password), "%s", env->redis_password);
  char **names = NULL;
  int n = list_names(&u, &names, err, errlen);
  for (int i = 0; i < n; i++) {
    /* each budget's own URL, the password in it only if the server's had
     * one (fn opens it; what it shows is the redacted name) */
    char url[LM_BUDGET_URL_MAX];
    snprintf(url, sizeof(url), "redis://%s%s%s%s:%d/%d/%s",
             u.password[0] ? ":" : "", u.password[0] ? u.password : "",
             u.password[0] ? "@" : "", u.host, u.port, u.db, names[i]);
    fn(url, ctx);
    memset(url, 0, sizeof(url));
    free(names[i]);
  }
  free(names);
  memset(&u, 0, sizeof(u));
  return n < 0 ? LM_SEG_ESYS : 0;
}
