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

#endif
