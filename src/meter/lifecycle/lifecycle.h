/* lifecycle.h — the call lifecycle every transport drives.
 *
 * This is the whole of what a transport (the libcurl hooks, the OpenSSL
 * hooks) may know of the meter. A transport translates its API into these
 * events and applies the verdicts; every decision — is this an LLM call,
 * what does it cost, may it leave, how is a refusal shaped, when is a
 * stream cut, what goes to stderr — is made below this header:
 *
 *   begin    the request as the transport sees it  → verdict
 *              PASS   not ours: leave it untouched
 *              METER  send it (perhaps with a rewritten body) and report
 *                     the response
 *              DENY   never send it; present `response` or fail the call
 *   header   each response header line (status lines included)
 *   body     response body bytes as the program accepted them → go on/cut
 *   filter   (when the verdict says so) body bytes in, program bytes out
 *   end      the transfer finished (ok) or failed
 *
 * The header is self-contained on purpose (no other llmmeter header): a
 * transport compiled against it alone cannot reach policy, parsing,
 * pricing or the budget. Lines meant for the user arrive through the
 * printer a transport installs (the meter decides what and when; the
 * transport only writes). Never blocks longer than LLMMETER_WAIT_S; never
 * allocates per body byte.
 */
#ifndef LM_LIFECYCLE_H
#define LM_LIFECYCLE_H

#include <stdbool.h>
#include <stddef.h>

/* One LLM call in progress; opaque. A transport keeps one per handle or
 * connection and reuses it for the next call (lm_meter_begin). */
struct lm_meter_call;

/* The request as a transport can see it. Give `url` when the transport has
 * one (libcurl); otherwise scheme, host, port and target (path and query:
 * the TLS transport knows the SNI and the request line). */
struct lm_meter_request {
  const char *method; /* "POST", ...; NULL: POST if a body is given */
  const char *url;    /* whole URL, or NULL */
  const char *scheme; /* "https" or "http" (when url is NULL) */
  const char *host;   /* host name (when url is NULL) */
  int port;           /* 0: the scheme's default */
  const char *target; /* path and query (when url is NULL) */
  size_t target_len;
  const char *const *headers; /* "Name: value" lines as sent, may be NULL */
  size_t n_headers;
  const char *body; /* the request body, or NULL if not seen (sent by a
                          read callback, or streamed later) */
  size_t body_len;
  bool has_body; /* a body is sent (even when not seen) */
  /* The caller's thread drives other calls too (an event loop: a libcurl
   * multi handle, a TLS connection over a memory BIO such as asyncio's and
   * Node's): waiting here for a rate turn or for other calls'
   * reservations to settle would hold those calls up, so it is refused at
   * once, with a 429 and Retry-After that the SDK's back-off honours. */
  bool no_wait;
};

enum lm_verdict_kind {
  LM_VERDICT_PASS = 0, /* not an LLM call, or not metered: untouched */
  LM_VERDICT_METER,    /* admitted: send it and report the response */
  LM_VERDICT_DENY,     /* refused: it must never leave the machine */
};

struct lm_verdict {
  enum lm_verdict_kind kind;
  /* METER: the body to send instead of the program's (include_usage
   * injection, --downgrade), or NULL to send the program's own. Owned by
   * the call; valid until its next begin or lm_meter_free. */
  const char *body;
  size_t body_len;
  /* METER: the response goes through lm_meter_filter_* (the program must
   * receive the filtered bytes, not the raw ones). */
  bool filter_response;
  /* DENY: the exact HTTP/1.1 response to present to a program that reads
   * HTTP (status line, headers, blank line, then a JSON body in the
   * provider's own error shape naming the budget and the reason). Owned by
   * the call. head_len is where the body starts. */
  const char *response;
  size_t response_len;
  size_t head_len;
  int status; /* its status code: 402 limit, 429 rate or wait,
                           503 budget unusable */
  /* DENY: whether the user asked for that response (LLMMETER_DENY=http);
   * otherwise a transport that can fail a call fails it with error_code
   * (LLMMETER_DENY_CURLCODE) and `reason`. A transport that can only speak
   * HTTP presents the response either way. */
  bool present;
  int error_code;
  const char *reason; /* one line, no "llmmeter: " prefix */
};

/* Writes one line for the user (no newline at the end). Called by the
 * meter only, never while holding a lock of the meter. */
typedef void (*lm_meter_printer)(const char *line, size_t len);
void lm_meter_set_printer(lm_meter_printer say);
/* A transport's own line for the user ("cannot find the real libcurl"):
 * printed through the printer unless the user asked for quiet. */
void lm_meter_notice(const char *a, const char *b, const char *c);

/* Whether lm_meter_begin would look at this request (an LLM call that is
 * not disabled): what a transport that sees a request's head before its
 * body asks, to hold only the bodies that must be decided on and let every
 * other request stream through. Reads no body; cheap. */
bool lm_meter_wants(const struct lm_meter_request *req);

/* A request the transport's library is about to send on its own (libcurl
 * following a redirect) for a transfer that began as no LLM call: false
 * when it is an LLM call, which cannot be metered now, and the leak
 * guard's policy refuses it (a hard limit that fails closed, or
 * LLMMETER_UNMETERED=deny; one line). True: let it go (warned once when it
 * is an LLM call). */
bool lm_meter_may_follow(const char *method, const char *url);

/* Decides about a request. *slot is the transport's call object for this
 * handle (NULL at first: allocated here, and kept for later calls). A call
 * still running on *slot is left alone (PASS). Fills v. */
enum lm_verdict_kind lm_meter_begin(struct lm_meter_call **slot,
                                    const struct lm_meter_request *req,
                                    struct lm_verdict *v);

/* One response header line as received ("HTTP/1.1 200 OK\r\n",
 * "Content-Type: ...\r\n"); a status line starts a new response (1xx,
 * redirects, auth rounds). */
void lm_meter_header(struct lm_meter_call *c, const char *line, size_t len);

/* Response body bytes the program has accepted (raw: before any filter).
 * Returns true when the call must be cut now: the transport fails the
 * transfer (lm_meter_reason says why) and still calls lm_meter_end. */
bool lm_meter_body(struct lm_meter_call *c, const char *p, size_t n);

/* The response filter (verdict.filter_response): bytes in, the program's
 * bytes out through emit, which returns how many the program took (less:
 * it paused or aborted; *stopped is set and the rest stays held). feed
 * with p NULL offers what is held again. finish flushes at the end. taken
 * is how much of the last feed's input was consumed. */
typedef size_t (*lm_meter_emit_fn)(void *ctx, const char *p, size_t len);
size_t lm_meter_filter_feed(struct lm_meter_call *c, const char *p, size_t n,
                            lm_meter_emit_fn emit, void *ctx, bool *stopped);
size_t lm_meter_filter_finish(struct lm_meter_call *c, lm_meter_emit_fn emit,
                              void *ctx, bool *stopped);
size_t lm_meter_filter_taken(const struct lm_meter_call *c);

/* The transfer is over: transport_ok when it completed without a
 * transport error. Settles, charges or refunds; prints what the user must
 * know (a cut, a crossed soft limit). Safe to call twice. */
void lm_meter_end(struct lm_meter_call *c, bool transport_ok);

/* Whether the call was admitted and has not ended. */
bool lm_meter_running(const struct lm_meter_call *c);
/* The last response status seen (0: none yet). */
int lm_meter_status(const struct lm_meter_call *c);
/* Whether the meter cut this call, and the one-line reason for a cut or a
 * refusal ("" if none). */
bool lm_meter_was_cut(const struct lm_meter_call *c);
const char *lm_meter_reason(const struct lm_meter_call *c);

void lm_meter_free(struct lm_meter_call *c);

#endif
