/* cli_report.c — `llmmeter report`: where the money went, from a ledger.
 *
 * Reads LLMMETER_LEDGER's JSON lines and sums calls, denials, exact cost
 * (integer pico-USD from each line's cost_pusd) and tokens by model, agent,
 * provider (who billed the call), API or UTC day; it reads ledgers from
 * before lines had an "api" member too (see line_key). Lines that are not
 * ledger records are skipped and counted, never fatal: a ledger being
 * appended to while we read ends mid-line. Token parts beyond text and web
 * searches are summed too; a line without them (older ledgers, text calls)
 * has none.
 */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "money.h"

#define REPORT_ROWS_MAX 4096

/* tok[] by enum lm_token_kind: the token kinds of the ledger's "tokens"
 * object and, at LM_TOK_WEB_SEARCHES, its "web_searches". */
struct row {
  char key[96];
  uint64_t calls, denied;
  int64_t cost;
  uint64_t tok[LM_TOK_KINDS];
};

static int cmp_cost(const void *a, const void *b) {
  const struct row *x = a, *y = b;
  if (x->cost != y->cost)
    return x->cost < y->cost ? 1 : -1;
  return strcmp(x->key, y->key);
}

static uint64_t num(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsNumber(v) && v->valuedouble > 0 ? (uint64_t)v->valuedouble : 0;
}

/* A line's value for --by (model, agent, provider, api). Ledgers written
 * before lines had an "api" member kept the API in "provider" and did not
 * record who billed the call: for those, "api" is their "provider" and the
 * provider is unknown. "?" when the line has no such member. */
static const char *line_key(const cJSON *o, const char *by) {
  const cJSON *api = cJSON_GetObjectItemCaseSensitive(o, "api");
  bool old = !cJSON_IsString(api);
  if (old && strcmp(by, "api") == 0)
    by = "provider";
  else if (old && strcmp(by, "provider") == 0)
    return "?";
  const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, by);
  return cJSON_IsString(k) ? k->valuestring : "?";
}

int lm_cli_report(int argc, char **argv) {
  const char *path = NULL, *by = "model";
  int json = 0;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0)
      json = 1;
    else if (strcmp(argv[i], "--by") == 0 && i + 1 < argc)
      by = argv[++i];
    else if (argv[i][0] == '-' && argv[i][1]) {
      fprintf(stderr, "llmmeter: unknown option '%s' (see 'llmmeter --help')\n",
              argv[i]);
      return LM_EXIT_USAGE;
    } else if (!path)
      path = argv[i];
    else {
      fprintf(stderr, "llmmeter: report takes one ledger file\n");
      return LM_EXIT_USAGE;
    }
  }
  if (strcmp(by, "model") && strcmp(by, "agent") && strcmp(by, "day") &&
      strcmp(by, "provider") && strcmp(by, "api")) {
    fprintf(stderr,
            "llmmeter: --by needs model, agent, provider, api or day (got "
            "'%s')\n",
            by);
    return LM_EXIT_USAGE;
  }
  if (!path)
    path = lm_config_get()->ledger;
  if (!path) {
    fprintf(stderr,
            "llmmeter: report needs a ledger FILE (or LLMMETER_LEDGER)\n");
    return LM_EXIT_USAGE;
  }
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "re");
  if (!f) {
    fprintf(stderr, "llmmeter: cannot read ledger %s\n", path);
    return LM_EXIT_ERROR;
  }
  struct row *rows = calloc(REPORT_ROWS_MAX + 1, sizeof(*rows));
  if (!rows) {
    fclose(f);
    return LM_EXIT_ERROR;
  }
  int n = 0;
  uint64_t skipped = 0;
  struct row total = {.key = "total"};
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  while ((len = getline(&line, &cap, f)) > 0) {
    cJSON *o = cJSON_ParseWithLength(line, (size_t)len);
    const cJSON *outcome = cJSON_GetObjectItemCaseSensitive(o, "outcome");
    const cJSON *cost = cJSON_GetObjectItemCaseSensitive(o, "cost_pusd");
    if (!cJSON_IsObject(o) || !cJSON_IsString(outcome) ||
        !cJSON_IsNumber(cost)) {
      skipped++;
      cJSON_Delete(o);
      continue;
    }
    if (strcmp(outcome->valuestring, "soft_limit") == 0) {
      cJSON_Delete(o); /* an event, not a call */
      continue;
    }
    char key[96] = "";
    if (strcmp(by, "day") == 0) {
      const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "time");
      snprintf(key, sizeof(key), "%.10s",
               cJSON_IsString(t) ? t->valuestring : "?");
    } else {
      snprintf(key, sizeof(key), "%s", line_key(o, by));
    }
    int i = 0;
    while (i < n && strcmp(rows[i].key, key) != 0)
      i++;
    if (i == n) {
      if (n == REPORT_ROWS_MAX)
        i = n; /* the overflow row */
      else
        n++;
      if (!rows[i].key[0])
        snprintf(rows[i].key, sizeof(rows[i].key), "%s",
                 i == REPORT_ROWS_MAX ? "(other)" : key);
    }
    struct row *r[2] = {&rows[i], &total};
    int denied = strcmp(outcome->valuestring, "denied") == 0;
    const cJSON *tk = cJSON_GetObjectItemCaseSensitive(o, "tokens");
    for (int k = 0; k < 2; k++) {
      r[k]->calls += !denied;
      r[k]->denied += denied;
      /* A double holds integers exactly up to 2^53 pico-USD ($9,007) per
       * call; each line is one call, so the sum stays exact. */
      r[k]->cost = lm_money_add(r[k]->cost, (int64_t)cost->valuedouble);
      for (int t = 0; t < LM_TOK_KINDS; t++)
        r[k]->tok[t] += t == LM_TOK_WEB_SEARCHES
                            ? num(o, "web_searches")
                            : num(tk, lm_token_kind_name(t));
    }
    cJSON_Delete(o);
  }
  free(line);
  if (f != stdin)
    fclose(f);
  qsort(rows, (size_t)n, sizeof(*rows), cmp_cost);
  char a[40];
  if (json) {
    printf("{\"by\":\"%s\",\"rows\":[", by);
    for (int i = 0; i <= n; i++) {
      struct row *r = i < n ? &rows[i] : &total;
      if (i == n)
        printf("],\"total\":");
      else if (i)
        putchar(',');
      printf("{\"key\":\"");
      for (const char *p = r->key; *p; p++)
        if (*p == '"' || *p == '\\')
          printf("\\%c", *p);
        else if ((unsigned char)*p >= 0x20)
          putchar(*p);
      printf("\",\"calls\":%" PRIu64 ",\"denied\":%" PRIu64
             ",\"cost_usd\":%s,\"cost_pusd\":%" PRId64 ",\"tokens\":{",
             r->calls, r->denied, lm_money_format_exact(r->cost, a, sizeof(a)),
             r->cost);
      static const int order[] = {LM_TOK_INPUT, LM_TOK_OUTPUT,
                                  LM_TOK_CACHE_READ, LM_TOK_CACHE_WRITE,
                                  LM_TOK_REASONING};
      for (int t = 0; t < 5; t++)
        printf("%s\"%s\":%" PRIu64, t ? "," : "", lm_token_kind_name(order[t]),
               r->tok[order[t]]);
      for (int t = LM_TOK_REASONING + 1; t < LM_TOK_KINDS; t++)
        if (t != LM_TOK_WEB_SEARCHES)
          printf(",\"%s\":%" PRIu64, lm_token_kind_name(t), r->tok[t]);
      printf("},\"web_searches\":%" PRIu64 "}", r->tok[LM_TOK_WEB_SEARCHES]);
    }
    printf(",\"skipped_lines\":%" PRIu64 "}\n", skipped);
  } else {
    /* The text columns always; a column for each part that any call had. */
    int cols[LM_TOK_KINDS], nc = 0;
    cols[nc++] = LM_TOK_INPUT;
    cols[nc++] = LM_TOK_OUTPUT;
    cols[nc++] = LM_TOK_CACHE_READ;
    cols[nc++] = LM_TOK_REASONING;
    for (int t = LM_TOK_REASONING + 1; t < LM_TOK_KINDS; t++)
      if (total.tok[t])
        cols[nc++] = t;
    printf("%-36s %8s %7s %14s",
           strcmp(by, "day") == 0        ? "DAY (UTC)"
           : strcmp(by, "model") == 0    ? "MODEL"
           : strcmp(by, "provider") == 0 ? "PROVIDER"
           : strcmp(by, "api") == 0      ? "API"
                                         : "AGENT",
           "CALLS", "DENIED", "COST USD");
    int width[LM_TOK_KINDS];
    for (int c = 0; c < nc; c++) {
      char head[32];
      size_t k = 0;
      for (const char *p = lm_token_kind_name(cols[c]);
           *p && k + 1 < sizeof(head); p++)
        head[k++] = *p == '_' ? ' ' : (char)toupper((unsigned char)*p);
      head[k] = 0;
      width[c] = k > 12 ? (int)k : 12;
      printf(" %*s", width[c], head);
    }
    putchar('\n');
    for (int i = 0; i <= n; i++) {
      struct row *r = i < n ? &rows[i] : &total;
      printf("%-36.36s %8" PRIu64 " %7" PRIu64 " %14s", r->key, r->calls,
             r->denied, lm_money_format(r->cost, 6, a, sizeof(a)));
      for (int c = 0; c < nc; c++)
        printf(" %*" PRIu64, width[c], r->tok[cols[c]]);
      putchar('\n');
    }
    if (skipped)
      fprintf(stderr,
              "llmmeter: skipped %" PRIu64
              " lines that are not ledger records\n",
              skipped);
  }
  free(rows);
  return 0;
}
