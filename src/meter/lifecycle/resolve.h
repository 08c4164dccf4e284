/* resolve.h — what a resolver hook may know of the meter: the leak guard.
 *
 * A program whose TLS llmmeter cannot see (OpenSSL linked in statically,
 * as in the nodesource node; Bun; Rust with rustls; Go with the cgo
 * resolver) sends its LLM calls past the meter. What llmmeter can still
 * see is the name it resolves. A resolver hook asks two questions here
 * (and a TLS transport a third, lm_meter_unseen, below):
 *
 *   lm_meter_llm_host   is this name a known LLM API host? (cheap; also
 *                       asked by the OpenSSL transport for every new
 *                       connection, to strip h2 from its ALPN offer)
 *   lm_meter_resolve    the process resolves an LLM host; may it?
 *                       PASS  resolve it, say nothing
 *                       WARN  resolve it (a warning has been said once)
 *                       DENY  refuse the resolution (EAI_FAIL)
 *
 * The policy (LLMMETER_UNMETERED, the budget's hard limit, fail-closed),
 * the one line the user sees and the counts in the budget are decided
 * below this header (src/meter/unmetered.c); the hook only applies the
 * verdict. Self-contained on purpose, as lifecycle.h is: a transport
 * compiled against it reaches nothing else of the meter. Both functions
 * are thread-safe and never allocate per call.
 */
#ifndef LM_RESOLVE_H
#define LM_RESOLVE_H

#include <stdbool.h>

enum lm_resolve_verdict {
  LM_RESOLVE_PASS = 0, /* resolve it: visible, allowed, or not metering */
  LM_RESOLVE_WARN,     /* resolve it; the process has been warned */
  LM_RESOLVE_DENY,     /* refuse it: it could spend past a hard limit */
};

/* Whether `name` (a DNS name, NUL-terminated) is a known LLM API host: a
 * host the provider host table names exactly (api.openai.com,
 * api.anthropic.com, ...) or a host an LLMMETER_ENDPOINTS entry names
 * ("*://llm.corp:8000/ *"). ASCII case and a trailing '.' ignored. */
bool lm_meter_llm_host(const char *name);

/* The process resolves `name`, an LLM API host (lm_meter_llm_host said
 * so); visible_tls says whether a TLS library llmmeter meters is loaded
 * into it. Says at most one line per process for each of WARN and DENY,
 * and counts the process in the budget once for each. */
enum lm_resolve_verdict lm_meter_resolve(const char *name, bool visible_tls);

/* A connection to an LLM API host carries traffic its transport cannot
 * follow (HTTP/2, a WebSocket or other upgrade, bytes that are not
 * HTTP/1.1): may it go on unmetered? The same policy, line discipline and
 * counts as lm_meter_resolve; `what` names the traffic for the line ("a
 * WebSocket"). PASS or WARN: let it through; DENY: fail the connection. */
enum lm_resolve_verdict lm_meter_unseen(const char *host, const char *what);

#endif
