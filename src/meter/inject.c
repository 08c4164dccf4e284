/* inject.c — include_usage injected into OpenAI chat streams, and its
 * traces removed from what the program receives (see inject.h).
 *
 * Never allocates on the response path (one fixed buffer per transfer, held
 * by the caller); never prints. The JSON handling here is deliberately
 * small: it only walks the top level of one event's object, skipping
 * nested values by depth and strings by their quotes.
 */
#include "inject.h"

#include <stdlib.h>
#include <string.h>

static const char opt[] = "\"stream_options\":{\"include_usage\":true}";

char *lm_inject_request(const char *body, size_t len, size_t *out_len) {
  size_t i = 0;
  while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' ||
                     body[i] == '\n'))
    i++;
  if (i >= len || body[i] != '{')
    return NULL;
  size_t j = i + 1;
  while (j < len && (body[j] == ' ' || body[j] == '\t' || body[j] == '\r' ||
                     body[j] == '\n'))
    j++;
  if (j >= len)
    return NULL;
  int empty = body[j] == '}';
  size_t olen = sizeof(opt) - 1;
  char *o = malloc(len + olen + 2);
  if (!o)
    return NULL;
  memcpy(o, body, i + 1);
  memcpy(o + i + 1, opt, olen);
  size_t k = i + 1 + olen;
  if (!empty)
    o[k++] = ',';
  memcpy(o + k, body + i + 1, len - i - 1);
  k += len - i - 1;
  o[k] = 0;
  *out_len = k;
  return o;
}

/* ---- one event ---------------------------------------------------------- */

static size_t skip_ws(const char *s, size_t i, size_t n) {
  while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
    i++;
  return i;
}

static size_t skip_string(const char *s, size_t i, size_t n) {
  for (i++; i < n; i++) {
    if (s[i] == '\\')
      i++;
    else if (s[i] == '"')
      return i + 1;
  }
  return n + 1; /* unterminated */
}

/* End of the JSON value starting at i (exclusive), or n+1 if malformed. */
static size_t skip_value(const char *s, size_t i, size_t n) {
  if (i >= n)
    return n + 1;
  if (s[i] == '"')
    return skip_string(s, i, n);
  if (s[i] == '{' || s[i] == '[') {
    int depth = 0;
    for (; i < n; i++) {
      char c = s[i];
      if (c == '"') {
        i = skip_string(s, i, n) - 1;
        if (i >= n)
          return n + 1;
      } else if (c == '{' || c == '[') {
        depth++;
      } else if (c == '}' || c == ']') {
        if (--depth == 0)
          return i + 1;
      }
    }
    return n + 1;
  }
  while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' &&
         s[i] != '\r' && s[i] != '\n' && s[i] != '\t')
    i++;
  return i;
}

static int value_is(const char *s, size_t a, size_t b, const char *lit) {
  size_t l = strlen(lit);
  return b - a == l && memcmp(s + a, lit, l) == 0;
}

/* One member of a top-level object: its key's quotes [key, key_end), its
 * value [val, val_end), and `next`, the first byte after it (a ',' or the
 * closing brace, whitespace skipped). */
struct member {
  size_t key, key_end, val, val_end, next;
};

/* Reads the member starting at p (a '"'); false if it is malformed. */
static bool read_member(const char *s, size_t p, size_t end, struct member *m) {
  m->key = p;
  m->key_end = skip_string(s, p, end);
  if (m->key_end > end)
    return false;
  size_t colon = skip_ws(s, m->key_end, end);
  if (colon >= end || s[colon] != ':')
    return false;
  m->val = skip_ws(s, colon + 1, end);
  m->val_end = skip_value(s, m->val, end);
  if (m->val_end > end)
    return false;
  m->next = skip_ws(s, m->val_end, end);
  return true;
}

/* The member after m, or end if m was the last. */
static size_t after_member(const char *s, const struct member *m, size_t end) {
  return m->next < end && s[m->next] == ',' ? skip_ws(s, m->next + 1, end)
                                            : end;
}

size_t lm_inject_transform_event(char *ev, size_t len) {
  /* One `data:` line holding one object; anything else is left alone. */
  size_t d = 0;
  while (d < len && (ev[d] == '\r' || ev[d] == '\n'))
    d++;
  if (len - d < 6 || memcmp(ev + d, "data:", 5) != 0)
    return len;
  size_t i = d + 5;
  if (i < len && ev[i] == ' ')
    i++;
  if (i >= len || ev[i] != '{')
    return len;
  size_t obj_end = skip_value(ev, i, len);
  if (obj_end > len)
    return len;
  for (size_t k = obj_end; k < len; k++)
    if (ev[k] != '\r' && ev[k] != '\n')
      return len; /* a second data line: not ours to touch */
  size_t usage_key = 0, usage_val = 0, usage_end = 0, usage_comma = 0;
  int usage_first = 0, choices_empty = 0, found = 0;
  int first = 1;
  struct member m;
  for (size_t p = skip_ws(ev, i + 1, obj_end); p < obj_end && ev[p] == '"';
       p = after_member(ev, &m, obj_end), first = 0) {
    if (!read_member(ev, p, obj_end, &m))
      return len;
    if (value_is(ev, m.key, m.key_end, "\"usage\"")) {
      found = 1;
      usage_key = m.key;
      usage_val = m.val;
      usage_end = m.val_end;
      usage_first = first;
      usage_comma = m.next;
    } else if (value_is(ev, m.key, m.key_end, "\"choices\"") &&
               ev[m.val] == '[' &&
               skip_ws(ev, m.val + 1, m.val_end) == m.val_end - 1) {
      choices_empty = 1;
    }
  }
  if (!found)
    return len;
  if (choices_empty && ev[usage_val] == '{')
    return 0; /* the usage-only chunk the option added */
  if (!value_is(ev, usage_val, usage_end, "null"))
    return len;
  size_t cut_from, cut_to;
  if (!usage_first) {
    /* `,"usage":null`: from the comma that precedes it */
    cut_from = usage_key;
    while (cut_from > i && ev[cut_from - 1] != ',')
      cut_from--;
    cut_from--;
    cut_to = usage_end;
  } else {
    cut_from = usage_key;
    cut_to = usage_comma < obj_end && ev[usage_comma] == ','
                 ? skip_ws(ev, usage_comma + 1, obj_end)
                 : usage_end;
  }
  memmove(ev + cut_from, ev + cut_to, len - cut_to);
  return len - (cut_to - cut_from);
}

char *lm_inject_model(const char *body, size_t len, const char *model,
                      size_t *out_len) {
  size_t i = skip_ws(body, 0, len);
  if (i >= len || body[i] != '{')
    return NULL;
  size_t end = skip_value(body, i, len);
  if (end > len)
    return NULL;
  struct member m;
  for (size_t p = skip_ws(body, i + 1, end); p < end && body[p] == '"';
       p = after_member(body, &m, end)) {
    if (!read_member(body, p, end, &m))
      return NULL;
    if (!value_is(body, m.key, m.key_end, "\"model\"") || body[m.val] != '"')
      continue;
    /* Model names are plain text; anything needing escapes is refused. */
    size_t ml = strlen(model);
    for (size_t k = 0; k < ml; k++)
      if (model[k] == '"' || model[k] == '\\' || (unsigned char)model[k] < 0x20)
        return NULL;
    size_t v = m.val, ve = m.val_end;
    size_t n = len - (ve - v) + ml + 2;
    char *o = malloc(n + 1);
    if (!o)
      return NULL;
    memcpy(o, body, v);
    o[v] = '"';
    memcpy(o + v + 1, model, ml);
    o[v + 1 + ml] = '"';
    memcpy(o + v + 2 + ml, body + ve, len - ve);
    o[n] = 0;
    *out_len = n;
    return o;
  }
  return NULL;
}

/* ---- the stream ------------------------------------------------------- */

void lm_inject_filter_init(struct lm_inject_filter *f) {
  f->out = f->n = f->scan = 0;
  f->line_empty = true;
  f->prev_cr = false;
  f->passthrough = false;
}

bool lm_inject_filter_pending(const struct lm_inject_filter *f) {
  return f->out > 0;
}

/* Emits buf[0..out); on success drops it from the buffer. */
static size_t drain(struct lm_inject_filter *f, lm_inject_emit_fn emit,
                    void *ctx, bool *stopped) {
  if (!f->out)
    return 0;
  size_t r = emit(ctx, f->buf, f->out);
  if (r != f->out) {
    *stopped = true;
    return r;
  }
  memmove(f->buf, f->buf + f->out, f->n - f->out);
  f->n -= f->out;
  f->scan -= f->out;
  f->out = 0;
  return 0;
}

/* Advances the line scanner over c; true when c ends an empty line (the
 * end of an event). CR, LF and CRLF all end a line. */
static bool scan_byte(struct lm_inject_filter *f, char c) {
  if (c == '\n' && f->prev_cr) {
    f->prev_cr = false;
    return false; /* the LF of a CRLF: the line already ended at CR */
  }
  f->prev_cr = c == '\r';
  if (c == '\r' || c == '\n') {
    bool end = f->line_empty;
    f->line_empty = true;
    return end;
  }
  f->line_empty = false;
  return false;
}

size_t lm_inject_filter_feed(struct lm_inject_filter *f, const char *p,
                             size_t n, lm_inject_emit_fn emit, void *ctx,
                             bool *stopped) {
  *stopped = false;
  f->taken = 0;
  for (;;) {
    size_t r = drain(f, emit, ctx, stopped);
    if (*stopped)
      return r;
    /* The next complete event among the bytes held, if any. */
    bool event = false;
    while (f->scan < f->n && !event)
      event = scan_byte(f, f->buf[f->scan++]);
    if (event) {
      size_t ev = f->scan;
      size_t nl = lm_inject_transform_event(f->buf, ev);
      memmove(f->buf + nl, f->buf + ev, f->n - ev);
      f->n -= ev - nl;
      f->scan = nl;
      f->out = nl;
      continue;
    }
    if (n == 0)
      return 0;
    if (f->passthrough) {
      /* An event too big to hold streams through untouched to its end. */
      size_t k = 0;
      bool end = false;
      while (k < n && !end)
        end = scan_byte(f, p[k++]);
      size_t got = emit(ctx, p, k);
      if (got != k) {
        *stopped = true;
        return got; /* nothing of these k bytes counts as taken */
      }
      p += k;
      n -= k;
      f->taken += k;
      if (end)
        f->passthrough = false;
      continue;
    }
    size_t room = LM_INJECT_MAX - f->n;
    if (room == 0) {
      f->out = f->n; /* oversized: flush raw and pass the rest through */
      f->passthrough = true;
      continue;
    }
    size_t take = n < room ? n : room;
    memcpy(f->buf + f->n, p, take);
    f->n += take;
    p += take;
    n -= take;
    f->taken += take;
  }
}

size_t lm_inject_filter_finish(struct lm_inject_filter *f,
                               lm_inject_emit_fn emit, void *ctx,
                               bool *stopped) {
  size_t r = lm_inject_filter_feed(f, NULL, 0, emit, ctx, stopped);
  if (*stopped)
    return r;
  f->out = f->n; /* an event that never ended: hand it over as it is */
  return drain(f, emit, ctx, stopped);
}
