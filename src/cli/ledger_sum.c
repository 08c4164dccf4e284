/* ledger_sum.c — ledger lines parsed and summed by key (see ledger_sum.h).
 *
 * Money is summed exactly: each line's cost_pusd is an integer that a
 * double holds exactly up to 2^53 pico-USD ($9,007) per call, and the sums
 * are int64 pico-USD through lm_money_add. Token parts beyond text and web
 * searches are summed too; a line without them (older ledgers, text
 * calls) has none. Never prints.
 */
#include "ledger_sum.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "money.h"

static uint64_t num(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsNumber(v) && v->valuedouble > 0 ? (uint64_t)v->valuedouble : 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil): per line, without timegm's locale and tz work. */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

/* "2026-12-02T18:46:49.123Z" (the ledger writes exactly this shape). */
static int64_t parse_time(const char *s) {
  int v[6] = {0};
  static const int off[6] = {0, 5, 8, 11, 14, 17}, len[6] = {4, 2, 2, 2, 2, 2};
  if (strlen(s) < 19)
    return -1;
  for (int f = 0; f < 6; f++)
    for (int k = 0; k < len[f]; k++) {
      char c = s[off[f] + k];
      if (c < '0' || c > '9')
        return -1;
      v[f] = v[f] * 10 + (c - '0');
    }
  if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 ||
      v[4] > 59 || v[5] > 60)
    return -1;
  return days_from_civil(v[0], v[1], v[2]) * 86400 + v[3] * 3600 + v[4] * 60 +
         v[5];
}

int lm_ledger_line_parse(const char *buf, size_t len,
                         struct lm_ledger_line *out) {
  memset(out, 0, sizeof(*out));
  out->time = -1;
  cJSON *o = cJSON_ParseWithLength(buf, len);
  out->json = o;
  const cJSON *outcome = cJSON_GetObjectItemCaseSensitive(o, "outcome");
  const cJSON *cost = cJSON_GetObjectItemCaseSensitive(o, "cost_pusd");
  if (!cJSON_IsObject(o) || !cJSON_IsString(outcome) || !cJSON_IsNumber(cost))
    return -1;
  out->outcome_name = outcome->valuestring;
  out->outcome = strcmp(outcome->valuestring, "denied") == 0 ? LM_LEDGER_DENIED
                 : strcmp(outcome->valuestring, "cut") == 0  ? LM_LEDGER_CUT
                 : strcmp(outcome->valuestring, "soft_limit") == 0
                     ? LM_LEDGER_SOFT
                     : LM_LEDGER_OK;
  const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "budget");
  out->budget = cJSON_IsString(b) ? b->valuestring : "";
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "time");
  snprintf(out->day, sizeof(out->day), "%.10s",
           cJSON_IsString(t) ? t->valuestring : "?");
  if (cJSON_IsString(t))
    out->time = parse_time(t->valuestring);
  out->cost_pusd = (int64_t)cost->valuedouble;
  const cJSON *tk = cJSON_GetObjectItemCaseSensitive(o, "tokens");
  for (int k = 0; k < LM_TOK_KINDS; k++)
    out->tok[k] = k == LM_TOK_WEB_SEARCHES ? num(o, "web_searches")
                                           : num(tk, lm_token_kind_name(k));
  return 0;
}

void lm_ledger_line_free(struct lm_ledger_line *l) {
  cJSON_Delete(l->json);
  l->json = NULL;
}

int lm_ledger_key_valid(const char *by) {
  return !strcmp(by, "model") || !strcmp(by, "agent") || !strcmp(by, "day") ||
         !strcmp(by, "provider") || !strcmp(by, "api");
}

/* Ledgers written before lines had an "api" member kept the API in
 * "provider" and did not record who billed the call: for those, "api" is
 * their "provider" and the provider is unknown. */
const char *lm_ledger_line_key(const struct lm_ledger_line *l, const char *by) {
  if (strcmp(by, "day") == 0)
    return l->day;
  const cJSON *o = l->json;
  const cJSON *api = cJSON_GetObjectItemCaseSensitive(o, "api");
  int old = !cJSON_IsString(api);
  if (old && strcmp(by, "api") == 0)
    by = "provider";
  else if (old && strcmp(by, "provider") == 0)
    return "?";
  const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, by);
  return cJSON_IsString(k) ? k->valuestring : "?";
}

int lm_report_rows_init(struct lm_report_rows *r) {
  memset(r, 0, sizeof(*r));
  snprintf(r->total.key, sizeof(r->total.key), "total");
  r->rows = calloc(LM_REPORT_ROWS_MAX + 1, sizeof(*r->rows));
  return r->rows ? 0 : -1;
}

void lm_report_rows_free(struct lm_report_rows *r) {
  free(r->rows);
  r->rows = NULL;
}

static void row_add(struct lm_report_row *r, const struct lm_ledger_line *l) {
  r->calls += l->outcome != LM_LEDGER_DENIED;
  r->denied += l->outcome == LM_LEDGER_DENIED;
  r->cut += l->outcome == LM_LEDGER_CUT;
  r->cost = lm_money_add(r->cost, l->cost_pusd);
  for (int t = 0; t < LM_TOK_KINDS; t++)
    r->tok[t] += l->tok[t];
}

int lm_report_rows_add(struct lm_report_rows *r, const char *key,
                       const struct lm_ledger_line *l) {
  /* A linear search: ledgers have tens of keys, and the newest key is
   * usually among the first rows. */
  int i = 0;
  while (i < r->n && strncmp(r->rows[i].key, key, sizeof(r->rows[i].key) - 1))
    i++;
  if (i == r->n) {
    if (r->n == LM_REPORT_ROWS_MAX)
      i = r->n; /* the overflow row */
    else
      r->n++;
    if (!r->rows[i].key[0])
      snprintf(r->rows[i].key, sizeof(r->rows[i].key), "%s",
               i == LM_REPORT_ROWS_MAX ? "(other)" : key);
  }
  row_add(&r->rows[i], l);
  row_add(&r->total, l);
  return i;
}

static int cmp_cost(const void *a, const void *b) {
  const struct lm_report_row *x = a, *y = b;
  if (x->cost != y->cost)
    return x->cost < y->cost ? 1 : -1;
  return strcmp(x->key, y->key);
}

void lm_report_rows_sort(struct lm_report_rows *r) {
  qsort(r->rows, (size_t)r->n, sizeof(*r->rows), cmp_cost);
}
