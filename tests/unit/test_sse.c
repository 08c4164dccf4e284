/* test_sse.c — Server-Sent Events framing conformance (WHATWG rules).
 *
 * A recording handler turns the dispatched events into one string,
 * "name|data" per event separated by ";", so each case states the bytes
 * on the wire and the events they must produce — fed whole, split at every
 * position into two feeds, and one byte at a time.
 */
#include "lm_test.h"
#include "sse.h"

struct rec {
  char out[4096];
  size_t len;
  int begins;
};

static void put(struct rec *r, const char *p, size_t n) {
  if (r->len + n < sizeof r->out) {
    memcpy(r->out + r->len, p, n);
    r->len += n;
    r->out[r->len] = '\0';
  }
}

static void on_begin(void *ctx) {
  struct rec *r = ctx;
  r->begins++;
}
static void on_data(void *ctx, const char *p, size_t n) { put(ctx, p, n); }
static void on_end(void *ctx, const char *name, size_t len, bool trunc) {
  struct rec *r = ctx;
  char tail[64];
  put(r, "|", 1);
  put(r, name, len);
  snprintf(tail, sizeof tail, "%s;", trunc ? "..." : "");
  put(r, tail, strlen(tail));
}

static const struct lm_sse_handler rec_handler = {on_begin, on_data, on_end};

/* Events come out as "data|name;" strings, in order. */
static void parse(struct rec *r, const char *in, size_t n, size_t split,
                  bool bytewise) {
  struct lm_sse s;
  memset(r, 0, sizeof *r);
  lm_sse_init(&s, &rec_handler, r);
  if (bytewise) {
    for (size_t i = 0; i < n; i++)
      lm_sse_feed(&s, in + i, 1);
  } else {
    lm_sse_feed(&s, in, split);
    lm_sse_feed(&s, in + split, n - split);
  }
  lm_sse_finish(&s);
}

/* Asserts the events for every way of feeding `in`. */
static void expect_events_n(const char *in, size_t n, const char *want) {
  struct rec r;
  for (size_t split = 0; split <= n; split++) {
    parse(&r, in, n, split, false);
    if (strcmp(r.out, want) != 0) {
      fprintf(stderr, "  split at %zu: got \"%s\" want \"%s\"\n", split, r.out,
              want);
      lm_t_cur_failed = 1;
      return;
    }
  }
  parse(&r, in, n, 0, true);
  CHECK_STR(r.out, want);
}

static void expect_events(const char *in, const char *want) {
  expect_events_n(in, strlen(in), want);
}

LM_TEST(test_lf_line_ends) {
  expect_events("data: a\n\ndata: b\n\n", "a|;b|;");
}
LM_TEST(test_crlf_line_ends) {
  expect_events("data: a\r\n\r\ndata: b\r\n\r\n", "a|;b|;");
}
LM_TEST(test_bare_cr_line_ends) {
  expect_events("data: a\r\rdata: b\r\r", "a|;b|;");
}
LM_TEST(test_cr_and_lf_split_across_feeds_is_one_line_end) {
  /* every split position is tried, including between \r and \n */
  expect_events("data: a\r\ndata: b\r\n\r\n", "a\nb|;");
}
LM_TEST(test_comment_lines_are_ignored) {
  expect_events(": OPENROUTER PROCESSING\n\n: keep-alive\n\ndata: x\n: mid\n\n",
                "x|;");
}
LM_TEST(test_comment_only_block_dispatches_nothing) {
  expect_events(":\n\n: hi\r\n\r\n", "");
}
LM_TEST(test_multi_line_data_is_joined_with_lf) {
  expect_events("data: {\"a\":\ndata: 1}\n\n", "{\"a\":\n1}|;");
}
LM_TEST(test_only_one_space_after_colon_is_removed) {
  expect_events("data:x\n\ndata:  y\n\ndata:\tz\n\n", "x|; y|;\tz|;");
}
LM_TEST(test_event_name_is_reported_and_reset) {
  expect_events("event: message_start\ndata: 1\n\ndata: 2\n\n",
                "1|message_start;2|;");
}
LM_TEST(test_event_name_after_data_still_names_the_event) {
  expect_events("data: 1\nevent: error\n\n", "1|error;");
}
LM_TEST(test_long_event_name_is_truncated) {
  expect_events("event: aaaaaaaaaabbbbbbbbbbccccccccccdddddddddd\ndata: 1\n\n",
                "1|aaaaaaaaaabbbbbbbbbbccccccccccddddddddd...;");
}
LM_TEST(test_id_retry_and_unknown_fields_are_ignored) {
  expect_events("id: 7\nretry: 100\nfoo: bar\ndatax: no\ndata: yes\n\n",
                "yes|;");
}
LM_TEST(test_event_without_data_is_not_dispatched) {
  expect_events("event: ping\n\n", "");
}
LM_TEST(test_field_without_colon_is_an_empty_value) {
  expect_events("data\ndata\n\n", "\n|;");
}
LM_TEST(test_last_event_without_blank_line_is_dispatched_at_finish) {
  expect_events("data: a\n\ndata: last", "a|;last|;");
  expect_events("data: a\n\ndata: last\r", "a|;last|;");
}
LM_TEST(test_leading_bom_is_skipped) {
  expect_events("\xEF\xBB\xBF"
                "data: a\n\n",
                "a|;");
}
LM_TEST(test_partial_bom_starts_an_unknown_field) {
  expect_events("\xEF\xBB"
                "data: a\n\ndata: b\n\n",
                "b|;");
}
LM_TEST(test_utf8_split_inside_a_character_passes_through) {
  expect_events("data: \xF0\x9F\x98\x80 ok\n\n", "\xF0\x9F\x98\x80 ok|;");
}
LM_TEST(test_done_marker_is_just_data) {
  expect_events("data: {}\n\ndata: [DONE]\n\n", "{}|;[DONE]|;");
}
LM_TEST(test_event_begin_once_per_event) {
  struct rec r;
  const char *in = "data: a\ndata: b\n\nevent: x\n\ndata: c\n\n";
  parse(&r, in, strlen(in), 3, false);
  CHECK(r.begins == 2);
}

int main(void) {
  LM_RUN(test_lf_line_ends);
  LM_RUN(test_crlf_line_ends);
  LM_RUN(test_bare_cr_line_ends);
  LM_RUN(test_cr_and_lf_split_across_feeds_is_one_line_end);
  LM_RUN(test_comment_lines_are_ignored);
  LM_RUN(test_comment_only_block_dispatches_nothing);
  LM_RUN(test_multi_line_data_is_joined_with_lf);
  LM_RUN(test_only_one_space_after_colon_is_removed);
  LM_RUN(test_event_name_is_reported_and_reset);
  LM_RUN(test_event_name_after_data_still_names_the_event);
  LM_RUN(test_long_event_name_is_truncated);
  LM_RUN(test_id_retry_and_unknown_fields_are_ignored);
  LM_RUN(test_event_without_data_is_not_dispatched);
  LM_RUN(test_field_without_colon_is_an_empty_value);
  LM_RUN(test_last_event_without_blank_line_is_dispatched_at_finish);
  LM_RUN(test_leading_bom_is_skipped);
  LM_RUN(test_partial_bom_starts_an_unknown_field);
  LM_RUN(test_utf8_split_inside_a_character_passes_through);
  LM_RUN(test_done_marker_is_just_data);
  LM_RUN(test_event_begin_once_per_event);
  LM_TEST_END();
}
