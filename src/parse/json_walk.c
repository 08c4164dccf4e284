/* json_walk.c — JSON already whole in memory: the raw-byte object walks
 * and their validation, the exact number conversions, string escaping (see
 * json_scan.h, which declares them with the scanner they answer to).
 *
 * The push scanner (json_scan.c) must cope with a document cut at any
 * byte, so all its state lives in struct lm_json_scan and it runs one byte
 * at a time outside strings. What is here works on a buffer that holds the
 * whole thing and keeps no state: lm_json_walk_object crosses a complete
 * object with pointer arithmetic (strings with the vectorised search,
 * containers by bracket matching), lm_json_walk_valid_object does the same
 * while checking every value against the grammar, lm_json_walk_events
 * validates it too and reports its keys and values by path as the
 * scanner's callback would see them, lm_json_parse_u64 and
 * lm_json_parse_scaled convert a number's text exactly (never through
 * floating point), and lm_json_escape writes a string body. The walks
 * promise to read an object as the scanner would (json_scan.h says how
 * far); the byte helpers both files use are static inline in
 * json_internal.h so that this split costs no calls.
 *
 * Never allocates, never prints, never reads outside [p, p + n).
 */
#include "json_scan.h"

#include <string.h>

#include "json_internal.h"

/* ---- whole-object walk ------------------------------------------------ */

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Past the closing quote of a string whose opening quote is just before p,
 * or NULL if it does not close before end (or, with check, if an escape is
 * one the scanner rejects). Sets *esc on a backslash. */
static const char *walk_string(const char *p, const char *end, bool *esc,
                               bool check) {
  for (;;) {
    const char *q = lm_find2_inline(p, end, '"', '\\');
    if (!q)
      return NULL;
    if (*q == '"')
      return q + 1;
    *esc = true;
    if (end - q < 2)
      return NULL;
    p = q + 2; /* the escaped byte is never a string end */
    if (!check)
      continue;
    if (q[1] == 'u') {
      if (end - q < 6 || !is_hex(q[2]) || !is_hex(q[3]) || !is_hex(q[4]) ||
          !is_hex(q[5]))
        return NULL;
      p = q + 6;
    } else if (!memchr("\"\\/bfnrt", q[1], 8)) {
      return NULL;
    }
  }
}

/* Past the bracket closing the container opened just before p, or NULL.
 * Brackets of either kind count alike, as in a skipped value. */
static const char *walk_container(const char *p, const char *end) {
  unsigned depth = 1;
  while (p < end) {
    char c = *p++;
    if (c == '"') {
      bool esc = false;
      p = walk_string(p, end, &esc, false);
      if (!p)
        return NULL;
    } else if (c == '{' || c == '[') {
      if (++depth >= LM_JSON_NEST_LIMIT)
        return NULL;
    } else if (c == '}' || c == ']') {
      if (--depth == 0)
        return p;
    }
  }
  return NULL;
}

/* ---- validation (lm_json_walk_valid_object) ------------------------------ */

/* Past a number of the JSON grammar at p, or NULL. Something must follow
 * it within the buffer (a complete document never ends on a number). */
static const char *valid_number(const char *p, const char *end) {
  if (p < end && *p == '-')
    p++;
  if (p == end)
    return NULL;
  if (*p == '0') {
    p++;
  } else if (*p >= '1' && *p <= '9') {
    while (p < end && is_digit(*p))
      p++;
  } else {
    return NULL;
  }
  if (p < end && *p == '.') {
    if (++p == end || !is_digit(*p))
      return NULL;
    while (p < end && is_digit(*p))
      p++;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    if (++p < end && (*p == '+' || *p == '-'))
      p++;
    if (p == end || !is_digit(*p))
      return NULL;
    while (p < end && is_digit(*p))
      p++;
  }
  return p < end ? p : NULL;
}

static const char *valid_literal(const char *p, const char *end,
                                 const char *lit, size_t len) {
  return (size_t)(end - p) >= len && memcmp(p, lit, len) == 0 ? p + len : NULL;
}

/* Past one value at p (its first byte), or NULL. *esc: a string value
 * (at this level) held a backslash. */
static const char *valid_value(const char *p, const char *end, unsigned depth,
                               bool *esc) {
  bool inner = false;
  if (p == end)
    return NULL;
  switch (*p) {
  case '"':
    return walk_string(p + 1, end, esc, true);
  case 't':
    return valid_literal(p, end, "true", 4);
  case 'f':
    return valid_literal(p, end, "false", 5);
  case 'n':
    return valid_literal(p, end, "null", 4);
  case '{':
  case '[': {
    bool obj = *p == '{';
    if (depth >= 64)
      return NULL;
    p = lm_json_skip_ws_inline(p + 1, end);
    if (p < end && *p == (obj ? '}' : ']'))
      return p + 1;
    for (;;) {
      if (obj) {
        if (p == end || *p != '"' ||
            !(p = walk_string(p + 1, end, &inner, true)))
          return NULL;
        p = lm_json_skip_ws_inline(p, end);
        if (p == end || *p != ':')
          return NULL;
        p = lm_json_skip_ws_inline(p + 1, end);
      }
      if (!(p = valid_value(p, end, depth + 1, &inner)))
        return NULL;
      p = lm_json_skip_ws_inline(p, end);
      if (p == end)
        return NULL;
      if (*p == (obj ? '}' : ']'))
        return p + 1;
      if (*p != ',')
        return NULL;
      p = lm_json_skip_ws_inline(p + 1, end);
    }
  }
  default:
    return valid_number(p, end);
  }
}

/* The walk; with from > 0, resumed just past a member's value at
 * buf + from (the members before it walked by an earlier call). */
static size_t walk_object(const char *buf, size_t n, lm_json_member_fn fn,
                          lm_json_claim_fn claim, void *ctx, bool valid,
                          size_t from) {
  const char *end = buf + n, *p;
  bool resumed = from > 0;
  if (resumed) {
    if (from >= n)
      return 0;
    p = buf + from;
  } else {
    p = lm_json_skip_ws_inline(buf, end);
    if (p == end || *p++ != '{')
      return 0;
    p = lm_json_skip_ws_inline(p, end);
    if (p < end && *p == '}')
      return (size_t)(p + 1 - buf);
  }
  for (;;) {
    if (!resumed) {
      if (p == end || *p++ != '"')
        return 0;
      const char *key = p;
      bool esc = false;
      p = walk_string(p, end, &esc, valid);
      if (!p || (valid && esc))
        return 0;
      size_t klen = (size_t)(p - 1 - key);
      p = lm_json_skip_ws_inline(p, end);
      if (p == end || *p++ != ':')
        return 0;
      p = lm_json_skip_ws_inline(p, end);
      if (p == end)
        return 0;
      const char *val = p;
      char c = *p++;
      size_t claimed;
      if (valid && claim && (claimed = claim(ctx, key, klen, val, end)) > 0) {
        p = val + claimed; /* read and validated by the claimant */
      } else if (valid) {
        p = valid_value(val, end, 1, &esc);
      } else if (c == '"') {
        p = walk_string(p, end, &esc, false);
      } else if (c == '{' || c == '[') {
        p = walk_container(p, end);
      } else {
        while (p < end && *p != ',' && *p != '}' && !lm_json_is_ws(*p))
          p++;
        if (p == end)
          p = NULL;
      }
      if (!p || !fn(ctx, key, klen, val, (size_t)(p - val), esc))
        return 0;
    }
    resumed = false;
    p = lm_json_skip_ws_inline(p, end);
    if (p == end)
      return 0;
    char c = *p++;
    if (c == '}')
      return (size_t)(p - buf);
    if (c != ',')
      return 0;
    p = lm_json_skip_ws_inline(p, end);
  }
}

size_t lm_json_walk_object(const char *buf, size_t n, lm_json_member_fn fn,
                           void *ctx) {
  return walk_object(buf, n, fn, NULL, ctx, false, 0);
}

size_t lm_json_walk_valid_object(const char *buf, size_t n,
                                 lm_json_member_fn fn, void *ctx) {
  return walk_object(buf, n, fn, NULL, ctx, true, 0);
}

size_t lm_json_walk_valid_object_claim(const char *buf, size_t n,
                                       lm_json_member_fn fn,
                                       lm_json_claim_fn claim, void *ctx) {
  return walk_object(buf, n, fn, claim, ctx, true, 0);
}

size_t lm_json_walk_object_from(const char *buf, size_t n, size_t from,
                                bool valid, lm_json_member_fn fn, void *ctx) {
  return from ? walk_object(buf, n, fn, NULL, ctx, valid, from) : 0;
}

/* ---- event walk (lm_json_walk_events) ------------------------------------ */

struct event_walk {
  lm_json_event_fn fn;
  void *ctx;
  struct lm_json_path path;
};

/* Past the value at p (its first byte), or NULL. */
static const char *event_value(struct event_walk *w, const char *p,
                               const char *end) {
  struct lm_json_path *pa = &w->path;
  const char *q;
  bool esc = false;
  if (p == end)
    return NULL;
  switch (*p) {
  case '"':
    q = walk_string(p + 1, end, &esc, true);
    return q && w->fn(w->ctx, pa, LM_JSON_STRING, p + 1,
                      (size_t)(q - 1 - (p + 1)), esc)
               ? q
               : NULL;
  case 't':
    q = valid_literal(p, end, "true", 4);
    return q && w->fn(w->ctx, pa, LM_JSON_TRUE, p, 4, false) ? q : NULL;
  case 'f':
    q = valid_literal(p, end, "false", 5);
    return q && w->fn(w->ctx, pa, LM_JSON_FALSE, p, 5, false) ? q : NULL;
  case 'n':
    q = valid_literal(p, end, "null", 4);
    return q && w->fn(w->ctx, pa, LM_JSON_NULL, p, 4, false) ? q : NULL;
  case '{':
  case '[':
    break;
  default:
    q = valid_number(p, end);
    return q && w->fn(w->ctx, pa, LM_JSON_NUMBER, p, (size_t)(q - p), false)
               ? q
               : NULL;
  }
  bool obj = *p == '{';
  char close = obj ? '}' : ']';
  if (pa->depth >= LM_JSON_MAX_DEPTH ||
      !w->fn(w->ctx, pa, obj ? LM_JSON_OBJECT_BEGIN : LM_JSON_ARRAY_BEGIN, p, 1,
             false))
    return NULL;
  size_t lvl = pa->depth++;
  pa->key[lvl] = NULL;
  pa->klen[lvl] = 0;
  p = lm_json_skip_ws_inline(p + 1, end);
  if (p < end && *p == close) {
    pa->depth--;
    return p + 1;
  }
  for (;;) {
    if (obj) {
      if (p == end || *p != '"')
        return NULL;
      const char *k = p + 1;
      esc = false;
      if (!(p = walk_string(k, end, &esc, true)))
        return NULL;
      pa->key[lvl] = k;
      pa->klen[lvl] = (size_t)(p - 1 - k);
      if (!w->fn(w->ctx, pa, LM_JSON_KEY, k, pa->klen[lvl], esc))
        return NULL;
      p = lm_json_skip_ws_inline(p, end);
      if (p == end || *p != ':')
        return NULL;
      p = lm_json_skip_ws_inline(p + 1, end);
    }
    if (!(p = event_value(w, p, end)))
      return NULL;
    p = lm_json_skip_ws_inline(p, end);
    if (p == end)
      return NULL;
    if (*p == close) {
      pa->depth--;
      return p + 1;
    }
    if (*p != ',')
      return NULL;
    p = lm_json_skip_ws_inline(p + 1, end);
  }
}

size_t lm_json_walk_events(const char *buf, size_t n, lm_json_event_fn fn,
                           void *ctx) {
  const char *end = buf + n;
  const char *p = lm_json_skip_ws_inline(buf, end);
  if (p == end || *p != '{')
    return 0;
  struct event_walk w;
  w.fn = fn;
  w.ctx = ctx;
  w.path.depth = 0;
  const char *q = event_value(&w, p, end);
  return q ? (size_t)(q - buf) : 0;
}

/* ---- exact number conversion ------------------------------------------ */

static bool mul10_add(uint64_t *v, unsigned d) {
  if (*v > (UINT64_MAX - d) / 10)
    return false;
  *v = *v * 10 + d;
  return true;
}

/* value * 10^decimals as magnitude + sign; *inexact if digits were dropped
 * (rounded half up on magnitude). */
static bool parse_decimal(const char *t, size_t len, unsigned decimals,
                          uint64_t *mag, bool *neg, bool *inexact) {
  const char *p = t, *end = t + len;
  *neg = false;
  if (p < end && *p == '-') {
    *neg = true;
    p++;
  }
  const char *int_start = p;
  while (p < end && *p >= '0' && *p <= '9')
    p++;
  const char *int_end = p;
  if (int_end == int_start)
    return false;
  const char *frac_start = p, *frac_end = p;
  if (p < end && *p == '.') {
    frac_start = ++p;
    while (p < end && *p >= '0' && *p <= '9')
      p++;
    frac_end = p;
    if (frac_end == frac_start)
      return false;
  }
  long exp = 0;
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    bool eneg = false;
    if (p < end && (*p == '+' || *p == '-'))
      eneg = *p++ == '-';
    if (p == end)
      return false;
    for (; p < end && *p >= '0' && *p <= '9'; p++)
      if (exp < 100000)
        exp = exp * 10 + (*p - '0');
    exp = eneg ? -exp : exp;
  }
  if (p != end)
    return false;
  /* Digits of the result's integer part: int digits shifted by exponent. */
  long n_int = (long)(int_end - int_start) + exp + (long)decimals;
  long i = 0;
  uint64_t v = 0;
  bool round_up = false, sticky = false;
  for (const char *q = int_start; q < frac_end; q++) {
    if (q == int_end) {
      q = frac_start;
      if (q == frac_end)
        break;
    }
    unsigned d = (unsigned)(*q - '0');
    if (i < n_int) {
      if (!mul10_add(&v, d))
        return false;
    } else if (i == n_int) {
      round_up = d >= 5;
      sticky |= d != 0;
    } else {
      sticky |= d != 0;
    }
    i++;
  }
  for (; i < n_int && v; i++) /* trailing zeros the exponent adds */
    if (!mul10_add(&v, 0))
      return false;
  if (round_up) {
    if (v == UINT64_MAX)
      return false;
    v++;
  }
  *mag = v;
  *inexact = sticky;
  return true;
}

bool lm_json_parse_u64(const char *text, size_t len, uint64_t *out) {
  /* Token counts are short runs of digits: up to 19 of them always fit. */
  if (len - 1 < 19) {
    uint64_t v = 0;
    size_t i = 0;
    while (i < len && text[i] >= '0' && text[i] <= '9')
      v = v * 10 + (uint64_t)(text[i++] - '0');
    if (i == len) {
      *out = v;
      return true;
    }
  }
  uint64_t mag;
  bool neg, inexact;
  if (!parse_decimal(text, len, 0, &mag, &neg, &inexact) || inexact ||
      (neg && mag))
    return false;
  *out = mag;
  return true;
}

bool lm_json_parse_scaled(const char *text, size_t len, unsigned decimals,
                          int64_t *out) {
  uint64_t mag;
  bool neg, inexact;
  if (decimals > 18 ||
      !parse_decimal(text, len, decimals, &mag, &neg, &inexact))
    return false;
  if (mag > (uint64_t)INT64_MAX)
    return false;
  *out = neg ? -(int64_t)mag : (int64_t)mag;
  return true;
}

/* ---- escaping ----------------------------------------------------------- */

size_t lm_json_escape(char *out, size_t size, const char *in) {
  size_t k = 0;
  if (size == 0)
    return 0;
  for (; in && *in && k + 7 < size; in++) {
    unsigned char ch = (unsigned char)*in;
    if (ch == '"' || ch == '\\') {
      out[k++] = '\\';
      out[k++] = (char)ch;
    } else if (ch < 0x20) {
      static const char hex[] = "0123456789abcdef";
      memcpy(out + k, "\\u00", 4);
      out[k + 4] = hex[ch >> 4];
      out[k + 5] = hex[ch & 15];
      k += 6;
    } else {
      out[k++] = (char)ch;
    }
  }
  out[k] = 0;
  return k;
}
