/* status.h — a budget snapshot as text: the `llmmeter status` table, its
 * stable JSON (documented in README.md) and Prometheus exposition. Used by
 * the CLI and by the library (the --on-soft hook gets the JSON on stdin).
 * Prints only to the FILE it is given. */
#ifndef LM_STATUS_H
#define LM_STATUS_H

#include <stdio.h>

#include "budget.h"

enum lm_status_format { LM_FMT_TABLE, LM_FMT_JSON, LM_FMT_PROM };

void lm_status_print(FILE *out, const struct lm_snapshot *s,
                     enum lm_status_format fmt);

/* "3d 4h", "2h 5m", "4m 10s", "9s": a duration as the table shows it. */
void lm_status_duration(int64_t seconds, char *buf, size_t n);

/* Prometheus text for n budgets at once (`llmmeter serve`): each metric
 * family once, with every budget's samples. */
void lm_status_print_prom(FILE *out, const struct lm_snapshot *const *s, int n);

/* What a caller adds that a snapshot cannot know (the CLI's pace of spend,
 * measured over time): `table` lines go after the table's spend lines,
 * `json` members (each starting with a comma) before the JSON's closing
 * brace. NULL members add nothing. */
struct lm_status_extra {
  const char *table, *json;
};
void lm_status_print_extra(FILE *out, const struct lm_snapshot *s,
                           enum lm_status_format fmt,
                           const struct lm_status_extra *x);

#endif
