/* route.c — where an LLM call goes (see route.h). */
#include "route.h"

#include <string.h>

#include "detect.h"
#include "price.h"
#include "provider_host.h"
#include "str.h"

/* The provider whose API shape this is. */
static const char *api_provider(enum lm_api api) {
  switch (api) {
  case LM_API_ANTHROPIC_MESSAGES:
    return "anthropic";
  case LM_API_GEMINI_GENERATE:
  case LM_API_GEMINI_STREAM:
    return "google";
  case LM_API_COHERE_CHAT:
    return "cohere";
  case LM_API_OLLAMA_CHAT:
  case LM_API_OLLAMA_GENERATE:
    return "ollama";
  default:
    return "openai";
  }
}

/* Copies a provider name a user gave (LLMMETER_ENDPOINTS, the C API) as
 * the price table spells it: its canonical id when the table knows the
 * name ("xai" is "x-ai", "bedrock" is "aws"), else lower-cased as given.
 * The host table and the API's providers are table ids already. */
static void set_provider(char *out, size_t size, const char *name, size_t n) {
  const char *canon = lm_price_provider_canonical(name, n);
  if (canon) {
    name = canon;
    n = strlen(canon);
  }
  if (n >= size)
    n = size - 1;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    out[i] = (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
  }
  out[n] = '\0';
}

static bool is_ollama(enum lm_api api) {
  return api == LM_API_OLLAMA_CHAT || api == LM_API_OLLAMA_GENERATE;
}

/* The provider the host table names for host and path, remembered per
 * thread for the last host: a program calls the same host over and over,
 * and the table is a scan of ~50 rules. Keyed by the host and the path's
 * first segment, the only part of a path a rule reads
 * (router.huggingface.co/groq). */
static const char *host_provider(const char *host, size_t host_len,
                                 const char *path, size_t path_len) {
  static __thread char last_host[64], last_seg[32];
  static __thread size_t last_host_len, last_seg_len;
  static __thread const char *last;
  static __thread bool valid;
  size_t seg = 0;
  if (path_len && path[0] == '/') {
    const char *slash = memchr(path + 1, '/', path_len - 1);
    seg = slash ? (size_t)(slash - path) : path_len;
  }
  bool fits = host_len < sizeof(last_host) && seg < sizeof(last_seg);
  if (fits && valid && host_len == last_host_len && seg == last_seg_len &&
      memcmp(host, last_host, host_len) == 0 &&
      memcmp(path, last_seg, seg) == 0)
    return last;
  const char *p = lm_price_provider_for_host(host, host_len, path, path_len);
  if (fits) {
    memcpy(last_host, host, host_len);
    memcpy(last_seg, path, seg);
    last_host_len = host_len;
    last_seg_len = seg;
    last = p;
    valid = true;
  }
  return p;
}

bool lm_route_url(const char *url, size_t url_len, const char *endpoints,
                  struct lm_route *r) {
  memset(r, 0, sizeof(*r));
  char named[32];
  r->api = lm_detect_route(url, url_len, endpoints, named, sizeof(named));
  if (r->api == LM_API_NONE)
    return false;
  lm_str_copy(r->fallback, sizeof(r->fallback), api_provider(r->api));
  r->ollama_api = is_ollama(r->api);
  const char *host, *path;
  size_t host_len, path_len;
  const char *billed = NULL;
  if (named[0]) {
    set_provider(r->provider, sizeof(r->provider), named, strlen(named));
    r->by = LM_ROUTE_BY_ENDPOINTS;
  } else if (lm_detect_url_host(url, url_len, &host, &host_len, &path,
                                &path_len) &&
             (billed = host_provider(host, host_len, path, path_len)) != NULL) {
    lm_str_copy(r->provider, sizeof(r->provider), billed);
    r->by = LM_ROUTE_BY_HOST;
  } else {
    memcpy(r->provider, r->fallback, sizeof(r->provider));
    r->by = LM_ROUTE_BY_API;
  }
  return true;
}

void lm_route_provider(const char *provider, struct lm_route *r) {
  memset(r, 0, sizeof(*r));
  r->api = LM_API_CUSTOM;
  r->by = LM_ROUTE_BY_CALLER;
  if (provider && *provider) {
    set_provider(r->provider, sizeof(r->provider), provider, strlen(provider));
    memcpy(r->fallback, r->provider, sizeof(r->fallback));
    r->ollama_api = strcmp(r->provider, "ollama") == 0;
  }
}

const char *lm_route_model(const char *url, size_t url_len,
                           const char *body_model, char *out, size_t size) {
  if (body_model && *body_model)
    return body_model;
  if (!size)
    return "";
  if (!url || !lm_detect_model_from_url(url, url_len, out, size))
    out[0] = '\0';
  return out;
}

const char *lm_route_by_name(enum lm_route_by by) {
  switch (by) {
  case LM_ROUTE_BY_HOST:
    return "host";
  case LM_ROUTE_BY_ENDPOINTS:
    return "endpoints";
  case LM_ROUTE_BY_CALLER:
    return "caller";
  default:
    return "api";
  }
}
