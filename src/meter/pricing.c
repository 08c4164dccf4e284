/* pricing.c — the meter's price policy for one call (see pricing.h). */
#include "pricing.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "config.h"

/* $15 / $75 per million tokens: above any current flagship. */
#define LM_UNKNOWN_PROVIDER_INPUT 15000000
#define LM_UNKNOWN_PROVIDER_OUTPUT 75000000

/* The price table never changes once loaded, and a process usually asks
 * for the same few models at the same few providers: remember the last
 * answer per thread. */
static bool cached_lookup(const struct lm_price_query *q,
                          struct lm_price_match *m) {
  static __thread char last_model[128], last_prov[32], last_fb[32];
  static __thread unsigned last_flags;
  static __thread struct lm_price_match last;
  static __thread bool last_found, valid;
  const char *prov = q->provider ? q->provider : "";
  const char *fb = q->fallback ? q->fallback : "";
  if (valid && last_flags == q->flags && strcmp(q->model, last_model) == 0 &&
      strcmp(prov, last_prov) == 0 && strcmp(fb, last_fb) == 0) {
    *m = last;
    return last_found;
  }
  bool found = lm_price_lookup_query(q, m);
  size_t ml = strlen(q->model), pl = strlen(prov), fl = strlen(fb);
  if (ml < sizeof(last_model) && pl < sizeof(last_prov) &&
      fl < sizeof(last_fb)) {
    memcpy(last_model, q->model, ml + 1);
    memcpy(last_prov, prov, pl + 1);
    memcpy(last_fb, fb, fl + 1);
    last_flags = q->flags;
    last = *m;
    last_found = found;
    valid = true;
  } else {
    valid = false;
  }
  return found;
}

void lm_pricing_resolve_route(const char *model, const struct lm_route *r,
                              struct lm_call_price *out) {
  memset(out, 0, sizeof(*out));
  struct lm_price_query q = {
      .model = model ? model : "",
      .provider = r->provider[0] ? r->provider : NULL,
      .fallback = r->fallback[0] ? r->fallback : NULL,
      /* An Ollama model is priced only by the user or by the provider
       * that serves it, never as a cloud model of a similar name. */
      .flags = r->ollama_api ? LM_PRICE_Q_OWN_ONLY | LM_PRICE_Q_NO_DEFAULT : 0,
      .unix_time = (int64_t)time(NULL),
  };
  bool found = cached_lookup(&q, &out->match);
  if (found && out->match.source != LM_PRICE_DEFAULT) {
    out->zero_priced = lm_price_is_zero(&out->match.price);
    return;
  }
  if (r->ollama_api) {
    memset(&out->match, 0, sizeof(out->match));
    out->match.price.cache_read = LM_PRICE_UNSET;
    out->match.price.cache_write = LM_PRICE_UNSET;
    out->match.price.cache_write_1h = LM_PRICE_UNSET;
    out->zero_priced = true; /* a local model: no price known, $0 */
    out->local = true;
    return;
  }
  out->unpriced = true;
  if (out->match.source == LM_PRICE_DEFAULT)
    return; /* the user's default price, still flagged as unpriced */
  memset(&out->match, 0, sizeof(out->match));
  if (lm_config_get()->unpriced == LM_UNPRICED_FREE)
    return; /* opted in: $0, flagged */
  struct lm_price *p = &out->match.price;
  const char *max_of = q.provider && lm_price_provider_max(q.provider, p)
                           ? q.provider
                       : q.fallback && lm_price_provider_max(q.fallback, p)
                           ? q.fallback
                           : NULL;
  if (max_of) { /* match.provider says whose highest prices these are */
    snprintf(out->match.provider, sizeof(out->match.provider), "%s", max_of);
  } else {
    p->input = LM_UNKNOWN_PROVIDER_INPUT;
    p->output = LM_UNKNOWN_PROVIDER_OUTPUT;
  }
  p->cache_read = LM_PRICE_UNSET;
  p->cache_write = LM_PRICE_UNSET;
  p->cache_write_1h = LM_PRICE_UNSET;
}

void lm_pricing_resolve(const char *model, const char *provider,
                        struct lm_call_price *out) {
  struct lm_route r;
  lm_route_provider(provider, &r);
  lm_pricing_resolve_route(model, &r, out);
}
