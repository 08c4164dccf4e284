/* fuzz_reqscan.c — libFuzzer target for the request scanner and the URL
 * detector.
 *
 * Input: [api] body... ; the same bytes are also tried as a URL, and when
 * they contain a LF, what precedes it as LLMMETER_ENDPOINTS patterns.
 * Checks: no crash/UB, results within their bounds (the host and path a
 * URL is split into lie inside it; a provider an entry names fits), and
 * that the event walk reads the body exactly as the push scanner does.
 */
#include <stdlib.h>
#include <string.h>

#include "detect.h"
#include "reqscan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  enum lm_api api = (enum lm_api)(data[0] % LM_API_COUNT);
  const char *p = (const char *)data + 1;
  size_t n = size - 1;
  struct lm_request_info r;
  lm_reqscan(api, p, n, &r);
  if (!memchr(r.model, '\0', sizeof r.model) || r.body_bytes != n ||
      r.prompt_chars > n || r.max_output_tokens < -1)
    abort();
  struct lm_request_info q;
  lm_reqscan_scanned(api, p, n, &q);
  if (strcmp(r.model, q.model) != 0 ||
      r.max_output_tokens != q.max_output_tokens || r.stream != q.stream ||
      r.include_usage != q.include_usage ||
      r.has_stream_options != q.has_stream_options ||
      r.prompt_chars != q.prompt_chars || r.choices != q.choices ||
      r.choices < 1 || r.choices > LM_REQ_CHOICES_MAX)
    abort();

  enum lm_api a = lm_detect_api(p, n, NULL);
  if (a >= LM_API_COUNT)
    abort();
  char model[64];
  size_t m = lm_detect_model_from_url(p, n, model, sizeof model);
  if (m >= sizeof model || (m && strlen(model) != m))
    abort();
  const char *host, *path;
  size_t hl, pl;
  if (lm_detect_url_host(p, n, &host, &hl, &path, &pl) &&
      (hl == 0 || host < p || host + hl > p + n || path < p ||
       path + pl > p + n))
    abort();

  const char *nl = memchr(p, '\n', n);
  if (nl && (size_t)(nl - p) < 1024) {
    char pats[1024];
    memcpy(pats, p, (size_t)(nl - p));
    pats[nl - p] = '\0';
    char prov[32];
    a = lm_detect_route(nl + 1, n - (size_t)(nl - p) - 1, pats, prov,
                        sizeof prov);
    if (a >= LM_API_COUNT || !memchr(prov, '\0', sizeof prov))
      abort();
    char why[32];
    (void)lm_detect_patterns_check(pats, why, sizeof why);
  }
  return 0;
}
