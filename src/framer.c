/* framer.c — response body → JSON documents (see framer.h).
 *
 * The framer is a thin switch: SSE data goes through lm_sse into the
 * scanner, NDJSON and JSON go straight into the scanner (in multi-document
 * mode), and only NDJSON error recovery needs a search of its own. With an
 * inert-document predicate, SSE and NDJSON bodies are fed a line at a time
 * so that each event or document that starts between two of them, whole in
 * the buffer, can be offered to the predicate first.
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

void lm_framer_set_inert(struct lm_framer *f, lm_framer_inert_fn fn) {
  f->inert = fn;
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

/* NDJSON without the fast path: the scanner in multi-document mode; a
 * malformed line is skipped to its LF. */
static void feed_ndjson_scan(struct lm_framer *f, const char *p, size_t n) {
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

/* Whether to offer the document starting here to the predicate (see
 * framer.h: backing off after refusals). */
static bool inert_try(struct lm_framer *f) {
  if (f->inert_wait == 0)
    return true;
  f->inert_wait--;
  return false;
}

static void inert_result(struct lm_framer *f, bool inert) {
  if (inert) {
    f->inert_backoff = 0;
    return;
  }
  f->inert_backoff = f->inert_backoff ? (uint8_t)(f->inert_backoff * 2) : 1;
  if (f->inert_backoff > 64)
    f->inert_backoff = 64;
  f->inert_wait = f->inert_backoff;
}

static bool is_ws(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* Length of a line at p (through its LF) holding one inert document and
 * nothing else but whitespace; 0 otherwise. A whole line, because the
 * scanner recovers from a malformed document by skipping to the LF: what
 * follows a document on its line counts only if the document was sound,
 * which the predicate does not judge. */
static size_t ndjson_inert_line(struct lm_framer *f, const char *p,
                                const char *end) {
  const char *nl = memchr(p, '\n', (size_t)(end - p));
  if (!nl)
    return 0;
  size_t k = f->inert(f->ctx, p, (size_t)(nl - p));
  if (!k)
    return 0;
  for (const char *q = p + k; q < nl; q++)
    if (!is_ws(*q))
      return 0;
  return (size_t)(nl + 1 - p);
}

static void feed_ndjson(struct lm_framer *f, const char *p, size_t n) {
  const char *end = p + n;
  if (!f->inert) {
    feed_ndjson_scan(f, p, n);
    return;
  }
  while (p < end) {
    if (!f->skip_line && lm_json_idle(&f->json)) {
      /* Between documents, whitespace changes nothing: cross it. */
      while (p < end && is_ws(*p))
        p++;
      if (p == end)
        return;
      if (inert_try(f)) {
        size_t k = ndjson_inert_line(f, p, end);
        inert_result(f, k != 0);
        if (k) {
          p += k; /* as if scanned: the scanner stays between documents */
          continue;
        }
      }
    }
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *stop = nl ? nl + 1 : end;
    feed_ndjson_scan(f, p, (size_t)(stop - p));
    p = stop;
  }
}

/* After the line end at eol (LF or CRLF), or NULL (a lone CR, or a CR
 * whose LF is not in the buffer: the parser will see to it). */
static const char *next_line(const char *eol, const char *end) {
  if (*eol == '\n')
    return eol + 1;
  if (eol + 1 < end && eol[1] == '\n')
    return eol + 2;
  return NULL;
}

/* Length of an inert event at p, whole in the buffer (see framer.h); 0 to
 * let the parser read it. */
static size_t sse_inert_event(struct lm_framer *f, const char *p,
                              const char *end) {
  const char *q = p, *eol;
  if (end - q >= 6 && memcmp(q, "event:", 6) == 0) {
    q += 6;
    if (q < end && *q == ' ')
      q++;
    eol = lm_find2(q, end, '\r', '\n');
    if (!eol || (eol - q == 5 && memcmp(q, "error", 5) == 0))
      return 0; /* incomplete, or an error event (its name counts) */
    if (!(q = next_line(eol, end)))
      return 0;
  }
  if (end - q < 5 || memcmp(q, "data:", 5) != 0)
    return 0;
  q += 5;
  if (q < end && *q == ' ')
    q++;
  eol = lm_find2(q, end, '\r', '\n');
  if (!eol || !f->inert(f->ctx, q, (size_t)(eol - q)))
    return 0;
  if (!(q = next_line(eol, end)) || q == end)
    return 0;
  if (*q == '\n')
    return (size_t)(q + 1 - p);
  if (*q == '\r' && q + 1 < end && q[1] == '\n')
    return (size_t)(q + 2 - p);
  return 0; /* another field: a multi-line event */
}

static void feed_sse(struct lm_framer *f, const char *p, size_t n) {
  const char *end = p + n;
  if (!f->inert) {
    lm_sse_feed(&f->sse, p, n);
    return;
  }
  while (p < end) {
    if (lm_sse_between_events(&f->sse) && inert_try(f)) {
      size_t k = sse_inert_event(f, p, end);
      inert_result(f, k != 0);
      if (k) {
        p += k;
        lm_sse_count_event(&f->sse);
        continue;
      }
    }
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *stop = nl ? nl + 1 : end;
    lm_sse_feed(&f->sse, p, (size_t)(stop - p));
    p = stop;
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
    feed_sse(f, p, n);
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
