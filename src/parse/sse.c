/* sse.c — streaming Server-Sent Events parser (see sse.h).
 *
 * Line-oriented state machine that never looks back: the field name is the
 * only part of a line it keeps (at most 6 bytes, enough to tell "data" and
 * "event" from everything else); a value is either streamed out (data),
 * copied into the bounded event name (event) or skipped. Value bytes are
 * scanned with lm_find2 for CR/LF, so data lines cost one vectorised pass.
 */
#include "sse.h"

#include <string.h>

#include "json_scan.h" /* lm_find2 */

enum { S_BOM, S_LINE_START, S_FIELD, S_SPACE, S_VALUE, S_SKIP };
enum { F_OTHER, F_DATA, F_EVENT };

static const unsigned char bom[3] = {0xEF, 0xBB, 0xBF};

void lm_sse_init(struct lm_sse *s, const struct lm_sse_handler *h, void *ctx) {
  memset(s, 0, sizeof *s);
  s->h = h;
  s->ctx = ctx;
  s->state = S_BOM;
}

static void dispatch(struct lm_sse *s) {
  if (s->has_data) {
    s->events++;
    s->h->event_end(s->ctx, s->event, s->event_len, s->event_trunc);
  }
  s->has_data = false;
  s->event_len = 0;
  s->event_trunc = false;
}

/* The field name is complete (at ':' or at the end of a colon-less line):
 * decide what the value is and start it. */
static void field_start(struct lm_sse *s) {
  s->field = F_OTHER;
  if (s->field_len == 4 && memcmp(s->field_name, "data", 4) == 0)
    s->field = F_DATA;
  else if (s->field_len == 5 && memcmp(s->field_name, "event", 5) == 0)
    s->field = F_EVENT;
  if (s->field == F_DATA) {
    if (!s->has_data) {
      s->has_data = true;
      s->h->event_begin(s->ctx);
    } else {
      s->h->data(s->ctx, "\n", 1);
    }
  } else if (s->field == F_EVENT) {
    s->event_len = 0;
    s->event_trunc = false;
  }
}

static void value_bytes(struct lm_sse *s, const char *p, size_t n) {
  if (s->field == F_DATA) {
    s->h->data(s->ctx, p, n);
  } else if (s->field == F_EVENT && !s->event_trunc) {
    size_t room = LM_SSE_EVENT_MAX - 1 - s->event_len;
    if (n > room) {
      n = room;
      s->event_trunc = true;
    }
    memcpy(s->event + s->event_len, p, n);
    s->event_len = (uint8_t)(s->event_len + n);
  }
}

/* A line ended (c is the CR or LF that ended it). */
static void line_end(struct lm_sse *s, char c) {
  s->cr_pending = c == '\r';
  if (s->state == S_LINE_START)
    dispatch(s);
  else if (s->state == S_FIELD)
    field_start(s); /* "data" alone: a data line with an empty value */
  s->state = S_LINE_START;
}

void lm_sse_feed(struct lm_sse *s, const char *p, size_t n) {
  const char *end = p + n;
  while (p < end) {
    if (s->cr_pending) {
      s->cr_pending = false;
      if (*p == '\n') {
        p++;
        continue;
      }
    }
    switch (s->state) {
    case S_VALUE:
    case S_SKIP: {
      const char *q = lm_find2(p, end, '\r', '\n');
      const char *stop = q ? q : end;
      if (s->state == S_VALUE && stop > p)
        value_bytes(s, p, (size_t)(stop - p));
      if (!q)
        return;
      p = q + 1;
      line_end(s, *q);
      break;
    }
    case S_BOM:
      if ((unsigned char)*p == bom[s->bom_pos]) {
        p++;
        if (++s->bom_pos == 3)
          s->state = S_LINE_START;
        break;
      }
      if (s->bom_pos == 0) {
        s->state = S_LINE_START;
        break;
      }
      /* A partial BOM: those bytes began a field no one knows. */
      s->state = S_FIELD;
      s->field_len = sizeof s->field_name;
      break;
    case S_LINE_START: {
      char c = *p;
      if (c == '\r' || c == '\n') {
        p++;
        line_end(s, c);
      } else if (c == ':') {
        p++;
        s->state = S_SKIP;
      } else {
        s->field_len = 0;
        s->state = S_FIELD;
      }
      break;
    }
    case S_FIELD: {
      char c = *p++;
      if (c == ':') {
        field_start(s);
        s->state = S_SPACE;
      } else if (c == '\r' || c == '\n') {
        line_end(s, c);
      } else if (s->field_len < sizeof s->field_name) {
        s->field_name[s->field_len++] = c;
      } else {
        s->field_len = sizeof s->field_name; /* too long: unknown field */
      }
      break;
    }
    case S_SPACE:
      if (*p == ' ')
        p++;
      s->state = s->field == F_OTHER ? S_SKIP : S_VALUE;
      break;
    }
  }
}

bool lm_sse_between_events(const struct lm_sse *s) {
  return s->state == S_LINE_START && !s->has_data && !s->cr_pending &&
         s->event_len == 0 && !s->event_trunc;
}

void lm_sse_count_event(struct lm_sse *s) { s->events++; }

void lm_sse_finish(struct lm_sse *s) {
  s->cr_pending = false;
  if (s->state != S_LINE_START && s->state != S_BOM)
    line_end(s, '\n');
  dispatch(s);
}
