/* json_scan.h — a resumable push scanner for JSON, reporting values by path.
 *
 * Owns: tokenising JSON fed in arbitrary chunks (split at any byte: inside
 * strings, escapes, \u sequences, numbers, literals, multi-byte UTF-8),
 * tracking where each value sits (a stack of object keys / array indices),
 * and reporting scalars and container boundaries to one callback. Also the
 * exact decimal-text number conversions the extractors need, and the byte
 * search primitive (lm_find2) the framers share.
 *
 * Never allocates, never buffers a document, never prints. All state lives
 * in struct lm_json_scan (fixed size, embedded in the caller's per-transfer
 * state). String values are handed over only when short (LM_JSON_STR_MAX);
 * longer ones are skipped with a vectorised search for '"' and '\\' and
 * reported truncated (their prefix plus their raw length). Keys longer than
 * LM_JSON_KEY_MAX are marked truncated and never match a path. Containers
 * nested deeper than LM_JSON_MAX_DEPTH are still parsed, but their frames
 * are not stored, so nothing below that depth matches a path; nesting
 * beyond LM_JSON_NEST_LIMIT is an error.
 *
 * Two files: json_scan.c is the scanner, json_walk.c what works on bytes
 * already whole in memory (the object walks, the number conversions,
 * lm_json_escape).
 *
 * Malformed input puts the scanner in an error state (one LM_JSON_ERROR
 * event) and the rest of the document is ignored until lm_json_reset().
 * Numbers are reported as their text; convert with lm_json_parse_u64 /
 * lm_json_parse_scaled, which never go through floating point.
 */
#ifndef LM_JSON_SCAN_H
#define LM_JSON_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LM_JSON_MAX_DEPTH 24   /* frames whose key/index is tracked */
#define LM_JSON_NEST_LIMIT 256 /* absolute nesting limit (error beyond) */
#define LM_JSON_KEY_MAX 48     /* longer keys are truncated and never match */
#define LM_JSON_STR_MAX 160    /* longer string values are reported truncated */
#define LM_JSON_NUM_MAX 40     /* longer number texts are reported truncated */

/* Scanner options (flags to lm_json_init). */
#define LM_JSON_MULTI_DOC 1u /* accept further top-level values after one */
/* A top-level array is a stream of documents: each element is a document
 * of its own (paths start below the array; the array's own begin/end are
 * not reported). */
#define LM_JSON_SPLIT_ROOT_ARRAY 2u
#define LM_JSON_REPORT_KEYS 4u /* also report each object key (LM_JSON_KEY) */

enum lm_json_event {
  LM_JSON_DOC_BEGIN,    /* a top-level value starts */
  LM_JSON_DOC_END,      /* the top-level value is complete */
  LM_JSON_OBJECT_BEGIN, /* path names the object (before entering it) */
  LM_JSON_OBJECT_END,   /* path names the object (after leaving it) */
  LM_JSON_ARRAY_BEGIN,
  LM_JSON_ARRAY_END,
  LM_JSON_STRING, /* text: decoded value, or its prefix if truncated */
  LM_JSON_NUMBER, /* text: the number as written (grammar-checked) */
  LM_JSON_TRUE,
  LM_JSON_FALSE,
  LM_JSON_NULL,
  LM_JSON_KEY,  /* only with LM_JSON_REPORT_KEYS: text is the key (its
                   first LM_JSON_KEY_MAX bytes and lm_json_value_truncated
                   if longer; NULL beyond LM_JSON_MAX_DEPTH); the path ends
                   at this member */
  LM_JSON_ERROR /* malformed input; nothing more until lm_json_reset */
};

struct lm_json_scan;

/* One callback for every event. During the call the path of the value is
 * readable with lm_json_depth / lm_json_key / lm_json_index /
 * lm_json_path_is, and for strings lm_json_value_truncated /
 * lm_json_value_raw_len. `text` is not NUL-terminated and only valid
 * during the call. */
typedef void (*lm_json_cb)(void *ctx, const struct lm_json_scan *s,
                           enum lm_json_event ev, const char *text, size_t len);

/* Asked when an object or array value starts below the top level (the
 * path names the value about to start); returning true skips the whole
 * value unreported with a fast scan for brackets and string ends. */
typedef bool (*lm_json_skip_fn)(void *ctx, const struct lm_json_scan *s);

struct lm_json_frame {
  uint32_t index; /* array: index of the current element */
  uint8_t key_len;
  bool key_trunc;
  char key[LM_JSON_KEY_MAX]; /* object: key of the current member */
};

struct lm_json_scan {
  lm_json_cb cb;
  void *ctx;
  unsigned flags;
  uint8_t state;   /* tokeniser state (private) */
  uint8_t str_key; /* the string being read is a key */
  uint8_t esc;     /* escape progress inside a string */
  uint8_t lit;     /* literal being matched */
  uint8_t lit_pos;
  uint8_t num_state;
  uint8_t num_len;
  bool num_trunc;
  bool str_trunc;
  uint16_t str_len;
  uint8_t key_depth;    /* keys stored for levels below this */
  uint8_t string_depth; /* string values reported up to this depth */
  uint8_t event_depth;  /* nothing deeper is reported */
  bool str_quiet;       /* the current string value is not reported */
  uint16_t depth;       /* open containers */
  uint16_t base;        /* 1 while inside a split root array */
  uint32_t ucp;         /* \uXXXX accumulator */
  lm_json_skip_fn skip; /* optional: values not worth tokenising */
  uint16_t skip_depth;  /* open brackets of the value being skipped */
  bool skip_str, skip_esc;
  uint64_t str_raw; /* raw (undecoded) bytes of the current string */
  uint8_t is_array[LM_JSON_NEST_LIMIT / 8]; /* container kind bit stack */
  struct lm_json_frame frames[LM_JSON_MAX_DEPTH];
  char str[LM_JSON_STR_MAX];
  char num[LM_JSON_NUM_MAX];
};

void lm_json_init(struct lm_json_scan *s, unsigned flags, lm_json_cb cb,
                  void *ctx);
/* Optional, for consumers that only look near the top: keys are stored
 * (and paths can match) for the first key_depth levels only, nothing
 * deeper than key_depth is reported, and string values deeper than
 * string_depth are skipped unreported. Default: keys for LM_JSON_MAX_DEPTH
 * levels and every value reported, however deep. */
void lm_json_set_depth_limits(struct lm_json_scan *s, unsigned key_depth,
                              unsigned string_depth);
/* Optional: a predicate naming values to skip whole (see lm_json_skip_fn).
 * A skipped value is only bracket-matched, not validated. */
void lm_json_set_skip(struct lm_json_scan *s, lm_json_skip_fn fn);
/* Forget the current document (and any error); keep flags and callback. */
void lm_json_reset(struct lm_json_scan *s);
/* Feed the next bytes. Returns how many were consumed: n, or fewer when
 * the input became malformed (the offending byte is counted). */
size_t lm_json_feed(struct lm_json_scan *s, const char *p, size_t n);
/* End of input: completes a top-level number still waiting for its end. */
void lm_json_finish(struct lm_json_scan *s);
bool lm_json_failed(const struct lm_json_scan *s);
/* True between documents (nothing started, or the last one complete). */
bool lm_json_idle(const struct lm_json_scan *s);

/* Path access, valid during a callback. Depth counts the containers around
 * the value (0 = top-level value); level 0 is the outermost. */
size_t lm_json_depth(const struct lm_json_scan *s);
bool lm_json_level_is_array(const struct lm_json_scan *s, size_t level);
/* Key at a level inside an object: NULL if an array level, deeper than
 * LM_JSON_MAX_DEPTH, or truncated. */
const char *lm_json_key(const struct lm_json_scan *s, size_t level,
                        size_t *len);
bool lm_json_key_is(const struct lm_json_scan *s, size_t level,
                    const char *key);
/* Is the key k (klen bytes, may hold NULs from \u0000) the NUL-terminated
 * literal lit? Short keys, hot paths: no strlen, no libc call, never reads
 * lit past its terminator. */
static inline bool lm_json_key_equals(const char *k, size_t klen,
                                      const char *lit) {
  size_t i = 0;
  while (i < klen && lit[i] != '\0' && lit[i] == k[i])
    i++;
  return i == klen && lit[i] == '\0';
}
uint32_t lm_json_index(const struct lm_json_scan *s, size_t level);
/* Whole-path match: dot-separated keys, "[]" for any array element, e.g.
 * "usage.prompt_tokens_details.cached_tokens", "usage.iterations[].input_tokens",
 * "[]" (an element of a top-level array). "" matches the top-level value. */
bool lm_json_path_is(const struct lm_json_scan *s, const char *pattern);
/* The length the current path has in that notation (0 if a key on it is
 * truncated or untracked: no pattern matches it then), and the same match
 * as lm_json_path_is for a pattern of exactly that length, by memcmp a
 * level: a table of patterns is filtered by length first, then compared. */
size_t lm_json_path_len(const struct lm_json_scan *s);
bool lm_json_path_equals(const struct lm_json_scan *s, const char *pattern,
                         size_t len);
bool lm_json_value_truncated(
    const struct lm_json_scan *s); /* string/number/key */
uint64_t lm_json_value_raw_len(const struct lm_json_scan *s); /* string/key */

/* One member of an object, as raw bytes: the key between its quotes and
 * the value's text (a string with its quotes, a container with its
 * brackets, or a scalar). `escaped` says the key or a string value holds a
 * backslash, i.e. its decoded text differs from its raw bytes. Return
 * false to stop the walk. */
typedef bool (*lm_json_member_fn)(void *ctx, const char *key, size_t klen,
                                  const char *val, size_t vlen, bool escaped);

/* Between two elements of a split root array (after '[' or ','): where a
 * caller may cross a whole element itself and then call
 * lm_json_element_crossed, which leaves the scanner as if it had read it. */
bool lm_json_between_elements(const struct lm_json_scan *s);
/* Just after an element of a split root array (a ',' or the ']' next). */
bool lm_json_after_element(const struct lm_json_scan *s);
void lm_json_element_crossed(struct lm_json_scan *s);
/* Inside a split root array (its '[' read, its ']' not yet). */
bool lm_json_in_split_array(const struct lm_json_scan *s);
/* Nothing read yet (or reset). */
bool lm_json_at_start(const struct lm_json_scan *s);

/* Walks the top-level members of the object at the start of [p, p + n)
 * (after optional whitespace) without tokenising their values: strings are
 * crossed with the vectorised search, containers by bracket matching as a
 * skipped value is. Returns the object's length through its '}', or 0 if
 * it is not an object, not complete within n, shaped otherwise than the
 * scanner would read it, or fn stopped the walk. Not a validator: what it
 * accepts, the scanner may still reject further in; every top-level key
 * the scanner would report before rejecting it is one fn was shown. */
size_t lm_json_walk_object(const char *p, size_t n, lm_json_member_fn fn,
                           void *ctx);
/* The same walk, accepting only an object the scanner reads without error:
 * every value is checked against the grammar (strings and their escapes,
 * numbers, literals, nesting up to 64 levels) and keys with escapes are
 * refused. Stricter than the scanner (which only bracket-matches values it
 * skips), never looser. */
size_t lm_json_walk_valid_object(const char *p, size_t n, lm_json_member_fn fn,
                                 void *ctx);
/* The valid walk, each member's value offered to `claim` first (val at its
 * first byte, end the buffer's): claim returns the length of a value it
 * has read and validated itself, no looser than this walk would (a value
 * with no escapes then), or 0 to have the walk validate it. fn follows
 * either way. Spares a second pass over a value the caller reads anyway. */
typedef size_t (*lm_json_claim_fn)(void *ctx, const char *key, size_t klen,
                                   const char *val, const char *end);
size_t lm_json_walk_valid_object_claim(const char *p, size_t n,
                                       lm_json_member_fn fn,
                                       lm_json_claim_fn claim, void *ctx);
/* Resumes lm_json_walk_object (valid false) or lm_json_walk_valid_object
 * (true) over the object at p, from offset `from` just past a member's
 * value: the members before it are taken as walked (by an earlier walk of
 * the same bytes) and not shown to fn. Returns the object's length from p
 * as the whole walk would, or 0. */
size_t lm_json_walk_object_from(const char *p, size_t n, size_t from,
                                bool valid, lm_json_member_fn fn, void *ctx);

/* The path of a value in lm_json_walk_events: depth as lm_json_depth, and
 * each level's current key as raw bytes (NULL at an array level). */
struct lm_json_path {
  size_t depth;
  const char *key[LM_JSON_MAX_DEPTH];
  size_t klen[LM_JSON_MAX_DEPTH];
};
/* Return false to stop the walk. */
typedef bool (*lm_json_event_fn)(void *ctx, const struct lm_json_path *path,
                                 enum lm_json_event ev, const char *text,
                                 size_t len, bool escaped);
/* An object whole in [p, p + n) read as the scanner reads it, for a
 * consumer of keys and scalars by path: the events the scanner would give
 * with LM_JSON_REPORT_KEYS (LM_JSON_KEY for each key, LM_JSON_OBJECT_BEGIN
 * and LM_JSON_ARRAY_BEGIN before a container is entered, each scalar), in
 * document order, with the same depths, none of the ends. A key's or a
 * string's text is its raw bytes between the quotes (its raw length, as
 * lm_json_value_raw_len) and `escaped` says it holds a backslash, so that
 * its decoded text differs; a number's text is as written. Validated as
 * lm_json_walk_valid_object, but nesting only up to LM_JSON_MAX_DEPTH, so
 * that every level's key is one the scanner tracks. Returns the object's
 * length through its '}', or 0 (not an object, not valid, deeper, or fn
 * stopped): the caller then runs the scanner, which gives what fn was
 * shown and the rest. */
size_t lm_json_walk_events(const char *p, size_t n, lm_json_event_fn fn,
                           void *ctx);

/* Exact conversions of JSON number text (no floating point).
 * lm_json_parse_u64: non-negative integral values only ("12", "12.0",
 * "1.2e1"); false for fractions, negatives, overflow, bad text.
 * lm_json_parse_scaled: value * 10^decimals rounded half away from zero
 * (decimals 12 turns USD into pico-USD); false on overflow or bad text. */
bool lm_json_parse_u64(const char *text, size_t len, uint64_t *out);
bool lm_json_parse_scaled(const char *text, size_t len, unsigned decimals,
                          int64_t *out);

/* Writes `in` as the body of a JSON string into out (quotes and
 * backslashes escaped, control characters as \u00XX), NUL-terminated,
 * stopping early rather than overflow or split an escape. Returns the
 * length written. */
size_t lm_json_escape(char *out, size_t size, const char *in);

/* First byte in [p, end) that is not JSON whitespace, or end. */
const char *lm_json_skip_ws(const char *p, const char *end);

/* First byte equal to a or b in [p, end), or NULL. Vectorised. */
const char *lm_find2(const char *p, const char *end, char a, char b);

#endif
