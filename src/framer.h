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
 * Inert documents. Most events of a stream (content deltas, pings) carry
 * nothing the consumer reads. A consumer may name a predicate that tells,
 * from the raw bytes of a document complete in the buffer, that it can be
 * ignored; the framer then crosses it without scanning: an SSE event made
 * of at most one `event:` line (not "error") and one `data:` line followed
 * by a blank line (LF or CRLF line ends), or an NDJSON line holding one
 * document (and whitespace), starting where the parser is between
 * events/documents. Anything else, and every
 * document the predicate is unsure of, goes through the parser as before,
 * so the predicate can only save work, never change a result. After a
 * refusal the next 1, 2, 4 ... 64 documents are not offered (a stream whose
 * every document carries usage, like Gemini's, pays for one walk in 64).
 *
 * Never buffers a document or an event, never allocates, never prints;
 * the JSON events go straight to the caller's callback.
 */
#ifndef LM_FRAMER_H
#define LM_FRAMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* Length of the JSON object at the start of [p, p + n) if it is complete
 * there and the consumer can ignore it whole; 0 otherwise (see above). */
typedef size_t (*lm_framer_inert_fn)(void *ctx, const char *p, size_t n);

struct lm_framer {
  lm_framer_event_fn on_event;
  lm_framer_inert_fn inert;
  void *ctx;
  unsigned char mode;      /* enum lm_frame_mode in use */
  unsigned char ct_mode;   /* what the Content-Type said */
  unsigned char json_like; /* JSON or NDJSON: what '{' means when sniffing */
  bool skip_line;          /* NDJSON: skipping the rest of a bad line */
  uint8_t inert_backoff;   /* documents not offered after a refusal... */
  uint8_t inert_wait;      /* ...and how many of them are still to come */
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
/* Optional: the inert-document predicate (see above). */
void lm_framer_set_inert(struct lm_framer *f, lm_framer_inert_fn fn);
/* Optional, before the first feed. */
void lm_framer_set_content_type(struct lm_framer *f, const char *ct,
                                size_t len);
void lm_framer_feed(struct lm_framer *f, const char *p, size_t n);
void lm_framer_finish(struct lm_framer *f);
enum lm_frame_mode lm_framer_mode(const struct lm_framer *f);

#endif
