/* framer.c — response body → JSON documents (see framer.h).
 *
 * The framer is a thin switch: SSE data goes through lm_sse into the
 * scanner, NDJSON and JSON go straight into the scanner (in multi-document
 * mode), and only NDJSON error recovery needs a search of its own.
 */
#include "framer.h"

#include <string.h>
#include <strings.h>

static void sse_event_begin(void *ctx) {
  struct lm_framer *f = ctx;
  lm_json_reset(&f->json);
}

static void sse_data(void *ctx, const char *p, size_t n) {
  struct lm_framer *f = ctx;
  lm_json_feed(&f->json, p, n);
}

static void sse_event_end(void *ctx, const char *name, size_t len,
                          bool truncated) {
  struct lm_framer *f = ctx;
  lm_json_finish(&f->json);
  if (f->on_event)
    f->on_event(f->ctx, name, len, truncated);
}

static const struct lm_sse_handler sse_to_json = {
    sse_event_begin, sse_data, sse_event_end};

static bool contains_ci(const char *s, size_t len, const char *word) {
  size_t w = strlen(word);
  for (size_t i = 0; i + w <= len; i++)
    if (strncasecmp(s + i, word, w) == 0)
      return true;
  return false;
}

enum lm_frame_mode lm_frame_mode_from_content_type(const char *ct,
                                                   size_t len) {
  if (!ct)
    return LM_FRAME_AUTO;
  size_t n = 0; /* media type only: up to ';' */
  while (n < len && ct[n] != ';' && ct[n] != '\0')
    n++;
  if (contains_ci(ct, n, "event-stream"))
    return LM_FRAME_SSE;
  if (contains_ci(ct, n, "ndjson") || contains_ci(ct, n, "jsonl") ||
      contains_ci(ct, n, "json-seq") || contains_ci(ct, n, "json-stream"))
    return LM_FRAME_NDJSON;
  if (contains_ci(ct, n, "json"))
    return LM_FRAME_JSON;
  return LM_FRAME_AUTO;
}

void lm_framer_init(struct lm_framer *f, enum lm_frame_mode json_like,
                    lm_json_cb on_json, lm_framer_event_fn on_event,
                    void *ctx) {
  memset(f, 0, sizeof *f);
  f->on_event = on_event;
  f->ctx = ctx;
  f->mode = LM_FRAME_AUTO;
  f->ct_mode = LM_FRAME_AUTO;
  f->json_like = json_like == LM_FRAME_NDJSON ? LM_FRAME_NDJSON : LM_FRAME_JSON;
  lm_sse_init(&f->sse, &sse_to_json, f);
  lm_json_init(&f->json, 0, on_json, ctx);
}

void lm_framer_set_content_type(struct lm_framer *f, const char *ct,
                                size_t len) {
  if (f->mode == LM_FRAME_AUTO)
    f->ct_mode = (unsigned char)lm_frame_mode_from_content_type(ct, len);
}

enum lm_frame_mode lm_framer_mode(const struct lm_framer *f) {
  return (enum lm_frame_mode)f->mode;
}

static void choose_mode(struct lm_framer *f, char first) {
  unsigned char m = f->ct_mode;
  if (first == '{' || first == '[') {
    if (m != LM_FRAME_JSON && m != LM_FRAME_NDJSON)
      m = f->json_like;
  } else if (m == LM_FRAME_AUTO) {
    m = LM_FRAME_SSE;
  }
  f->mode = m;
  if (m == LM_FRAME_JSON)
    f->json.flags = LM_JSON_MULTI_DOC | LM_JSON_SPLIT_ROOT_ARRAY;
  else if (m == LM_FRAME_NDJSON)
    f->json.flags = LM_JSON_MULTI_DOC;
  else
    f->json.flags = 0;
}

static void feed_ndjson(struct lm_framer *f, const char *p, size_t n) {
  const char *end = p + n;
  while (p < end) {
    if (f->skip_line) {
      const char *nl = memchr(p, '\n', (size_t)(end - p));
      if (!nl)
        return;
      p = nl + 1;
      f->skip_line = false;
      lm_json_reset(&f->json);
      continue;
    }
    size_t used = lm_json_feed(&f->json, p, (size_t)(end - p));
    p += used;
    if (!lm_json_failed(&f->json))
      return;
    /* The byte that broke the line may itself be its LF. */
    if (p[-1] == '\n') {
      lm_json_reset(&f->json);
    } else {
      f->skip_line = true;
    }
  }
}

void lm_framer_feed(struct lm_framer *f, const char *p, size_t n) {
  if (f->finished || n == 0)
    return;
  if (f->mode == LM_FRAME_AUTO) {
    while (n && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
      p++;
      n--;
    }
    if (n == 0)
      return;
    choose_mode(f, *p);
  }
  switch (f->mode) {
  case LM_FRAME_SSE:
    lm_sse_feed(&f->sse, p, n);
    break;
  case LM_FRAME_NDJSON:
    feed_ndjson(f, p, n);
    break;
  default:
    lm_json_feed(&f->json, p, n);
    break;
  }
}

void lm_framer_finish(struct lm_framer *f) {
  if (f->finished)
    return;
  f->finished = true;
  if (f->mode == LM_FRAME_SSE)
    lm_sse_finish(&f->sse);
  else if (f->mode != LM_FRAME_AUTO)
    lm_json_finish(&f->json);
}
