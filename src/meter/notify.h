/* notify.h — runs the user's --on-soft command, detached.
 *
 * The command gets the budget's JSON status on its standard input, runs in
 * its own session with output discarded, and is never waited for by the
 * calling thread: a notification can't block or slow an LLM call, and the
 * host program never sees a child of ours.
 */
#ifndef LM_NOTIFY_H
#define LM_NOTIFY_H

#include <stddef.h>

/* Returns 0 if the command was started. */
int lm_notify_run(const char *cmd, const char *input, size_t len);

struct lm_budget;
/* Starts cmd with budget b's `status --json` document on its stdin (the
 * --on-soft hook). Returns 0 if it was started. */
int lm_notify_on_soft(struct lm_budget *b, const char *cmd);

#endif
