/* detect.c — LLM endpoint detection by URL path (see detect.h).
 *
 * The URL is never copied for the built-in rules: the path is located in
 * place and compared by suffix, so the common case (not an LLM call) costs
 * a handful of memcmp calls. Only user patterns need NUL-terminated copies
 * for fnmatch(3), and those live on the stack with fixed limits.
 */
#include "detect.h"

#include <fnmatch.h>
#include <string.h>

#define PATTERN_MAX 256
#define PATH_MAX_MATCH 2048

static const struct {
  const char *name;
  enum lm_api api;
} api_names[] = {
    {"openai-chat", LM_API_OPENAI_CHAT},
    {"openai-completions", LM_API_OPENAI_COMPLETIONS},
    {"openai-responses", LM_API_OPENAI_RESPONSES},
    {"openai-embeddings", LM_API_OPENAI_EMBEDDINGS},
    {"anthropic-messages", LM_API_ANTHROPIC_MESSAGES},
    {"anthropic", LM_API_ANTHROPIC_MESSAGES},
    {"gemini-generate", LM_API_GEMINI_GENERATE},
    {"gemini-stream", LM_API_GEMINI_STREAM},
    {"ollama-chat", LM_API_OLLAMA_CHAT},
    {"ollama-generate", LM_API_OLLAMA_GENERATE},
    {"cohere-chat", LM_API_COHERE_CHAT},
    {"custom", LM_API_CUSTOM},
    {"none", LM_API_NONE},
};

const char *lm_api_name(enum lm_api api) {
  for (size_t i = 0; i < sizeof api_names / sizeof api_names[0]; i++)
    if (api_names[i].api == api)
      return api_names[i].name;
  return "none";
}

/* Length of url up to url_len or its first NUL. */
static size_t bounded_len(const char *url, size_t url_len) {
  const char *z = memchr(url, '\0', url_len);
  return z ? (size_t)(z - url) : url_len;
}

/* Length of the URL without query/fragment, and where its path starts. */
static void split_url(const char *url, size_t len, size_t *path_start,
                      size_t *path_end) {
  /* The first '?' or '#' ends the path (memchr: this runs on every
   * transfer, and a URL may be long). */
  size_t end = len;
  const char *q = memchr(url, '?', len);
  if (q)
    end = (size_t)(q - url);
  const char *h = memchr(url, '#', end);
  if (h)
    end = (size_t)(h - url);
  size_t start = 0;
  /* scheme "://" within the first few bytes means an authority follows */
  for (size_t i = 0; i + 2 < end && i < 16; i++) {
    if (url[i] == ':' && url[i + 1] == '/' && url[i + 2] == '/') {
      const char *slash = memchr(url + i + 3, '/', end - (i + 3));
      start = slash ? (size_t)(slash - url) : end;
      break;
    }
    char c = url[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'))
      break;
  }
  while (end > start + 1 && url[end - 1] == '/') /* trailing slashes */
    end--;
  *path_start = start;
  *path_end = end;
}

static bool ends_with(const char *p, size_t n, const char *suffix) {
  size_t s = strlen(suffix);
  return n >= s && memcmp(p + n - s, suffix, s) == 0;
}

/* The last path segment split at ':' (or "%3A"): name and verb. */
static bool model_verb(const char *p, size_t n, const char **name,
                       size_t *name_len, const char **verb, size_t *verb_len,
                       const char **prev, size_t *prev_len) {
  size_t seg = n;
  while (seg > 0 && p[seg - 1] != '/')
    seg--;
  if (seg == 0)
    return false;
  const char *last = p + seg;
  size_t last_len = n - seg;
  size_t colon = 0, skip = 0;
  for (size_t i = 0; i < last_len; i++) {
    if (last[i] == ':') {
      colon = i;
      skip = 1;
      break;
    }
    if (last[i] == '%' && i + 2 < last_len && last[i + 1] == '3' &&
        (last[i + 2] == 'A' || last[i + 2] == 'a')) {
      colon = i;
      skip = 3;
      break;
    }
  }
  if (!skip || colon == 0)
    return false;
  size_t pe = seg - 1, ps = pe;
  while (ps > 0 && p[ps - 1] != '/')
    ps--;
  *name = last;
  *name_len = colon;
  *verb = last + colon + skip;
  *verb_len = last_len - colon - skip;
  *prev = p + ps;
  *prev_len = pe - ps;
  return true;
}

static bool span_is(const char *p, size_t n, const char *lit) {
  return strlen(lit) == n && memcmp(p, lit, n) == 0;
}

static bool contains(const char *p, size_t n, const char *needle) {
  size_t m = strlen(needle);
  for (size_t i = 0; i + m <= n; i++)
    if (memcmp(p + i, needle, m) == 0)
      return true;
  return false;
}

static enum lm_api builtin(const char *p, size_t n) {
  if (ends_with(p, n, "/chat/completions"))
    return LM_API_OPENAI_CHAT;
  if (ends_with(p, n, "/v1/completions") ||
      (ends_with(p, n, "/completions") &&
       contains(p, n, "/openai/deployments/")))
    return LM_API_OPENAI_COMPLETIONS;
  if (ends_with(p, n, "/v1/responses") || ends_with(p, n, "/openai/responses"))
    return LM_API_OPENAI_RESPONSES;
  if (ends_with(p, n, "/embeddings") && !ends_with(p, n, "/api/embeddings"))
    return LM_API_OPENAI_EMBEDDINGS;
  if (ends_with(p, n, "/v1/messages"))
    return LM_API_ANTHROPIC_MESSAGES;
  if (ends_with(p, n, "/api/chat"))
    return LM_API_OLLAMA_CHAT;
  if (ends_with(p, n, "/api/generate"))
    return LM_API_OLLAMA_GENERATE;
  if (ends_with(p, n, "/v2/chat"))
    return LM_API_COHERE_CHAT;
  const char *name, *verb, *prev;
  size_t name_len, verb_len, prev_len;
  if (model_verb(p, n, &name, &name_len, &verb, &verb_len, &prev, &prev_len) &&
      (span_is(prev, prev_len, "models") ||
       span_is(prev, prev_len, "tunedModels"))) {
    if (span_is(verb, verb_len, "generateContent"))
      return LM_API_GEMINI_GENERATE;
    if (span_is(verb, verb_len, "streamGenerateContent"))
      return LM_API_GEMINI_STREAM;
    if ((span_is(verb, verb_len, "rawPredict") ||
         span_is(verb, verb_len, "streamRawPredict")) &&
        contains(p, n, "/publishers/anthropic/"))
      return LM_API_ANTHROPIC_MESSAGES;
  }
  return LM_API_NONE;
}

static void trim(const char **s, const char **e) {
  while (*s < *e && (**s == ' ' || **s == '\t'))
    (*s)++;
  while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
    (*e)--;
}

#define API_BUILTIN (-2) /* "glob=@provider": the built-in rules decide */
#define PROVIDER_NAME_MAX 31

/* A provider name of an entry: [A-Za-z0-9._-]{1,31}. */
static bool provider_name_ok(const char *s, size_t n) {
  if (n == 0 || n > PROVIDER_NAME_MAX)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
      return false;
  }
  return true;
}

/* One parsed entry: its glob (in the caller's buffer), its api (or
 * API_BUILTIN) and the provider it names (prov_len 0: none). */
struct entry {
  int api;
  bool known; /* the api (and provider) are valid */
  const char *prov;
  size_t prov_len;
};

/* Parses one entry [s, e): glob into buf; false if it has no usable glob. */
static bool parse_entry(const char *s, const char *e, char *buf,
                        struct entry *out) {
  trim(&s, &e);
  const char *eq = e;
  for (const char *q = e; q > s; q--)
    if (q[-1] == '=') {
      eq = q - 1;
      break;
    }
  const char *gs = s, *ge = eq;
  trim(&gs, &ge);
  if (ge == gs || (size_t)(ge - gs) >= PATTERN_MAX)
    return false;
  memcpy(buf, gs, (size_t)(ge - gs));
  buf[ge - gs] = '\0';
  out->api = LM_API_CUSTOM;
  out->known = true;
  out->prov = NULL;
  out->prov_len = 0;
  if (eq < e) {
    const char *as = eq + 1, *ae = e;
    const char *at = memchr(as, '@', (size_t)(ae - as));
    if (at) {
      const char *ps = at + 1, *pe = ae;
      trim(&ps, &pe);
      out->prov = ps;
      out->prov_len = (size_t)(pe - ps);
      ae = at;
    }
    trim(&as, &ae);
    out->known = false;
    if (as == ae && at) {
      out->api = API_BUILTIN; /* "glob=@provider" */
      out->known = true;
    }
    for (size_t i = 0; i < sizeof api_names / sizeof api_names[0]; i++)
      if (span_is(as, (size_t)(ae - as), api_names[i].name)) {
        out->api = api_names[i].api;
        out->known = true;
        break;
      }
    if (at && !provider_name_ok(out->prov, out->prov_len))
      out->known = false;
  }
  return true;
}

/* The first matching user pattern: its api (API_BUILTIN: the built-in
 * rules decide) and provider; -1 if none matches. */
static int user_patterns(const char *patterns, const char *url, size_t ps,
                         size_t pe, char *provider, size_t provider_size) {
  char path[PATH_MAX_MATCH], whole[PATH_MAX_MATCH], glob[PATTERN_MAX];
  if (pe - ps >= sizeof path)
    return -1;
  memcpy(path, url + ps, pe - ps);
  path[pe - ps] = '\0';
  bool have_whole = pe < sizeof whole;
  if (have_whole) {
    memcpy(whole, url, pe);
    whole[pe] = '\0';
  }
  const char *s = patterns;
  while (*s) {
    const char *e = strchr(s, ',');
    if (!e)
      e = s + strlen(s);
    struct entry en;
    if (parse_entry(s, e, glob, &en)) {
      const char *subject = strstr(glob, "://") ? (have_whole ? whole : NULL)
                                                : path;
      if (subject && fnmatch(glob, subject, 0) == 0) {
        if (provider && provider_size && en.prov_len &&
            provider_name_ok(en.prov, en.prov_len) &&
            en.prov_len < provider_size) {
          memcpy(provider, en.prov, en.prov_len);
          provider[en.prov_len] = '\0';
        }
        return en.api;
      }
    }
    s = *e ? e + 1 : e;
  }
  return -1;
}

enum lm_api lm_detect_route(const char *url, size_t url_len,
                            const char *extra_patterns, char *provider,
                            size_t provider_size) {
  if (provider && provider_size)
    provider[0] = '\0';
  if (!url)
    return LM_API_NONE;
  size_t len = bounded_len(url, url_len), ps, pe;
  split_url(url, len, &ps, &pe);
  if (extra_patterns && *extra_patterns) {
    int r = user_patterns(extra_patterns, url, ps, pe, provider, provider_size);
    if (r >= 0)
      return (enum lm_api)r; /* else none matched, or API_BUILTIN */
  }
  return builtin(url + ps, pe - ps);
}

enum lm_api lm_detect_api(const char *url, size_t url_len,
                          const char *extra_patterns) {
  return lm_detect_route(url, url_len, extra_patterns, NULL, 0);
}

bool lm_detect_url_host(const char *url, size_t url_len, const char **host,
                        size_t *host_len, const char **path, size_t *path_len) {
  if (!url)
    return false;
  size_t len = bounded_len(url, url_len), ps, pe;
  split_url(url, len, &ps, &pe);
  /* The authority is what split_url skipped after "://". */
  const char *sep = NULL;
  for (size_t i = 0; i + 2 < ps && i < 16; i++)
    if (url[i] == ':' && url[i + 1] == '/' && url[i + 2] == '/') {
      sep = url + i + 3;
      break;
    }
  if (!sep)
    return false;
  const char *a = sep, *ae = url + ps;
  const char *at = memrchr(a, '@', (size_t)(ae - a)); /* after user info */
  if (at)
    a = at + 1;
  const char *he = ae;
  if (a < ae && *a == '[') { /* [v6 address]:port */
    const char *rb = memchr(a, ']', (size_t)(ae - a));
    if (!rb)
      return false;
    he = rb + 1;
  } else {
    const char *colon = memchr(a, ':', (size_t)(ae - a));
    if (colon)
      he = colon;
  }
  if (he == a)
    return false;
  *host = a;
  *host_len = (size_t)(he - a);
  if (path && path_len) {
    *path = url + ps;
    *path_len = pe - ps;
  }
  return true;
}

size_t lm_detect_model_from_url(const char *url, size_t url_len, char *out,
                                size_t out_size) {
  if (!url || !out || out_size == 0)
    return 0;
  size_t len = bounded_len(url, url_len), ps, pe;
  split_url(url, len, &ps, &pe);
  const char *p = url + ps;
  size_t n = pe - ps;
  const char *name = NULL, *verb, *prev;
  size_t name_len = 0, verb_len, prev_len;
  if (model_verb(p, n, &name, &name_len, &verb, &verb_len, &prev, &prev_len) &&
      (span_is(prev, prev_len, "models") ||
       span_is(prev, prev_len, "tunedModels"))) {
    /* name is set */
  } else {
    static const char dep[] = "/openai/deployments/";
    size_t m = sizeof dep - 1;
    const char *at = memmem(p, n, dep, m);
    name = NULL;
    if (at) {
      name = at + m;
      const char *slash = memchr(name, '/', (size_t)(p + n - name));
      name_len = (size_t)((slash ? slash : p + n) - name);
    }
  }
  if (!name || name_len == 0 || name_len >= out_size)
    return 0;
  memcpy(out, name, name_len);
  out[name_len] = '\0';
  return name_len;
}

/* The host part of a whole-URL glob ("https://llm.corp:8000/v1/..." gives
 * "llm.corp"), into out; false when the glob has no authority, or its host
 * is wildcards alone (it would name every host). */
static bool glob_host(const char *glob, char *out, size_t size) {
  const char *a = strstr(glob, "://");
  if (!a)
    return false;
  a += 3;
  const char *e = a + strcspn(a, "/");
  const char *at = memrchr(a, '@', (size_t)(e - a));
  if (at)
    a = at + 1;
  const char *colon = memchr(a, ':', (size_t)(e - a));
  if (colon && *a != '[')
    e = colon;
  size_t n = (size_t)(e - a);
  if (!n || n >= size || strspn(a, "*?") >= n)
    return false;
  memcpy(out, a, n);
  out[n] = '\0';
  return true;
}

bool lm_detect_patterns_name_host(const char *patterns, const char *name) {
  if (!patterns || !*patterns || !name || !*name)
    return false;
  char glob[PATTERN_MAX], host[PATTERN_MAX], nm[PATTERN_MAX];
  size_t nl = strlen(name);
  if (name[nl - 1] == '.') /* "llm.corp." is the same host */
    nl--;
  if (!nl || nl >= sizeof nm)
    return false;
  memcpy(nm, name, nl);
  nm[nl] = '\0';
  const char *s = patterns;
  while (*s) {
    const char *e = strchr(s, ',');
    if (!e)
      e = s + strlen(s);
    struct entry en;
    if (parse_entry(s, e, glob, &en) && en.api != LM_API_NONE &&
        glob_host(glob, host, sizeof host) &&
        fnmatch(host, nm, FNM_CASEFOLD) == 0)
      return true;
    s = *e ? e + 1 : e;
  }
  return false;
}

bool lm_detect_patterns_check(const char *patterns, char *why,
                              size_t why_size) {
  if (!patterns)
    return true;
  char glob[PATTERN_MAX];
  const char *s = patterns;
  while (*s) {
    const char *e = strchr(s, ',');
    if (!e)
      e = s + strlen(s);
    struct entry en;
    if (!parse_entry(s, e, glob, &en) || !en.known) {
      if (why && why_size) {
        size_t n = (size_t)(e - s) < why_size - 1 ? (size_t)(e - s)
                                                  : why_size - 1;
        memcpy(why, s, n);
        why[n] = '\0';
      }
      return false;
    }
    s = *e ? e + 1 : e;
  }
  return true;
}
