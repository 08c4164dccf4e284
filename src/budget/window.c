/* window.c — calendar windows in UTC (see window.h). */
#include "window.h"
#include "utc.h"

#include <string.h>
#include <time.h>

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

int64_t lm_window_start(enum lm_window_kind kind, int64_t now) {
  switch (kind) {
  case LM_WINDOW_HOUR:
    return floor_div(now, 3600) * 3600;
  case LM_WINDOW_DAY:
    return floor_div(now, 86400) * 86400;
  case LM_WINDOW_WEEK: {
    /* 1970-01-01 was a Thursday; ISO weeks start on Monday, 3 days later
     * than a Thursday-aligned week. */
    int64_t day = floor_div(now, 86400);
    int64_t monday = day - ((day + 3) % 7 + 7) % 7;
    return monday * 86400;
  }
  case LM_WINDOW_MONTH: {
    time_t t = (time_t)now;
    struct tm tm;
    lm_utc(t, &tm);
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    return (int64_t)timegm(&tm);
  }
  default:
    return 0;
  }
}

int64_t lm_window_next(enum lm_window_kind kind, int64_t now) {
  switch (kind) {
  case LM_WINDOW_HOUR:
    return lm_window_start(kind, now) + 3600;
  case LM_WINDOW_DAY:
    return lm_window_start(kind, now) + 86400;
  case LM_WINDOW_WEEK:
    return lm_window_start(kind, now) + 7 * 86400;
  case LM_WINDOW_MONTH: {
    time_t t = (time_t)now;
    struct tm tm;
    lm_utc(t, &tm);
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    tm.tm_mon += 1; /* timegm normalises December + 1 */
    return (int64_t)timegm(&tm);
  }
  default:
    return INT64_MAX;
  }
}

static const char *const window_names[LM_WINDOW_KINDS] = {"none", "hour", "day",
                                                          "week", "month"};

const char *lm_window_name(enum lm_window_kind kind) {
  return (unsigned)kind < LM_WINDOW_KINDS ? window_names[kind] : "invalid";
}

int lm_window_parse(const char *s) {
  for (int i = 0; i < LM_WINDOW_KINDS; i++)
    if (s && strcmp(s, window_names[i]) == 0)
      return i;
  if (s && strcmp(s, "lifetime") == 0)
    return LM_WINDOW_NONE;
  return -1;
}
