/* provider_host.h — who bills a call, from the host it goes to.
 *
 * The same open model costs differently at Groq, Cerebras, Fireworks,
 * Together or OpenRouter, and all of them speak the OpenAI API: the shape
 * of a request says nothing about who bills it, the host does. The table
 * is generated from the price feed's `api_pattern` of every provider
 * (scripts/gen_prices.py, src/price/provider_host_table.c): api.groq.com is
 * "groq", *.openai.azure.com "azure", *.googleapis.com (Gemini and Vertex)
 * "google", bedrock-runtime.*.amazonaws.com "aws", ... The provider ids are
 * the price table's, so a lookup hinted with one searches that provider's
 * own prices first.
 *
 * Never allocates, never prints; const data only (no relocations at load).
 */
#ifndef LM_PROVIDER_HOST_H
#define LM_PROVIDER_HOST_H

#include <stdbool.h>
#include <stddef.h>

/* One rule: a lower-case host glob with at most one '*' (one or more
 * characters of a host name: "*.openai.azure.com", "api.moonshot.*",
 * "bedrock-runtime.*.amazonaws.com") and, when the provider lives under a
 * path of a shared host (router.huggingface.co/groq), that path prefix. */
struct lm_price_host {
  char host[48];
  char path[24];     /* "" or "/groq": matches "/groq" and "/groq/..." */
  char provider[32]; /* the price feed's provider id */
  unsigned char host_len;
  unsigned char star; /* offset of the '*' in host, 255: none */
  unsigned char path_len;
};

/* The generated rules, in match order (the first match wins). */
extern const struct lm_price_host lm_price_hosts[];
extern const size_t lm_price_host_count;

/* The provider that bills calls to host[0..host_len) (a host name without
 * port or user info; ASCII case and one trailing '.' ignored), whose URL
 * path is path[0..path_len) (may be NULL). NULL when no rule matches: an
 * unknown host (a local server, a gateway), for which the API decides. */
const char *lm_price_provider_for_host(const char *host, size_t host_len,
                                       const char *path, size_t path_len);

/* Whether host[0..host_len) is a known LLM API host (ASCII case and one
 * trailing '.' ignored), for the leak guard and the TLS transport, which
 * see a name before any URL: named exactly by a rule (no '*' in it), or by
 * the short hand-kept list of LLM-only names in provider_host.c (Gemini,
 * Vertex AI, Azure OpenAI, Bedrock runtime, Moonshot). The feed's other
 * glob rules are left out on purpose: "*.googleapis.com" also names
 * storage and every other Google API, which are not LLM calls. */
bool lm_price_host_named(const char *host, size_t host_len);

#endif
