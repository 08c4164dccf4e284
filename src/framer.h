/* framer.h — turns a response body into a sequence of JSON documents.
 *
 * Owns: choosing the framing (from the Content-Type, or by sniffing the
 * first non-space byte when the type is missing or generic) and driving
 * the JSON scanner document by document:
 *   SSE     text/event-stream: each event's data is one document (the
 *           scanner is reset at each event; `data: [DONE]` is not JSON: the
 *           scanner rejects it at 'D' and no document completes).
 *   NDJSON  application/x-ndjson: one document per line; a malformed line
 *           is skipped up to the next LF and the scanner starts afresh.
 *   JSON    one document; a top-level array is read as a stream of
 *           documents, one per element (Gemini streamGenerateContent
 *           without alt=sse: `[{...}\r\n,\r\n{...}]`).
 * Sniffing: '{' or '[' first means JSON (or NDJSON when the caller says
 * so, e.g. for Ollama), anything else means SSE. A body that starts with
 * '{' is JSON even under text/event-stream (error replies to stream
 * requests come back as plain JSON).
 *
 * Never buffers a document or an event, never allocates, never prints;
 * the JSON events go straight to the caller's callback.
 */
#ifndef LM_FRAMER_H
#define LM_FRAMER_H

#include <stdbool.h>
#include <stddef.h>

#include "json_scan.h"
#include "sse.h"

enum lm_frame_mode {
  LM_FRAME_AUTO = 0, /* not known yet: decided at the first body byte */
  LM_FRAME_JSON,
  LM_FRAME_NDJSON,
  LM_FRAME_SSE
};

/* Called once per SSE event after its data (and document) is complete. */
typedef void (*lm_framer_event_fn)(void *ctx, const char *name, size_t len,
                                   bool truncated);

struct lm_framer {
  lm_framer_event_fn on_event;
  void *ctx;
  unsigned char mode;      /* enum lm_frame_mode in use */
  unsigned char ct_mode;   /* what the Content-Type said */
  unsigned char json_like; /* JSON or NDJSON: what '{' means when sniffing */
  bool skip_line;          /* NDJSON: skipping the rest of a bad line */
  bool finished;
  struct lm_sse sse;
  struct lm_json_scan json;
};

/* Framing a Content-Type value names: SSE, NDJSON, JSON, or AUTO for
 * missing/generic types (text/plain, application/octet-stream, ...). */
enum lm_frame_mode lm_frame_mode_from_content_type(const char *ct, size_t len);

/* json_like: LM_FRAME_JSON or LM_FRAME_NDJSON, what a sniffed '{' body is. */
void lm_framer_init(struct lm_framer *f, enum lm_frame_mode json_like,
                    lm_json_cb on_json, lm_framer_event_fn on_event,
                    void *ctx);
/* Optional, before the first feed. */
void lm_framer_set_content_type(struct lm_framer *f, const char *ct,
                                size_t len);
void lm_framer_feed(struct lm_framer *f, const char *p, size_t n);
void lm_framer_finish(struct lm_framer *f);
enum lm_frame_mode lm_framer_mode(const struct lm_framer *f);

#endif
