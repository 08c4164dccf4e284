/* reqscan.c — request body facts for admission and estimation (reqscan.h).
 *
 * A JSON scanner callback with a little state: which output cap has been
 * seen with which rank, and the rules that decide whether a string's bytes
 * count as prompt. Only top-level keys and a few nested ones are looked at;
 * everything else is skipped by the scanner at string speed.
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

static bool key_in(const struct lm_json_scan *s, size_t level,
                   const char *const *set) {
  size_t klen;
  const char *k = lm_json_key(s, level, &klen);
  if (!k)
    return false;
  for (; *set; set++)
    if (lm_json_key_equals(k, klen, *set))
      return true;
  return false;
}

static bool counts_as_prompt(const struct reqscan_ctx *c,
                             const struct lm_json_scan *s, bool is_key) {
  size_t depth = lm_json_depth(s);
  if (depth == 0 || !c->root_prompt)
    return false;
  if (is_key) /* keys count only in tool schemas */
    return depth >= 2 && c->root_tools;
  size_t lim = depth < LM_JSON_MAX_DEPTH ? depth : LM_JSON_MAX_DEPTH;
  for (size_t i = 1; i < lim; i++)
    if (key_in(s, i, binary_keys))
      return false;
  return !lm_json_key_is(s, depth - 1, "data");
}

static void set_cap(struct reqscan_ctx *c, int rank, const char *t, size_t n) {
  int64_t v;
  if (rank <= c->cap_rank || !lm_json_parse_scaled(t, n, 0, &v))
    return;
  c->cap_rank = rank;
  c->out->max_output_tokens = v >= 0 ? v : -1;
}

static void on_json(void *ctx, const struct lm_json_scan *s,
                    enum lm_json_event ev, const char *t, size_t n) {
  struct reqscan_ctx *c = ctx;
  struct lm_request_info *o = c->out;
  size_t depth = lm_json_depth(s);
  switch (ev) {
  case LM_JSON_STRING:
    if (depth == 1 && lm_json_key_is(s, 0, "model")) {
      if (!lm_json_value_truncated(s) && n < sizeof o->model) {
        memcpy(o->model, t, n);
        o->model[n] = '\0';
      }
      return;
    }
    if (counts_as_prompt(c, s, false) &&
        !(n >= 5 && memcmp(t, "data:", 5) == 0))
      o->prompt_chars += lm_json_value_raw_len(s);
    return;
  case LM_JSON_KEY:
    if (depth == 1) { /* a top-level key: every later question is of it */
      c->root_prompt = key_in(s, 0, prompt_keys);
      c->root_tools = lm_json_key_is(s, 0, "tools") ||
                      lm_json_key_is(s, 0, "functions");
    }
    if (counts_as_prompt(c, s, true))
      o->prompt_chars += lm_json_value_raw_len(s);
    return;
  case LM_JSON_NUMBER:
    if (depth == 1) {
      if (lm_json_key_is(s, 0, "max_completion_tokens"))
        set_cap(c, 5, t, n);
      else if (lm_json_key_is(s, 0, "max_output_tokens"))
        set_cap(c, 4, t, n);
      else if (lm_json_key_is(s, 0, "max_tokens"))
        set_cap(c, 3, t, n);
    } else if (depth == 2) {
      if (lm_json_path_is(s, "generationConfig.maxOutputTokens") ||
          lm_json_path_is(s, "generation_config.max_output_tokens"))
        set_cap(c, 2, t, n);
      else if (lm_json_path_is(s, "options.num_predict"))
        set_cap(c, 1, t, n);
    }
    return;
  case LM_JSON_TRUE:
  case LM_JSON_FALSE:
    if (depth == 1 && lm_json_key_is(s, 0, "stream")) {
      o->stream = ev == LM_JSON_TRUE;
      c->stream_seen = 1;
    } else if (depth == 2 &&
               lm_json_path_is(s, "stream_options.include_usage")) {
      o->include_usage = ev == LM_JSON_TRUE;
    }
    return;
  case LM_JSON_OBJECT_BEGIN:
    if (depth == 1 && lm_json_key_is(s, 0, "stream_options"))
      o->has_stream_options = true;
    return;
  default:
    return;
  }
}

void lm_reqscan(enum lm_api api, const char *body, size_t len,
                struct lm_request_info *out) {
  memset(out, 0, sizeof *out);
  out->max_output_tokens = -1;
  out->body_bytes = len;
  struct reqscan_ctx c = {out, 0, 0, false, false};
  struct lm_json_scan s;
  lm_json_init(&s, LM_JSON_REPORT_KEYS, on_json, &c);
  if (body && len) {
    lm_json_feed(&s, body, len);
    lm_json_finish(&s);
  }
  if (!c.stream_seen &&
      (api == LM_API_OLLAMA_CHAT || api == LM_API_OLLAMA_GENERATE))
    out->stream = true;
  if (api == LM_API_GEMINI_STREAM)
    out->stream = true;
}
