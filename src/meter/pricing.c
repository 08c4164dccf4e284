/* pricing.c — the meter's price policy for one call (see pricing.h). */
#include "pricing.h"

#include <string.h>

#include "config.h"

/* $15 / $75 per million tokens: above any current flagship. */
#define LM_UNKNOWN_PROVIDER_INPUT 15000000
#define LM_UNKNOWN_PROVIDER_OUTPUT 75000000

/* The price table never changes once loaded, and a process usually asks
 * for the same few models: remember the last answer per thread. */
static bool cached_lookup(const char *model, const char *prov,
                          struct lm_price_match *m) {
  static __thread char last_model[128], last_prov[32];
  static __thread struct lm_price_match last;
  static __thread bool last_found, valid;
  if (valid && strcmp(model, last_model) == 0 && strcmp(prov, last_prov) == 0) {
    *m = last;
    return last_found;
  }
  bool found = lm_price_lookup(model, prov, m);
  size_t ml = strlen(model), pl = strlen(prov);
  if (ml < sizeof(last_model) && pl < sizeof(last_prov)) {
    memcpy(last_model, model, ml + 1);
    memcpy(last_prov, prov, pl + 1);
    last = *m;
    last_found = found;
    valid = true;
  }
  return found;
}

void lm_pricing_resolve(const char *model, const char *provider,
                        struct lm_call_price *out) {
  memset(out, 0, sizeof(*out));
  if (provider && strcmp(provider, "ollama") == 0) {
    out->zero_priced = true; /* a local model */
    return;
  }
  bool found = provider
                   ? cached_lookup(model ? model : "", provider, &out->match)
                   : lm_price_lookup(model ? model : "", NULL, &out->match);
  if (found && out->match.source != LM_PRICE_DEFAULT) {
    out->zero_priced = lm_price_is_zero(&out->match.price);
    return;
  }
  out->unpriced = true;
  if (out->match.source == LM_PRICE_DEFAULT)
    return; /* the user's default price, still flagged as unpriced */
  memset(&out->match, 0, sizeof(out->match));
  if (lm_config_get()->unpriced == LM_UNPRICED_FREE)
    return; /* opted in: $0, flagged */
  struct lm_price *p = &out->match.price;
  if (!provider || !lm_price_provider_max(provider, p)) {
    p->input = LM_UNKNOWN_PROVIDER_INPUT;
    p->output = LM_UNKNOWN_PROVIDER_OUTPUT;
  }
  p->cache_read = LM_PRICE_UNSET;
  p->cache_write = LM_PRICE_UNSET;
  p->cache_write_1h = LM_PRICE_UNSET;
}
