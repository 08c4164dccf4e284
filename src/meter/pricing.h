/* pricing.h — the meter's price policy for one call: the price a model is
 * charged at, whether or not the table knows it.
 *
 * The policy (transfer.c's resolve_price, for a caller that names the
 * provider as a string rather than an API): the table's price (embedded or
 * LLMMETER_PRICES); else LLMMETER_DEFAULT_PRICE; else, unless
 * LLMMETER_UNPRICED=free, the provider's highest input and output prices
 * ($15/$75 per million tokens for an unknown provider), so an unknown model
 * is never free by accident. Local Ollama models cost nothing. Never
 * prints, never allocates; LLMMETER_UNPRICED=deny is the caller's to apply
 * (it refuses a call, it does not price one).
 */
#ifndef LM_PRICING_H
#define LM_PRICING_H

#include <stdbool.h>

#include "price.h"

struct lm_call_price {
  struct lm_price_match match; /* .price is what the call is charged at */
  bool unpriced;    /* no table price: charged at a fallback (flagged) */
  bool zero_priced; /* $0 by its price: dollar limits do not apply */
};

/* Resolves the price of `model` at `provider` ("openai", "anthropic",
 * "ollama", ...; NULL: no hint, and the unknown-provider fallback). */
void lm_pricing_resolve(const char *model, const char *provider,
                        struct lm_call_price *out);

#endif
