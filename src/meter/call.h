/* call.h — one metered LLM call, inside the meter (see lifecycle.h).
 *
 * The state behind struct lm_meter_call: what the request asked for, what
 * was admitted, what the response has carried and what has been charged.
 * Transports never see this; unit tests and the meter's own modules do.
 * Bounded memory: one fixed-size struct (plus the response filter of an
 * injected stream and a rewritten request body, allocated once a call).
 */
#ifndef LM_CALL_H
#define LM_CALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "budget.h"
#include "extract.h"
#include "inject.h"
#include "lifecycle.h"
#include "price.h"
#include "reqscan.h"
#include "route.h"

enum lm_call_state {
  LM_CALL_IDLE = 0,
  LM_CALL_ADMITTED, /* lease held, request may leave */
  LM_CALL_DENIED,   /* refused before leaving */
  LM_CALL_DONE,
};

struct lm_meter_call {
  enum lm_call_state state;
  enum lm_api api;
  struct lm_route
      route; /* API, who bills it (ledger, status rows), URL model */
  struct lm_request_info req;
  char model[128];             /* requested (body or URL), after downgrade */
  struct lm_price_match price; /* price of the requested model */
  bool unpriced;               /* no price known: charged at a fallback */
  bool zero_priced;            /* a local model: dollar limits exempt */
  int64_t est_pusd;
  struct lm_usage est;
  struct lm_lease lease;
  struct lm_call call; /* what admission was told (caps, wait) */
  /* response */
  int http_status;
  struct lm_extract x;
  uint32_t seen_generation;
  struct lm_usage charged; /* what has been charged so far */
  int64_t charged_pusd;
  bool cut;                  /* we stopped the stream at a limit */
  bool no_wait;              /* lm_meter_request's: refused, never waits */
  char reason[256];          /* denial, cut or error text */
  int64_t started_ms;        /* monotonic, for the ledger's duration */
  int64_t started_ns;        /* monotonic, for --max-llm-seconds */
  char downgraded_from[128]; /* the model the program asked for */
  /* what the transport sends or presents instead of the program's bytes */
  char *send_body; /* rewritten request body (malloc'd) */
  size_t send_len;
  struct lm_inject_filter *filter; /* allocated by the first injected call */
  bool filtering;
  char response[1280]; /* a refusal as HTTP bytes */
};

/* Counts lm_reqscan runs of this thread's begins (tests: the body is
 * scanned once per call). */
uint64_t lm_meter_scan_count(void);

/* Ledger line for a call, and the process's budget name (for messages). */
void lm_meter_record(struct lm_meter_call *t, const char *outcome);
const char *lm_meter_budget_name(void);
/* The process's budget, opened (or created) on first use as for an LLM
 * call; NULL when it cannot be used, with *err (if given) the one-line
 * reason. Thread-safe. */
struct lm_budget *lm_meter_budget(const char **err);
/* Says once per process which settings were malformed and ignored. */
void lm_meter_say_settings(void);

/* Writes a line through the transport's printer (unless LLMMETER_QUIET);
 * the pieces are concatenated, NULLs skipped. */
void lm_meter_say(const char *a, const char *b, const char *c);

#endif
