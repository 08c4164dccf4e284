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
  /* Of the current top-level key (set when a reader reports it): which of
   * the keys the rules name it is, is it one of prompt_keys, is it
   * tools/functions. Every value below it asks, so it is asked once. */
  unsigned char root;
  bool root_prompt, root_tools;
};

/* A set of keys with their lengths: a key of another length is rejected
 * without a comparison. */
struct key {
  const char *s;
  unsigned char len;
};
#define KEY(lit) \
  { lit, sizeof(lit) - 1 }

static const struct key prompt_keys[] = {KEY("messages"),
                                         KEY("input"),
                                         KEY("prompt"),
                                         KEY("suffix"),
                                         KEY("contents"),
                                         KEY("system"),
                                         KEY("systemInstruction"),
                                         KEY("system_instruction"),
                                         KEY("instructions"),
                                         KEY("tools"),
                                         KEY("functions"),
                                         KEY("documents"),
                                         KEY("tool_config"),
                                         {NULL, 0}};

/* The top-level keys the rules below ask about, as c->root. */
enum {
  R_OTHER = 0,
  R_MODEL,
  R_STREAM,
  R_STREAM_OPTIONS,
  R_MAX_COMPLETION_TOKENS,
  R_MAX_OUTPUT_TOKENS,
  R_MAX_TOKENS,
  R_GENERATIONCONFIG,
  R_GENERATION_CONFIG,
  R_OPTIONS,
  R_TOOLS,
  R_FUNCTIONS,
  R_N,
  R_BEST_OF
};
static const struct key root_keys[] = {
    [R_OTHER] = {NULL, 0},
    [R_MODEL] = KEY("model"),
    [R_STREAM] = KEY("stream"),
    [R_STREAM_OPTIONS] = KEY("stream_options"),
    [R_MAX_COMPLETION_TOKENS] = KEY("max_completion_tokens"),
    [R_MAX_OUTPUT_TOKENS] = KEY("max_output_tokens"),
    [R_MAX_TOKENS] = KEY("max_tokens"),
    [R_GENERATIONCONFIG] = KEY("generationConfig"),
    [R_GENERATION_CONFIG] = KEY("generation_config"),
    [R_OPTIONS] = KEY("options"),
    [R_TOOLS] = KEY("tools"),
    [R_FUNCTIONS] = KEY("functions"),
    [R_N] = KEY("n"),
    [R_BEST_OF] = KEY("best_of"),
};

/* Keys below which strings are inline binary, not prompt text. */
static const struct key binary_keys[] = {
    KEY("images"),      KEY("image"),       KEY("image_url"), KEY("inlineData"),
    KEY("inline_data"), KEY("input_audio"), KEY("file_data"), KEY("fileData"),
    KEY("b64_json"),    {NULL, 0}};

/* Where a value sits, as the scanner's callback or the event walk sees
 * it: one set of rules reads both. */
struct at {
  const struct lm_json_scan *s; /* the scanner's path, or */
  const struct lm_json_path *w; /* the walk's */
  size_t depth;
};

/* The key at `level` of a's path (NULL: an array's level, a key the
 * scanner did not keep whole, or no such level). */
static const char *key_of(const struct at *a, size_t level, size_t *klen) {
  if (a->w) {
    if (level >= a->w->depth || !a->w->key[level])
      return NULL;
    *klen = a->w->klen[level];
    return a->w->key[level];
  }
  return lm_json_key(a->s, level, klen);
}

static bool key_at_is(const struct at *a, size_t level, const char *lit) {
  size_t klen;
  const char *k = key_of(a, level, &klen);
  return k && lm_json_key_equals(k, klen, lit);
}

static bool key_is(const char *k, size_t klen, const struct key *e) {
  return e->len == klen && memcmp(k, e->s, klen) == 0;
}

static bool key_in(const char *k, size_t klen, const struct key *set) {
  for (; set->s; set++)
    if (key_is(k, klen, set))
      return true;
  return false;
}

/* A top-level key's place among root_keys and prompt_keys. */
static void set_root(struct reqscan_ctx *c, const struct at *a) {
  size_t klen;
  const char *k = key_of(a, 0, &klen);
  c->root = R_OTHER;
  c->root_prompt = k && key_in(k, klen, prompt_keys);
  c->root_tools = false;
  if (!k)
    return;
  for (unsigned r = R_OTHER + 1; r < sizeof root_keys / sizeof root_keys[0];
       r++)
    if (key_is(k, klen, &root_keys[r])) {
      c->root = (unsigned char)r;
      break;
    }
  c->root_tools = c->root == R_TOOLS || c->root == R_FUNCTIONS;
}

static bool counts_as_prompt(const struct reqscan_ctx *c, const struct at *a,
                             bool is_key) {
  size_t depth = a->depth;
  if (depth == 0 || !c->root_prompt)
    return false;
  if (is_key) /* keys count only in tool schemas */
    return depth >= 2 && c->root_tools;
  size_t lim = depth < LM_JSON_MAX_DEPTH ? depth : LM_JSON_MAX_DEPTH;
  for (size_t i = 1; i < lim; i++) {
    size_t klen;
    const char *k = key_of(a, i, &klen);
    if (k && key_in(k, klen, binary_keys))
      return false;
  }
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
static int cap_rank(const struct reqscan_ctx *c, const struct at *a) {
  if (a->depth == 1) {
    switch (c->root) {
    case R_MAX_COMPLETION_TOKENS:
      return 5;
    case R_MAX_OUTPUT_TOKENS:
      return 4;
    case R_MAX_TOKENS:
      return 3;
    default:
      return 0;
    }
  }
  if (a->depth == 2) {
    if ((c->root == R_GENERATIONCONFIG && key_at_is(a, 1, "maxOutputTokens")) ||
        (c->root == R_GENERATION_CONFIG &&
         key_at_is(a, 1, "max_output_tokens")))
      return 2;
    if (c->root == R_OPTIONS && key_at_is(a, 1, "num_predict"))
      return 1;
  }
  return 0;
}

/* Whether a number at this path asks for that many answers, each billed:
 * OpenAI's n (chat, completions), completions' best_of (generated and
 * billed, n of them returned), Gemini's candidateCount. */
static bool counts_choices(const struct reqscan_ctx *c, const struct at *a) {
  if (a->depth == 1)
    return c->root == R_N || c->root == R_BEST_OF;
  return a->depth == 2 && ((c->root == R_GENERATIONCONFIG &&
                            key_at_is(a, 1, "candidateCount")) ||
                           (c->root == R_GENERATION_CONFIG &&
                            key_at_is(a, 1, "candidate_count")));
}

static void set_choices(struct reqscan_ctx *c, const char *t, size_t n) {
  int64_t v;
  if (!lm_json_parse_scaled(t, n, 0, &v) || v <= 1)
    return;
  if (v > LM_REQ_CHOICES_MAX)
    v = LM_REQ_CHOICES_MAX;
  if ((uint32_t)v > c->out->choices)
    c->out->choices = (uint32_t)v;
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
    if (depth == 1 && c->root == R_MODEL) {
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
    if (depth == 1) /* a top-level key: every later question is of it */
      set_root(c, a);
    if (counts_as_prompt(c, a, true))
      o->prompt_chars += raw;
    return;
  case LM_JSON_NUMBER: {
    int rank = cap_rank(c, a);
    if (rank)
      set_cap(c, rank, t, n);
    else if (counts_choices(c, a))
      set_choices(c, t, n);
    return;
  }
  case LM_JSON_TRUE:
  case LM_JSON_FALSE:
    if (depth == 1 && c->root == R_STREAM) {
      o->stream = ev == LM_JSON_TRUE;
      c->stream_seen = 1;
    } else if (depth == 2 && c->root == R_STREAM_OPTIONS &&
               key_at_is(a, 1, "include_usage")) {
      o->include_usage = ev == LM_JSON_TRUE;
    }
    return;
  case LM_JSON_OBJECT_BEGIN:
    if (depth == 1 && c->root == R_STREAM_OPTIONS)
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
  struct reqscan_ctx *c = ctx;
  struct at a = {NULL, w, w->depth};
  if (escaped && (ev == LM_JSON_KEY || (a.depth == 1 && c->root == R_MODEL)))
    return false;
  if (ev == LM_JSON_NUMBER && n > LM_JSON_NUM_MAX &&
      (cap_rank(c, &a) || counts_choices(c, &a)))
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
  out->choices = 1;
  out->body_bytes = len;
  *c = (struct reqscan_ctx){out, 0, 0, R_OTHER, false, false};
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
