/* ledger_sum.h — reading LLMMETER_LEDGER lines and summing them by a key:
 * the one reading of the ledger that `report`, `report --html` and the
 * pace of `status` share, so that they can never disagree on a line.
 *
 * A line is parsed once into struct lm_ledger_line (time, outcome, exact
 * cost, tokens; strings point into the parsed JSON until it is freed).
 * Rows are kept in first-seen order until lm_report_rows_sort; past
 * LM_REPORT_ROWS_MAX keys the rest are summed in one "(other)" row.
 */
#ifndef LM_LEDGER_SUM_H
#define LM_LEDGER_SUM_H

#include <stddef.h>
#include <stdint.h>

#include "usage.h"

#define LM_REPORT_ROWS_MAX 4096

enum lm_ledger_outcome {
  LM_LEDGER_OK,     /* ok, unmetered, failed: a call that went out */
  LM_LEDGER_DENIED, /* refused before it left */
  LM_LEDGER_CUT,    /* a stream cut mid-way (a call that went out) */
  LM_LEDGER_SOFT,   /* the soft-limit event: no call */
};

struct lm_ledger_line {
  void *json; /* the parsed line (cJSON); owns the strings below */
  const char *outcome_name, *budget;
  enum lm_ledger_outcome outcome;
  int64_t time; /* epoch seconds (UTC), -1 when missing or malformed */
  char day[11]; /* "YYYY-MM-DD" of time, "?" when missing */
  int64_t cost_pusd;
  uint64_t tok[LM_TOK_KINDS]; /* by enum lm_token_kind, web searches too */
};

/* Parses one line; 0 for a ledger record, -1 for anything else (a torn
 * last line, a foreign line). Free with lm_ledger_line_free either way. */
int lm_ledger_line_parse(const char *buf, size_t len,
                         struct lm_ledger_line *out);
void lm_ledger_line_free(struct lm_ledger_line *l);

/* The line's value for a --by key (model, agent, provider, api, day), "?"
 * when it has none; ledgers written before lines had "api" are read as
 * their shape was (see ledger_sum.c). */
const char *lm_ledger_line_key(const struct lm_ledger_line *l, const char *by);
/* Whether `by` names a key lm_ledger_line_key knows. */
int lm_ledger_key_valid(const char *by);

struct lm_report_row {
  char key[96];
  uint64_t calls, denied, cut;
  int64_t cost;
  uint64_t tok[LM_TOK_KINDS];
};

struct lm_report_rows {
  struct lm_report_row *rows; /* LM_REPORT_ROWS_MAX + 1 (the overflow row) */
  int n;
  struct lm_report_row total;
};

int lm_report_rows_init(struct lm_report_rows *r);
void lm_report_rows_free(struct lm_report_rows *r);
/* Adds a call line (not the soft-limit event) to the row of `key` and to
 * the total; returns the row's index. */
int lm_report_rows_add(struct lm_report_rows *r, const char *key,
                       const struct lm_ledger_line *l);
/* Most expensive first, then by key. */
void lm_report_rows_sort(struct lm_report_rows *r);

#endif
