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
 * Documents read whole. Most events of a stream (content deltas, pings)
 * carry nothing the consumer reads, and in some streams (Gemini's) every
 * event carries a running usage snapshot that the next one replaces. A
 * consumer may name a classifier that looks at the raw bytes of a document
 * complete in the buffer and says: READ it (scan it as usual), it is INERT
 * (it changes nothing: crossed unscanned), or it is a SNAPSHOT (its only
 * effect is to replace what earlier snapshots said). Snapshots are held
 * back (pointers into the caller's buffer, never copied) until the end of
 * the feed call, the next document or bytes that must be scanned, or a
 * full queue; then the newest is scanned, and the older ones only if it
 * took nothing (the consumer's `taken` count did not move), newest first. What the consumer
 * ends up with is what scanning every document in order gives; only how
 * often it changed along the way differs.
 * Offered: an SSE event made of at most one `event:` line (not "error")
 * and one `data:` line followed by a blank line (LF or CRLF line ends), an
 * NDJSON line holding one document (and whitespace), or an object element
 * of a JSON array read as a stream (valid only), starting where the parser
 * is between events/documents/elements. Events crossed or replayed this way
 * are not reported to on_event (their name is never "error"). From the
 * second READ verdict in a row, the next 1, 2, 4 ... 32 documents are not
 * offered (a stream where every document must be read pays for a walk in
 * about 32).
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

/* A consumer's verdict on a document whole in the buffer (see above). */
enum lm_doc_kind { LM_DOC_READ = 0, LM_DOC_INERT, LM_DOC_SNAPSHOT };

/* Classifies the JSON object at the start of [p, p + n): for INERT and
 * SNAPSHOT, *len is its length (it must be complete within n). With
 * `valid`, INERT and SNAPSHOT also promise that the scanner would read the
 * object without error (lm_json_walk_valid_object): in a JSON array an
 * error ends the whole body, so a malformed element must not be crossed. */
typedef enum lm_doc_kind (*lm_framer_classify_fn)(void *ctx, const char *p,
                                                  size_t n, bool valid,
                                                  size_t *len);
/* Snapshots the consumer has taken so far (any counter that moves when
 * scanning a snapshot document had an effect). */
typedef uint32_t (*lm_framer_taken_fn)(void *ctx);

#define LM_FRAMER_HELD 32 /* snapshot documents held back at most */

/* Whole documents (JSON bodies): when the top-level object of a JSON body
 * is whole in one feed and valid (lm_json_walk_valid_object), the consumer
 * says of each top-level member, in a first pass with no effect: SKIP (it
 * changes nothing, as an INERT document's members), SCAN (the scanner
 * reads it), or DIRECT (the consumer reads it itself, from the raw bytes,
 * with the same result as the scanner's). The scanner is then fed a
 * document of the SCAN members alone, in their order, and each DIRECT
 * member is handed to `direct` at its place between them (after the
 * document has begun, before it ends). `pick` numbers the members picked
 * (SCAN or DIRECT) so far in this document: 0 until the first is; before
 * the first pass, direct is called with LM_FRAMER_BEGIN (forget what an
 * earlier document left). */
enum lm_member_use { LM_MEMBER_SKIP = 0, LM_MEMBER_SCAN, LM_MEMBER_DIRECT };
typedef enum lm_member_use (*lm_framer_select_fn)(void *ctx, unsigned pick,
                                                  const char *k, size_t klen,
                                                  const char *v, size_t vlen,
                                                  bool escaped);
typedef void (*lm_framer_direct_fn)(void *ctx, unsigned pick);
/* Offered each member's value before it is validated (json_scan.h's
 * claim, with the pick the member would have): the consumer may read a
 * member it will take DIRECT there, validating it itself. */
typedef size_t (*lm_framer_claim_fn)(void *ctx, unsigned pick, const char *k,
                                     size_t klen, const char *v,
                                     const char *end);
#define LM_FRAMER_BEGIN UINT32_MAX /* direct's pick before a document's walk */
#define LM_FRAMER_PICKS 16 /* members read of a whole document at most */

struct lm_framer {
  lm_framer_event_fn on_event;
  lm_framer_classify_fn classify;
  lm_framer_taken_fn taken;
  lm_framer_select_fn select;
  lm_framer_direct_fn direct;
  lm_framer_claim_fn claim;
  void *ctx;
  unsigned char mode;      /* enum lm_frame_mode in use */
  unsigned char ct_mode;   /* what the Content-Type said */
  unsigned char json_like; /* JSON or NDJSON: what '{' means when sniffing */
  bool skip_line;          /* NDJSON: skipping the rest of a bad line */
  uint8_t backoff;         /* READ verdicts in a row, as 0, 1, 2, 4 ... 64 */
  uint8_t wait;            /* documents still not to be offered */
  bool finished;
  uint8_t held; /* snapshot documents held back (this feed) */
  struct {
    const char *p;
    size_t n;
  } held_doc[LM_FRAMER_HELD];
  struct lm_sse sse;
  struct lm_json_scan json;
};

/* Framing a Content-Type value names: SSE, NDJSON, JSON, or AUTO for
 * missing/generic types (text/plain, application/octet-stream, ...). */
enum lm_frame_mode lm_frame_mode_from_content_type(const char *ct, size_t len);

/* json_like: LM_FRAME_JSON or LM_FRAME_NDJSON, what a sniffed '{' body is. */
void lm_framer_init(struct lm_framer *f, enum lm_frame_mode json_like,
                    lm_json_cb on_json, lm_framer_event_fn on_event, void *ctx);
/* Optional: the classifier and the snapshot count (see above); NULL
 * classify scans everything. */
void lm_framer_set_classifier(struct lm_framer *f, lm_framer_classify_fn fn,
                              lm_framer_taken_fn taken);
/* Optional, with a classifier: whole JSON documents read member by member
 * (see above). */
void lm_framer_set_whole(struct lm_framer *f, lm_framer_select_fn select,
                         lm_framer_direct_fn direct, lm_framer_claim_fn claim);
/* Optional, before the first feed. */
void lm_framer_set_content_type(struct lm_framer *f, const char *ct,
                                size_t len);
void lm_framer_feed(struct lm_framer *f, const char *p, size_t n);
void lm_framer_finish(struct lm_framer *f);
enum lm_frame_mode lm_framer_mode(const struct lm_framer *f);

#endif
