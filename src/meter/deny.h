/* deny.h — how a refused call looks to the program.
 *
 * Builds the exact HTTP/1.1 response a refusal presents: the status that
 * tells an SDK what to do (402 for a spent budget, 429 with Retry-After for
 * a rate or a wait that a later retry can pass, 503 when the budget cannot
 * be used and the call fails closed), headers that stop the SDKs' automatic
 * retries where a retry cannot succeed (`x-should-retry: false`), and a
 * JSON body in the provider's own error shape whose message names the
 * budget and the reason. Pure: no state, no printing, no allocation.
 */
#ifndef LM_DENY_H
#define LM_DENY_H

#include <stddef.h>
#include <stdint.h>

#include "budget.h"
#include "usage.h"

/* The status for a denial (NULL: the budget could not be used). */
int lm_deny_status(const struct lm_denial *why);

/* Writes the response for api with `status` and the one-line reason into
 * out (size >= 1024 recommended; the reason is cut to fit). retry_after_s
 * < 0 leaves Retry-After out. Returns the length and sets *head_len to
 * where the body starts. */
size_t lm_deny_response(enum lm_api api, int status, int64_t retry_after_s,
                        const char *reason, char *out, size_t size,
                        size_t *head_len);

#endif
