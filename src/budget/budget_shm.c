/* budget_shm.c — the budget engine on a POSIX shared-memory segment: the
 * backend's entry point (its ops table, open and create).
 *
 * Implements budget.h for every process of one machine. Every change to
 * the counters and the lease table (admit, charge, settle, refund, reset)
 * is one step under the segment's robust mutex, each word journaled with
 * its old value first (shm_journal.c): a process killed at any instruction
 * leaves a step that the next locker rolls back whole, and leases that the
 * next admission needing room refunds (shm_lease.c).
 *
 * The segment's layout is a file format of its own (segment.h, segment.c:
 * create, attach, validate); this file only maps it into a handle. The
 * rest of the backend is split by concern and shares shm_internal.h:
 * steps and their journal (shm_journal.c), admission (shm_admit.c),
 * leases, reclaim and settlement (shm_lease.c),
 * counter sets and their windows (shm_counters.c), rate buckets
 * (shm_rate.c), and limits, rules and the snapshot (shm_rules.c).
 */
#include <stdio.h>
#include <stdlib.h>

#include "shm_internal.h"

static void shm_close(struct lm_budget *b) {
  lm_segment_detach(&MAP(b));
  free(b);
}

static const struct lm_budget_ops shm_ops = {
    .admit = lm_shm_admit,
    .charge = lm_shm_charge,
    .settle = lm_shm_settle,
    .release = lm_shm_release,
    .snapshot = lm_shm_snapshot,
    .reclaim = lm_shm_reclaim,
    .configure = lm_shm_configure,
    .add_rule = lm_shm_add_rule,
    .reset = lm_shm_reset,
    .close = shm_close,
    .over_hard = lm_shm_over_hard,
    .over_call_caps = lm_shm_over_call_caps,
    .add_llm_time = lm_shm_add_llm_time,
    .over_time = lm_shm_over_time,
    .rate_correct = lm_shm_rate_correct,
    .soft_crossed = lm_shm_soft_crossed,
    .downgrade = lm_shm_downgrade,
    .hard_limit = lm_shm_hard_limit,
    .count_unmetered = lm_shm_count_unmetered,
};

/* ---- opening ----------------------------------------------------------- */

static struct shm_budget *shm_new(const char *name, char *err, size_t errlen) {
  struct shm_budget *b = calloc(1, sizeof(*b));
  if (!b) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  lm_budget_init_base(&b->base, &shm_ops, name);
  return b;
}

static int shm_open_budget(const char *name, bool create,
                           struct lm_budget **out, char *err, size_t errlen) {
  struct shm_budget *b = shm_new(name, err, errlen);
  if (!b)
    return LM_SEG_ESYS;
  const char *nm = b->base.name;
  int rc = lm_segment_attach(nm, &b->map, err, errlen);
  if (rc == LM_SEG_ENOENT && create) {
    rc = lm_segment_create(nm, 0, &b->map, err, errlen);
    if (rc == LM_SEG_EEXIST) /* lost a creation race: use the winner's */
      rc = lm_segment_attach(nm, &b->map, err, errlen);
  }
  if (rc != LM_SEG_OK) {
    free(b);
    return rc;
  }
  *out = &b->base;
  return 0;
}

static int shm_create_budget(const char *name, bool force,
                             struct lm_budget **out, char *err, size_t errlen) {
  struct shm_budget *b = shm_new(name, err, errlen);
  if (!b)
    return LM_SEG_ESYS;
  int rc = lm_segment_create(b->base.name, force, &b->map, err, errlen);
  if (rc != LM_SEG_OK) {
    free(b);
    return rc;
  }
  *out = &b->base;
  return 0;
}

const struct lm_budget_backend lm_budget_backend_shm = {
    .kind = "shm", .open = shm_open_budget, .create = shm_create_budget};
