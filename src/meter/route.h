/* route.h — where an LLM call goes: its API, who bills it, the model its
 * URL names.
 *
 * One decision, for the library and the CLI alike: the call lifecycle
 * (call.c) routes every request URL through lm_route_url and
 * lm_route_model, and `llmmeter prices --url` routes the URL it is given
 * through the same functions and prices it through the same policy
 * (pricing.h), so the CLI answers what a call to that URL is charged.
 *
 * Who bills a call, in order:
 *   1. the LLMMETER_ENDPOINTS entry that matches the URL, when it names a
 *      provider ("*://localhost:4000/ *=@groq": a LiteLLM proxy, a gateway);
 *   2. the host the call goes to (src/price/provider_host.h, generated from
 *      the price feed: api.groq.com is groq, *.openai.azure.com azure);
 *   3. else the API's own provider: "openai" for every OpenAI-compatible
 *      API, "anthropic", "google" (Gemini), "cohere", "ollama".
 * The API's provider stays the fallback of the price lookup: a provider's
 * own prices first, the API's second (pricing.h).
 *
 * Never allocates, never prints, reads no environment (the caller passes
 * LLMMETER_ENDPOINTS).
 */
#ifndef LM_ROUTE_H
#define LM_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "usage.h"

enum lm_route_by {
  LM_ROUTE_BY_API = 0,   /* an unknown host: the API's own provider */
  LM_ROUTE_BY_HOST,      /* the host table */
  LM_ROUTE_BY_ENDPOINTS, /* an LLMMETER_ENDPOINTS entry's "@provider" */
  LM_ROUTE_BY_CALLER,    /* named by the caller (C API, prices --provider) */
};

struct lm_route {
  enum lm_api api; /* LM_API_CUSTOM for a caller's route */
  enum lm_route_by by;
  /* Who bills the call: the price table's id ("groq", "x-ai", "aws") when
   * it knows the name; "" only when a caller names none. */
  char provider[32];
  /* The API's own provider ("openai" at groq): the lookup's fallback. */
  char fallback[32];
  /* An Ollama API (or a caller's "ollama"): a model without a known price
   * costs $0. */
  bool ollama_api;
};

/* Routes a request URL. False, with r->api LM_API_NONE, when it is not an
 * LLM call (no built-in rule or LLMMETER_ENDPOINTS entry makes it one). */
bool lm_route_url(const char *url, size_t url_len, const char *endpoints,
                  struct lm_route *r);

/* A route whose provider the caller names ("groq"; NULL or "": none), for
 * calls no URL describes (the C API) and `llmmeter prices --provider`. */
void lm_route_provider(const char *provider, struct lm_route *r);

/* The model a call is priced as: the one its body names, else the one its
 * URL names (Gemini and Vertex /models/NAME:verb, Azure deployments),
 * copied into out; "" if neither. Only a body without a model costs a look
 * at the URL. */
const char *lm_route_model(const char *url, size_t url_len,
                           const char *body_model, char *out, size_t size);

/* "api", "host", "endpoints" or "caller". */
const char *lm_route_by_name(enum lm_route_by by);

#endif
