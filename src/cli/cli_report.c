/* cli_report.c — `llmmeter report`: where the money went, from a ledger.
 *
 * Reads LLMMETER_LEDGER's JSON lines and sums calls, denials, exact cost
 * (integer pico-USD from each line's cost_pusd) and tokens by model, agent,
 * provider (who billed the call), API or UTC day, through ledger_sum.h (which
 * reads ledgers from before lines had an "api" member too); --html FILE
 * writes the same sums as a page instead (report_html.c). Lines that are not
 * ledger records are skipped and counted, never fatal: a ledger being
 * appended to while we read ends mid-line. Token parts beyond text and web
 * searches are summed too; a line without them (older ledgers, text calls)
 * has none.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "ledger_sum.h"
#include "money.h"
#include "report_html.h"

int lm_cli_report(int argc, char **argv) {
  const char *path = NULL, *by = "model", *html = NULL, *budget = NULL;
  int json = 0;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0)
      json = 1;
    else if (strcmp(argv[i], "--by") == 0 && i + 1 < argc)
      by = argv[++i];
    else if (strcmp(argv[i], "--html") == 0 && i + 1 < argc)
      html = argv[++i];
    else if (strcmp(argv[i], "--budget") == 0 && i + 1 < argc)
      budget = argv[++i];
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
  if (!lm_ledger_key_valid(by)) {
    fprintf(stderr,
            "llmmeter: --by needs model, agent, provider, api or day (got "
            "'%s')\n",
            by);
    return LM_EXIT_USAGE;
  }
  if (html && json) {
    fprintf(stderr, "llmmeter: --html and --json are exclusive\n");
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
  if (html) {
    int rc = lm_report_html(f, path, html, budget);
    if (f != stdin)
      fclose(f);
    return rc;
  }
  struct lm_report_rows rr;
  if (lm_report_rows_init(&rr) != 0) {
    if (f != stdin)
      fclose(f);
    return LM_EXIT_ERROR;
  }
  uint64_t skipped = 0;
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  while ((len = getline(&line, &cap, f)) > 0) {
    struct lm_ledger_line l;
    if (lm_ledger_line_parse(line, (size_t)len, &l) != 0)
      skipped++;
    else if (l.outcome != LM_LEDGER_SOFT) /* an event, not a call */
      lm_report_rows_add(&rr, lm_ledger_line_key(&l, by), &l);
    lm_ledger_line_free(&l);
  }
  free(line);
  if (f != stdin)
    fclose(f);
  lm_report_rows_sort(&rr);
  struct lm_report_row *rows = rr.rows, total = rr.total;
  int n = rr.n;
  char a[40];
  if (json) {
    printf("{\"by\":\"%s\",\"rows\":[", by);
    for (int i = 0; i <= n; i++) {
      struct lm_report_row *r = i < n ? &rows[i] : &total;
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
      printf("\",\"calls\":%" PRIu64 ",\"denied\":%" PRIu64 ",\"cut\":%" PRIu64
             ",\"cost_usd\":%s,\"cost_pusd\":%" PRId64 ",\"tokens\":{",
             r->calls, r->denied, r->cut,
             lm_money_format_exact(r->cost, a, sizeof(a)), r->cost);
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
      struct lm_report_row *r = i < n ? &rows[i] : &total;
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
  lm_report_rows_free(&rr);
  return 0;
}
