/* usage.h — token usage on llmmeter's one normalised basis.
 *
 * Every provider reports tokens its own way; the extractors translate into
 * this struct and nothing downstream (price, budget, ledger, status) ever
 * sees a provider's convention. Plain data and one mapping onto the
 * budget's token counters; no allocation.
 *
 * Totals and parts: input and output count every token; the other token
 * fields are parts of one of them (a part never exceeds its total), so a
 * consumer that knows only input and output still has the whole. A price
 * that has no separate rate for a part bills it with the rest of its total.
 * Two token counts sit beside the totals instead, because the provider
 * bills them apart from input and output, and only where the model has a
 * rate for them: citation and separate_reasoning (Perplexity). web_searches
 * and requests are counts of billed events, not tokens.
 */
#ifndef LM_USAGE_H
#define LM_USAGE_H

#include <stdbool.h>
#include <stdint.h>

struct lm_usage {
  uint64_t input;       /* all prompt tokens, cache reads and writes included */
  uint64_t cache_read;  /* part of input read from the provider's cache */
  uint64_t cache_write; /* part of input written to the cache (all TTLs) */
  uint64_t cache_write_1h; /* part of cache_write at the 1-hour TTL price */
  uint64_t output;         /* all completion tokens, reasoning included */
  uint64_t reasoning;      /* part of output spent on reasoning/thinking */
  /* Parts by modality. Audio, image and video input are parts of input
   * (cached ones included); their cache reads are also parts of
   * cache_read. */
  uint64_t input_audio;
  uint64_t cache_audio_read; /* part of input_audio and of cache_read */
  uint64_t input_image;
  uint64_t cache_image_read; /* part of input_image and of cache_read */
  uint64_t input_video;
  uint64_t output_audio; /* parts of output */
  uint64_t output_image;
  uint64_t output_video;
  /* Beside input and output: Perplexity's citation_tokens (sources read
   * for the answer) and reasoning_tokens (Sonar Deep Research's reasoning
   * over them), which it reports and bills apart from prompt_tokens and
   * completion_tokens. */
  uint64_t citation;
  uint64_t separate_reasoning;
  /* Billed events. */
  uint64_t web_searches; /* server-side searches the provider ran */
  uint64_t requests;     /* calls this usage is for (1 for one call) */
};

/* The budget's token counters (status, ledger, report): totals, then
 * parts, then the counts beside the totals. Web searches are counted with
 * them. */
enum lm_token_kind {
  LM_TOK_INPUT = 0,
  LM_TOK_CACHE_READ,
  LM_TOK_CACHE_WRITE,
  LM_TOK_OUTPUT,
  LM_TOK_REASONING,
  LM_TOK_INPUT_AUDIO,
  LM_TOK_OUTPUT_AUDIO,
  LM_TOK_INPUT_IMAGE,
  LM_TOK_OUTPUT_IMAGE,
  LM_TOK_INPUT_VIDEO,
  LM_TOK_OUTPUT_VIDEO,
  LM_TOK_CITATION,
  LM_TOK_SEPARATE_REASONING,
  LM_TOK_WEB_SEARCHES,
  LM_TOK_KINDS
};

/* The counter of each kind in a usage (cache_write_1h, the cached parts of
 * audio and images and requests have none: they are priced, and counted
 * within their totals). */
static inline void lm_usage_kinds(const struct lm_usage *u,
                                  uint64_t out[LM_TOK_KINDS]) {
  out[LM_TOK_INPUT] = u->input;
  out[LM_TOK_CACHE_READ] = u->cache_read;
  out[LM_TOK_CACHE_WRITE] = u->cache_write;
  out[LM_TOK_OUTPUT] = u->output;
  out[LM_TOK_REASONING] = u->reasoning;
  out[LM_TOK_INPUT_AUDIO] = u->input_audio;
  out[LM_TOK_OUTPUT_AUDIO] = u->output_audio;
  out[LM_TOK_INPUT_IMAGE] = u->input_image;
  out[LM_TOK_OUTPUT_IMAGE] = u->output_image;
  out[LM_TOK_INPUT_VIDEO] = u->input_video;
  out[LM_TOK_OUTPUT_VIDEO] = u->output_video;
  out[LM_TOK_CITATION] = u->citation;
  out[LM_TOK_SEPARATE_REASONING] = u->separate_reasoning;
  out[LM_TOK_WEB_SEARCHES] = u->web_searches;
}

/* b - a, field by field, modular (a running total that went down gives a
 * delta that wraps back when added: a refund). */
static inline struct lm_usage lm_usage_sub(const struct lm_usage *b,
                                           const struct lm_usage *a) {
  return (struct lm_usage){
      .input = b->input - a->input,
      .cache_read = b->cache_read - a->cache_read,
      .cache_write = b->cache_write - a->cache_write,
      .cache_write_1h = b->cache_write_1h - a->cache_write_1h,
      .output = b->output - a->output,
      .reasoning = b->reasoning - a->reasoning,
      .input_audio = b->input_audio - a->input_audio,
      .cache_audio_read = b->cache_audio_read - a->cache_audio_read,
      .input_image = b->input_image - a->input_image,
      .cache_image_read = b->cache_image_read - a->cache_image_read,
      .input_video = b->input_video - a->input_video,
      .citation = b->citation - a->citation,
      .separate_reasoning = b->separate_reasoning - a->separate_reasoning,
      .output_audio = b->output_audio - a->output_audio,
      .output_image = b->output_image - a->output_image,
      .output_video = b->output_video - a->output_video,
      .web_searches = b->web_searches - a->web_searches,
      .requests = b->requests - a->requests,
  };
}

/* The larger of a and b, field by field (a part stays within its total
 * when it does so in both). */
static inline struct lm_usage lm_usage_max(const struct lm_usage *a,
                                           const struct lm_usage *b) {
#define LM_MAX_(f) .f = a->f > b->f ? a->f : b->f
  return (struct lm_usage){
      LM_MAX_(input),
      LM_MAX_(cache_read),
      LM_MAX_(cache_write),
      LM_MAX_(cache_write_1h),
      LM_MAX_(output),
      LM_MAX_(reasoning),
      LM_MAX_(input_audio),
      LM_MAX_(cache_audio_read),
      LM_MAX_(input_image),
      LM_MAX_(cache_image_read),
      LM_MAX_(input_video),
      LM_MAX_(citation),
      LM_MAX_(separate_reasoning),
      LM_MAX_(output_audio),
      LM_MAX_(output_image),
      LM_MAX_(output_video),
      LM_MAX_(web_searches),
      LM_MAX_(requests),
  };
#undef LM_MAX_
}

/* The kind's name in status, the ledger and reports ("input_audio"). */
static inline const char *lm_token_kind_name(int kind) {
  static const char *const names[LM_TOK_KINDS] = {
      [LM_TOK_INPUT] = "input",
      [LM_TOK_CACHE_READ] = "cache_read",
      [LM_TOK_CACHE_WRITE] = "cache_write",
      [LM_TOK_OUTPUT] = "output",
      [LM_TOK_REASONING] = "reasoning",
      [LM_TOK_INPUT_AUDIO] = "input_audio",
      [LM_TOK_OUTPUT_AUDIO] = "output_audio",
      [LM_TOK_INPUT_IMAGE] = "input_image",
      [LM_TOK_OUTPUT_IMAGE] = "output_image",
      [LM_TOK_INPUT_VIDEO] = "input_video",
      [LM_TOK_OUTPUT_VIDEO] = "output_video",
      [LM_TOK_CITATION] = "citation",
      [LM_TOK_SEPARATE_REASONING] = "separate_reasoning",
      [LM_TOK_WEB_SEARCHES] = "web_searches",
  };
  return kind >= 0 && kind < LM_TOK_KINDS ? names[kind] : "?";
}

/* The LLM APIs llmmeter recognises. LM_API_NONE is ordinary traffic. */
enum lm_api {
  LM_API_NONE = 0,
  LM_API_OPENAI_CHAT,        /* /v1/chat/completions and OpenAI-compatibles */
  LM_API_OPENAI_COMPLETIONS, /* legacy /v1/completions */
  LM_API_OPENAI_RESPONSES,   /* /v1/responses */
  LM_API_OPENAI_EMBEDDINGS,  /* /v1/embeddings */
  LM_API_ANTHROPIC_MESSAGES, /* /v1/messages */
  LM_API_GEMINI_GENERATE,    /* models/X:generateContent */
  LM_API_GEMINI_STREAM,      /* models/X:streamGenerateContent */
  LM_API_OLLAMA_CHAT,        /* /api/chat */
  LM_API_OLLAMA_GENERATE,    /* /api/generate */
  LM_API_COHERE_CHAT,        /* /v2/chat */
  LM_API_CUSTOM,             /* matched a user pattern; usage not parsed */
  LM_API_COUNT
};

#endif
