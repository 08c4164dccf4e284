/* pace.h — the pace of spend: dollars per minute over the last minutes,
 * and when the hard limit is reached at that pace (`status`, `watch`).
 *
 * A budget keeps totals, not history, so the pace is measured where
 * history is: by `watch` from its own samples of the budget, or for a
 * one-shot `status` from the ledger's last minutes (LLMMETER_LEDGER), or
 * failing both, as the average since the window's first call. The source
 * is always named beside the number.
 */
#ifndef LM_PACE_H
#define LM_PACE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "budget.h"
#include "status.h"

#define LM_PACE_SPAN_S 300 /* "the last minutes": five of them */
#define LM_PACE_SAMPLES 4096

/* watch's samples of the budget's spend, oldest first in a ring. */
struct lm_pace_samples {
  int64_t t_ms[LM_PACE_SAMPLES], spent[LM_PACE_SAMPLES];
  int head, n;
};

enum lm_pace_source {
  LM_PACE_NONE,
  LM_PACE_WATCH,
  LM_PACE_LEDGER,
  LM_PACE_AVG
};

struct lm_pace {
  enum lm_pace_source source;
  int64_t pusd_per_min; /* >= 0 */
  int64_t over_s;       /* the span it was measured over */
  int64_t to_limit_s;   /* -1: no hard limit, or no spend to reach it */
  int reached;          /* spent is at or past the hard limit */
};

/* Adds a sample; samples older than LM_PACE_SPAN_S are dropped, and all of
 * them when spend went down (a reset, a new window). */
void lm_pace_sample(struct lm_pace_samples *ps, int64_t now_ms, int64_t spent);
/* The pace over the samples; 0 when they span under a second. */
int lm_pace_from_samples(const struct lm_pace_samples *ps, struct lm_pace *p);
/* The pace from the ledger's lines of `budget` in the last LM_PACE_SPAN_S
 * seconds before now (reading at most its last 8 MB); 0 when the ledger
 * cannot be read. */
int lm_pace_from_ledger(const char *path, const struct lm_snapshot *s,
                        struct lm_pace *p);
/* The best pace for s: the samples if they span a second, else the ledger
 * (path may be NULL), else the window's average. Fills the time to limit. */
void lm_pace_measure(const struct lm_pace_samples *ps, const char *ledger,
                     const struct lm_snapshot *s, struct lm_pace *p);
/* The table line and the JSON member (",\"pace\":{...}") for p. */
void lm_pace_format(const struct lm_pace *p, const struct lm_snapshot *s,
                    char *table, size_t tn, char *json, size_t jn);

/* `status` and `watch` output: the snapshot in fmt with the pace measured
 * by lm_pace_measure (ps may be NULL; the ledger is LLMMETER_LEDGER). */
void lm_pace_print_status(FILE *out, const struct lm_snapshot *s,
                          enum lm_status_format fmt,
                          const struct lm_pace_samples *ps);

#endif
