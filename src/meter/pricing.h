/* pricing.h — the meter's price policy for one call: the price a model is
 * charged at, whether or not the table knows it.
 *
 * One policy for every caller: the call lifecycle (call.c) and `llmmeter
 * prices` price a routed call (route.h) with lm_pricing_resolve_route; the
 * C API, which names a provider as a string, with lm_pricing_resolve.
 *
 * The policy: the table's price (price.h: the user's exact LLMMETER_PRICES
 * key first, whatever characters it has; then the billing provider's own
 * prices, the API's provider's, first-party ones, any); else
 * LLMMETER_DEFAULT_PRICE; else, unless LLMMETER_UNPRICED=free, the
 * provider's highest input and output prices (the billing provider's when
 * the table knows it, else the API's; $15/$75 per million tokens for an
 * unknown provider), so an unknown model is never free by accident. An
 * Ollama API call is looked up the same way among the user's prices and
 * its provider's own (never another provider's by a similar name) and
 * costs $0 when none is known: a local model. Never prints, never
 * allocates; LLMMETER_UNPRICED=deny is the caller's to apply (it refuses a
 * call, it does not price one).
 */
#ifndef LM_PRICING_H
#define LM_PRICING_H

#include <stdbool.h>

#include "price.h"
#include "route.h"

struct lm_call_price {
  struct lm_price_match match; /* .price is what the call is charged at */
  bool unpriced;    /* no table price: charged at a fallback (flagged) */
  bool zero_priced; /* $0 by its price: dollar limits do not apply */
  bool local;       /* $0 because no price is known for an Ollama call */
};

/* Resolves the price of `model` for a call routed as r. */
void lm_pricing_resolve_route(const char *model, const struct lm_route *r,
                              struct lm_call_price *out);

/* Resolves the price of `model` at `provider` ("openai", "anthropic",
 * "ollama", "groq", ...; NULL: no hint, and the unknown-provider fallback):
 * lm_pricing_resolve_route on lm_route_provider(provider). */
void lm_pricing_resolve(const char *model, const char *provider,
                        struct lm_call_price *out);

#endif
