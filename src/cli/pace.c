/* pace.c — the pace of spend and the time to the hard limit (pace.h).
 *
 * Integer money throughout: the pace is pico-USD per minute, the time to
 * the limit whole seconds, both by 128-bit integer division. Never prints
 * (the formatted text goes back to the caller).
 */
#include "pace.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "config.h"
#include "ledger_sum.h"
#include "money.h"
#include "status.h"
#include "utc.h"

#define LEDGER_TAIL (8 << 20)

void lm_pace_sample(struct lm_pace_samples *ps, int64_t now_ms, int64_t spent) {
  if (ps->n) {
    int last = (ps->head + ps->n - 1) % LM_PACE_SAMPLES;
    if (spent < ps->spent[last])
      ps->n = 0; /* reset or new window: the old samples measure nothing */
  }
  while (ps->n && now_ms - ps->t_ms[ps->head] > LM_PACE_SPAN_S * 1000LL) {
    ps->head = (ps->head + 1) % LM_PACE_SAMPLES;
    ps->n--;
  }
  if (ps->n == LM_PACE_SAMPLES) {
    ps->head = (ps->head + 1) % LM_PACE_SAMPLES;
    ps->n--;
  }
  int k = (ps->head + ps->n) % LM_PACE_SAMPLES;
  ps->t_ms[k] = now_ms;
  ps->spent[k] = spent;
  ps->n++;
}

static int64_t per_min(int64_t pusd, int64_t ms) {
  return ms > 0 ? (int64_t)((__int128)pusd * 60000 / ms) : 0;
}

int lm_pace_from_samples(const struct lm_pace_samples *ps, struct lm_pace *p) {
  if (ps->n < 2)
    return 0;
  int last = (ps->head + ps->n - 1) % LM_PACE_SAMPLES;
  int64_t ms = ps->t_ms[last] - ps->t_ms[ps->head];
  if (ms < 1000)
    return 0;
  p->source = LM_PACE_WATCH;
  p->pusd_per_min = per_min(ps->spent[last] - ps->spent[ps->head], ms);
  p->over_s = ms / 1000;
  return 1;
}

int lm_pace_from_ledger(const char *path, const struct lm_snapshot *s,
                        struct lm_pace *p) {
  FILE *f = path ? fopen(path, "re") : NULL;
  if (!f)
    return 0;
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && st.st_size > LEDGER_TAIL)
    fseeko(f, st.st_size - LEDGER_TAIL, SEEK_SET); /* the first line is torn */
  /* Over the last minutes, or since the window's first call if that is
   * later (a budget busy for 30 s has not spent at 1/10 of its pace). */
  int64_t since = s->now - LM_PACE_SPAN_S;
  if (s->total.first_activity > since)
    since = s->total.first_activity;
  int64_t sum = 0;
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  while ((len = getline(&line, &cap, f)) > 0) {
    /* Only lines of this budget are parsed: a shared ledger of many
     * budgets costs a substring search per line. */
    if (!strstr(line, s->name))
      continue;
    struct lm_ledger_line l;
    if (lm_ledger_line_parse(line, (size_t)len, &l) == 0 &&
        l.outcome != LM_LEDGER_SOFT && strcmp(l.budget, s->name) == 0 &&
        l.time >= since && l.time <= s->now)
      sum = lm_money_add(sum, l.cost_pusd);
    lm_ledger_line_free(&l);
  }
  free(line);
  fclose(f);
  int64_t span = s->now - since;
  if (span < 1)
    span = 1;
  p->source = LM_PACE_LEDGER;
  p->pusd_per_min = per_min(sum, span * 1000);
  p->over_s = span;
  return 1;
}

void lm_pace_measure(const struct lm_pace_samples *ps, const char *ledger,
                     const struct lm_snapshot *s, struct lm_pace *p) {
  memset(p, 0, sizeof(*p));
  if (!(ps && lm_pace_from_samples(ps, p)) &&
      !lm_pace_from_ledger(ledger, s, p) && s->total.first_activity > 0) {
    int64_t span = s->now - s->total.first_activity;
    if (span < 1)
      span = 1;
    p->source = LM_PACE_AVG;
    p->pusd_per_min = per_min(s->total.spent, span * 1000);
    p->over_s = span;
  }
  p->to_limit_s = -1;
  if (s->hard_pusd < 0)
    return;
  int64_t left = s->hard_pusd - s->total.spent;
  p->reached = left <= 0;
  if (left > 0 && p->pusd_per_min > 0)
    p->to_limit_s = (int64_t)((__int128)left * 60 / p->pusd_per_min);
}

void lm_pace_format(const struct lm_pace *p, const struct lm_snapshot *s,
                    char *table, size_t tn, char *json, size_t jn) {
  static const char *src[] = {"none", "watch", "ledger", "window average"};
  char a[48], b[48], over[32], eta[96];
  lm_status_duration(p->over_s, over, sizeof(over));
  if (s->hard_pusd < 0)
    snprintf(eta, sizeof(eta), "no hard limit");
  else if (p->reached)
    snprintf(eta, sizeof(eta), "hard limit reached");
  else if (p->to_limit_s < 0)
    snprintf(eta, sizeof(eta), "hard limit not reached at this pace");
  else {
    char d[32], when[24];
    time_t t = (time_t)(s->now + p->to_limit_s);
    struct tm tm;
    lm_status_duration(p->to_limit_s, d, sizeof(d));
    strftime(when, sizeof(when), "%H:%M:%SZ", lm_utc(t, &tm));
    snprintf(eta, sizeof(eta), "hard limit in %s (%s)", d, when);
  }
  if (p->source == LM_PACE_NONE)
    snprintf(table, tn, "pace      no spend yet   %s\n", eta);
  else
    snprintf(table, tn, "pace      $%s/min over %s%s (%s)   %s\n",
             lm_money_format_display(p->pusd_per_min, 4, a, sizeof(a)),
             p->source == LM_PACE_AVG ? "" : "the last ", over, src[p->source],
             eta);
  char lim[32];
  if (p->to_limit_s >= 0)
    snprintf(lim, sizeof(lim), "%" PRId64, p->to_limit_s);
  else
    snprintf(lim, sizeof(lim), p->reached ? "0" : "null");
  snprintf(json, jn,
           ",\"pace\":{\"usd_per_min\":%s,\"pusd_per_min\":%" PRId64
           ",\"over_s\":%" PRId64 ",\"source\":\"%s\",\"limit_in_s\":%s}",
           lm_money_format_exact(p->pusd_per_min, b, sizeof(b)),
           p->pusd_per_min, p->over_s, src[p->source], lim);
}

void lm_pace_print_status(FILE *out, const struct lm_snapshot *s,
                          enum lm_status_format fmt,
                          const struct lm_pace_samples *ps) {
  struct lm_pace p;
  char table[256], json[256];
  lm_pace_measure(ps, lm_config_get()->ledger, s, &p);
  lm_pace_format(&p, s, table, sizeof(table), json, sizeof(json));
  const struct lm_status_extra x = {.table = table, .json = json};
  lm_status_print_extra(out, s, fmt, &x);
}
