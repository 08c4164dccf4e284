/* json_scan.c — resumable push scanner for JSON (see json_scan.h).
 *
 * A byte-driven state machine: every piece of state that a chunk boundary
 * can cut through (string, escape, \u digits, number, literal, expected
 * token) is a field of struct lm_json_scan, so lm_json_feed can stop after
 * any byte and resume on the next call. LLM response bodies are mostly
 * string bytes (generated text, obfuscation padding, base64, encrypted
 * reasoning), so the string state is the hot path: it jumps from quote to
 * backslash with lm_find2 (16/32 bytes per step) and copies only the first
 * LM_JSON_STR_MAX bytes. The structural states run byte by byte, which is
 * cheap because structure is a small part of the input.
 *
 * This file is the scanner: its state, path access and the tokeniser. Work
 * on bytes already whole in memory (the raw-byte object walks and their
 * validation, the exact number conversions, escaping) is json_walk.c; the
 * byte helpers both use are static inline in json_internal.h.
 *
 * Never allocates, never prints, never reads outside [p, p + n).
 */
#include "json_scan.h"

#include <string.h>

#include "json_internal.h"

enum {
  ST_START,       /* expecting the top-level value */
  ST_VALUE,       /* expecting a value (after ':' or ',' in an array) */
  ST_ARRAY_FIRST, /* after '[': a value or ']' */
  ST_OBJ_FIRST,   /* after '{': a key or '}' */
  ST_KEY,         /* after ',' in an object: a key */
  ST_COLON,       /* after a key */
  ST_AFTER_VALUE, /* ',' or the closing bracket */
  ST_STRING,
  ST_NUMBER,
  ST_LITERAL,
  ST_SKIP, /* inside a value the consumer asked to skip */
  ST_DONE, /* top-level value complete */
  ST_ERROR
};

enum { N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

static const char *const literals[3] = {"true", "false", "null"};
static const uint8_t literal_len[3] = {4, 5, 4};
static const enum lm_json_event literal_ev[3] = {LM_JSON_TRUE, LM_JSON_FALSE,
                                                 LM_JSON_NULL};

const char *lm_find2(const char *p, const char *end, char a, char b) {
  return lm_find2_inline(p, end, a, b);
}

void lm_json_init(struct lm_json_scan *s, unsigned flags, lm_json_cb cb,
                  void *ctx) {
  memset(s, 0, sizeof *s);
  s->flags = flags;
  s->cb = cb;
  s->ctx = ctx;
  s->state = ST_START;
  s->key_depth = LM_JSON_MAX_DEPTH;
  s->string_depth = 255;
  s->event_depth = 255;
}

void lm_json_set_depth_limits(struct lm_json_scan *s, unsigned key_depth,
                              unsigned string_depth) {
  s->key_depth = (uint8_t)(key_depth < LM_JSON_MAX_DEPTH ? key_depth
                                                         : LM_JSON_MAX_DEPTH);
  s->string_depth = (uint8_t)(string_depth < 255 ? string_depth : 255);
  s->event_depth = s->key_depth;
}

void lm_json_set_skip(struct lm_json_scan *s, lm_json_skip_fn fn) {
  s->skip = fn;
}

void lm_json_reset(struct lm_json_scan *s) {
  s->state = ST_START;
  s->depth = 0;
  s->base = 0;
  s->esc = 0;
}

bool lm_json_failed(const struct lm_json_scan *s) {
  return s->state == ST_ERROR;
}

bool lm_json_between_elements(const struct lm_json_scan *s) {
  return s->base == 1 && s->depth == 1 &&
         (s->state == ST_ARRAY_FIRST || s->state == ST_VALUE);
}

bool lm_json_after_element(const struct lm_json_scan *s) {
  return s->base == 1 && s->depth == 1 && s->state == ST_AFTER_VALUE;
}

void lm_json_element_crossed(struct lm_json_scan *s) {
  s->state = ST_AFTER_VALUE; /* as value_done leaves an element */
}

bool lm_json_in_split_array(const struct lm_json_scan *s) {
  return s->base == 1 && s->state != ST_ERROR;
}

bool lm_json_at_start(const struct lm_json_scan *s) {
  return s->state == ST_START && s->depth == 0;
}

bool lm_json_idle(const struct lm_json_scan *s) {
  return s->state == ST_START || s->state == ST_DONE;
}

/* ---- path access -------------------------------------------------------- */

size_t lm_json_depth(const struct lm_json_scan *s) {
  return (size_t)(s->depth - s->base);
}

bool lm_json_level_is_array(const struct lm_json_scan *s, size_t level) {
  size_t abs = level + s->base;
  if (abs >= s->depth)
    return false;
  return (s->is_array[abs >> 3] >> (abs & 7)) & 1;
}

const char *lm_json_key(const struct lm_json_scan *s, size_t level,
                        size_t *len) {
  size_t abs = level + s->base;
  if (abs >= s->depth || abs >= s->key_depth ||
      lm_json_level_is_array(s, level) || s->frames[abs].key_trunc)
    return NULL;
  *len = s->frames[abs].key_len;
  return s->frames[abs].key;
}

bool lm_json_key_is(const struct lm_json_scan *s, size_t level,
                    const char *key) {
  size_t len;
  const char *k = lm_json_key(s, level, &len);
  return k && lm_json_key_equals(k, len, key);
}

uint32_t lm_json_index(const struct lm_json_scan *s, size_t level) {
  size_t abs = level + s->base;
  if (abs >= s->depth || abs >= LM_JSON_MAX_DEPTH)
    return 0;
  return s->frames[abs].index;
}

bool lm_json_path_is(const struct lm_json_scan *s, const char *pat) {
  size_t depth = lm_json_depth(s);
  for (size_t level = 0; level < depth; level++) {
    if (*pat == '\0')
      return false;
    if (*pat == '[') {
      if (pat[1] != ']' || !lm_json_level_is_array(s, level))
        return false;
      pat += 2;
    } else {
      size_t klen;
      const char *k = lm_json_key(s, level, &klen);
      if (!k)
        return false;
      for (size_t i = 0; i < klen; i++) /* stops at the pattern's NUL too */
        if (pat[i] != k[i] || pat[i] == '\0')
          return false;
      pat += klen;
      if (*pat != '.' && *pat != '[' && *pat != '\0')
        return false;
    }
    if (*pat == '.')
      pat++;
  }
  return *pat == '\0';
}

size_t lm_json_path_len(const struct lm_json_scan *s) {
  size_t depth = lm_json_depth(s), len = 0;
  for (size_t level = 0; level < depth; level++) {
    size_t klen;
    if (lm_json_level_is_array(s, level))
      len += 2; /* "[]" */
    else if (lm_json_key(s, level, &klen))
      len += klen + (level > 0); /* a '.' before every key but the first */
    else
      return 0;
  }
  return len;
}

bool lm_json_path_equals(const struct lm_json_scan *s, const char *pat,
                         size_t len) {
  /* len is the path's own length (lm_json_path_len), so every piece
   * compared lies inside the pattern: no read past its end. */
  if (len == 0 || lm_json_path_len(s) != len)
    return false;
  size_t depth = lm_json_depth(s);
  for (size_t level = 0; level < depth; level++) {
    if (lm_json_level_is_array(s, level)) {
      if (pat[0] != '[' || pat[1] != ']')
        return false;
      pat += 2;
      continue;
    }
    if (level > 0 && *pat++ != '.')
      return false;
    size_t klen = 0;
    const char *k = lm_json_key(s, level, &klen);
    if (!k || memcmp(pat, k, klen) != 0)
      return false;
    pat += klen;
  }
  return true;
}

bool lm_json_value_truncated(const struct lm_json_scan *s) {
  return s->state == ST_NUMBER ? s->num_trunc : s->str_trunc;
}

uint64_t lm_json_value_raw_len(const struct lm_json_scan *s) {
  return s->str_raw;
}

/* ---- tokeniser -------------------------------------------------------- */

static inline void emit(struct lm_json_scan *s, enum lm_json_event ev,
                        const char *t, size_t n) {
  /* Nothing deeper than the stored keys can match a path: not reported. */
  if ((unsigned)(s->depth - s->base) > s->event_depth &&
      ev != LM_JSON_DOC_BEGIN && ev != LM_JSON_DOC_END && ev != LM_JSON_ERROR)
    return;
  s->cb(s->ctx, s, ev, t, n);
}

static void fail(struct lm_json_scan *s) {
  if (s->state != ST_ERROR) {
    s->state = ST_ERROR;
    emit(s, LM_JSON_ERROR, NULL, 0);
  }
}

const char *lm_json_skip_ws(const char *p, const char *end) {
  return lm_json_skip_ws_inline(p, end);
}

static inline bool top_is_array(const struct lm_json_scan *s) {
  unsigned d = (unsigned)s->depth - 1;
  return (s->is_array[d >> 3] >> (d & 7)) & 1;
}

/* A value (scalar or container) just completed at the current depth. */
static void value_done(struct lm_json_scan *s) {
  if (s->depth == s->base)
    emit(s, LM_JSON_DOC_END, NULL, 0);
  s->state = s->depth == 0 ? ST_DONE : ST_AFTER_VALUE;
}

static bool push(struct lm_json_scan *s, bool array) {
  unsigned d = s->depth;
  if (d >= LM_JSON_NEST_LIMIT) {
    fail(s);
    return false;
  }
  if (array)
    s->is_array[d >> 3] |= (uint8_t)(1u << (d & 7));
  else
    s->is_array[d >> 3] &= (uint8_t) ~(1u << (d & 7));
  if (d < LM_JSON_MAX_DEPTH) {
    s->frames[d].index = 0;
    s->frames[d].key_len = 0;
    s->frames[d].key_trunc = true; /* no key until one is read */
  }
  s->depth++;
  return true;
}

static void close_container(struct lm_json_scan *s, char c) {
  bool array = top_is_array(s);
  if ((c == ']') != array) {
    fail(s);
    return;
  }
  s->depth--;
  if (s->base && s->depth == 0) { /* end of a split root array */
    s->base = 0;
    s->state = ST_DONE;
    return;
  }
  emit(s, array ? LM_JSON_ARRAY_END : LM_JSON_OBJECT_END, NULL, 0);
  value_done(s);
}

/* First byte of a value (c is not whitespace). */
static void begin_value(struct lm_json_scan *s, char c) {
  if (c == '[' && s->depth == 0 && (s->flags & LM_JSON_SPLIT_ROOT_ARRAY)) {
    if (push(s, true)) {
      s->base = 1;
      s->state = ST_ARRAY_FIRST;
    }
    return;
  }
  if (s->depth == s->base)
    emit(s, LM_JSON_DOC_BEGIN, NULL, 0);
  if ((c == '{' || c == '[') && s->skip && s->depth > s->base &&
      s->skip(s->ctx, s)) {
    s->skip_depth = 1;
    s->skip_str = s->skip_esc = false;
    s->state = ST_SKIP;
    return;
  }
  switch (c) {
  case '{':
    emit(s, LM_JSON_OBJECT_BEGIN, NULL, 0);
    if (push(s, false))
      s->state = ST_OBJ_FIRST;
    return;
  case '[':
    emit(s, LM_JSON_ARRAY_BEGIN, NULL, 0);
    if (push(s, true))
      s->state = ST_ARRAY_FIRST;
    return;
  case '"':
    s->str_key = 0;
    s->str_len = 0;
    s->str_quiet = (unsigned)(s->depth - s->base) > s->string_depth;
    s->str_trunc = s->str_quiet; /* quiet strings are never copied */
    s->str_raw = 0;
    s->esc = 0;
    s->state = ST_STRING;
    return;
  case 't':
  case 'f':
  case 'n':
    s->lit = c == 't' ? 0 : c == 'f' ? 1 : 2;
    s->lit_pos = 1;
    s->state = ST_LITERAL;
    return;
  case '-':
    s->num_state = N_MINUS;
    break;
  case '0':
    s->num_state = N_ZERO;
    break;
  default:
    if (c >= '1' && c <= '9') {
      s->num_state = N_INT;
      break;
    }
    fail(s);
    return;
  }
  s->num[0] = c;
  s->num_len = 1;
  s->num_trunc = false;
  s->state = ST_NUMBER;
}

static void begin_key(struct lm_json_scan *s) {
  unsigned d = (unsigned)s->depth - 1;
  if (d < LM_JSON_MAX_DEPTH) {
    s->frames[d].key_len = 0;
    s->frames[d].key_trunc = false;
  }
  s->str_key = 1;
  s->str_len = 0;
  s->str_trunc = false;
  s->str_raw = 0;
  s->esc = 0;
  s->state = ST_STRING;
}

/* Append decoded string bytes to the key or value buffer (bounded). */
static inline void str_append(struct lm_json_scan *s, const char *p, size_t n) {
  if (s->str_key) {
    unsigned d = (unsigned)s->depth - 1;
    if (d >= s->key_depth)
      return;
    struct lm_json_frame *f = &s->frames[d];
    if (f->key_trunc)
      return;
    size_t room = (size_t)(LM_JSON_KEY_MAX - f->key_len);
    if (n > room) { /* keep the prefix, whatever the chunking was */
      n = room;
      f->key_trunc = true;
    }
    char *k = f->key + f->key_len; /* keys are short: no libc call */
    for (size_t i = 0; i < n; i++)
      k[i] = p[i];
    f->key_len = (uint8_t)(f->key_len + n);
    return;
  }
  if (s->str_trunc)
    return;
  size_t room = LM_JSON_STR_MAX - s->str_len;
  if (n > room) {
    memcpy(s->str + s->str_len, p, room);
    s->str_len = LM_JSON_STR_MAX;
    s->str_trunc = true;
    return;
  }
  memcpy(s->str + s->str_len, p, n);
  s->str_len = (uint16_t)(s->str_len + n);
}

static void append_codepoint(struct lm_json_scan *s, uint32_t cp) {
  char u[3];
  size_t n;
  if (cp < 0x80) {
    u[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    u[0] = (char)(0xC0 | (cp >> 6));
    u[1] = (char)(0x80 | (cp & 0x3F));
    n = 2;
  } else {
    u[0] = (char)(0xE0 | (cp >> 12));
    u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[2] = (char)(0x80 | (cp & 0x3F));
    n = 3;
  }
  str_append(s, u, n);
}

static void string_done(struct lm_json_scan *s) {
  if (s->str_key) {
    s->state = ST_COLON;
    if (s->flags & LM_JSON_REPORT_KEYS) {
      unsigned d = (unsigned)s->depth - 1;
      if (d < s->key_depth) {
        s->str_trunc = s->frames[d].key_trunc;
        emit(s, LM_JSON_KEY, s->frames[d].key, s->frames[d].key_len);
      } else {
        s->str_trunc = true;
        emit(s, LM_JSON_KEY, NULL, 0);
      }
    }
    return;
  }
  s->state = ST_AFTER_VALUE; /* so lm_json_value_truncated reads str_trunc */
  if (!s->str_quiet)
    emit(s, LM_JSON_STRING, s->str, s->str_len);
  value_done(s);
}

/* Inside a string: returns where to continue. */
static const char *scan_string(struct lm_json_scan *s, const char *p,
                               const char *end) {
  while (p < end) {
    if (s->esc) {
      char c = *p++;
      s->str_raw++;
      if (s->esc == 1) {
        char d;
        switch (c) {
        case '"':
          d = '"';
          break;
        case '\\':
          d = '\\';
          break;
        case '/':
          d = '/';
          break;
        case 'b':
          d = '\b';
          break;
        case 'f':
          d = '\f';
          break;
        case 'n':
          d = '\n';
          break;
        case 'r':
          d = '\r';
          break;
        case 't':
          d = '\t';
          break;
        case 'u':
          s->esc = 2;
          s->ucp = 0;
          continue;
        default:
          fail(s);
          return p;
        }
        s->esc = 0;
        str_append(s, &d, 1);
        continue;
      }
      unsigned h;
      if (c >= '0' && c <= '9')
        h = (unsigned)(c - '0');
      else if (c >= 'a' && c <= 'f')
        h = (unsigned)(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        h = (unsigned)(c - 'A' + 10);
      else {
        fail(s);
        return p;
      }
      s->ucp = (s->ucp << 4) | h;
      if (++s->esc == 6) {
        s->esc = 0;
        append_codepoint(s, s->ucp);
      }
      continue;
    }
    const char *q = lm_find2_inline(p, end, '"', '\\');
    const char *stop = q ? q : end;
    if (stop > p) {
      size_t run = (size_t)(stop - p);
      s->str_raw += run;
      if (s->str_key || !s->str_trunc)
        str_append(s, p, run);
    }
    if (!q)
      return end;
    p = q + 1;
    if (*q == '\\') {
      s->esc = 1;
      s->str_raw++;
      continue;
    }
    string_done(s);
    return p;
  }
  return p;
}

/* Completes the pending number (its text is grammar-checked). */
static void number_done(struct lm_json_scan *s) {
  uint8_t ns = s->num_state;
  if (ns != N_ZERO && ns != N_INT && ns != N_FRAC && ns != N_EXP) {
    fail(s);
    return;
  }
  emit(s, LM_JSON_NUMBER, s->num, s->num_len);
  value_done(s);
}

/* Inside a number: consumes its bytes, stops at the first other byte. */
static const char *scan_number(struct lm_json_scan *s, const char *p,
                               const char *end) {
  for (; p < end; p++) {
    char c = *p;
    bool digit = c >= '0' && c <= '9';
    uint8_t ns = s->num_state, next;
    switch (ns) {
    case N_MINUS:
      next = c == '0' ? N_ZERO : digit ? N_INT : 255;
      break;
    case N_ZERO:
      next = c == '.'                 ? N_DOT
             : (c == 'e' || c == 'E') ? N_E
             : digit                  ? 255
                                      : 254;
      break;
    case N_INT:
      next = digit                    ? N_INT
             : c == '.'               ? N_DOT
             : (c == 'e' || c == 'E') ? N_E
                                      : 254;
      break;
    case N_DOT:
      next = digit ? N_FRAC : 255;
      break;
    case N_FRAC:
      next = digit ? N_FRAC : (c == 'e' || c == 'E') ? N_E : 254;
      break;
    case N_E:
      next = digit ? N_EXP : (c == '+' || c == '-') ? N_ESIGN : 255;
      break;
    case N_ESIGN:
      next = digit ? N_EXP : 255;
      break;
    default: /* N_EXP */
      next = digit ? N_EXP : 254;
      break;
    }
    if (next == 254) { /* the number ended before this byte */
      number_done(s);
      return p;
    }
    if (next == 255) {
      fail(s);
      return p + 1;
    }
    s->num_state = next;
    if (s->num_len < LM_JSON_NUM_MAX)
      s->num[s->num_len++] = c;
    else
      s->num_trunc = true;
  }
  return p;
}

/* Inside a skipped value: only string ends and brackets matter. Strings
 * are crossed with the vectorised search; structure bytes one by one. */
static const char *skip_scan(struct lm_json_scan *s, const char *p,
                             const char *end) {
  while (p < end) {
    if (s->skip_str) {
      if (s->skip_esc) {
        s->skip_esc = false;
        p++;
        continue;
      }
      const char *q = lm_find2_inline(p, end, '"', '\\');
      if (!q)
        return end;
      p = q + 1;
      if (*q == '\\')
        s->skip_esc = true;
      else
        s->skip_str = false;
      continue;
    }
    char c = *p++;
    if (c == '"') {
      s->skip_str = true;
    } else if (c == '{' || c == '[') {
      if (++s->skip_depth >= LM_JSON_NEST_LIMIT) {
        fail(s);
        return p;
      }
    } else if (c == '}' || c == ']') {
      if (--s->skip_depth == 0) {
        value_done(s);
        return p;
      }
    }
  }
  return p;
}

size_t lm_json_feed(struct lm_json_scan *s, const char *buf, size_t n) {
  const char *p = buf, *end = buf + n;
  while (p < end) {
    switch (s->state) {
    case ST_STRING:
      p = scan_string(s, p, end);
      /* Fused: a key's colon and the value's first byte, the common
       * `"key":value` with no whitespace, without a trip round the loop. */
      if (s->state == ST_COLON && p < end && *p == ':') {
        p++;
        s->state = ST_VALUE;
        if (p < end && !lm_json_is_ws(*p)) {
          char c = *p++;
          begin_value(s, c);
          if (s->state == ST_ERROR)
            return (size_t)(p - buf);
        }
      }
      break;
    case ST_NUMBER:
      p = scan_number(s, p, end);
      break;
    case ST_SKIP:
      p = skip_scan(s, p, end);
      if (s->state == ST_ERROR)
        return (size_t)(p - buf);
      break;
    case ST_ERROR:
      return (size_t)(p - buf);
    case ST_LITERAL: {
      const char *lit = literals[s->lit];
      if (*p != lit[s->lit_pos]) {
        fail(s);
        p++;
        break;
      }
      p++;
      if (++s->lit_pos == literal_len[s->lit]) {
        s->state = ST_AFTER_VALUE;
        emit(s, literal_ev[s->lit], lit, literal_len[s->lit]);
        value_done(s);
      }
      break;
    }
    default: {
      p = lm_json_skip_ws(p, end);
      if (p == end)
        break;
      char c = *p++;
      switch (s->state) {
      case ST_DONE:
        if (!(s->flags & LM_JSON_MULTI_DOC)) {
          fail(s);
          break;
        }
        s->state = ST_START;
        /* fall through */
      case ST_START:
      case ST_VALUE:
        begin_value(s, c);
        break;
      case ST_ARRAY_FIRST:
        if (c == ']')
          close_container(s, c);
        else
          begin_value(s, c);
        break;
      case ST_OBJ_FIRST:
        if (c == '}')
          close_container(s, c);
        else if (c == '"')
          begin_key(s);
        else
          fail(s);
        break;
      case ST_KEY:
        if (c == '"')
          begin_key(s);
        else
          fail(s);
        break;
      case ST_COLON:
        if (c == ':')
          s->state = ST_VALUE;
        else
          fail(s);
        break;
      case ST_AFTER_VALUE:
        if (c == ',') {
          if (top_is_array(s)) {
            unsigned d = (unsigned)s->depth - 1;
            if (d < LM_JSON_MAX_DEPTH)
              s->frames[d].index++;
            s->state = ST_VALUE;
          } else {
            s->state = ST_KEY;
          }
        } else if (c == '}' || c == ']') {
          close_container(s, c);
        } else {
          fail(s);
        }
        break;
      default:
        fail(s);
        break;
      }
      if (s->state == ST_ERROR)
        return (size_t)(p - buf);
    }
    }
  }
  return (size_t)(p - buf);
}

void lm_json_finish(struct lm_json_scan *s) {
  if (s->state == ST_NUMBER)
    number_done(s);
}
