/* budget.h — the budget engine's interface: admit, charge, settle,
 * release, snapshot.
 *
 * This is the seam between "what a call costs" and "where budgets live".
 * The hooks and the CLI use only these functions; the shared-memory backend
 * (budget_shm.c) implements them today, and a second backend (Redis, for
 * budgets shared across machines) implements the same lm_budget_ops.
 *
 * Two-phase admission: admit reserves the call's estimate (money, tokens,
 * one request) before the call leaves; charge moves actual cost from the
 * reservation to spent as usage arrives (streams charge as they flow, so a
 * client killed mid-stream has paid for what it received); settle ends the
 * call and returns what is left of the reservation; release ends a call
 * that failed and refunds it. Money is integer pico-USD throughout.
 */
#ifndef LM_BUDGET_H
#define LM_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "segment.h"
#include "usage.h"

struct lm_budget;

/* Room for a budget's name as given: a Redis URL with its password. */
#define LM_BUDGET_URL_MAX 1024

/* What admission needs to know about a call. */
struct lm_call {
  const char *model;         /* requested model; "" if unknown */
  const char *provider;      /* who bills it ("groq"); NULL or "": unknown.
                                A model's row is per model and provider */
  const char *agent;         /* agent tag; NULL or "" = "unknown" */
  int64_t est_pusd;          /* estimated cost, an upper bound if possible */
  uint64_t est_tokens;       /* estimated input + output tokens */
  uint64_t est_input_tokens; /* the parts of est_tokens, for per-call caps */
  uint64_t est_output_tokens;
  bool zero_priced; /* priced at $0: dollar limits do not apply */
  /* The response is read whole (not a stream): its usage comes once, just
   * before the settle, so a backend that sends charges (Redis) may let a
   * charge past the reservation ride with the settle instead of a round
   * trip of its own. False (the C API): every such charge is sent at once. */
  bool whole_response;
  int64_t wait_ms; /* how long to wait for in-flight calls to
                                 settle when only their reservations block
                                 this one (0: fail at once) */
  /* Per-call caps from the environment, on top of the budget's (<= 0: none) */
  int64_t max_call_pusd, max_call_input_tokens, max_call_output_tokens;
};

enum lm_deny_kind {
  LM_DENY_NONE = 0,
  LM_DENY_HARD,        /* the budget's hard USD limit */
  LM_DENY_MODEL,       /* a per-model USD rule */
  LM_DENY_AGENT,       /* a per-agent USD rule */
  LM_DENY_TOKENS,      /* the token limit */
  LM_DENY_REQUESTS,    /* the request (step) limit */
  LM_DENY_BUSY,        /* every lease slot is held by live calls */
  LM_DENY_CALL_USD,    /* the call's cost cap (budget-wide or a rule's) */
  LM_DENY_CALL_INPUT,  /* the call's input-token cap */
  LM_DENY_CALL_OUTPUT, /* the call's output-token cap */
  LM_DENY_UNPRICED,    /* LLMMETER_UNPRICED=deny and the model has no price */
  LM_DENY_RATE,        /* a rate limit (subject: rpm, tpm, ... or a rule) */
  LM_DENY_DEADLINE,    /* past the budget's deadline */
  LM_DENY_LLM_TIME,    /* the budget's time inside LLM transfers is used */
  LM_DENY_ERROR,       /* the budget could not be used */
};

struct lm_denial {
  enum lm_deny_kind kind;
  char subject[LM_NAME_MAX]; /* the rule's pattern, for model/agent rules */
  int64_t limit;             /* pico-USD, tokens or requests */
  int64_t used;              /* spent (+ reserved) at the time of denial */
  int64_t retry_after_s;     /* seconds until the window resets; -1 never */
  enum lm_window_kind window;
  int64_t waited_ms; /* >0: refused after waiting this long for
                                in-flight calls to settle */
  int64_t spent;     /* spent alone, when reservations blocked */
  bool waitable;     /* refused only by other calls' reservations, which
                        may settle for less: a retry can pass */
  /* LM_DENY_ERROR: the backend's one-line reason, when longer than a
   * subject holds (a Redis host name and its error, say) */
  char detail[192];
};

/* A process-local copy of what a lease holds; the shared slot mirrors it. */
struct lm_lease {
  uint32_t slot;
  uint32_t model_row, agent_row, rule_mask, flags;
  uint64_t state_word; /* the slot's state word while ACTIVE */
  int64_t reserved_pusd;
  int64_t charged_pusd;
  uint64_t reserved_tokens;
  uint64_t charged_tokens;
  uint64_t rate_in, rate_out; /* tokens taken from the rate buckets */
  /* A backend that holds a call's running charges before it sends them
   * (Redis): the cumulative token counts by kind (modular), what the
   * server holds of charged_pusd, and when it was last sent. */
  int64_t held_tokens[LM_TOK_KINDS];
  int64_t sent_pusd;
  int64_t sent_at_ms;
};

/* Limits as the CLI sets them; -1 = none, and for set: LM_KEEP = unchanged. */
#define LM_KEEP INT64_MIN
struct lm_limit_config {
  int64_t hard_pusd, soft_pusd, tokens, requests;
  int64_t max_call_pusd, max_call_input_tokens, max_call_output_tokens;
  int64_t rpm, tpm, itpm, otpm; /* per minute */
  int64_t deadline;             /* epoch seconds */
  int64_t max_llm_ns;           /* time inside LLM transfers */
  int window;                   /* enum lm_window_kind, or -1 = keep */
  int mode;                     /* enum lm_mode, or -1 = keep */
  const char *on_soft;          /* NULL = keep; "" = none */
  const char *downgrade;        /* NULL = keep; "" = none */
};
/* A config that changes nothing; set the fields to change. */
#define LM_LIMITS_KEEP                                         \
  ((struct lm_limit_config){.hard_pusd = LM_KEEP,              \
                            .soft_pusd = LM_KEEP,              \
                            .tokens = LM_KEEP,                 \
                            .requests = LM_KEEP,               \
                            .max_call_pusd = LM_KEEP,          \
                            .max_call_input_tokens = LM_KEEP,  \
                            .max_call_output_tokens = LM_KEEP, \
                            .rpm = LM_KEEP,                    \
                            .tpm = LM_KEEP,                    \
                            .itpm = LM_KEEP,                   \
                            .otpm = LM_KEEP,                   \
                            .deadline = LM_KEEP,               \
                            .max_llm_ns = LM_KEEP,             \
                            .window = -1,                      \
                            .mode = -1})
/* A config with no limits at all (for a new budget). */
#define LM_LIMITS_NONE                                    \
  ((struct lm_limit_config){.hard_pusd = -1,              \
                            .soft_pusd = -1,              \
                            .tokens = -1,                 \
                            .requests = -1,               \
                            .max_call_pusd = -1,          \
                            .max_call_input_tokens = -1,  \
                            .max_call_output_tokens = -1, \
                            .rpm = -1,                    \
                            .tpm = -1,                    \
                            .itpm = -1,                   \
                            .otpm = -1,                   \
                            .deadline = -1,               \
                            .max_llm_ns = -1,             \
                            .window = LM_WINDOW_NONE,     \
                            .mode = LM_MODE_OPTIMISTIC})

enum lm_settle_flags {
  LM_SETTLE_UNMETERED = 1, /* usage could not be read: charged at estimate */
  LM_SETTLE_UNPRICED = 2,  /* the model had no known price */
};

/* A consistent-enough copy of a budget for display (each counter is read
 * atomically; the set is not one atomic snapshot). */
struct lm_snap_counters {
  int64_t spent, reserved;
  uint64_t requests, reserved_requests, denied, unmetered, unpriced;
  uint64_t tokens[LM_TOK_KINDS];
  uint64_t reserved_tokens;
  int64_t first_activity, last_activity;
};
struct lm_snap_row {
  char name[LM_NAME_MAX];
  char provider[LM_PROVIDER_MAX]; /* model rows: who bills them ("" unknown) */
  uint32_t flags;
  struct lm_snap_counters c;
};
struct lm_snap_rule {
  int kind;
  char pattern[LM_NAME_MAX];
  int64_t limit_pusd;
  int64_t rate_used; /* rate rules: current use per minute */
  struct lm_snap_counters c;
};
struct lm_snapshot {
  char name[LM_BUDGET_NAME_MAX];
  int64_t now, created_at, reset_at;
  int64_t hard_pusd, soft_pusd, tokens_limit, requests_limit;
  int64_t max_call_pusd, max_call_input_tokens, max_call_output_tokens;
  int64_t rpm, tpm, itpm, otpm, deadline, max_llm_ns, llm_ns;
  /* current use of each rate, in units per minute (requests or tokens) */
  int64_t rpm_used, tpm_used, itpm_used, otpm_used;
  bool soft_crossed;
  char on_soft[256];
  char downgrade[512];
  int window;
  int mode;
  int64_t window_start, resets_in_s; /* resets_in_s -1 for no window */
  struct lm_snap_counters total;
  int n_models, n_agents, n_rules;
  struct lm_snap_row models[LM_ROWS + 1];
  struct lm_snap_row agents[LM_ROWS + 1];
  struct lm_snap_rule rules[LM_RULES];
  uint32_t active_leases;
  uint32_t waiters; /* calls waiting for in-flight calls to settle */
  uint64_t reclaimed, reconciles;
  /* Processes the leak guard refused / warned about (lm_budget_count_
   * unmetered). */
  uint64_t unmetered_denied, unmetered_warned;
};

/* The backend interface: every question the meter and the CLI ask of a
 * budget is one of these (see the lm_budget_* functions below). */
struct lm_budget_ops {
  int (*admit)(struct lm_budget *, const struct lm_call *, struct lm_lease *,
               struct lm_denial *);
  void (*charge)(struct lm_budget *, struct lm_lease *, const struct lm_usage *,
                 int64_t pusd);
  void (*settle)(struct lm_budget *, struct lm_lease *, unsigned flags);
  void (*release)(struct lm_budget *, struct lm_lease *);
  int (*snapshot)(struct lm_budget *, struct lm_snapshot *);
  int (*reclaim)(struct lm_budget *);
  int (*configure)(struct lm_budget *, const struct lm_limit_config *);
  int (*add_rule)(struct lm_budget *, int kind, const char *pattern,
                  int64_t limit_pusd, char *err, size_t errlen);
  int (*reset)(struct lm_budget *);
  void (*close)(struct lm_budget *);
  bool (*over_hard)(struct lm_budget *, const struct lm_lease *);
  bool (*over_call_caps)(struct lm_budget *, const struct lm_lease *,
                         const struct lm_call *, const struct lm_usage *total,
                         int64_t cost, struct lm_denial *);
  void (*add_llm_time)(struct lm_budget *, int64_t ns);
  bool (*over_time)(struct lm_budget *, int64_t inflight_ns,
                    struct lm_denial *);
  void (*rate_correct)(struct lm_budget *, const struct lm_lease *,
                       const struct lm_usage *actual);
  bool (*soft_crossed)(struct lm_budget *, char *cmd, size_t cmdlen);
  bool (*downgrade)(struct lm_budget *, const char *model, char *out,
                    size_t outlen);
  bool (*hard_limit)(struct lm_budget *);
  void (*count_unmetered)(struct lm_budget *, bool denied);
  /* Optional (NULL: nothing to do): a call that is still moving bytes is
   * alive (a backend whose leases expire extends them). */
  void (*alive)(struct lm_budget *, struct lm_lease *);
};

/* Opens the budget NAME (NULL or "": this user's default, llmmeter-<uid>)
 * in the backend its name selects (a shared-memory segment today). With
 * create, a missing budget is created with no limits. Returns 0, or a
 * negative lm_seg_err with a one-line reason in err. The engine reads no
 * environment: callers resolve names (config.h) before they get here. */
int lm_budget_open(const char *name, bool create, struct lm_budget **out,
                   char *err, size_t errlen);
/* Creates (or with force replaces) a budget and applies cfg. */
int lm_budget_create(const char *name, bool force,
                     const struct lm_limit_config *cfg, struct lm_budget **out,
                     char *err, size_t errlen);

/* Returns 0 and fills lease, or -1 and fills why. Never blocks. */
int lm_budget_admit(struct lm_budget *b, const struct lm_call *call,
                    struct lm_lease *lease, struct lm_denial *why);
/* Adds actual usage (delta since the last charge) and its cost. */
void lm_budget_charge(struct lm_budget *b, struct lm_lease *lease,
                      const struct lm_usage *delta, int64_t delta_pusd);
void lm_budget_settle(struct lm_budget *b, struct lm_lease *lease,
                      unsigned flags);
void lm_budget_release(struct lm_budget *b, struct lm_lease *lease);
int lm_budget_snapshot(struct lm_budget *b, struct lm_snapshot *out);
/* Refunds leases whose owner process died; returns how many. */
int lm_budget_reclaim(struct lm_budget *b);
int lm_budget_configure(struct lm_budget *b, const struct lm_limit_config *c);
int lm_budget_add_rule(struct lm_budget *b, int kind, const char *pattern,
                       int64_t limit_pusd, char *err, size_t errlen);
/* Zeroes spend, tokens and counts; keeps limits, rules and reservations. */
int lm_budget_reset(struct lm_budget *b);
void lm_budget_close(struct lm_budget *b);

/* A call still moving bytes is alive: called as its body flows, so that a
 * backend whose leases expire (Redis) extends them. Cheap; no round trip
 * unless the lease is due. */
void lm_budget_alive(struct lm_budget *b, struct lm_lease *lease);
/* Whether spent has reached the hard limit (for mid-stream cuts). */
bool lm_budget_over_hard(struct lm_budget *b, const struct lm_lease *lease);
/* Whether a call's running totals (tokens, cost) exceed one of its per-call
 * caps (the budget's, its rules', or call->max_call_*); fills why. */
bool lm_budget_over_call_caps(struct lm_budget *b, const struct lm_lease *l,
                              const struct lm_call *call,
                              const struct lm_usage *total, int64_t cost,
                              struct lm_denial *why);

/* Adds time spent inside an LLM transfer (for --max-llm-seconds). */
void lm_budget_add_llm_time(struct lm_budget *b, int64_t ns);
/* Whether the deadline has passed, or the LLM-time budget is used up
 * counting inflight_ns of a transfer still running; fills why. */
bool lm_budget_over_time(struct lm_budget *b, int64_t inflight_ns,
                         struct lm_denial *why);
/* Corrects the token-rate buckets once a call's actual tokens are known
 * (admission took the estimate). */
void lm_budget_rate_correct(struct lm_budget *b, const struct lm_lease *l,
                            const struct lm_usage *actual);
/* True for exactly one caller per window: the one whose charge first
 * finds spent at or above the soft limit. cmd gets the --on-soft command
 * ("" if none). */
bool lm_budget_soft_crossed(struct lm_budget *b, char *cmd, size_t cmdlen);
/* Above the soft limit, the model a request for `model` is rewritten to
 * (--downgrade); false if none applies. With model NULL: whether any
 * rule could apply now (configured, and spent is past the soft limit). */
bool lm_budget_downgrade(struct lm_budget *b, const char *model, char *out,
                         size_t outlen);
const char *lm_budget_name(const struct lm_budget *b);
/* A budget name as every message, status and ledger line shows it: a URL's
 * password (scheme://[user:]password@...) left out. */
void lm_budget_display_name(const char *name, char *out, size_t size);
/* Removes a budget in the backend its name selects (0, or a negative
 * lm_seg_err with a one-line reason). */
int lm_budget_remove(const char *name, char *err, size_t errlen);

/* Calls fn with the name of each budget in `where`: a redis:// URL (a
 * server, redis://[:PASSWORD@]HOST:PORT[/DB], or any budget URL on it) for
 * that server's budgets, by URL; else this user's shared-memory budgets.
 * 0, or a negative lm_seg_err with a one-line reason (never the password). */
int lm_budget_list(const char *where, void (*fn)(const char *name, void *ctx),
                   void *ctx, char *err, size_t errlen);

/* Whether the budget refuses calls past a spending limit: its hard USD
 * limit or an active per-model / per-agent spend rule. What the leak guard
 * asks before it refuses a process it cannot meter. */
bool lm_budget_hard_limit(struct lm_budget *b);
/* Counts one process that resolved an LLM API host with no TLS library
 * llmmeter can see: refused (denied) or let through with a warning. */
void lm_budget_count_unmetered(struct lm_budget *b, bool denied);

/* What the engine is told by the process's configuration (config.c reads
 * the environment; the engine reads none). */
struct lm_budget_env {
  int64_t lease_ttl_ms;       /* Redis: a lease not extended this long is a
                                 dead call's (LLMMETER_LEASE_TTL_S) */
  const char *redis_password; /* when a redis:// URL carries none */
};
void lm_budget_set_env(const struct lm_budget_env *env);
const struct lm_budget_env *lm_budget_get_env(void);

/* Test hook: a clock other than time(NULL) (NULL restores it). */
void lm_budget_set_clock(struct lm_budget *b, int64_t (*now)(void *),
                         void *ctx);

/* One line: "budget 'x': hard limit $5.00 reached (spent $5.01)...". */
void lm_denial_format(const struct lm_denial *d, const char *budget, char *buf,
                      size_t len);

/* The budget name a process uses: explicit, else env_name (the caller's
 * LLMMETER_BUDGET, from config.h), else the default llmmeter-<uid>. */
void lm_budget_resolve_name(const char *explicit_name, const char *env_name,
                            char *out, size_t size);

#endif
