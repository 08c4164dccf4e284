/* utc.h — a UTC calendar time that is always filled in.
 *
 * gmtime_r fails (NULL, the struct untouched) for times whose year does not
 * fit an int; such times come from hostile segments, huge --deadline values
 * and corrupt ledgers, and strftime or timegm on an untouched struct is
 * undefined. lm_utc clamps instead: past the end of year 9999 reads as its
 * last second, before year 0 as its first. Header-only (every layer may use
 * base/).
 */
#ifndef LM_UTC_H
#define LM_UTC_H

#include <string.h>
#include <time.h>

/* Seconds from 1970 to 10000-01-01T00:00:00Z and from 0000-01-01. */
#define LM_UTC_MAX ((time_t)253402300799LL)
#define LM_UTC_MIN ((time_t)-62167219200LL)

static inline struct tm *lm_utc(time_t t, struct tm *tm) {
  if (t > LM_UTC_MAX)
    t = LM_UTC_MAX;
  else if (t < LM_UTC_MIN)
    t = LM_UTC_MIN;
  if (!gmtime_r(&t, tm)) /* not expected inside the clamp: fill anyway */
    memset(tm, 0, sizeof *tm), tm->tm_mday = 1, tm->tm_year = 70;
  return tm;
}

#endif
