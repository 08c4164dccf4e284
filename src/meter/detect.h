/* detect.h — which LLM API (if any) a request URL addresses.
 *
 * Owns: recognising LLM endpoints by the PATH of the URL, on any host and
 * port and below any base-URL prefix (gateways, proxies, Azure, OpenRouter,
 * local servers), plus the user's extra patterns; and reading the model
 * name a URL carries (Gemini, Vertex, Azure deployments).
 *
 * Runs on every transfer: no allocation (bounded stack copies only for
 * fnmatch), no printing, no global state.
 *
 * Built-in rules (query string and fragment ignored, trailing '/' ignored):
 *   .../chat/completions                    LM_API_OPENAI_CHAT
 *       (/v1/..., /openai/v1/..., /api/v1/... OpenRouter, /chat/... DeepSeek,
 *        Azure /openai/deployments/NAME/chat/completions?api-version=...)
 *   .../v1/completions, .../openai/deployments/NAME/completions
 *                                           LM_API_OPENAI_COMPLETIONS
 *   .../v1/responses, .../openai/responses  LM_API_OPENAI_RESPONSES
 *       (not /v1/responses/ID, /v1/responses/input_tokens, ...)
 *   .../embeddings (not Ollama's /api/embeddings)
 *                                           LM_API_OPENAI_EMBEDDINGS
 *   .../v1/messages                         LM_API_ANTHROPIC_MESSAGES
 *       (not /v1/messages/count_tokens, /v1/messages/batches)
 *   .../models/NAME:rawPredict|:streamRawPredict under publishers/anthropic
 *                                           LM_API_ANTHROPIC_MESSAGES (Vertex)
 *   .../models/NAME:generateContent         LM_API_GEMINI_GENERATE
 *   .../models/NAME:streamGenerateContent   LM_API_GEMINI_STREAM
 *       (also tunedModels/NAME; ':' may be written %3A)
 *   .../api/chat, .../api/generate          LM_API_OLLAMA_CHAT / _GENERATE
 *   .../v2/chat                             LM_API_COHERE_CHAT
 *
 * Extra patterns (the LLMMETER_ENDPOINTS value) are checked FIRST:
 *   patterns := entry { "," entry }
 *   entry    := glob [ "=" [ api ] [ "@" provider ] ]
 *                                          (spaces around items ignored)
 *   api      := openai-chat | openai-completions | openai-responses |
 *               openai-embeddings | anthropic-messages | anthropic |
 *               gemini-generate | gemini-stream | ollama-chat |
 *               ollama-generate | cohere-chat | custom | none
 *   provider := [A-Za-z0-9._-]{1,31}      (who bills the call: "groq")
 * The glob is an fnmatch(3) pattern (flags 0: '*' also matches '/') on the
 * path without query; a glob containing "://" is matched against the whole
 * URL without query instead. Without "=api" a match is LM_API_CUSTOM
 * (metered, usage not parsed); "=none" exempts matching URLs from the
 * built-in rules; "=@provider" (no api) leaves the API to the built-in
 * rules and only names the provider. The first matching entry decides.
 * Unknown api names count as custom (still metered); use
 * lm_detect_patterns_check to report them. Globs longer than 255 bytes and
 * paths longer than 2047 bytes never match a pattern.
 *   Example: LLMMETER_ENDPOINTS="/llm/ *=openai-chat,/internal/v1/messages=none"
 *   (written without the space after "llm/", which only keeps this comment
 *   from closing early); "*://localhost:4000/ *=@groq" names the provider
 *   behind a local proxy.
 */
#ifndef LM_DETECT_H
#define LM_DETECT_H

#include <stdbool.h>
#include <stddef.h>

#include "usage.h"

enum lm_api lm_detect_api(const char *url, size_t url_len,
                          const char *extra_patterns);

/* lm_detect_api, and the provider the matching LLMMETER_ENDPOINTS entry
 * names ("glob=api@provider", "glob=@provider"), copied into provider
 * (NUL-terminated; "" when that entry names none or no entry matches). */
enum lm_api lm_detect_route(const char *url, size_t url_len,
                            const char *extra_patterns, char *provider,
                            size_t provider_size);

/* The host of an absolute URL, without user info and port
 * ("https://u@Api.Groq.com:443/v1?x" gives "Api.Groq.com"; "[::1]" for an
 * IPv6 literal), and its path without query and fragment (path may be
 * NULL). In place: pointers into url. False when the URL has no
 * "scheme://" authority or an empty host. */
bool lm_detect_url_host(const char *url, size_t url_len, const char **host,
                        size_t *host_len, const char **path, size_t *path_len);

/* Model named by the URL: Gemini/Vertex /models/NAME:verb, Azure
 * /openai/deployments/NAME/... Writes a NUL-terminated name and returns its
 * length; 0 if the URL names none or it does not fit in out_size. */
size_t lm_detect_model_from_url(const char *url, size_t url_len, char *out,
                                size_t out_size);

/* Validates an LLMMETER_ENDPOINTS value: false (with the offending entry
 * copied into why, if given) when an entry is empty, too long, or names an
 * unknown api. */
bool lm_detect_patterns_check(const char *patterns, char *why, size_t why_size);

/* Whether an LLMMETER_ENDPOINTS entry names the host `name` (a DNS name,
 * as getaddrinfo or SNI sees it): an entry whose glob has "://" and whose
 * authority's host part (port and user info dropped) matches name with
 * fnmatch, ASCII case ignored. Entries that say "=none", path-only globs
 * and host globs made of wildcards alone ("*://x/..." with "*" as host:
 * every host) name no host. No allocation; bounded stack copies. */
bool lm_detect_patterns_name_host(const char *patterns, const char *name);

/* "openai-chat" etc. for an api (the names the patterns use). */
const char *lm_api_name(enum lm_api api);

#endif
