/* deny.c — the HTTP response of a refused call (see deny.h).
 *
 * Why these statuses: the providers' SDKs (openai, anthropic; Python and
 * Node) retry 408, 409, 429 and >= 500 on their own, twice by default,
 * unless the response says `x-should-retry: false`. A spent budget is not
 * going to be less spent in a second, so 402 and 503 say so; a rate or a
 * wait for in-flight calls can pass later, so 429 carries Retry-After and
 * lets the SDK's back-off do its work.
 */
#include "deny.h"

#include <stdio.h>
#include <string.h>

#include "json_scan.h"

int lm_deny_status(const struct lm_denial *why) {
  if (!why || why->kind == LM_DENY_ERROR)
    return 503;
  if (why->kind == LM_DENY_RATE || why->kind == LM_DENY_BUSY ||
      why->waited_ms > 0 || why->waitable)
    return 429;
  return 402;
}

static const char *status_text(int status) {
  switch (status) {
  case 402:
    return "Payment Required";
  case 429:
    return "Too Many Requests";
  default:
    return "Service Unavailable";
  }
}

/* The provider's own error shape, with `msg` already JSON-escaped. */
static int body_of(enum lm_api api, int status, const char *msg, char *out,
                   size_t size) {
  bool rate = status == 429;
  switch (api) {
  case LM_API_ANTHROPIC_MESSAGES:
    return snprintf(out, size,
                    "{\"type\":\"error\",\"error\":{\"type\":\"%s\","
                    "\"message\":\"llmmeter: %s\"}}",
                    rate ? "rate_limit_error" : "budget_exceeded", msg);
  case LM_API_GEMINI_GENERATE:
  case LM_API_GEMINI_STREAM:
    return snprintf(out, size,
                    "{\"error\":{\"code\":%d,\"message\":\"llmmeter: %s\","
                    "\"status\":\"%s\"}}",
                    status, msg,
                    status == 503 ? "UNAVAILABLE" : "RESOURCE_EXHAUSTED");
  case LM_API_OLLAMA_CHAT:
  case LM_API_OLLAMA_GENERATE:
    return snprintf(out, size, "{\"error\":\"llmmeter: %s\"}", msg);
  default: /* OpenAI and the OpenAI-compatible APIs */
    return snprintf(out, size,
                    "{\"error\":{\"message\":\"llmmeter: %s\",\"type\":\"%s\","
                    "\"param\":null,\"code\":\"%s\"}}",
                    msg, rate ? "requests" : "insufficient_quota",
                    rate ? "rate_limit_exceeded" : "budget_exceeded");
  }
}

size_t lm_deny_response(enum lm_api api, int status, int64_t retry_after_s,
                        const char *reason, char *out, size_t size,
                        size_t *head_len) {
  char msg[512], body[768], retry[48] = "";
  lm_json_escape(msg, sizeof(msg), reason ? reason : "");
  int blen = body_of(api, status, msg, body, sizeof(body));
  if (blen < 0)
    blen = 0;
  if ((size_t)blen >= sizeof(body))
    blen = (int)strlen(body);
  if (retry_after_s >= 0)
    snprintf(retry, sizeof(retry), "Retry-After: %lld\r\n",
             (long long)retry_after_s);
  int hlen = snprintf(out, size,
                      "HTTP/1.1 %d %s\r\n"
                      "Content-Type: application/json\r\n"
                      "Content-Length: %d\r\n"
                      "%s%s"
                      "Connection: close\r\n"
                      "\r\n",
                      status, status_text(status), blen, retry,
                      status == 429 ? "" : "x-should-retry: false\r\n");
  if (hlen < 0 || (size_t)hlen + (size_t)blen >= size) {
    *head_len = 0;
    if (size)
      out[0] = 0;
    return 0;
  }
  memcpy(out + hlen, body, (size_t)blen + 1);
  *head_len = (size_t)hlen;
  return (size_t)hlen + (size_t)blen;
}
