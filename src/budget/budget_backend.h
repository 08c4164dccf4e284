/* budget_backend.h — what a budget backend implements, and the part of a
 * budget handle every backend shares.
 *
 * Only backends include this (budget_shm.c today, a Redis backend and the
 * in-memory test backend beside it); callers see budget.h alone. A backend
 * allocates its own handle with struct lm_budget as its first member,
 * fills `ops`, and is chosen by the budget's name in one place
 * (lm_budget_backend_for in budget.c).
 */
#ifndef LM_BUDGET_BACKEND_H
#define LM_BUDGET_BACKEND_H

#include "budget.h"

struct lm_budget {
  const struct lm_budget_ops *ops;
  char name[LM_BUDGET_NAME_MAX];
  int64_t (*now)(void *); /* test clock; NULL: time(NULL) */
  void *now_ctx;
  uint64_t serial; /* tells handles apart (per-thread memos) */
};

/* How to open or create a budget of one kind. Both return 0 or a negative
 * lm_seg_err with a one-line reason in err; create applies no limits (the
 * caller configures). */
struct lm_budget_backend {
  const char *kind; /* "shm", "redis", "memory" */
  int (*open)(const char *name, bool create, struct lm_budget **out, char *err,
              size_t errlen);
  int (*create)(const char *name, bool force, struct lm_budget **out, char *err,
                size_t errlen);
};

/* Fills the shared part of a new handle (name, a fresh serial). */
void lm_budget_init_base(struct lm_budget *b, const struct lm_budget_ops *ops,
                         const char *name);
/* The handle's clock: the test clock if set, else time(NULL). */
int64_t lm_budget_now(const struct lm_budget *b);

/* Fills a denial as every backend reports one: kind, subject (a rule's
 * pattern, or NULL), limit and use, and the seconds until window wk (an
 * enum lm_window_kind) turns after `now` (-1 with no window). */
void lm_denial_fill(struct lm_denial *why, enum lm_deny_kind kind,
                    const char *subject, int64_t limit, int64_t used, int wk,
                    int64_t now);

/* The deadline and LLM-time question every backend answers alike: fills
 * why and returns true when now is past deadline, or used_ns (saturated by
 * the caller) has reached max_ns (-1: none). */
bool lm_denial_time(int64_t deadline, int64_t now, int64_t max_ns,
                    int64_t used_ns, struct lm_denial *why);

extern const struct lm_budget_backend lm_budget_backend_shm;
extern const struct lm_budget_backend lm_budget_backend_redis;
/* Removes a Redis budget's keys (lm_budget_remove dispatches here). */
int lm_budget_redis_remove(const char *name, char *err, size_t errlen);
/* Calls fn with the URL of each budget on a Redis server (lm_budget_list
 * dispatches here). */
int lm_budget_redis_list(const char *server,
                         void (*fn)(const char *name, void *ctx), void *ctx,
                         char *err, size_t errlen);

/* Tests: open and create through this backend instead of the one the name
 * selects (NULL restores the choice by name). */
void lm_budget_force_backend(const struct lm_budget_backend *be);

#endif
