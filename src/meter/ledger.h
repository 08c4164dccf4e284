/* ledger.h — one JSON line per metered call, appended to LLMMETER_LEDGER.
 *
 * Where the money went, call by call: time, pid, budget, agent, API (the
 * request's shape, "api") and provider (who bills it, "provider"), model,
 * normalised tokens (with the parts beyond text and the web searches the
 * call had), exact cost, HTTP status, duration, outcome and the denial
 * reason. Never a request or response body, never a header: no API
 * key can reach it. Each line is one write(2) on an O_APPEND descriptor, so
 * lines from many processes never interleave. Never prints; a ledger that
 * cannot be opened is reported once through lm_ledger_error().
 */
#ifndef LM_LEDGER_H
#define LM_LEDGER_H

#include <stdbool.h>
#include <stdint.h>

#include "usage.h"

struct lm_ledger_rec {
  const char *budget, *agent, *model, *reported_model;
  const char *api;      /* the API's shape: "openai-chat", "c_api" */
  const char *provider; /* who bills the call ("groq"); NULL or "": unknown */
  const char *outcome;  /* ok, unmetered, cut, denied, failed */
  const char *reason;   /* denial or cut reason, or NULL */
  const struct lm_usage *usage;
  int64_t cost_pusd;
  int http_status;
  int64_t duration_ms;
  bool unpriced;
  const char *downgraded_from; /* reserved for model downgrades, or NULL */
};

/* Appends one line if LLMMETER_LEDGER is set. Thread-safe. */
void lm_ledger_write(const struct lm_ledger_rec *r);
/* Why the ledger could not be written (once), or NULL. */
const char *lm_ledger_error(void);

#endif
