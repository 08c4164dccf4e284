/* extract.h — token usage, model and in-band errors from a response body.
 *
 * Owns: knowing where each provider puts its usage and how to combine it
 * across the documents of one response, and translating it to the
 * normalised basis of usage.h. It is fed decoded response body bytes (any
 * split) and nothing else — no libcurl, no headers beyond the optional
 * Content-Type — so any transport hook can drive it.
 *
 * Combining rules (the money depends on them):
 *  - Every usage-bearing document REPLACES what earlier ones said; nothing
 *    is ever added across documents (OpenAI chat sends usage once; Gemini
 *    snapshots are running totals, not monotonic, the latest wins; Ollama
 *    only on the done:true line; Responses in response.completed /
 *    incomplete / failed; Cohere in message-end).
 *  - Anthropic streams replace field by field: message_start gives input,
 *    cache and a provisional output; message_delta gives cumulative values
 *    for the fields it carries, the others keep message_start's values.
 *    When usage.iterations[] is present (compaction) its sums are billed.
 *  - `"usage": null` and absent usage change nothing; within one document
 *    a top-level `usage` wins over Groq's `x_groq.usage` (same numbers),
 *    and nested breakdowns (x_groq.usage_breakdown) are never read.
 *  - Normalisation: input counts every prompt token (Anthropic input +
 *    cache creation + cache read; Gemini prompt + tool-use prompt; OpenAI
 *    prompt_tokens, which already include cached tokens); output counts
 *    every completion token (Gemini candidates + thoughts); DeepSeek's
 *    prompt_cache_hit_tokens only stands in for a missing cached_tokens.
 *    Cohere is billed on billed_units (falling back to tokens); its
 *    cached_tokens are on the raw basis, so no cache read is reported.
 *  - Parts beyond text (usage.h): OpenAI's prompt_tokens_details and
 *    completion_tokens_details audio_tokens; Gemini's promptTokensDetails,
 *    toolUsePromptTokensDetails, cacheTokensDetails and
 *    candidatesTokensDetails lists of {modality, tokenCount} (AUDIO, IMAGE,
 *    VIDEO; TEXT and DOCUMENT are the text remainder); Anthropic's
 *    usage.server_tool_use.web_search_requests. Perplexity reports
 *    citation_tokens, num_search_queries and (deep research) reasoning_tokens
 *    at the top of usage, the tokens BESIDE prompt_tokens / completion_tokens
 *    (total_tokens = prompt + completion) and billed apart: they are kept
 *    beside input and output (usage.h citation, separate_reasoning).
 *  - Derived parts are clamped: cache_read + cache_write <= input,
 *    reasoning <= output, cache_write_1h <= cache_write, each modality part
 *    <= its total, a cached modality part <= its part and cache_read.
 *  - In-band errors: an SSE `event: error`, a top-level "type" of "error"
 *    or "response.failed", or a non-null top-level "error" object/string.
 *    Usage seen before the error stays (it was charged).
 *
 * Fixed size (see the _Static_assert in extract.c), embedded in the
 * caller's per-transfer state; never allocates, never prints.
 */
#ifndef LM_EXTRACT_H
#define LM_EXTRACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "framer.h"
#include "usage.h"

#define LM_EXTRACT_MODEL_MAX 128

/* Provider counters as read, before normalisation (private). */
enum {
  LM_XF_IN,
  LM_XF_OUT,
  LM_XF_CACHE_READ,
  LM_XF_CACHE_WRITE,
  LM_XF_CACHE_WRITE_1H,
  LM_XF_REASONING,
  LM_XF_TOOL_PROMPT,
  LM_XF_CACHE_HIT, /* DeepSeek prompt_cache_hit_tokens */
  LM_XF_IN_AUDIO, /* parts by modality: OpenAI *_tokens_details.audio_tokens, */
  LM_XF_IN_IMAGE, /* Gemini *TokensDetails[] by modality */
  LM_XF_IN_VIDEO,
  LM_XF_CACHE_AUDIO,
  LM_XF_CACHE_IMAGE,
  LM_XF_OUT_AUDIO,
  LM_XF_OUT_IMAGE,
  LM_XF_OUT_VIDEO,
  LM_XF_WEB_SEARCH,      /* Anthropic server_tool_use.web_search_requests,
                            Perplexity num_search_queries */
  LM_XF_CITATION,        /* Perplexity citation_tokens (beside prompt) */
  LM_XF_REASONING_EXTRA, /* Perplexity usage.reasoning_tokens (beside
                            completion_tokens) */
  LM_XF_COUNT
};

struct lm_extract_counts {
  uint64_t v[LM_XF_COUNT];
  uint32_t present; /* bit per LM_XF_* */
};

/* A Gemini modality-count element (usageMetadata.<list>[i]: modality and
 * tokenCount, in either order) being read. */
struct lm_extract_modal {
  int8_t list; /* index into the API's lists, -1: none */
  int8_t modality;
  bool has_count;
  uint32_t index;
  uint64_t count;
};

#define LM_EXTRACT_DIRECT_MAX 32 /* numbers of whole documents kept */
#define LM_EXTRACT_PREFIX 256    /* bytes of the last INERT document kept */
#define LM_EXTRACT_PREFIX_MEMBERS 16

struct api_desc;

struct lm_extract {
  enum lm_api api;
  const struct api_desc *desc; /* the API's paths and rules (extract.c) */
  uint64_t first_bytes;        /* of the keys they look at (extract.c) */
  bool finished;
  bool has_usage;
  bool inband_error;
  bool has_cost;
  uint32_t generation;
  uint32_t taken; /* usage documents committed */
  int64_t cost_pusd;
  struct lm_usage usage;        /* running total, normalised */
  struct lm_extract_counts raw; /* running provider counters */
  /* the document being read */
  struct lm_extract_counts doc_main, doc_alt, doc_iter;
  struct lm_extract_modal doc_modal;
  bool doc_done;
  bool doc_final; /* this document is the one that closes the response */
  bool final;     /* the response's final usage has been taken */
  bool doc_has_cost;
  int64_t doc_cost;
  char model[LM_EXTRACT_MODEL_MAX];
  /* Numbers (and a model, field 254) of whole documents' DIRECT members,
   * found while the framer asks which members to read and taken when it
   * hands them over. */
  uint8_t direct_n;
  bool direct_claimed;     /* the member just walked was read DIRECT */
  uint32_t direct_members; /* members taken DIRECT so far (tests read it) */
  struct {
    const char *t;
    uint8_t n;      /* text length (a number's: <= LM_JSON_NUM_MAX) */
    uint8_t field;  /* the API's field table index, or 255: usage.cost */
    uint8_t member; /* the member's place among the document's picks */
  } direct[LM_EXTRACT_DIRECT_MAX];
  /* The first bytes of the last document classified INERT, and where its
   * members' values ended in them: a stream's chunks repeat their leading
   * members (id, object, created, model, system_fingerprint), and bytes
   * equal to members already found harmless, with the same model, are
   * harmless again, so the next walk resumes past them. */
  uint32_t model_gen; /* changes of model */
  uint32_t pre_model_gen;
  uint16_t pre_len;
  uint8_t pre_n;
  bool pre_valid;
  uint16_t pre_end[LM_EXTRACT_PREFIX_MEMBERS];
  char pre[LM_EXTRACT_PREFIX];
  struct lm_framer framer;
};

void lm_extract_init(struct lm_extract *x, enum lm_api api);
/* Optional, before the first feed: picks the framing. */
void lm_extract_set_content_type(struct lm_extract *x, const char *ct,
                                 size_t len);
/* Decoded response body bytes, split anywhere. */
void lm_extract_feed(struct lm_extract *x, const char *p, size_t n);
/* End of the body: completes a last event that had no blank line. */
void lm_extract_finish(struct lm_extract *x);

/* Readable at any time; updated as documents/events complete. */
bool lm_extract_has_usage(const struct lm_extract *x);
/* Running total for the whole response, normalised (zeros if none). */
const struct lm_usage *lm_extract_usage(const struct lm_extract *x);
/* Whether the response's final usage has been taken: nothing later in
 * the body can raise the bill, so cutting it would save nothing. Per API:
 * OpenAI chat/completions streams (and the OpenAI-compatibles) send usage
 * once, at the end; Anthropic's message_delta; Responses'
 * response.completed / incomplete / failed; Gemini's chunk with a
 * finishReason; Ollama's done:true line; Cohere's message-end; and any
 * response read as one JSON document once it is complete. */
bool lm_extract_final(const struct lm_extract *x);
/* Whether the body is a stream of documents (SSE, NDJSON, a Gemini JSON
 * array) rather than one JSON document, which the provider finished
 * generating before its first byte was sent. */
bool lm_extract_streaming(const struct lm_extract *x);
/* Whether the usage read so far is a running total of what arrived (Gemini:
 * every chunk carries one), not only a start (Anthropic's message_start:
 * the input, one output token) or nothing until the end. */
bool lm_extract_running(const struct lm_extract *x);
/* Model the provider reported ("" if none). */
const char *lm_extract_model(const struct lm_extract *x);
/* An error event/object was seen in the body (meaningful under HTTP 200). */
bool lm_extract_inband_error(const struct lm_extract *x);
/* OpenRouter usage.cost, in pico-USD (1e-12 USD), converted exactly. */
bool lm_extract_provider_cost(const struct lm_extract *x, int64_t *pusd);
/* Increments each time the usage or cost is seen to change. Within one
 * feed, a Gemini snapshot that a later one replaces may never be read (see
 * framer.h), so the count depends on how the body was split; only whether
 * it moved is meaningful. */
uint32_t lm_extract_generation(const struct lm_extract *x);

#endif
