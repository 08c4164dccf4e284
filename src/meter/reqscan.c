/* reqscan.c — request body facts for admission and estimation (reqscan.h).
 *
 * One set of rules with a little state (which output cap has been seen
 * with which rank, whether a string's bytes count as prompt), fed by
 * either of the JSON module's readers: the event walk over the whole body
 * (lm_json_walk_events: 1.3-1.5x the scanner's speed on 8-13 KB bodies,
 * and a quarter fewer instructions on a small one), or, when the walk
 * cannot read it (malformed, deeper than the scanner tracks, an escaped
 * key or model), the push scanner from scratch, which keeps what it read
 * before an error. Only top-level keys and a few nested ones are looked
 * at. test_reqscan and fuzz_reqscan check that both read every body alike.
 */
#include "reqscan.h"

#include <string.h>

#include "json_scan.h"

struct reqscan_ctx {
  struct lm_request_info *out;
  int cap_rank; /* rank of the cap in max_output_tokens (0 = none) */
  int stream_seen;
  /* Of the current top-level key (set when the scanner reports it): is it
   * one of prompt_keys, is it tools/functions. Every string below it asks,
   * so it is asked once. */
  bool root_prompt, root_tools;
};

static const char *const prompt_keys[] = {"messages",
                                          "input",
                                          "prompt",
                                          "suffix",
                                          "contents",
                                          "system",
                                          "systemInstruction",
                                          "system_instruction",
                                          "instructions",
                                          "tools",
                                          "functions",
                                          "documents",
                                          "tool_config",
                                          NULL};

/* Keys below which strings are inline binary, not prompt text. */
static const char *const binary_keys[] = {
    "images",      "image",     "image_url", "inlineData", "inline_data",
    "input_audio", "file_data", "fileData",  "b64_json",   NULL};

/* Where a value sits, as the scanner's callback or the event walk sees
 * it: one set of rules reads both. */
struct at {
  const struct lm_json_scan *s; /* the scanner's path, or */
  const struct lm_json_path *w; /* the walk's */
  size_t depth;
};

static bool key_at_is(const struct at *a, size_t level, const char *lit) {
  if (a->w)
    return level < a->w->depth && a->w->key[level] &&
           lm_json_key_equals(a->w->key[level], a->w->klen[level], lit);
  return lm_json_key_is(a->s, level, lit);
}

static bool key_in(const struct at *a, size_t level, const char *const *set) {
  const char *k;
  size_t klen;
  if (a->w) {
    if (level >= a->w->depth || !(k = a->w->key[level]))
      return false;
    klen = a->w->klen[level];
  } else if (!(k = lm_json_key(a->s, level, &klen))) {
    return false;
  }
  for (; *set; set++)
    if (lm_json_key_equals(k, klen, *set))
      return true;
  return false;
}

static bool counts_as_prompt(const struct reqscan_ctx *c, const struct at *a,
                             bool is_key) {
  size_t depth = a->depth;
  if (depth == 0 || !c->root_prompt)
    return false;
  if (is_key) /* keys count only in tool schemas */
    return depth >= 2 && c->root_tools;
  size_t lim = depth < LM_JSON_MAX_DEPTH ? depth : LM_JSON_MAX_DEPTH;
  for (size_t i = 1; i < lim; i++)
    if (key_in(a, i, binary_keys))
      return false;
  return !key_at_is(a, depth - 1, "data");
}

static void set_cap(struct reqscan_ctx *c, int rank, const char *t, size_t n) {
  int64_t v;
  if (rank <= c->cap_rank || !lm_json_parse_scaled(t, n, 0, &v))
    return;
  c->cap_rank = rank;
  c->out->max_output_tokens = v >= 0 ? v : -1;
}

/* The cap a number at this path sets, by rank (0: none). */
static int cap_rank(const struct at *a) {
  if (a->depth == 1) {
    if (key_at_is(a, 0, "max_completion_tokens"))
      return 5;
    if (key_at_is(a, 0, "max_output_tokens"))
      return 4;
    if (key_at_is(a, 0, "max_tokens"))
      return 3;
  } else if (a->depth == 2) {
    if ((key_at_is(a, 0, "generationConfig") &&
         key_at_is(a, 1, "maxOutputTokens")) ||
        (key_at_is(a, 0, "generation_config") &&
         key_at_is(a, 1, "max_output_tokens")))
      return 2;
    if (key_at_is(a, 0, "options") && key_at_is(a, 1, "num_predict"))
      return 1;
  }
  return 0;
}

/* One event, the same from either source. For a string: `raw` is its raw
 * length, `data_url` whether its text begins "data:", and the model is
 * taken (t, n: its text) only when `model_ok` (whole and decoded). */
static void on_value(struct reqscan_ctx *c, const struct at *a,
                     enum lm_json_event ev, const char *t, size_t n,
                     uint64_t raw, bool model_ok, bool data_url) {
  struct lm_request_info *o = c->out;
  size_t depth = a->depth;
  switch (ev) {
  case LM_JSON_STRING:
    if (depth == 1 && key_at_is(a, 0, "model")) {
      if (model_ok && n < sizeof o->model) {
        memcpy(o->model, t, n);
        o->model[n] = '\0';
      }
      return;
    }
    if (counts_as_prompt(c, a, false) && !data_url)
      o->prompt_chars += raw;
    return;
  case LM_JSON_KEY:
    if (depth == 1) { /* a top-level key: every later question is of it */
      c->root_prompt = key_in(a, 0, prompt_keys);
      c->root_tools = key_at_is(a, 0, "tools") || key_at_is(a, 0, "functions");
    }
    if (counts_as_prompt(c, a, true))
      o->prompt_chars += raw;
    return;
  case LM_JSON_NUMBER: {
    int rank = cap_rank(a);
    if (rank)
      set_cap(c, rank, t, n);
    return;
  }
  case LM_JSON_TRUE:
  case LM_JSON_FALSE:
    if (depth == 1 && key_at_is(a, 0, "stream")) {
      o->stream = ev == LM_JSON_TRUE;
      c->stream_seen = 1;
    } else if (depth == 2 && key_at_is(a, 0, "stream_options") &&
               key_at_is(a, 1, "include_usage")) {
      o->include_usage = ev == LM_JSON_TRUE;
    }
    return;
  case LM_JSON_OBJECT_BEGIN:
    if (depth == 1 && key_at_is(a, 0, "stream_options"))
      o->has_stream_options = true;
    return;
  default:
    return;
  }
}

static bool starts_data(const char *t, size_t n) {
  return n >= 5 && memcmp(t, "data:", 5) == 0;
}

static void on_json(void *ctx, const struct lm_json_scan *s,
                    enum lm_json_event ev, const char *t, size_t n) {
  struct at a = {s, NULL, lm_json_depth(s)};
  bool str = ev == LM_JSON_STRING || ev == LM_JSON_KEY;
  on_value(ctx, &a, ev, t, n, str ? lm_json_value_raw_len(s) : 0,
           str && !lm_json_value_truncated(s), str && starts_data(t, n));
}

static int hex(char c) {
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                : c - 'A' + 10; /* validated by the walk */
}

/* Whether the raw body of a valid string (escapes and all) decodes to text
 * beginning "data:", as the scanner decodes it: an escape gives one byte,
 * or for \u of U+0080 and above bytes that are not ASCII. */
static bool decodes_to_data(const char *t, size_t n) {
  static const char want[] = "data:";
  size_t i = 0;
  for (int k = 0; k < 5; k++) {
    if (i >= n)
      return false;
    char c = t[i++];
    if (c == '\\') {
      char e = t[i++]; /* a valid string: an escape is whole */
      if (e == 'u') {
        int cp = hex(t[i]) << 12 | hex(t[i + 1]) << 8 | hex(t[i + 2]) << 4 |
                 hex(t[i + 3]);
        i += 4;
        if (cp >= 0x80)
          return false;
        c = (char)cp;
      } else {
        c = e == 'b'   ? '\b'
            : e == 'f' ? '\f'
            : e == 'n' ? '\n'
            : e == 'r' ? '\r'
            : e == 't' ? '\t'
                       : e;
      }
    }
    if (c != want[k])
      return false;
  }
  return true;
}

/* The walk's events: raw text, so what decoding changes is left to the
 * scanner (false: the body is scanned instead): an escaped key, an escaped
 * model, and a cap too long for the scanner to hand over whole. */
static bool on_walk(void *ctx, const struct lm_json_path *w,
                    enum lm_json_event ev, const char *t, size_t n,
                    bool escaped) {
  struct at a = {NULL, w, w->depth};
  if (escaped &&
      (ev == LM_JSON_KEY || (a.depth == 1 && key_at_is(&a, 0, "model"))))
    return false;
  if (ev == LM_JSON_NUMBER && n > LM_JSON_NUM_MAX && cap_rank(&a))
    return false;
  bool str = ev == LM_JSON_STRING;
  on_value(ctx, &a, ev, t, n, n, true,
           str && (escaped ? decodes_to_data(t, n) : starts_data(t, n)));
  return true;
}

static void scan(const char *body, size_t len, struct reqscan_ctx *c) {
  struct lm_json_scan s;
  lm_json_init(&s, LM_JSON_REPORT_KEYS, on_json, c);
  lm_json_feed(&s, body, len);
  lm_json_finish(&s);
}

static void start(struct lm_request_info *out, struct reqscan_ctx *c,
                  size_t len) {
  memset(out, 0, sizeof *out);
  out->max_output_tokens = -1;
  out->body_bytes = len;
  *c = (struct reqscan_ctx){out, 0, 0, false, false};
}

/* The walk when it can read the body, else the scanner from scratch (what
 * the walk read before it stopped goes). */
static void reqscan(enum lm_api api, const char *body, size_t len,
                    struct lm_request_info *out, bool walk) {
  struct reqscan_ctx c;
  start(out, &c, len);
  if (body && len && !(walk && lm_json_walk_events(body, len, on_walk, &c))) {
    start(out, &c, len);
    scan(body, len, &c);
  }
  if (!c.stream_seen &&
      (api == LM_API_OLLAMA_CHAT || api == LM_API_OLLAMA_GENERATE))
    out->stream = true;
  if (api == LM_API_GEMINI_STREAM)
    out->stream = true;
}

void lm_reqscan(enum lm_api api, const char *body, size_t len,
                struct lm_request_info *out) {
  reqscan(api, body, len, out, true);
}

void lm_reqscan_scanned(enum lm_api api, const char *body, size_t len,
                        struct lm_request_info *out) {
  reqscan(api, body, len, out, false);
}
