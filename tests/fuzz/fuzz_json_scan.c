/* fuzz_json_scan.c — libFuzzer target for the JSON push scanner and the
 * exact number conversions.
 *
 * Input: [flags][split seed] text...
 * Checks: no crash/UB; every path accessor is safe inside every callback;
 * the event trace is identical whole and in pieces; number conversions
 * agree with strtoull on plain digit strings and never accept what the
 * scanner would not report as a number; and lm_json_walk_object, when it
 * accepts an object, was shown every top-level key the scanner reports
 * (in order, byte for byte where neither escapes) and ends where the
 * scanner ends the document, if it does; lm_json_walk_valid_object accepts
 * only what the scanner reads to its end without error; and
 * lm_json_walk_events, when it accepts an object, gave the scanner's
 * events (keys, container begins, scalars) in order with the same depths,
 * raw lengths, texts and keys at every level, where escapes or truncation
 * leave them comparable.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_split.h"
#include "json_scan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct digest {
  uint64_t h;
  uint64_t events;
};

static void mix(struct digest *d, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    d->h = (d->h ^ b[i]) * 1099511628211ull;
}

static void on_event(void *ctx, const struct lm_json_scan *s,
                     enum lm_json_event ev, const char *text, size_t len) {
  struct digest *d = ctx;
  d->events++;
  mix(d, &ev, sizeof ev);
  size_t depth = lm_json_depth(s);
  mix(d, &depth, sizeof depth);
  for (size_t i = 0; i <= depth + 1; i++) { /* one past the end, too */
    size_t klen = 0;
    const char *k = lm_json_key(s, i, &klen);
    if (k) {
      if (klen > LM_JSON_KEY_MAX)
        abort();
      mix(d, k, klen);
    }
    uint32_t idx = lm_json_index(s, i);
    bool arr = lm_json_level_is_array(s, i);
    mix(d, &idx, sizeof idx);
    mix(d, &arr, sizeof arr);
  }
  (void)lm_json_path_is(s, "usage.iterations[].input_tokens");
  if (text)
    mix(d, text, len);
  if (ev == LM_JSON_STRING) {
    if (len > LM_JSON_STR_MAX)
      abort();
    uint64_t raw = lm_json_value_raw_len(s);
    mix(d, &raw, sizeof raw);
  }
  if (ev == LM_JSON_NUMBER) {
    uint64_t u;
    int64_t v;
    bool ok = lm_json_parse_u64(text, len, &u);
    mix(d, &ok, sizeof ok);
    ok = lm_json_parse_scaled(text, len, 12, &v);
    mix(d, &ok, sizeof ok);
  }
}

static void run(struct digest *d, unsigned flags, const char *p, size_t n,
                uint32_t seed) {
  struct lm_json_scan s;
  memset(d, 0, sizeof *d);
  d->h = 1469598103934665603ull;
  lm_json_init(&s, flags, on_event, d);
  struct fuzz_split sp = {seed};
  size_t at = 0;
  while (at < n) {
    size_t k = fuzz_next_piece(&sp, n - at);
    size_t used = lm_json_feed(&s, p + at, k);
    if (used > k || (used < k && !lm_json_failed(&s)))
      abort();
    at += k;
  }
  lm_json_finish(&s);
}

static void check_numbers(const char *p, size_t n) {
  if (n == 0 || n > 40)
    return;
  uint64_t u;
  bool ok = lm_json_parse_u64(p, n, &u);
  bool digits = true;
  for (size_t i = 0; i < n; i++)
    digits &= p[i] >= '0' && p[i] <= '9';
  if (digits) {
    char buf[48];
    memcpy(buf, p, n);
    buf[n] = '\0';
    errno = 0;
    unsigned long long ref = strtoull(buf, NULL, 10);
    bool ref_ok = errno != ERANGE;
    if (ok != ref_ok || (ok && u != ref))
      abort();
  }
  int64_t v;
  if (lm_json_parse_scaled(p, n, 0, &v) && digits && ok && (uint64_t)v != u)
    abort();
}

#define WALK_KEYS 64
struct walk_keys {
  size_t n;
  const char *k[WALK_KEYS];
  size_t len[WALK_KEYS];
  bool esc[WALK_KEYS];
};

static bool walk_key(void *ctx, const char *key, size_t klen, const char *v,
                     size_t vlen, bool escaped) {
  struct walk_keys *w = ctx;
  (void)v;
  (void)vlen;
  if (w->n < WALK_KEYS) {
    w->k[w->n] = key;
    w->len[w->n] = klen;
    w->esc[w->n] = escaped;
  }
  w->n++;
  return true;
}

struct scan_keys {
  const struct walk_keys *w;
  size_t n, at, end_at;
  bool bad;
};

static void scan_key(void *ctx, const struct lm_json_scan *s,
                     enum lm_json_event ev, const char *text, size_t len) {
  struct scan_keys *c = ctx;
  if (ev == LM_JSON_DOC_END && c->end_at == 0)
    c->end_at = c->at + 1;
  if (ev != LM_JSON_KEY || lm_json_depth(s) != 1 || c->end_at)
    return;
  size_t i = c->n++;
  if (i >= c->w->n) {
    c->bad = true; /* a key the walk never showed */
    return;
  }
  if (i < WALK_KEYS && !c->w->esc[i] && text &&
      (len > c->w->len[i] || memcmp(text, c->w->k[i], len) != 0))
    c->bad = true;
}

/* valid: lm_json_walk_valid_object, which also promises the scanner reads
 * the object to its end without error. */
static void check_walk(const char *p, size_t n, bool valid) {
  struct walk_keys w = {0};
  size_t k = valid ? lm_json_walk_valid_object(p, n, walk_key, &w)
                   : lm_json_walk_object(p, n, walk_key, &w);
  if (k == 0)
    return;
  if (k > n)
    abort();
  struct scan_keys c = {.w = &w};
  struct lm_json_scan s;
  lm_json_init(&s, LM_JSON_REPORT_KEYS, scan_key, &c);
  for (c.at = 0; c.at < n && !lm_json_failed(&s) && !c.end_at; c.at++)
    lm_json_feed(&s, p + c.at, 1);
  if (c.bad || (c.end_at && c.end_at != k))
    abort();
  if (valid && c.end_at != k)
    abort(); /* accepted as valid, but the scanner failed or did not end */
}

/* ---- lm_json_walk_events against the scanner ------------------------------ */

#define WALK_EVENTS 256
struct walk_event {
  enum lm_json_event ev;
  size_t depth, len;
  const char *text;
  bool escaped;
  const char *key[LM_JSON_MAX_DEPTH];
  size_t klen[LM_JSON_MAX_DEPTH];
};
struct walk_events {
  size_t n, at;
  bool bad;
  struct walk_event e[WALK_EVENTS];
};

static bool walk_event(void *ctx, const struct lm_json_path *pa,
                       enum lm_json_event ev, const char *t, size_t n,
                       bool escaped) {
  struct walk_events *w = ctx;
  if (pa->depth > LM_JSON_MAX_DEPTH)
    abort();
  if (w->n < WALK_EVENTS) {
    struct walk_event *e = &w->e[w->n];
    e->ev = ev;
    e->depth = pa->depth;
    e->text = t;
    e->len = n;
    e->escaped = escaped;
    for (size_t i = 0; i < pa->depth; i++) {
      e->key[i] = pa->key[i];
      e->klen[i] = pa->klen[i];
    }
  }
  w->n++;
  return true;
}

static void scan_event(void *ctx, const struct lm_json_scan *s,
                       enum lm_json_event ev, const char *text, size_t len) {
  struct walk_events *w = ctx;
  if (ev == LM_JSON_DOC_BEGIN || ev == LM_JSON_DOC_END ||
      ev == LM_JSON_OBJECT_END || ev == LM_JSON_ARRAY_END || w->bad)
    return;
  size_t i = w->at++;
  if (i >= w->n) {
    w->bad = true; /* an event the walk did not give */
    return;
  }
  if (i >= WALK_EVENTS)
    return;
  const struct walk_event *e = &w->e[i];
  bool str = ev == LM_JSON_STRING || ev == LM_JSON_KEY;
  if (e->ev != ev || e->depth != lm_json_depth(s) ||
      (str && e->len != lm_json_value_raw_len(s)))
    w->bad = true;
  /* texts: as written, for a number, string or key neither escaped nor
   * truncated */
  bool plain = !e->escaped && !lm_json_value_truncated(s) && text;
  if ((ev == LM_JSON_NUMBER || str) && plain &&
      (len != e->len || memcmp(text, e->text, len) != 0))
    w->bad = true;
  for (size_t l = 0; l < e->depth && l < LM_JSON_MAX_DEPTH; l++) {
    size_t klen;
    const char *k = lm_json_key(s, l, &klen);
    if ((e->key[l] == NULL) != lm_json_level_is_array(s, l))
      w->bad = true;
    if (k && e->key[l] && !memchr(e->key[l], '\\', e->klen[l]) &&
        (klen != e->klen[l] || memcmp(k, e->key[l], klen) != 0))
      w->bad = true;
  }
}

static void check_events(const char *p, size_t n) {
  static struct walk_events w;
  w.n = w.at = 0;
  w.bad = false;
  size_t k = lm_json_walk_events(p, n, walk_event, &w);
  if (k == 0)
    return;
  if (k > n)
    abort();
  struct lm_json_scan s;
  lm_json_init(&s, LM_JSON_REPORT_KEYS, scan_event, &w);
  lm_json_feed(&s, p, k);
  lm_json_finish(&s);
  if (lm_json_failed(&s) || w.bad || w.at != w.n)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  unsigned flags = data[0] & 7u;
  uint32_t seed = 1 + data[1] * 2654435761u;
  const char *p = (const char *)data + 2;
  size_t n = size - 2;
  struct digest a, b;
  run(&a, flags, p, n, 0);
  run(&b, flags, p, n, seed);
  if (a.h != b.h || a.events != b.events)
    abort(); /* resumable at any byte */
  check_numbers(p, n);
  check_walk(p, n, false);
  check_walk(p, n, true);
  check_events(p, n);
  return 0;
}
