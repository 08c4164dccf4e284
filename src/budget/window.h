/* window.h — budget windows on the UTC calendar.
 *
 * Pure functions of (kind, now): the window a moment belongs to is named by
 * its start (epoch seconds), so every process computes the same name with
 * no coordination, and a rollover is simply "the name changed".
 */
#ifndef LM_WINDOW_H
#define LM_WINDOW_H

#include <stdint.h>

#include "segment.h"

/* Start of the window containing now (0 for LM_WINDOW_NONE). */
int64_t lm_window_start(enum lm_window_kind kind, int64_t now);
/* Start of the next window (INT64_MAX for LM_WINDOW_NONE). */
int64_t lm_window_next(enum lm_window_kind kind, int64_t now);
/* "none", "hour", "day", "week", "month". */
const char *lm_window_name(enum lm_window_kind kind);
/* Parses a name; -1 if unknown. */
int lm_window_parse(const char *s);

#endif
