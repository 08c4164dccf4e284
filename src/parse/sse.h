/* sse.h — a streaming Server-Sent Events parser (WHATWG event-stream).
 *
 * Owns: splitting a text/event-stream body into lines (CR, LF or CRLF —
 * a CR at the end of one feed and an LF at the start of the next are one
 * line end), fields (`data`, `event`; `id`, `retry`, unknown fields and
 * `:` comment lines are skipped), the one optional space after the colon,
 * joining multi-line data with "\n", a leading UTF-8 BOM, and dispatching
 * an event at each blank line — and, unlike a browser, also at finish for
 * a last event that never got its blank line (we would rather not lose the
 * usage it carries).
 *
 * Never buffers data: data bytes are handed to the handler as they arrive,
 * split wherever the feeds split them. Only the event name is kept
 * (truncated to LM_SSE_EVENT_MAX - 1 bytes). Never allocates, never prints.
 */
#ifndef LM_SSE_H
#define LM_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LM_SSE_EVENT_MAX 40

struct lm_sse_handler {
  /* The first data line of an event starts (before its bytes). */
  void (*event_begin)(void *ctx);
  /* Data bytes of the current event; lines after the first are preceded
   * by a "\n" call of their own. */
  void (*data)(void *ctx, const char *p, size_t n);
  /* The event is complete (blank line or finish). name is the `event:`
   * field ("" when absent: a "message"), truncated if long. Only called
   * for events that had at least one data line, as the spec dispatches. */
  void (*event_end)(void *ctx, const char *name, size_t len, bool truncated);
};

struct lm_sse {
  const struct lm_sse_handler *h;
  void *ctx;
  uint8_t state;
  uint8_t field;     /* field of the current line */
  uint8_t field_len; /* bytes of field name seen (saturating) */
  uint8_t bom_pos;
  bool cr_pending; /* last byte was CR: swallow one LF */
  bool has_data;   /* the current event has a data line */
  bool event_trunc;
  uint8_t event_len;
  char field_name[6];
  char event[LM_SSE_EVENT_MAX];
  uint64_t events; /* events dispatched so far */
};

void lm_sse_init(struct lm_sse *s, const struct lm_sse_handler *h, void *ctx);
void lm_sse_feed(struct lm_sse *s, const char *p, size_t n);
/* Between events: at the start of a line, with no field of an event read
 * and no CR waiting for its LF. */
bool lm_sse_between_events(const struct lm_sse *s);
/* An event the caller crossed itself (see framer.h) counts as dispatched. */
void lm_sse_count_event(struct lm_sse *s);
/* End of stream: ends an unterminated line and dispatches a pending event. */
void lm_sse_finish(struct lm_sse *s);

#endif
