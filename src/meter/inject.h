/* inject.h — metering OpenAI chat streams that would carry no usage,
 * without the program noticing.
 *
 * An OpenAI chat stream requested without stream_options.include_usage
 * carries no usage at all. We add the option to the outgoing request and
 * then undo its two visible effects on the response: the `"usage":null`
 * member it adds to every chunk, and the extra usage-only chunk
 * (`"choices":[]` plus a usage object) before `data: [DONE]`. The program
 * receives byte for byte what it would have received without the option;
 * the meter reads the usage before it is removed.
 *
 * Transport-free: request bytes in, response bytes in, filtered bytes out
 * through a callback. The filter holds at most one SSE event (LM_INJECT_MAX
 * bytes); a larger event passes through untouched.
 */
#ifndef LM_INJECT_H
#define LM_INJECT_H

#include <stdbool.h>
#include <stddef.h>

#define LM_INJECT_MAX (56 * 1024)

/* Returns a malloc'd copy of the JSON request body with
 * "stream_options":{"include_usage":true} added as the first member of the
 * top-level object, or NULL if the body is not a JSON object. */
char *lm_inject_request(const char *body, size_t len, size_t *out_len);

/* Returns a malloc'd copy of the JSON request body with the top-level
 * "model" string replaced by `model` (--downgrade), or NULL if the body has
 * no such member. Everything else is kept byte for byte. */
char *lm_inject_model(const char *body, size_t len, const char *model,
                      size_t *out_len);

/* emit returns the number of bytes the program accepted (== len on
 * success); anything else stops the filter and is returned to the caller. */
typedef size_t (*lm_inject_emit_fn)(void *ctx, const char *p, size_t len);

struct lm_inject_filter {
  size_t out;       /* transformed bytes at buf[0..out) not yet taken */
  size_t n;         /* bytes held in buf */
  size_t scan;      /* where the search for the event end resumes */
  bool line_empty;  /* the current line has no bytes yet */
  bool prev_cr;     /* the last byte scanned was CR */
  bool passthrough; /* an oversized event is streaming through raw */
  size_t taken;     /* input bytes the last feed consumed (all of it
                             unless it stopped: the rest is the caller's) */
  char buf[LM_INJECT_MAX];
};

void lm_inject_filter_init(struct lm_inject_filter *f);
/* Feeds response bytes; each complete event goes out, transformed, through
 * emit. Returns 0, or the count emit returned when it took less than it was
 * given (the program paused or aborted): *stopped is then set, and what was
 * not taken stays held for lm_inject_filter_feed(f, NULL, 0, ...). */
size_t lm_inject_filter_feed(struct lm_inject_filter *f, const char *p,
                             size_t n, lm_inject_emit_fn emit, void *ctx,
                             bool *stopped);
/* At the end of the body: emits whatever is held, untransformed. */
size_t lm_inject_filter_finish(struct lm_inject_filter *f,
                               lm_inject_emit_fn emit, void *ctx,
                               bool *stopped);
/* Whether output is waiting for the program (after a pause). */
bool lm_inject_filter_pending(const struct lm_inject_filter *f);

/* Transforms one complete SSE event in place: removes a top-level
 * `"usage":null` member, or empties the event if it is the usage-only
 * chunk. Returns the new length. Exposed for tests. */
size_t lm_inject_transform_event(char *ev, size_t len);

#endif
