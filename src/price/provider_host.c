/* provider_host.c — host name to billing provider (see provider_host.h).
 *
 * A linear scan of ~50 rules: each costs a length compare, and a memcmp
 * or two for the few of the right length, on a lower-cased copy of the
 * host. Cheaper than anything that would need building at load. Runs once
 * per LLM call, never on other traffic.
 */
#include "provider_host.h"

#include <stdbool.h>
#include <string.h>

#define HOST_MAX 255 /* DNS names are at most 253 bytes */

/* The rule's glob matches the lower-case host h[0..len). */
static bool host_matches(const struct lm_price_host *r, const char *h,
                         size_t len) {
  if (r->star == 255)
    return len == r->host_len && memcmp(h, r->host, len) == 0;
  size_t head = r->star, tail = (size_t)r->host_len - head - 1;
  return len > head + tail && memcmp(h, r->host, head) == 0 &&
         memcmp(h + len - tail, r->host + head + 1, tail) == 0;
}

/* path[0..len) is the rule's path prefix, or that and then '/' and more. */
static bool path_matches(const struct lm_price_host *r, const char *path,
                         size_t len) {
  size_t n = r->path_len;
  if (!n)
    return true;
  if (!path || len < n || memcmp(path, r->path, n) != 0)
    return false;
  return len == n || path[n] == '/' || path[n] == '?';
}

/* Lower-cases host into h (HOST_MAX bytes) without a trailing '.';
 * returns its length, 0 if it is empty or too long for a DNS name. */
static size_t host_lower(const char *host, size_t host_len, char *h) {
  if (!host || !host_len)
    return 0;
  if (host[host_len - 1] == '.') /* "api.groq.com." is the same host */
    host_len--;
  if (!host_len || host_len > HOST_MAX)
    return 0;
  for (size_t i = 0; i < host_len; i++) {
    char c = host[i];
    h[i] = (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
  }
  return host_len;
}

/* LLM API hosts that the feed names only inside a broader glob, and the
 * feed's globs that name nothing but LLM APIs: a name seen before any URL
 * (a resolution, an SNI) is an LLM host by these too. Kept by hand, and
 * only for namespaces with no other service in them: Gemini's and Vertex
 * AI's hosts but not the rest of *.googleapis.com (storage, maps...);
 * Azure OpenAI's resources but not *.azure-api.net (any API behind Azure
 * API Management) or *.cognitiveservices.azure.com (speech, vision);
 * Bedrock's inference endpoints but not its control plane; not
 * *.modal.run (any app on Modal). */
#define LLM_NAME(host, star, provider) \
  { host, "", provider, sizeof(host) - 1, star, 0 }
static const struct lm_price_host llm_names[] = {
    LLM_NAME("generativelanguage.googleapis.com", 255, "google"),
    LLM_NAME("aiplatform.googleapis.com", 255, "google"),
    LLM_NAME("*-aiplatform.googleapis.com", 0, "google"),
    LLM_NAME("*.openai.azure.com", 0, "azure"),
    LLM_NAME("bedrock-runtime.*.amazonaws.com", 16, "aws"),
    LLM_NAME("api.moonshot.*", 13, "moonshotai"),
};

bool lm_price_host_named(const char *host, size_t host_len) {
  char h[HOST_MAX];
  size_t n = host_lower(host, host_len, h);
  if (!n)
    return false;
  for (size_t i = 0; i < lm_price_host_count; i++) {
    const struct lm_price_host *r = &lm_price_hosts[i];
    if (r->star == 255 && n == r->host_len && memcmp(h, r->host, n) == 0)
      return true;
  }
  for (size_t i = 0; i < sizeof(llm_names) / sizeof(llm_names[0]); i++)
    if (host_matches(&llm_names[i], h, n))
      return true;
  return false;
}

const char *lm_price_provider_for_host(const char *host, size_t host_len,
                                       const char *path, size_t path_len) {
  char h[HOST_MAX];
  host_len = host_lower(host, host_len, h);
  if (!host_len)
    return NULL;
  for (size_t i = 0; i < lm_price_host_count; i++) {
    const struct lm_price_host *r = &lm_price_hosts[i];
    if (host_matches(r, h, host_len) && path_matches(r, path, path_len))
      return r->provider;
  }
  return NULL;
}
