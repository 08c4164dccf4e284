/* usage.h — token usage on llmmeter's one normalised basis.
 *
 * Every provider reports tokens its own way; the extractors translate into
 * this struct and nothing downstream (price, budget, ledger, status) ever
 * sees a provider's convention. Plain data: no functions, no allocation.
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
};

enum lm_token_kind {
  LM_TOK_INPUT = 0,
  LM_TOK_CACHE_READ,
  LM_TOK_CACHE_WRITE,
  LM_TOK_OUTPUT,
  LM_TOK_REASONING,
  LM_TOK_KINDS
};

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
