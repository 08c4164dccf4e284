/* framer.c — response body → JSON documents (see framer.h).
 *
 * The framer is a thin switch: SSE data goes through lm_sse into the
 * scanner, NDJSON and JSON go straight into the scanner (in multi-document
 * mode), and only NDJSON error recovery needs a search of its own. With a
 * classifier, SSE and NDJSON bodies are fed a line at a time so that each
 * event or document that starts between two of them, whole in the buffer,
 * can be offered to it first (see framer.h).
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

static const struct lm_sse_handler sse_to_json = {sse_event_begin, sse_data,
                                                  sse_event_end};

/* Does s (len bytes, already lower-case) contain the lower-case word? */
static bool contains(const char *s, size_t len, const char *word) {
  size_t w = strlen(word);
  return w <= len && memmem(s, len, word, w) != NULL;
}

enum lm_frame_mode lm_frame_mode_from_content_type(const char *ct, size_t len) {
  if (!ct)
    return LM_FRAME_AUTO;
  /* The media type only (up to ';'), lower-cased once: a type longer
   * than any real one is generic. */
  char mt[96];
  size_t n = 0;
  while (n < len && ct[n] != ';' && ct[n] != '\0') {
    if (n == sizeof mt)
      return LM_FRAME_AUTO;
    char c = ct[n];
    mt[n++] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
  }
  /* The usual types, whole, before the searches. */
  if (n == 16 && memcmp(mt, "application/json", 16) == 0)
    return LM_FRAME_JSON;
  if (n == 17 && memcmp(mt, "text/event-stream", 17) == 0)
    return LM_FRAME_SSE;
  if (contains(mt, n, "event-stream"))
    return LM_FRAME_SSE;
  if (contains(mt, n, "ndjson") || contains(mt, n, "jsonl") ||
      contains(mt, n, "json-seq") || contains(mt, n, "json-stream"))
    return LM_FRAME_NDJSON;
  if (contains(mt, n, "json"))
    return LM_FRAME_JSON;
  return LM_FRAME_AUTO;
}

_Static_assert(offsetof(struct lm_framer, sse) <
                       offsetof(struct lm_framer, json) &&
                   offsetof(struct lm_framer, json) +
                           sizeof(struct lm_json_scan) ==
                       sizeof(struct lm_framer),
               "sse, then json, end the framer: their inits zero them");

void lm_framer_init(struct lm_framer *f, enum lm_frame_mode json_like,
                    lm_json_cb on_json, lm_framer_event_fn on_event,
                    void *ctx) {
  /* sse and json, last, are zeroed by their own inits: each byte once */
  memset(f, 0, offsetof(struct lm_framer, sse));
  f->on_event = on_event;
  f->ctx = ctx;
  f->mode = LM_FRAME_AUTO;
  f->ct_mode = LM_FRAME_AUTO;
  f->json_like = json_like == LM_FRAME_NDJSON ? LM_FRAME_NDJSON : LM_FRAME_JSON;
  lm_sse_init(&f->sse, &sse_to_json, f);
  lm_json_init(&f->json, 0, on_json, ctx);
}

void lm_framer_set_classifier(struct lm_framer *f, lm_framer_classify_fn fn,
                              lm_framer_taken_fn taken) {
  f->classify = taken ? fn : NULL;
  f->taken = taken;
}

void lm_framer_set_whole(struct lm_framer *f, lm_framer_select_fn select,
                         lm_framer_direct_fn direct, lm_framer_claim_fn claim) {
  f->select = direct ? select : NULL;
  f->direct = direct;
  f->claim = claim;
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

/* Whether to offer the document starting here (see framer.h: backing off
 * after READ verdicts, which streams of usage-bearing events give). */
static bool offer(struct lm_framer *f) {
  if (f->wait == 0)
    return true;
  f->wait--;
  return false;
}

static void verdict(struct lm_framer *f, enum lm_doc_kind k) {
  if (k != LM_DOC_READ) {
    f->backoff = 0;
    return;
  }
  /* One READ is common (the first event names the model, the last one
   * carries the usage): back off from the second in a row. */
  if (f->backoff == 0) {
    f->backoff = 1;
    return;
  }
  f->backoff = f->backoff >= 64 ? 64 : (uint8_t)(f->backoff * 2);
  f->wait = (uint8_t)(f->backoff / 2);
}

/* Scans one held snapshot as a document of its own, with a copy of the
 * scanner (same callback, limits and skips; paths are relative to the
 * document as in every framing), so the framer's own scanner, which may be
 * inside a JSON array, is left as it is. */
static void scan_held(struct lm_framer *f, const char *p, size_t n) {
  struct lm_json_scan s = f->json;
  s.flags = 0;
  lm_json_reset(&s);
  lm_json_feed(&s, p, n);
  lm_json_finish(&s);
}

/* Scans held snapshots, newest first, until one is taken: the older ones
 * would have been replaced by it. */
static void flush_held(struct lm_framer *f) {
  while (f->held) {
    f->held--;
    uint32_t before = f->taken(f->ctx);
    scan_held(f, f->held_doc[f->held].p, f->held_doc[f->held].n);
    if (f->taken(f->ctx) != before)
      break;
  }
  f->held = 0;
}

static void hold(struct lm_framer *f, const char *p, size_t n) {
  if (f->held == LM_FRAMER_HELD)
    flush_held(f);
  f->held_doc[f->held].p = p;
  f->held_doc[f->held].n = n;
  f->held++;
}

/* An NDJSON line at p holding one classified document and nothing else but
 * whitespace: returns the verdict, *len the document's length, *line the line's
 * length through its LF. A whole line, because the scanner recovers from a
 * malformed document by skipping to the LF: what follows a document on its
 * line counts only if the document was sound, which the classifier does
 * not judge. */
static enum lm_doc_kind ndjson_line(struct lm_framer *f, const char *p,
                                    const char *end, size_t *len,
                                    size_t *line) {
  const char *nl = memchr(p, '\n', (size_t)(end - p));
  if (!nl)
    return LM_DOC_READ;
  enum lm_doc_kind k = f->classify(f->ctx, p, (size_t)(nl - p), false, len);
  if (k == LM_DOC_READ)
    return k;
  if (lm_json_skip_ws(p + *len, nl) != nl)
    return LM_DOC_READ;
  *line = (size_t)(nl + 1 - p);
  return k;
}

static void feed_ndjson(struct lm_framer *f, const char *p, size_t n) {
  const char *end = p + n;
  if (!f->classify) {
    feed_ndjson_scan(f, p, n);
    return;
  }
  while (p < end) {
    if (!f->skip_line && lm_json_idle(&f->json)) {
      /* Between documents, whitespace changes nothing: cross it. */
      p = lm_json_skip_ws(p, end);
      if (p == end)
        break;
      if (offer(f)) {
        size_t len = 0, line = 0;
        enum lm_doc_kind k = ndjson_line(f, p, end, &len, &line);
        verdict(f, k);
        if (k == LM_DOC_SNAPSHOT)
          hold(f, p, len);
        if (k != LM_DOC_READ) {
          p += line; /* as if scanned: still between documents */
          continue;
        }
      }
    }
    flush_held(f); /* what is scanned next comes after them */
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *stop = nl ? nl + 1 : end;
    feed_ndjson_scan(f, p, (size_t)(stop - p));
    p = stop;
  }
  flush_held(f); /* held pointers do not outlive this call */
}

/* ---- whole documents (framer.h) --------------------------------------- */

struct picks {
  struct lm_framer *f;
  size_t n;
  struct {
    const char *k, *v;
    size_t klen, vlen;
    enum lm_member_use use;
  } m[LM_FRAMER_PICKS];
};

static bool pick(void *ctx, const char *k, size_t klen, const char *v,
                 size_t vlen, bool escaped) {
  struct picks *ps = ctx;
  enum lm_member_use use = ps->f->select(ps->f->ctx, (unsigned)ps->n, k, klen,
                                         v, vlen, escaped);
  if (use == LM_MEMBER_SKIP)
    return true;
  if (ps->n == LM_FRAMER_PICKS)
    return false; /* more than we keep: the whole document is scanned */
  ps->m[ps->n].k = k;
  ps->m[ps->n].klen = klen;
  ps->m[ps->n].v = v;
  ps->m[ps->n].vlen = vlen;
  ps->m[ps->n].use = use;
  ps->n++;
  return true;
}

static size_t pick_claim(void *ctx, const char *k, size_t klen, const char *v,
                         const char *end) {
  struct picks *ps = ctx;
  return ps->f->claim && ps->n < LM_FRAMER_PICKS
             ? ps->f->claim(ps->f->ctx, (unsigned)ps->n, k, klen, v, end)
             : 0;
}

/* The object at p, if whole in [p, end) and valid: read as framer.h says,
 * and its length returned; 0 (nothing done) otherwise. The scanner ends as
 * it would after the object (its document closed), because it reads a
 * valid object of the same top-level members less the skipped ones. */
static size_t feed_whole(struct lm_framer *f, const char *p, const char *end) {
  struct picks ps;
  ps.f = f;
  ps.n = 0;
  f->direct(f->ctx, LM_FRAMER_BEGIN);
  size_t len = lm_json_walk_valid_object_claim(p, (size_t)(end - p), pick,
                                               pick_claim, &ps);
  if (len == 0)
    return 0;
  lm_json_feed(&f->json, "{", 1);
  bool fed = false;
  for (size_t i = 0; i < ps.n; i++) {
    if (ps.m[i].use == LM_MEMBER_DIRECT) {
      f->direct(f->ctx, (unsigned)i);
      continue;
    }
    if (fed)
      lm_json_feed(&f->json, ",", 1);
    const char *from = ps.m[i].k - 1; /* the key's opening quote */
    lm_json_feed(&f->json, from, (size_t)(ps.m[i].v + ps.m[i].vlen - from));
    fed = true;
  }
  lm_json_feed(&f->json, "}", 1);
  return len;
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

/* An event of the shape framer.h describes (an optional event line, one
 * data line, a blank line), whole in the buffer: what it is made of. */
struct sse_shape {
  bool whole;
  const char *name, *data, *data_end;
  size_t name_len;
};

/* An event at p, whole in the buffer and of the shape framer.h describes:
 * returns the verdict on its data, *data and *len the document, *ev the
 * event's length; READ for anything else (the parser reads it). sh says
 * whether it was of the shape, whatever the verdict. */
static enum lm_doc_kind sse_event(struct lm_framer *f, const char *p,
                                  const char *end, const char **data,
                                  size_t *len, size_t *ev,
                                  struct sse_shape *sh) {
  const char *q = p, *eol;
  sh->whole = false;
  sh->name = NULL;
  sh->name_len = 0;
  if (end - q >= 6 && memcmp(q, "event:", 6) == 0) {
    q += 6;
    if (q < end && *q == ' ')
      q++;
    eol = lm_find2(q, end, '\r', '\n');
    if (!eol || (eol - q == 5 && memcmp(q, "error", 5) == 0))
      return LM_DOC_READ; /* incomplete, or an error event (its name counts) */
    sh->name = q;
    sh->name_len = (size_t)(eol - q);
    if (!(q = next_line(eol, end)))
      return LM_DOC_READ;
  }
  if (end - q < 5 || memcmp(q, "data:", 5) != 0)
    return LM_DOC_READ;
  q += 5;
  if (q < end && *q == ' ')
    q++;
  eol = lm_find2(q, end, '\r', '\n');
  if (!eol)
    return LM_DOC_READ;
  *data = q;
  const char *data_end = eol;
  if (!(q = next_line(eol, end)) || q == end)
    return LM_DOC_READ;
  if (*q == '\n')
    *ev = (size_t)(q + 1 - p);
  else if (*q == '\r' && q + 1 < end && q[1] == '\n')
    *ev = (size_t)(q + 2 - p);
  else
    return LM_DOC_READ; /* another field: a multi-line event */
  sh->whole = true;
  sh->data = *data;
  sh->data_end = data_end;
  return f->classify(f->ctx, *data, (size_t)(data_end - *data), false, len);
}

/* A whole event of the shape that must be read: what the SSE parser would
 * hand the scanner (its one data line, between a reset and a finish) and
 * the consumer (its name), with the data read member by member when it
 * is one whole object (feed_whole). */
static void sse_whole(struct lm_framer *f, const struct sse_shape *sh) {
  lm_json_reset(&f->json);
  const char *d = sh->data;
  size_t len = feed_whole(f, d, sh->data_end);
  lm_json_feed(&f->json, d + len, (size_t)(sh->data_end - d) - len);
  lm_json_finish(&f->json);
  if (f->on_event) {
    /* as lm_sse keeps it: at most LM_SSE_EVENT_MAX - 1 bytes */
    bool trunc = sh->name_len > LM_SSE_EVENT_MAX - 1;
    f->on_event(f->ctx, sh->name ? sh->name : "",
                trunc ? LM_SSE_EVENT_MAX - 1 : sh->name_len, trunc);
  }
}

static void feed_sse(struct lm_framer *f, const char *p, size_t n) {
  const char *end = p + n;
  if (!f->classify) {
    lm_sse_feed(&f->sse, p, n);
    return;
  }
  while (p < end) {
    if (lm_sse_between_events(&f->sse) && offer(f)) {
      const char *data = NULL;
      size_t len = 0, ev = 0;
      struct sse_shape sh;
      enum lm_doc_kind k = sse_event(f, p, end, &data, &len, &ev, &sh);
      verdict(f, k);
      if (k == LM_DOC_SNAPSHOT)
        hold(f, data, len);
      if (k != LM_DOC_READ || (sh.whole && f->select)) {
        if (k == LM_DOC_READ) {
          flush_held(f); /* it comes after them */
          sse_whole(f, &sh);
        }
        p += ev;
        lm_sse_count_event(&f->sse);
        continue;
      }
    }
    flush_held(f); /* what is scanned next comes after them */
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *stop = nl ? nl + 1 : end;
    lm_sse_feed(&f->sse, p, (size_t)(stop - p));
    p = stop;
  }
  flush_held(f); /* held pointers do not outlive this call */
}

/* JSON: a top-level array is a stream of documents (Gemini without
 * alt=sse, "[{...}\r\n,\r\n{...}]"); between two elements, a whole object
 * element can be offered. Only inside such an array is the body fed a line
 * at a time; a plain JSON document goes to the scanner in one call. */
static void feed_json(struct lm_framer *f, const char *p, size_t n) {
  const char *end = p + n;
  if (!f->classify) {
    lm_json_feed(&f->json, p, n);
    return;
  }
  while (p < end) {
    if (lm_json_at_start(&f->json)) { /* read up to the '[' (or not) */
      p = lm_json_skip_ws(p, end);
      if (p == end)
        break;
      size_t whole;
      if (*p == '{' && f->select && (whole = feed_whole(f, p, end)) > 0) {
        p += whole;
        continue;
      }
      lm_json_feed(&f->json, p, 1);
      p++;
      continue;
    }
    if (!lm_json_in_split_array(&f->json)) {
      flush_held(f);
      lm_json_feed(&f->json, p, (size_t)(end - p));
      break;
    }
    if (lm_json_after_element(&f->json)) {
      /* The separator is no document: held snapshots stay held. */
      p = lm_json_skip_ws(p, end);
      if (p == end)
        break;
      if (*p == ',') {
        lm_json_feed(&f->json, p, 1);
        p++;
        continue;
      }
    }
    if (lm_json_between_elements(&f->json)) {
      p = lm_json_skip_ws(p, end);
      if (p == end)
        break;
      if (*p == '{' && offer(f)) {
        size_t len = 0;
        enum lm_doc_kind k = f->classify(f->ctx, p, (size_t)(end - p), true,
                                         &len);
        verdict(f, k);
        if (k == LM_DOC_SNAPSHOT)
          hold(f, p, len);
        if (k != LM_DOC_READ) {
          lm_json_element_crossed(&f->json);
          p += len;
          continue;
        }
      }
    }
    flush_held(f); /* what is scanned next comes after them */
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *stop = nl ? nl + 1 : end;
    lm_json_feed(&f->json, p, (size_t)(stop - p));
    p = stop;
  }
  flush_held(f); /* held pointers do not outlive this call */
}

void lm_framer_feed(struct lm_framer *f, const char *p, size_t n) {
  if (f->finished || n == 0)
    return;
  if (f->mode == LM_FRAME_AUTO) {
    const char *q = lm_json_skip_ws(p, p + n);
    n -= (size_t)(q - p);
    p = q;
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
    feed_json(f, p, n);
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
