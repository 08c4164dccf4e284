/* reqscan.h — what llmmeter needs from a request body before it leaves.
 *
 * Owns: reading the model, the output-token cap, the streaming switches
 * and a size measure of the prompt out of a complete request body, for
 * admission (price the worst case before the request is sent) and for
 * estimating usage when a response carries none.
 *
 * Reads the body once (the JSON module's event walk, or its push scanner
 * where the walk cannot): no allocation, no printing, fixed-size result.
 * Malformed bodies give whatever was read before the error (model "" and
 * -1 caps when nothing was).
 */
#ifndef LM_REQSCAN_H
#define LM_REQSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "usage.h"

#define LM_REQ_CHOICES_MAX 1024

struct lm_request_info {
  char model[128];           /* "" if absent (or longer than 127 bytes) */
  int64_t max_output_tokens; /* max_completion_tokens > max_output_tokens >
                                max_tokens > generationConfig.maxOutputTokens
                                > options.num_predict; -1 if absent or
                                negative (Ollama's -1 = unlimited) */
  bool stream;               /* "stream": true; Ollama /api/chat and
                                /api/generate default to true when absent;
                                Gemini streamGenerateContent is always true */
  bool include_usage;        /* stream_options.include_usage == true */
  bool has_stream_options;   /* a stream_options object is present */
  uint32_t choices;          /* answers generated and billed: the largest of n,
                       best_of, generationConfig.candidateCount (1 when
                       absent; at most LM_REQ_CHOICES_MAX) */
  uint64_t body_bytes;
  uint64_t prompt_chars; /* raw bytes of the string values (and, under
                                tools/functions, keys) below the top-level
                                prompt-bearing keys: messages, input, prompt,
                                suffix, contents, system, systemInstruction /
                                system_instruction, instructions, tools,
                                functions, documents, tool_config. Inline
                                binary (base64 "data", images, image_url,
                                inlineData, input_audio, file_data, data:
                                URLs) is not counted. */
};

void lm_reqscan(enum lm_api api, const char *body, size_t len,
                struct lm_request_info *out);
/* The same facts read by the push scanner alone, never by the event walk
 * (tests and the fuzzer compare the two). */
void lm_reqscan_scanned(enum lm_api api, const char *body, size_t len,
                        struct lm_request_info *out);

#endif
