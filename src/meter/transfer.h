/* transfer.h — one metered LLM call, from request to settlement.
 *
 * The whole path after a transport hook: request metadata and body in,
 * response headers and body bytes in, admission / charging / settlement
 * out. Knows nothing of libcurl (or any transport), so a hook on another
 * transport (libssl, for Python's httpx) reuses it whole:
 *
 *   begin  → detect model, estimate cost (reqscan + price), admit
 *   header → status line and Content-Type (one header line at a time)
 *   body   → framer → extractor → usage → price → charge the delta
 *   end    → settle with the exact usage, or release on failure
 *
 * Never prints: denials and errors come back as one-line texts for the
 * hook layer to show. Bounded memory: a transfer is one fixed-size struct.
 */
#ifndef LM_TRANSFER_H
#define LM_TRANSFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "budget.h"
#include "extract.h"
#include "price.h"
#include "reqscan.h"

struct lm_transfer_req {
  const char *url;
  size_t url_len;
  const char *body;      /* NULL if unknown (sent by a read callback) */
  size_t body_len;
  const char *downgraded_from; /* the model the program asked for, when
                                  --downgrade rewrote it (else NULL) */
};

enum lm_transfer_state {
  LM_XFER_IDLE = 0,
  LM_XFER_ADMITTED,  /* lease held, request may leave */
  LM_XFER_DENIED,    /* refused before leaving */
  LM_XFER_UNMETERED_OPEN, /* budget unusable, failing open: not metered */
  LM_XFER_DONE,
};

struct lm_transfer {
  enum lm_transfer_state state;
  enum lm_api api;
  struct lm_request_info req;
  char model[128];              /* requested (body or URL) */
  struct lm_price_match price;  /* price of the requested model */
  bool unpriced;                /* no price known: charged at a fallback */
  bool warn_unpriced;           /* first sight of this unpriced model here */
  bool zero_priced;             /* a local model: dollar limits exempt */
  int64_t est_pusd;
  struct lm_usage est;
  struct lm_lease lease;
  struct lm_call call;          /* what admission was told (caps, wait) */
  /* response */
  int http_status;
  struct lm_extract x;
  uint32_t seen_generation;
  struct lm_usage charged;      /* what has been charged so far */
  int64_t charged_pusd;
  bool cut;                     /* we stopped the stream at the limit */
  char reason[256];             /* denial or error text */
  int64_t started_ms;           /* monotonic, for the ledger's duration */
  int64_t started_ns;           /* monotonic, for --max-llm-seconds */
  char downgraded_from[128];
  bool soft_crossed;            /* this call crossed the soft limit */
};

/* Begins a call: returns 0 (admitted: send it), 1 (denied: reason filled,
 * do not send), or -1 (budget unusable: reason filled; the caller applies
 * LLMMETER_ON_ERROR; state is LM_XFER_UNMETERED_OPEN). */
int lm_transfer_begin(struct lm_transfer *t, enum lm_api api,
                      const struct lm_transfer_req *req);
/* One response header line (status lines reset the response state). */
void lm_transfer_header(struct lm_transfer *t, const char *line, size_t len);
/* Response body bytes the program has accepted. Returns true when the
 * stream must be cut (the running total crossed a hard limit). */
bool lm_transfer_body(struct lm_transfer *t, const char *p, size_t n);
/* Ends the call. transport_ok: the transfer completed (no transport
 * error). Settles with exact usage, charges the estimate for an unreadable
 * 2xx response (unmetered), releases failures that carried no usage. */
void lm_transfer_end(struct lm_transfer *t, bool transport_ok);

/* Above the soft limit, with --downgrade configured: a copy of the request
 * body with its model rewritten (caller frees), and the original model in
 * `from`. NULL when no rule applies. */
char *lm_transfer_plan_downgrade(enum lm_api api, const char *body,
                                 size_t len, size_t *out_len, char *from,
                                 size_t fromlen);

/* The budget name and hard limit for messages (after begin). */
const char *lm_transfer_budget_name(void);

#endif
