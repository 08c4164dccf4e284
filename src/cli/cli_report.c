/* cli_report.c — `llmmeter report`: where the money went, from a ledger.
 *
 * Reads LLMMETER_LEDGER's JSON lines and sums calls, denials, exact cost
 * (integer pico-USD from each line's cost_pusd) and tokens by model, agent,
 * provider (who billed the call), API or UTC day; it reads ledgers from
 * before lines had an "api" member too (see line_key). Lines that are not
 * ledger records are skipped and counted, never fatal: a ledger being
 * appended to while we read ends mid-line.
 */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "money.h"

#define REPORT_ROWS_MAX 4096

struct row {
  char key[96];
  uint64_t calls, denied;
  int64_t cost;
  uint64_t tok[5];
};

static const char *tok_names[5] = {"input", "output", "cache_read",
                                   "cache_write", "reasoning"};

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
      for (int t = 0; t < 5; t++)
        r[k]->tok[t] += num(tk, tok_names[t]);
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
      for (int t = 0; t < 5; t++)
        printf("%s\"%s\":%" PRIu64, t ? "," : "", tok_names[t], r->tok[t]);
      printf("}}");
    }
    printf(",\"skipped_lines\":%" PRIu64 "}\n", skipped);
  } else {
    printf("%-36s %8s %7s %14s %12s %12s %12s %12s\n",
           strcmp(by, "day") == 0        ? "DAY (UTC)"
           : strcmp(by, "model") == 0    ? "MODEL"
           : strcmp(by, "provider") == 0 ? "PROVIDER"
           : strcmp(by, "api") == 0      ? "API"
                                         : "AGENT",
           "CALLS", "DENIED", "COST USD", "INPUT", "OUTPUT", "CACHE READ",
           "REASONING");
    for (int i = 0; i <= n; i++) {
      struct row *r = i < n ? &rows[i] : &total;
      printf("%-36.36s %8" PRIu64 " %7" PRIu64 " %14s %12" PRIu64 " %12" PRIu64
             " %12" PRIu64 " %12" PRIu64 "\n",
             r->key, r->calls, r->denied,
             lm_money_format(r->cost, 6, a, sizeof(a)), r->tok[0], r->tok[1],
             r->tok[2], r->tok[4]);
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
