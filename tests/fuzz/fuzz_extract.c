/* fuzz_extract.c — libFuzzer target for the whole response path
 * (framer + SSE + JSON scanner + extractors).
 *
 * Input: [api][content-type selector][split seed] body...
 * Checks: no crash/UB (sanitizers), the normalised invariants of usage.h,
 * that feeding the body in pieces gives exactly the result of feeding it
 * whole, and that crossing inert documents unscanned (the framer's fast
 * path, taken on whole documents) gives exactly the result of scanning
 * every byte.
 */
#include <stdlib.h>
#include <string.h>

#include "extract.h"
#include "fuzz_split.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const content_types[] = {
    NULL, "text/event-stream; charset=utf-8", "application/x-ndjson",
    "application/json", "text/plain"};

static void run(struct lm_extract *x, enum lm_api api, const char *ct,
                const char *body, size_t n, uint32_t seed, bool scan_all) {
  lm_extract_init(x, api);
  if (scan_all)
    lm_framer_set_classifier(&x->framer, NULL, NULL);
  if (ct)
    lm_extract_set_content_type(x, ct, strlen(ct));
  struct fuzz_split sp = {seed};
  size_t at = 0;
  while (at < n) {
    size_t k = fuzz_next_piece(&sp, n - at);
    lm_extract_feed(x, body + at, k);
    at += k;
  }
  lm_extract_finish(x);
}

static void check_invariants(const struct lm_extract *x) {
  const struct lm_usage *u = lm_extract_usage(x);
  if (u->cache_read + u->cache_write > u->input &&
      x->api != LM_API_ANTHROPIC_MESSAGES)
    abort();
  if (u->cache_write_1h > u->cache_write || u->reasoning > u->output)
    abort();
  /* Parts within their totals; cached parts within their part and the
   * cache reads; a call's fee is the meter's, never the extractor's. */
  if (u->input_audio > u->input || u->input_image > u->input ||
      u->input_video > u->input || u->output_audio > u->output ||
      u->output_image > u->output || u->output_video > u->output ||
      u->cache_audio_read > u->input_audio ||
      u->cache_audio_read > u->cache_read ||
      u->cache_image_read > u->input_image ||
      u->cache_image_read > u->cache_read || u->requests != 0)
    abort();
  if (!lm_extract_has_usage(x) &&
      (u->input | u->output | u->cache_read | u->cache_write | u->input_audio |
       u->citation | u->separate_reasoning | u->web_searches))
    abort();
  if (memchr(lm_extract_model(x), '\0', LM_EXTRACT_MODEL_MAX) == NULL)
    abort();
}

static bool same_result(const struct lm_extract *a,
                        const struct lm_extract *b) {
  return a->has_usage == b->has_usage &&
         memcmp(&a->usage, &b->usage, sizeof a->usage) == 0 &&
         strcmp(a->model, b->model) == 0 &&
         a->inband_error == b->inband_error && a->final == b->final &&
         a->has_cost == b->has_cost &&
         (!a->has_cost || a->cost_pusd == b->cost_pusd) &&
         /* how often a change was seen depends on the split (extract.h) */
         (a->generation == 0) == (b->generation == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3)
    return 0;
  enum lm_api api = (enum lm_api)(data[0] % LM_API_COUNT);
  const char *ct = content_types[data[1] % 5];
  uint32_t seed = data[2] ? data[2] * 2654435761u : 0;
  const char *body = (const char *)data + 3;
  size_t n = size - 3;
  static struct lm_extract whole, split, scanned;
  run(&whole, api, ct, body, n, 0, false);
  run(&split, api, ct, body, n, seed ? seed : 1, false);
  run(&scanned, api, ct, body, n, 0, true);
  check_invariants(&whole);
  if (!same_result(&whole, &split) || !same_result(&whole, &scanned))
    abort(); /* the result must not depend on how the body was cut or read */
  return 0;
}
