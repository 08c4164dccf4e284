/* cli.h — shared pieces of the llmmeter command-line tool.
 *
 * The CLI talks to budgets only through budget.h; it never touches the
 * hooks. Exit codes are documented in `llmmeter --help` and README.md.
 */
#ifndef LM_CLI_H
#define LM_CLI_H

#include <stdio.h>

#include "budget.h"
#include "status.h"

enum lm_exit {
  LM_EXIT_OK = 0,
  LM_EXIT_ERROR = 1,        /* the budget is missing, corrupt, not ours... */
  LM_EXIT_USAGE = 2,        /* bad flags or values */
  LM_EXIT_OVER = 3,         /* status --check: the hard limit is reached */
  LM_EXIT_RUN_FAILED = 125, /* run: llmmeter itself failed */
  LM_EXIT_NOT_FOUND = 127,  /* run: the command was not found */
};

/* `llmmeter report` (cli_report.c). */
int lm_cli_report(int argc, char **argv);

#endif
