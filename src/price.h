/* price.h — what a model's tokens cost, exactly, in pico-USD.
 *
 * Prices are integers of pico-USD per token (= micro-USD per million
 * tokens), so a cost is an exact integer sum. The embedded table is
 * generated from the public genai-prices feed (scripts/gen_prices.py,
 * data/prices.json) and compiled in: nothing is parsed at library load. An
 * override file in LiteLLM's format (LLMMETER_PRICES) is read on the first
 * lookup only.
 */
#ifndef LM_PRICE_H
#define LM_PRICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "usage.h"

#define LM_PRICE_UNSET INT64_MIN /* "no separate price": bill at input */

struct lm_price_tier {
  uint64_t above_input_tokens; /* 0 = no tier */
  int64_t input, output, cache_read, cache_write, cache_write_1h;
};

struct lm_price {
  int64_t input;          /* pUSD per uncached input token */
  int64_t output;         /* pUSD per output token (reasoning included) */
  int64_t cache_read;     /* LM_PRICE_UNSET: billed at input */
  int64_t cache_write;    /* 5-minute (or only) cache write price */
  int64_t cache_write_1h; /* LM_PRICE_UNSET: billed at cache_write */
  struct lm_price_tier tier; /* a cliff: all tokens at the tier price */
};

/* Cost of usage u at price p, in pico-USD; saturates, never wraps. */
int64_t lm_price_cost(const struct lm_price *p, const struct lm_usage *u);

enum lm_price_source {
  LM_PRICE_NONE = 0,     /* unknown model */
  LM_PRICE_EMBEDDED,
  LM_PRICE_OVERRIDE,     /* LLMMETER_PRICES file */
  LM_PRICE_DEFAULT,      /* LLMMETER_DEFAULT_PRICE */
};

struct lm_price_match {
  enum lm_price_source source;
  char matched[96];      /* the table key that matched */
  struct lm_price price;
};

/* Looks a model up: exact, then without a provider prefix or date suffix,
 * then the longest prefix. provider_hint (e.g. "anthropic") may be NULL.
 * Returns true if found; otherwise m->source is LM_PRICE_NONE. */
bool lm_price_lookup(const char *model, const char *provider_hint,
                     struct lm_price_match *m);

#endif
