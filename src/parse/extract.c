/* extract.c — provider usage extraction (see extract.h for the rules).
 *
 * Each API is described by data: the top-level keys under which its usage
 * lives, a table mapping JSON paths to provider counters, where its model
 * name is, and one normalisation function. The JSON callback only does
 * work for numbers whose first path key is one of those roots, so the
 * bulk of a stream (content deltas, ids, padding) costs a key compare.
 * Counters of one document are collected in doc_* and committed when the
 * document completes — a half-received document never changes the usage.
 */
#include "extract.h"

#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "json_scan.h"

_Static_assert(sizeof(struct lm_extract) <= 16384,
               "per-transfer extraction state must stay within 16 KiB");
_Static_assert(LM_XF_COUNT <= 32, "a present bit per provider counter");

enum { SLOT_MAIN, SLOT_ALT, SLOT_ITER };

#define EXTRACT_KEY_DEPTH 6

/* Key compare without strlen: k/n from lm_json_key, lit a string literal. */
#define KEY_IS(k, n, lit) \
  ((k) && (n) == sizeof(lit) - 1 && memcmp((k), (lit), sizeof(lit) - 1) == 0)

struct field_map {
  const char *path;
  unsigned char len; /* strlen(path) */
  unsigned char slot;
  unsigned char field;
};

/* One entry: the path, its length (for the leaf test in on_number), where
 * its value goes. */
#define F(path, slot, field) \
  { path, sizeof(path) - 1, slot, field }

/* Counts by modality in lists of {modality, tokenCount} under one root
 * (Gemini: usageMetadata.promptTokensDetails[i], ...). */
enum { MOD_OTHER, MOD_AUDIO, MOD_IMAGE, MOD_VIDEO, MOD_KINDS };
struct modal_desc {
  const char *root;
  const char *const *lists;             /* NULL-terminated */
  const signed char (*dest)[MOD_KINDS]; /* per list: LM_XF_*, -1: text */
};

struct api_desc {
  const char *const *roots;         /* first path keys that can hold usage */
  const struct field_map *fields;   /* NULL-path terminated */
  const char *const *model_keys;    /* top-level keys naming the model */
  const char *const *model_parents; /* X in X.model naming the model */
  void (*normalise)(const struct lm_extract_counts *raw, struct lm_usage *u);
  bool cumulative_fields; /* Anthropic: merge field by field */
  bool needs_done;        /* Ollama: counters count only on done:true */
  bool snapshots;         /* Gemini: every event's usage replaces the last */
  const char *const *final_types; /* top-level "type"s that close a stream */
  const char *finish_parent;      /* X in X[i].finishReason closing it */
  const struct modal_desc *modal; /* counts by modality, or NULL */
};

/* ---- OpenAI chat / completions / embeddings and compatibles ----------- */

static const char *const openai_roots[] = {"usage", "x_groq", NULL};
#define OPENAI_FIELDS(prefix, slot)                                            \
  F(prefix "prompt_tokens", slot, LM_XF_IN),                                   \
      F(prefix "completion_tokens", slot, LM_XF_OUT),                          \
      F(prefix "prompt_tokens_details.cached_tokens", slot, LM_XF_CACHE_READ), \
      F(prefix "prompt_tokens_details.cache_write_tokens", slot,               \
        LM_XF_CACHE_WRITE),                                                    \
      F(prefix "completion_tokens_details.reasoning_tokens", slot,             \
        LM_XF_REASONING),                                                      \
      F(prefix "prompt_cache_hit_tokens", slot, LM_XF_CACHE_HIT),              \
      F(prefix "prompt_tokens_details.audio_tokens", slot, LM_XF_IN_AUDIO),    \
      F(prefix "completion_tokens_details.audio_tokens", slot,                 \
        LM_XF_OUT_AUDIO),                                                      \
      F(prefix "num_search_queries", slot, LM_XF_WEB_SEARCH),                  \
      F(prefix "citation_tokens", slot, LM_XF_CITATION),                       \
      F(prefix "reasoning_tokens", slot, LM_XF_REASONING_EXTRA)
static const struct field_map openai_fields[] = {
    OPENAI_FIELDS("usage.", SLOT_MAIN),
    OPENAI_FIELDS("x_groq.usage.", SLOT_ALT),
    {NULL, 0, 0, 0}};
static const char *const openai_models[] = {"model", NULL};
static const char *const no_parents[] = {NULL};

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

static uint64_t add_sat(uint64_t a, uint64_t b) {
  return a + b < a ? UINT64_MAX : a + b;
}

static uint64_t val(const struct lm_extract_counts *c, int f) {
  return (c->present >> f) & 1 ? c->v[f] : 0;
}

static bool has(const struct lm_extract_counts *c, int f) {
  return (c->present >> f) & 1;
}

/* Normalisers fill a zeroed usage: what they do not set is 0. */
static void normalise_openai(const struct lm_extract_counts *r,
                             struct lm_usage *u) {
  u->input = val(r, LM_XF_IN);
  uint64_t cr = has(r, LM_XF_CACHE_READ) ? r->v[LM_XF_CACHE_READ]
                                         : val(r, LM_XF_CACHE_HIT);
  u->cache_read = min_u64(cr, u->input);
  u->cache_write = min_u64(val(r, LM_XF_CACHE_WRITE), u->input - u->cache_read);
  u->input_audio = min_u64(val(r, LM_XF_IN_AUDIO), u->input);
  u->output = val(r, LM_XF_OUT);
  u->reasoning = min_u64(val(r, LM_XF_REASONING), u->output);
  u->output_audio = min_u64(val(r, LM_XF_OUT_AUDIO), u->output);
  /* Perplexity: beside prompt_tokens and completion_tokens (total_tokens is
   * their sum). Its top-level reasoning_tokens count only where no
   * completion_tokens_details.reasoning_tokens (a part of output) does. */
  u->citation = val(r, LM_XF_CITATION);
  u->separate_reasoning = has(r, LM_XF_REASONING)
                              ? 0
                              : val(r, LM_XF_REASONING_EXTRA);
  u->web_searches = val(r, LM_XF_WEB_SEARCH);
}

/* ---- OpenAI Responses --------------------------------------------------- */

static const char *const responses_roots[] = {"usage", "response", NULL};
#define RESPONSES_FIELDS(prefix)                                     \
  F(prefix "input_tokens", SLOT_MAIN, LM_XF_IN),                     \
      F(prefix "output_tokens", SLOT_MAIN, LM_XF_OUT),               \
      F(prefix "input_tokens_details.cached_tokens", SLOT_MAIN,      \
        LM_XF_CACHE_READ),                                           \
      F(prefix "input_tokens_details.cache_write_tokens", SLOT_MAIN, \
        LM_XF_CACHE_WRITE),                                          \
      F(prefix "output_tokens_details.reasoning_tokens", SLOT_MAIN,  \
        LM_XF_REASONING)
static const struct field_map responses_fields[] = {
    RESPONSES_FIELDS("usage."),
    RESPONSES_FIELDS("response.usage."),
    {NULL, 0, 0, 0}};
static const char *const responses_parents[] = {"response", NULL};

/* ---- Anthropic Messages ------------------------------------------------- */

static const char *const anthropic_roots[] = {"usage", "message", NULL};
#define ANTHROPIC_FIELDS(prefix, slot)                                  \
  F(prefix "input_tokens", slot, LM_XF_IN),                             \
      F(prefix "output_tokens", slot, LM_XF_OUT),                       \
      F(prefix "cache_read_input_tokens", slot, LM_XF_CACHE_READ),      \
      F(prefix "cache_creation_input_tokens", slot, LM_XF_CACHE_WRITE), \
      F(prefix "cache_creation.ephemeral_1h_input_tokens", slot,        \
        LM_XF_CACHE_WRITE_1H),                                          \
      F(prefix "server_tool_use.web_search_requests", slot, LM_XF_WEB_SEARCH)
static const struct field_map anthropic_fields[] = {
    ANTHROPIC_FIELDS("usage.", SLOT_MAIN),
    ANTHROPIC_FIELDS("message.usage.", SLOT_MAIN),
    ANTHROPIC_FIELDS("usage.iterations[].", SLOT_ITER),
    ANTHROPIC_FIELDS("message.usage.iterations[].", SLOT_ITER),
    {NULL, 0, 0, 0}};
static const char *const anthropic_parents[] = {"message", NULL};

static void normalise_anthropic(const struct lm_extract_counts *r,
                                struct lm_usage *u) {
  u->cache_read = val(r, LM_XF_CACHE_READ);
  u->cache_write = val(r, LM_XF_CACHE_WRITE);
  u->cache_write_1h = min_u64(val(r, LM_XF_CACHE_WRITE_1H), u->cache_write);
  u->input = add_sat(add_sat(val(r, LM_XF_IN), u->cache_read), u->cache_write);
  u->output = val(r, LM_XF_OUT);
  u->reasoning = 0; /* Anthropic does not split out thinking tokens */
  u->web_searches = val(r, LM_XF_WEB_SEARCH);
}

/* ---- Gemini ------------------------------------------------------------- */

static const char *const gemini_roots[] = {"usageMetadata", NULL};
static const struct field_map gemini_fields[] = {
    F("usageMetadata.promptTokenCount", SLOT_MAIN, LM_XF_IN),
    F("usageMetadata.candidatesTokenCount", SLOT_MAIN, LM_XF_OUT),
    F("usageMetadata.cachedContentTokenCount", SLOT_MAIN, LM_XF_CACHE_READ),
    F("usageMetadata.thoughtsTokenCount", SLOT_MAIN, LM_XF_REASONING),
    F("usageMetadata.toolUsePromptTokenCount", SLOT_MAIN, LM_XF_TOOL_PROMPT),
    {NULL, 0, 0, 0}};
static const char *const gemini_models[] = {"modelVersion", NULL};
static const char *const gemini_lists[] = {
    "promptTokensDetails", "toolUsePromptTokensDetails", "cacheTokensDetails",
    "candidatesTokensDetails", NULL};
static const signed char gemini_dest[][MOD_KINDS] = {
    {-1, LM_XF_IN_AUDIO, LM_XF_IN_IMAGE, LM_XF_IN_VIDEO},
    {-1, LM_XF_IN_AUDIO, LM_XF_IN_IMAGE, LM_XF_IN_VIDEO},
    {-1, LM_XF_CACHE_AUDIO, LM_XF_CACHE_IMAGE, -1},
    {-1, LM_XF_OUT_AUDIO, LM_XF_OUT_IMAGE, LM_XF_OUT_VIDEO},
};
static const struct modal_desc gemini_modal = {"usageMetadata", gemini_lists,
                                               gemini_dest};

static void normalise_gemini(const struct lm_extract_counts *r,
                             struct lm_usage *u) {
  u->input = add_sat(val(r, LM_XF_IN), val(r, LM_XF_TOOL_PROMPT));
  u->cache_read = min_u64(val(r, LM_XF_CACHE_READ), u->input);
  u->reasoning = val(r, LM_XF_REASONING);
  u->output = add_sat(val(r, LM_XF_OUT), u->reasoning);
  /* Modality counts: prompt and tool-use prompt lists add up, the cache
   * list is within both cache_read and its modality, candidates within
   * output (thoughts are text). */
  u->input_audio = min_u64(val(r, LM_XF_IN_AUDIO), u->input);
  u->input_image = min_u64(val(r, LM_XF_IN_IMAGE), u->input);
  u->input_video = min_u64(val(r, LM_XF_IN_VIDEO), u->input);
  u->cache_audio_read = min_u64(
      min_u64(val(r, LM_XF_CACHE_AUDIO), u->input_audio), u->cache_read);
  u->cache_image_read = min_u64(
      min_u64(val(r, LM_XF_CACHE_IMAGE), u->input_image), u->cache_read);
  u->output_audio = min_u64(val(r, LM_XF_OUT_AUDIO), u->output);
  u->output_image = min_u64(val(r, LM_XF_OUT_IMAGE), u->output);
  u->output_video = min_u64(val(r, LM_XF_OUT_VIDEO), u->output);
}

/* ---- Ollama ------------------------------------------------------------- */

static const char *const ollama_roots[] = {"prompt_eval_count", "eval_count",
                                           NULL};
static const struct field_map ollama_fields[] = {
    F("prompt_eval_count", SLOT_MAIN, LM_XF_IN),
    F("eval_count", SLOT_MAIN, LM_XF_OUT),
    {NULL, 0, 0, 0}};

static void normalise_plain(const struct lm_extract_counts *r,
                            struct lm_usage *u) {
  memset(u, 0, sizeof *u);
  u->input = val(r, LM_XF_IN);
  u->output = val(r, LM_XF_OUT);
}

/* ---- Cohere v2 ------------------------------------------------------------ */

static const char *const cohere_roots[] = {"usage", "delta", NULL};
static const struct field_map cohere_fields[] = {
    F("usage.billed_units.input_tokens", SLOT_MAIN, LM_XF_IN),
    F("usage.billed_units.output_tokens", SLOT_MAIN, LM_XF_OUT),
    F("delta.usage.billed_units.input_tokens", SLOT_MAIN, LM_XF_IN),
    F("delta.usage.billed_units.output_tokens", SLOT_MAIN, LM_XF_OUT),
    F("usage.tokens.input_tokens", SLOT_ALT, LM_XF_IN),
    F("usage.tokens.output_tokens", SLOT_ALT, LM_XF_OUT),
    F("delta.usage.tokens.input_tokens", SLOT_ALT, LM_XF_IN),
    F("delta.usage.tokens.output_tokens", SLOT_ALT, LM_XF_OUT),
    {NULL, 0, 0, 0}};
static const char *const no_models[] = {NULL};

/* ---- the table ---------------------------------------------------------- */

static const char *const responses_final[] = {
    "response.completed", "response.incomplete", "response.failed", NULL};
static const char *const anthropic_final[] = {"message_delta", NULL};
static const char *const no_final[] = {NULL};

static const struct api_desc desc_openai = {
    openai_roots,     openai_fields, openai_models, no_parents,
    normalise_openai, false,         false,         false,
    no_final,         NULL,          NULL};
static const struct api_desc desc_responses = {responses_roots,
                                               responses_fields,
                                               openai_models,
                                               responses_parents,
                                               normalise_openai,
                                               false,
                                               false,
                                               false,
                                               responses_final,
                                               NULL,
                                               NULL};
static const struct api_desc desc_anthropic = {anthropic_roots,
                                               anthropic_fields,
                                               openai_models,
                                               anthropic_parents,
                                               normalise_anthropic,
                                               true,
                                               false,
                                               false,
                                               anthropic_final,
                                               NULL,
                                               NULL};
static const struct api_desc desc_gemini = {
    gemini_roots,     gemini_fields, gemini_models, no_parents,
    normalise_gemini, false,         false,         true,
    no_final,         "candidates",  &gemini_modal};
static const struct api_desc desc_ollama = {
    ollama_roots,    ollama_fields, openai_models, no_parents,
    normalise_plain, false,         true,          false,
    no_final,        NULL,          NULL};
static const struct api_desc desc_cohere = {
    cohere_roots,    cohere_fields, no_models, no_parents,
    normalise_plain, false,         false,     false,
    no_final,        NULL,          NULL};

static const struct api_desc *describe(enum lm_api api) {
  switch (api) {
  case LM_API_OPENAI_CHAT:
  case LM_API_OPENAI_COMPLETIONS:
  case LM_API_OPENAI_EMBEDDINGS:
    return &desc_openai;
  case LM_API_OPENAI_RESPONSES:
    return &desc_responses;
  case LM_API_ANTHROPIC_MESSAGES:
    return &desc_anthropic;
  case LM_API_GEMINI_GENERATE:
  case LM_API_GEMINI_STREAM:
    return &desc_gemini;
  case LM_API_OLLAMA_CHAT:
  case LM_API_OLLAMA_GENERATE:
    return &desc_ollama;
  case LM_API_COHERE_CHAT:
    return &desc_cohere;
  default:
    return NULL; /* LM_API_NONE, LM_API_CUSTOM: usage not parsed */
  }
}

/* ---- per-document collection -------------------------------------------- */

static void doc_reset(struct lm_extract *x) {
  memset(&x->doc_main, 0, sizeof x->doc_main);
  memset(&x->doc_alt, 0, sizeof x->doc_alt);
  memset(&x->doc_iter, 0, sizeof x->doc_iter);
  x->doc_modal.list = -1;
  x->doc_done = false;
  x->doc_final = false;
  x->doc_has_cost = false;
}

/* Whether a usage document closes the response (see lm_extract_final). */
static bool closes_response(const struct lm_extract *x) {
  switch (x->api) {
  case LM_API_ANTHROPIC_MESSAGES: /* message_delta; message_start is not */
  case LM_API_OPENAI_RESPONSES:   /* response.completed and its kin */
  case LM_API_GEMINI_GENERATE:    /* the chunk with a finishReason */
  case LM_API_GEMINI_STREAM:
    return x->doc_final || !lm_extract_streaming(x);
  default: /* usage once, at the end (needs_done: only on done:true) */
    return true;
  }
}

/* struct lm_usage is all uint64_t: no padding, so bytes compare fields. */
_Static_assert(sizeof(struct lm_usage) % sizeof(uint64_t) == 0,
               "lm_usage is uint64_t fields only");
static bool usage_equal(const struct lm_usage *a, const struct lm_usage *b) {
  return memcmp(a, b, sizeof *a) == 0;
}

static void commit(struct lm_extract *x) {
  const struct api_desc *d = x->desc;
  bool changed = false;
  if (x->doc_has_cost && (!x->has_cost || x->cost_pusd != x->doc_cost)) {
    x->has_cost = true;
    x->cost_pusd = x->doc_cost;
    changed = true;
  }
  const struct lm_extract_counts *c = NULL;
  if (d->needs_done) {
    if (x->doc_done) {
      c = &x->doc_main; /* absent counters mean 0 (omitempty) */
      x->doc_main.present |= 1u << LM_XF_IN | 1u << LM_XF_OUT;
    }
  } else if (x->doc_main.present) {
    c = &x->doc_main;
  } else if (x->doc_alt.present) {
    c = &x->doc_alt;
  }
  if (d->cumulative_fields && x->doc_iter.present) {
    /* Compaction: what is billed is the sum over iterations. */
    for (int f = 0; f < LM_XF_COUNT; f++)
      if ((x->doc_iter.present >> f) & 1) {
        x->doc_main.v[f] = x->doc_iter.v[f];
        x->doc_main.present |= 1u << f;
      }
    c = &x->doc_main;
  }
  if (c) {
    x->taken++; /* a usage document was committed (framer.h: snapshots) */
    if (closes_response(x))
      x->final = true;
    if (d->cumulative_fields) {
      for (int f = 0; f < LM_XF_COUNT; f++)
        if ((c->present >> f) & 1) {
          x->raw.v[f] = c->v[f];
          x->raw.present |= 1u << f;
        }
    } else {
      x->raw = *c;
    }
    struct lm_usage u = {0};
    d->normalise(&x->raw, &u);
    if (!x->has_usage || !usage_equal(&u, &x->usage)) {
      x->usage = u;
      x->has_usage = true;
      changed = true;
    }
  }
  if (changed)
    x->generation++;
}

/* Is k (length n) in the NULL-terminated set? */
static bool key_in(const char *k, size_t n, const char *const *set) {
  for (; *set; set++)
    if (lm_json_key_equals(k, n, *set))
      return true;
  return false;
}

/* Does the pattern (plen bytes) end with the key leaf, after a '.' or as
 * all of it? Short, so compared in place. */
static bool ends_with_leaf(const char *pat, size_t plen, const char *leaf,
                           size_t llen) {
  if (plen < llen || (plen > llen && pat[plen - llen - 1] != '.'))
    return false;
  const char *tail = pat + plen - llen;
  for (size_t i = 0; i < llen; i++)
    if (tail[i] != leaf[i])
      return false;
  return true;
}

/* The modality list of d that the value at s sits in (root.LIST[i].leaf),
 * with the element's index; -1 if none. */
static int modal_list(const struct api_desc *d, const struct lm_json_scan *s,
                      uint32_t *index) {
  if (lm_json_depth(s) != 4 || !lm_json_key_is(s, 0, d->modal->root) ||
      !lm_json_level_is_array(s, 2))
    return -1;
  size_t n;
  const char *k = lm_json_key(s, 1, &n);
  if (!k)
    return -1;
  for (int i = 0; d->modal->lists[i]; i++)
    if (lm_json_key_equals(k, n, d->modal->lists[i])) {
      *index = lm_json_index(s, 2);
      return i;
    }
  return -1;
}

/* Half of an element {modality, tokenCount} (modality < 0: not this
 * half); once both halves of one element are in, its count goes to the
 * counter the list and modality name. */
static void modal_note(struct lm_extract *x, const struct api_desc *d, int list,
                       uint32_t index, int modality, bool has_count,
                       uint64_t count) {
  struct lm_extract_modal *m = &x->doc_modal;
  if (m->list != list || m->index != index) {
    m->list = (int8_t)list;
    m->index = index;
    m->modality = -1;
    m->has_count = false;
  }
  if (modality >= 0)
    m->modality = (int8_t)modality;
  if (has_count) {
    m->has_count = true;
    m->count = count;
  }
  if (m->modality < 0 || !m->has_count)
    return;
  int f = d->modal->dest[list][m->modality];
  if (f >= 0) {
    x->doc_main.v[f] = add_sat(x->doc_main.v[f], m->count);
    x->doc_main.present |= 1u << f;
  }
  m->list = -1; /* taken */
}

static int modality_of(const char *t, size_t n) {
  if (n == 5 && memcmp(t, "AUDIO", 5) == 0)
    return MOD_AUDIO;
  if (n == 5 && memcmp(t, "IMAGE", 5) == 0)
    return MOD_IMAGE;
  if (n == 5 && memcmp(t, "VIDEO", 5) == 0)
    return MOD_VIDEO;
  return MOD_OTHER; /* TEXT, DOCUMENT, MODALITY_UNSPECIFIED: text */
}

/* The number t (n bytes) at the path of field m. */
static void take_number(struct lm_extract *x, const struct field_map *m,
                        const char *t, size_t n) {
  uint64_t v;
  if (!lm_json_parse_u64(t, n, &v))
    return;
  struct lm_extract_counts *c = m->slot == SLOT_MAIN  ? &x->doc_main
                                : m->slot == SLOT_ALT ? &x->doc_alt
                                                      : &x->doc_iter;
  if (m->slot == SLOT_ITER)
    c->v[m->field] = add_sat(c->v[m->field], v);
  else
    c->v[m->field] = v;
  c->present |= 1u << m->field;
}

/* OpenRouter's usage.cost: USD as a decimal. */
static void take_cost(struct lm_extract *x, const char *t, size_t n) {
  int64_t pusd;
  if (lm_json_parse_scaled(t, n, 12, &pusd)) {
    x->doc_cost = pusd;
    x->doc_has_cost = true;
  }
}

static void on_number(struct lm_extract *x, const struct api_desc *d,
                      const struct lm_json_scan *s, const char *t, size_t n) {
  size_t klen;
  const char *k = lm_json_key(s, 0, &klen);
  if (!k || klen == 0 || !key_in(k, klen, d->roots) ||
      lm_json_value_truncated(s))
    return;
  /* The leaf key rules out almost every entry before a whole-path match:
   * it must end the pattern, after a '.' (or be all of it). */
  size_t depth = lm_json_depth(s), llen = 0;
  const char *leaf = lm_json_key(s, depth - 1, &llen);
  if (!leaf)
    return; /* an array element or an untracked level: no field is one */
  if (d == &desc_openai && depth == 2 &&
      lm_json_key_equals(leaf, llen, "cost") &&
      lm_json_key_equals(k, klen, "usage")) { /* OpenRouter: usage.cost */
    take_cost(x, t, n);
    return;
  }
  if (d->modal && KEY_IS(leaf, llen, "tokenCount")) {
    uint32_t index;
    int list = modal_list(d, s, &index);
    uint64_t v;
    if (list >= 0 && lm_json_parse_u64(t, n, &v))
      modal_note(x, d, list, index, -1, true, v);
    return;
  }
  /* And the path's whole length: one compare an entry, then a memcmp a
   * level for the entry of that length and leaf. */
  size_t plen = lm_json_path_len(s);
  if (plen == 0)
    return; /* a truncated key: no field is one */
  for (const struct field_map *m = d->fields; m->path; m++) {
    if (m->len != plen || !ends_with_leaf(m->path, m->len, leaf, llen) ||
        !lm_json_path_equals(s, m->path, plen))
      continue;
    take_number(x, m, t, n);
    return;
  }
}

/* The model's text, read by the scanner (truncated: longer than it keeps)
 * or DIRECT (claim_model). */
static void take_model(struct lm_extract *x, const char *t, size_t n,
                       bool truncated) {
  if (n == 0 || n >= LM_EXTRACT_MODEL_MAX || truncated)
    return; /* "" (Azure's first chunk) never replaces a model */
  if (memcmp(x->model, t, n) == 0 && x->model[n] == '\0')
    return; /* the same: nothing changes, classify_member's "the model we
               already have" included */
  memcpy(x->model, t, n);
  x->model[n] = '\0';
  x->model_gen++;
}

static void set_model(struct lm_extract *x, const struct lm_json_scan *s,
                      const char *t, size_t n) {
  take_model(x, t, n, lm_json_value_truncated(s));
}

/* Strings matter only at depth 1 (type, error, model) and 2 (X.model), and
 * for Gemini at 3 (candidates[i].finishReason) and 4 (a modality). */
static void on_string(struct lm_extract *x, const struct api_desc *d,
                      const struct lm_json_scan *s, const char *t, size_t n) {
  size_t depth = lm_json_depth(s), klen;
  if (d->modal && depth == 4) { /* usageMetadata.LIST[i].modality */
    const char *k = lm_json_key(s, 3, &klen);
    uint32_t index;
    int list;
    if (KEY_IS(k, klen, "modality") && !lm_json_value_truncated(s) &&
        (list = modal_list(d, s, &index)) >= 0)
      modal_note(x, d, list, index, modality_of(t, n), false, 0);
    return;
  }
  if (d->finish_parent && depth == 3) { /* Gemini candidates[i].finishReason */
    size_t plen;
    const char *k = lm_json_key(s, 2, &klen);
    const char *p = lm_json_key(s, 0, &plen);
    if (k && p && n > 0 && KEY_IS(k, klen, "finishReason") &&
        plen == strlen(d->finish_parent) &&
        memcmp(p, d->finish_parent, plen) == 0)
      x->doc_final = true;
    return;
  }
  if (depth == 0 || depth > 2)
    return;
  const char *k = lm_json_key(s, depth - 1, &klen);
  if (!k || klen == 0)
    return;
  if (depth == 1) {
    if (KEY_IS(k, klen, "error")) {
      x->inband_error = true; /* Ollama: {"error":"..."} */
    } else if (KEY_IS(k, klen, "type")) {
      if ((n == 5 && memcmp(t, "error", 5) == 0) ||
          (n == 15 && memcmp(t, "response.failed", 15) == 0))
        x->inband_error = true;
      if (key_in(t, n, d->final_types))
        x->doc_final = true;
    } else if (key_in(k, klen, d->model_keys)) {
      set_model(x, s, t, n);
    }
    return;
  }
  if (KEY_IS(k, klen, "model") && d->model_parents[0]) {
    const char *p = lm_json_key(s, 0, &klen);
    if (p && klen && key_in(p, klen, d->model_parents))
      set_model(x, s, t, n);
  }
}

static void on_json(void *ctx, const struct lm_json_scan *s,
                    enum lm_json_event ev, const char *t, size_t n) {
  struct lm_extract *x = ctx;
  const struct api_desc *d = x->desc;
  switch (ev) {
  case LM_JSON_NUMBER:
    on_number(x, d, s, t, n);
    break;
  case LM_JSON_STRING:
    on_string(x, d, s, t, n);
    break;
  case LM_JSON_TRUE:
    if (d->needs_done && lm_json_depth(s) == 1) {
      size_t klen;
      const char *k = lm_json_key(s, 0, &klen);
      if (KEY_IS(k, klen, "done"))
        x->doc_done = true;
    }
    break;
  case LM_JSON_OBJECT_BEGIN:
    if (lm_json_depth(s) == 1) {
      size_t klen;
      const char *k = lm_json_key(s, 0, &klen);
      if (KEY_IS(k, klen, "error"))
        x->inband_error = true;
    }
    break;
  case LM_JSON_DOC_BEGIN:
    doc_reset(x);
    break;
  case LM_JSON_DOC_END:
    commit(x);
    break;
  default:
    break;
  }
}

static void on_event(void *ctx, const char *name, size_t len, bool truncated) {
  struct lm_extract *x = ctx;
  if (!truncated && len == 5 && memcmp(name, "error", 5) == 0)
    x->inband_error = true;
}

/* ---- what is never read ------------------------------------------------- */

/* Containers that never hold usage, model or errors for an API: generated
 * content (choices, candidates, message/delta bodies, embeddings). The
 * scanner crosses them without tokenising, which is most of a stream's
 * bytes. Only exact keys at an exact depth; everything else is read. */
static bool skip_subtree(void *ctx, const struct lm_json_scan *s) {
  const struct lm_extract *x = ctx;
  size_t d = lm_json_depth(s);
  size_t rel = d - s->base; /* levels below the document's top */
  if (rel < 1 || rel > 3)
    return false;
  size_t lvl = d - 1;
#define K(k) lm_json_key_is(s, lvl, k)
  switch (x->api) {
  case LM_API_OPENAI_CHAT:
  case LM_API_OPENAI_COMPLETIONS:
    return rel == 1 && K("choices");
  case LM_API_OPENAI_EMBEDDINGS:
    return rel == 1 && K("data");
  case LM_API_OPENAI_RESPONSES: /* usage is response.usage */
    return (rel == 1 && (K("item") || K("part"))) ||
           (rel == 2 && K("output") && lm_json_key_is(s, lvl - 1, "response"));
  case LM_API_ANTHROPIC_MESSAGES: /* usage: usage, message.usage */
    return (rel == 1 && (K("content_block") || K("delta") || K("content"))) ||
           (rel == 2 && K("content") && lm_json_key_is(s, lvl - 1, "message"));
  case LM_API_GEMINI_GENERATE: /* candidates[i].content: finishReason beside
                                  it tells the last chunk (lm_extract_final) */
  case LM_API_GEMINI_STREAM:
    return rel == 3 && K("content") && lm_json_key_is(s, lvl - 2, "candidates");
  case LM_API_OLLAMA_CHAT:
  case LM_API_OLLAMA_GENERATE:
    return rel == 1 && K("message");
  case LM_API_COHERE_CHAT: /* usage: usage, delta.usage (message-end) */
    return (rel == 1 && K("message")) ||
           (rel == 2 && K("message") && lm_json_key_is(s, lvl - 1, "delta"));
  default:
    return false;
  }
#undef K
}

/* ---- documents read whole (framer.h) -------------------------------------- */

struct classify {
  const struct lm_extract *x;
  const struct api_desc *d;
  bool usage; /* a usage member with a value other than null */
  /* doc_classify's walk: where each harmless member's value ended,
   * relative to base */
  const char *base;
  uint8_t n_ends;
  uint16_t ends[LM_EXTRACT_PREFIX_MEMBERS];
};

/* Bit c - 0x40 for each first byte c in [0x40, 0x80) of a key that
 * classify_member or select_member looks at for the API: a member whose key
 * starts with another byte of that range is harmless without a comparison
 * (most of a chunk's: id, object, created, choices, ...). Keys starting
 * below 0x40 or at 0x80 and above always take the comparisons. */
static uint64_t key_bit(unsigned char c) {
  return c >= 0x40 && c < 0x80 ? 1ull << (c - 0x40) : 0;
}

static uint64_t first_bytes(const struct api_desc *d) {
  const char *const *lists[] = {d->roots, d->model_keys, d->model_parents};
  uint64_t m = key_bit('e') | key_bit('t'); /* error, type */
  for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
    for (const char *const *k = lists[i]; *k; k++)
      m |= key_bit((unsigned char)**k);
  if (d->needs_done)
    m |= key_bit('d');
  if (d->finish_parent)
    m |= key_bit((unsigned char)d->finish_parent[0]);
  return m;
}

static bool maybe_read(const struct lm_extract *x, const char *k, size_t klen) {
  unsigned char c = k && klen ? (unsigned char)k[0] : 0;
  return c < 0x40 || c >= 0x80 || ((x->first_bytes >> (c - 0x40)) & 1);
}

/* One top-level member of a document whole in the buffer: harmless (true,
 * nothing noted: reading it would change nothing, see on_json), a usage
 * snapshot of an API whose snapshots replace each other (true, noted), or
 * anything else (false: the document is read). Unsure means read. */
static bool classify_member(void *ctx, const char *k, size_t klen,
                            const char *v, size_t vlen, bool escaped) {
  struct classify *c = ctx;
  const struct lm_extract *x = c->x;
  const struct api_desc *d = c->d;
  if (escaped) /* \u escapes can spell any key or value */
    return false;
  if (!maybe_read(x, k, klen))
    return true;
  bool null = vlen == 4 && memcmp(v, "null", 4) == 0;
  if (key_in(k, klen, d->roots)) {
    /* "usage": null in every chunk of an include_usage stream */
    if (!null && d->snapshots)
      c->usage = true;
    return null || d->snapshots;
  }
  if (KEY_IS(k, klen, "error"))
    return null;
  if (KEY_IS(k, klen, "type")) /* a type of error or response.failed */
    return !(vlen == 7 && memcmp(v, "\"error\"", 7) == 0) &&
           !(vlen == 17 && memcmp(v, "\"response.failed\"", 17) == 0);
  if (key_in(k, klen, d->model_keys)) { /* the model we already have */
    size_t ml = strlen(x->model);
    return vlen >= 2 && v[0] == '"' &&
           (vlen == 2 || (vlen - 2 == ml && memcmp(v + 1, x->model, ml) == 0));
  }
  if (key_in(k, klen, d->model_parents))
    return false;
  if (d->needs_done && KEY_IS(k, klen, "done"))
    return !(vlen == 4 && memcmp(v, "true", 4) == 0);
  if (d->finish_parent && klen == strlen(d->finish_parent) &&
      memcmp(k, d->finish_parent, klen) == 0)
    return !memmem(v, vlen, "\"finishReason\"", 14); /* the last chunk */
  return true;
}

/* The framer's classifier. INERT: every member harmless, so usage, cost,
 * model and error state stay as they are whatever the scanner would make of
 * the document. SNAPSHOT (Gemini): besides harmless members, only the usage
 * snapshot, whose one effect is the commit that a later committed snapshot
 * replaces whole (no cost, no field-by-field merge for these APIs). */
/* classify_member, noting where a harmless member's value ends. */
static bool classify_noting(void *ctx, const char *k, size_t klen,
                            const char *v, size_t vlen, bool escaped) {
  struct classify *c = ctx;
  if (!classify_member(ctx, k, klen, v, vlen, escaped))
    return false;
  size_t end = (size_t)(v + vlen - c->base);
  if (c->n_ends < LM_EXTRACT_PREFIX_MEMBERS && end <= LM_EXTRACT_PREFIX)
    c->ends[c->n_ends++] = (uint16_t)end;
  return true;
}

/* How many leading bytes a and b (n each) have in common. */
static size_t common_prefix(const char *a, const char *b, size_t n) {
  size_t i = 0;
#if defined(__SSE2__)
  for (; i + 16 <= n; i += 16) {
    __m128i va = _mm_loadu_si128((const __m128i *)(const void *)(a + i));
    __m128i vb = _mm_loadu_si128((const __m128i *)(const void *)(b + i));
    unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(va, vb));
    if (m != 0xFFFF)
      return i + (unsigned)__builtin_ctz(~m & 0xFFFF);
  }
#endif
  while (i < n && a[i] == b[i])
    i++;
  return i;
}

/* The framer's classifier. INERT: every member harmless, so usage, cost,
 * model and error state stay as they are whatever the scanner would make of
 * the document. SNAPSHOT (Gemini): besides harmless members, only the usage
 * snapshot, whose one effect is the commit that a later committed snapshot
 * replaces whole (no cost, no field-by-field merge for these APIs). The
 * walk resumes past the members this document shares, byte for byte, with
 * the last INERT one (x->pre): classify_member is a function of a member's
 * bytes, the API and the model, so they are harmless again. */
static enum lm_doc_kind doc_classify(void *ctx, const char *p, size_t n,
                                     bool valid, size_t *len) {
  struct lm_extract *x = ctx;
  const struct api_desc *d = x->desc;
  struct classify c = {x, d, false, p, 0, {0}};
  size_t from = 0;
  uint8_t kept = 0; /* of x->pre_end, the boundaries at or before from */
  if (x->pre_n && !d->snapshots && x->pre_valid == valid &&
      x->pre_model_gen == x->model_gen) {
    size_t same = common_prefix(p, x->pre, n < x->pre_len ? n : x->pre_len);
    while (kept < x->pre_n && x->pre_end[kept] <= same)
      kept++;
    from = kept ? x->pre_end[kept - 1] : 0;
  }
  *len = from ? lm_json_walk_object_from(p, n, from, valid, classify_noting, &c)
         : valid ? lm_json_walk_valid_object(p, n, classify_noting, &c)
                 : lm_json_walk_object(p, n, classify_noting, &c);
  if (*len == 0)
    return LM_DOC_READ;
  if (c.usage)
    return LM_DOC_SNAPSHOT;
  if (!d->snapshots) { /* kept for the next document */
    size_t keep = *len < LM_EXTRACT_PREFIX ? *len : LM_EXTRACT_PREFIX;
    uint8_t m = kept;
    for (uint8_t i = 0; i < c.n_ends && m < LM_EXTRACT_PREFIX_MEMBERS; i++)
      if (c.ends[i] <= keep)
        x->pre_end[m++] = c.ends[i];
    /* bytes up to from are the same as those kept: only the rest is new */
    if (keep > from)
      memcpy(x->pre + from, p + from, keep - from);
    x->pre_len = (uint16_t)keep;
    x->pre_n = m;
    x->pre_valid = valid;
    x->pre_model_gen = x->model_gen;
  }
  return LM_DOC_INERT;
}

/* ---- whole documents read member by member (framer.h) ------------------ */

/* A usage member read from its raw bytes (DIRECT): an object whose members
 * are numbers, objects of the same kind, strings and literals, no escapes,
 * no arrays, at most DIRECT_DEPTH containers deep. What the scanner would
 * do with it is then only on_number's (strings and literals below the top
 * level change nothing outside the cases claim_member excludes): each number
 * whose path, spelled out in `path`, is a field's (or usage.cost) is noted
 * while the framer asks, and taken when it hands the member over, in the
 * document's order. */
#define DIRECT_DEPTH 4 /* the depth of x_groq.usage.X_details.N */
#define DIRECT_COST 255
#define DIRECT_MODEL 254

struct direct {
  struct lm_extract *x;
  const struct api_desc *d;
  uint8_t member;
  bool ok;
  size_t root_len; /* the root key's length within path */
  /* Per level below the root: the path's length through that level's
   * current key, and whether a key on the way is one the scanner does not
   * keep (longer than LM_JSON_KEY_MAX: no field's path then). */
  size_t end[DIRECT_DEPTH];
  bool untracked[DIRECT_DEPTH];
  char path[DIRECT_DEPTH * (LM_JSON_KEY_MAX + 1)];
};

static void direct_note(struct direct *w, uint8_t field, const char *t,
                        size_t n) {
  struct lm_extract *x = w->x;
  if (x->direct_n == LM_EXTRACT_DIRECT_MAX) {
    w->ok = false; /* more than we keep: scanned instead */
    return;
  }
  x->direct[x->direct_n].t = t;
  x->direct[x->direct_n].n = (uint8_t)n;
  x->direct[x->direct_n].field = field;
  x->direct[x->direct_n].member = w->member;
  x->direct_n++;
}

/* A number at scanner depth `depth`, its path `plen` bytes of w->path. */
static void direct_number(struct direct *w, unsigned depth, size_t plen,
                          const char *leaf, size_t llen, const char *t,
                          size_t n) {
  if (n > LM_JSON_NUM_MAX)
    return; /* the scanner reports it truncated: on_number ignores it */
  const struct api_desc *d = w->d;
  if (d == &desc_openai && depth == 2 && KEY_IS(leaf, llen, "cost") &&
      KEY_IS(w->path, w->root_len, "usage")) {
    direct_note(w, DIRECT_COST, t, n);
    return;
  }
  for (const struct field_map *m = d->fields; m->path; m++)
    if (m->len == plen && memcmp(m->path, w->path, plen) == 0) {
      direct_note(w, (uint8_t)(m - d->fields), t, n);
      return;
    }
}

/* The event walk over the member's value (its own depth 0; the scanner's
 * is one more, the value being a root member's). */
static bool direct_event(void *ctx, const struct lm_json_path *pa,
                         enum lm_json_event ev, const char *t, size_t n,
                         bool escaped) {
  struct direct *w = ctx;
  size_t lvl = pa->depth - 1; /* of a key, or of a member's value */
  if (escaped)
    return w->ok = false;
  switch (ev) {
  case LM_JSON_ARRAY_BEGIN:
    return w->ok = false;
  case LM_JSON_OBJECT_BEGIN:
    return w->ok = pa->depth + 1 < DIRECT_DEPTH;
  case LM_JSON_KEY: {
    size_t from = lvl ? w->end[lvl - 1] : w->root_len;
    w->untracked[lvl] = n > LM_JSON_KEY_MAX || (lvl && w->untracked[lvl - 1]);
    if (!w->untracked[lvl]) {
      w->path[from] = '.';
      memcpy(w->path + from + 1, t, n);
      w->end[lvl] = from + 1 + n;
    }
    return true;
  }
  case LM_JSON_NUMBER:
    if (!w->untracked[lvl])
      direct_number(w, (unsigned)pa->depth + 1, w->end[lvl], pa->key[lvl],
                    pa->klen[lvl], t, n);
    return w->ok;
  default: /* strings and literals: see above */
    return true;
  }
}

/* A root model key's string value without escapes, read DIRECT: what
 * on_string would make of it (take_model), at hand-over. Its length with
 * the quotes, or 0 to have it scanned. */
static size_t claim_model(struct lm_extract *x, unsigned pick, const char *v,
                          const char *end) {
  const char *q = lm_find2(v + 1, end, '"', '\\');
  if (!q || *q != '"' || x->direct_n == LM_EXTRACT_DIRECT_MAX ||
      (size_t)(q - v - 1) >= LM_EXTRACT_MODEL_MAX)
    return 0;
  x->direct[x->direct_n].t = v + 1;
  x->direct[x->direct_n].n = (uint8_t)(q - v - 1);
  x->direct[x->direct_n].field = DIRECT_MODEL;
  x->direct[x->direct_n].member = (uint8_t)pick;
  x->direct_n++;
  x->direct_claimed = true;
  return (size_t)(q + 1 - v);
}

/* The framer's claim: a root member (k: unescaped, as the valid walk has
 * it) read DIRECT if it fits (a usage object, its numbers noted as one
 * event walk validates it; or a model string, see claim_model): its
 * length, or 0 (nothing noted) to have it validated and scanned. A usage
 * object is not claimed for APIs whose strings deeper down count (Gemini's
 * modalities and finishReason) nor for a model parent (X.model). */
static size_t claim_member(void *ctx, unsigned pick, const char *k, size_t klen,
                           const char *v, const char *end) {
  struct lm_extract *x = ctx;
  const struct api_desc *d = x->desc;
  x->direct_claimed = false;
  if (*v == '"' && key_in(k, klen, d->model_keys))
    return claim_model(x, pick, v, end);
  if (*v != '{' || d->modal || d->finish_parent || klen > LM_JSON_KEY_MAX ||
      !key_in(k, klen, d->roots) || key_in(k, klen, d->model_parents))
    return 0;
  struct direct w;
  w.x = x;
  w.d = d;
  w.member = (uint8_t)pick;
  w.ok = true;
  w.root_len = klen;
  memcpy(w.path, k, klen);
  uint8_t before = x->direct_n;
  /* One pass validates the member and notes its numbers. */
  size_t len = lm_json_walk_events(v, (size_t)(end - v), direct_event, &w);
  if (len == 0 || !w.ok) {
    x->direct_n = before; /* scanned: its notes go */
    return 0;
  }
  x->direct_claimed = true;
  return len;
}

static enum lm_member_use select_member(void *ctx, unsigned pick, const char *k,
                                        size_t klen, const char *v, size_t vlen,
                                        bool escaped) {
  struct lm_extract *x = ctx;
  const struct api_desc *d = x->desc;
  (void)pick;
  bool claimed = x->direct_claimed; /* this member, just before */
  x->direct_claimed = false;
  if (claimed)
    return LM_MEMBER_DIRECT;
  if (!escaped && !maybe_read(x, k, klen))
    return LM_MEMBER_SKIP; /* as classify_member would say */
  bool null = vlen == 4 && memcmp(v, "null", 4) == 0;
  if (!escaped && key_in(k, klen, d->roots) && !null)
    return LM_MEMBER_SCAN;
  /* The model is always read: "the model we already have" holds only for
   * a document read whole, not for one of several of its members. And a
   * type is: harmless in a document without usage (INERT), but beside
   * usage a closing type (message_delta, response.completed) makes it the
   * final usage (closes_response). */
  if (key_in(k, klen, d->model_keys) ||
      (d->final_types[0] && KEY_IS(k, klen, "type")))
    return LM_MEMBER_SCAN;
  struct classify c; /* ends unused here: left unwritten */
  c.x = x;
  c.d = d;
  c.usage = false;
  c.base = NULL;
  c.n_ends = 0;
  return classify_member(&c, k, klen, v, vlen, escaped) ? LM_MEMBER_SKIP
                                                        : LM_MEMBER_SCAN;
}

static void direct_take(void *ctx, unsigned pick) {
  struct lm_extract *x = ctx;
  const struct api_desc *d = x->desc;
  if (pick == LM_FRAMER_BEGIN) { /* a new document's walk */
    x->direct_n = 0;
    x->direct_claimed = false;
    return;
  }
  x->direct_members++;
  for (uint8_t i = 0; i < x->direct_n; i++) {
    if (x->direct[i].member != pick)
      continue;
    if (x->direct[i].field == DIRECT_MODEL)
      take_model(x, x->direct[i].t, x->direct[i].n, false);
    else if (x->direct[i].field == DIRECT_COST)
      take_cost(x, x->direct[i].t, x->direct[i].n);
    else
      take_number(x, &d->fields[x->direct[i].field], x->direct[i].t,
                  x->direct[i].n);
  }
}

static uint32_t doc_taken(void *ctx) {
  const struct lm_extract *x = ctx;
  return x->taken;
}

/* ---- public API ----------------------------------------------------------- */

_Static_assert(offsetof(struct lm_extract, framer) + sizeof(struct lm_framer) ==
                   sizeof(struct lm_extract),
               "the framer is last: lm_framer_init zeroes it");

void lm_extract_init(struct lm_extract *x, enum lm_api api) {
  memset(x, 0, offsetof(struct lm_extract, framer));
  x->api = api;
  x->desc = describe(api);
  if (x->desc)
    x->first_bytes = first_bytes(x->desc);
  x->doc_modal.list = -1;
  bool ollama = api == LM_API_OLLAMA_CHAT || api == LM_API_OLLAMA_GENERATE;
  lm_framer_init(&x->framer, ollama ? LM_FRAME_NDJSON : LM_FRAME_JSON, on_json,
                 on_event, x);
  /* Usage paths are at most 6 keys deep (message.usage.iterations[].
   * cache_creation.ephemeral_1h_input_tokens); the strings we read (model,
   * type, error) at most 2, Gemini's candidates[i].finishReason (which
   * tells the last chunk) 3 and its usageMetadata.LIST[i].modality 4.
   * Deeper content is skipped unreported. */
  const struct api_desc *d = x->desc;
  lm_json_set_depth_limits(&x->framer.json, EXTRACT_KEY_DEPTH,
                           d && d->modal           ? 4
                           : d && d->finish_parent ? 3
                                                   : 2);
  lm_json_set_skip(&x->framer.json, skip_subtree);
  lm_framer_set_classifier(&x->framer, doc_classify, doc_taken);
  lm_framer_set_whole(&x->framer, select_member, direct_take, claim_member);
}

void lm_extract_set_content_type(struct lm_extract *x, const char *ct,
                                 size_t len) {
  lm_framer_set_content_type(&x->framer, ct, len);
}

void lm_extract_feed(struct lm_extract *x, const char *p, size_t n) {
  if (x->finished || !x->desc)
    return;
  lm_framer_feed(&x->framer, p, n);
}

void lm_extract_finish(struct lm_extract *x) {
  if (x->finished)
    return;
  x->finished = true;
  if (x->desc)
    lm_framer_finish(&x->framer);
}

bool lm_extract_has_usage(const struct lm_extract *x) { return x->has_usage; }

bool lm_extract_streaming(const struct lm_extract *x) {
  return lm_framer_mode(&x->framer) != LM_FRAME_JSON ||
         x->api == LM_API_GEMINI_STREAM;
}

bool lm_extract_running(const struct lm_extract *x) {
  return x->desc && x->desc->snapshots;
}

bool lm_extract_final(const struct lm_extract *x) {
  return x->final || (x->finished && x->has_usage);
}

const struct lm_usage *lm_extract_usage(const struct lm_extract *x) {
  return &x->usage;
}

const char *lm_extract_model(const struct lm_extract *x) { return x->model; }

bool lm_extract_inband_error(const struct lm_extract *x) {
  return x->inband_error;
}

bool lm_extract_provider_cost(const struct lm_extract *x, int64_t *pusd) {
  if (x->has_cost && pusd)
    *pusd = x->cost_pusd;
  return x->has_cost;
}

uint32_t lm_extract_generation(const struct lm_extract *x) {
  return x->generation;
}
