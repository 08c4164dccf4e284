/* report_html.h — `llmmeter report --html FILE`: the ledger as one
 * self-contained page (inline SVG and CSS, no script, nothing fetched).
 */
#ifndef LM_REPORT_HTML_H
#define LM_REPORT_HTML_H

#include <stdio.h>

/* Reads the ledger from `in` (named `ledger` on the page) and writes the
 * page to out_path ("-": stdout) through a temporary file renamed into
 * place. budget names the budget whose limits are drawn (NULL: the
 * ledger's own when all its lines name one, else LLMMETER_BUDGET's).
 * Returns an enum lm_exit code; prints its one-line errors itself, as the
 * CLI's commands do. */
int lm_report_html(FILE *in, const char *ledger, const char *out_path,
                   const char *budget);

#endif
