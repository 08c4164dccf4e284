/* test_json_scan.c — the JSON push scanner: paths, resumability, limits,
 * malformed input, and exact number conversion.
 *
 * A recording callback renders each event as "path=value" (containers as
 * "path{" / "path}" / "path[" / "path]", documents as "<" / ">", errors as
 * "!"), so a case states the JSON and the exact event trace it must give
 * however it is split.
 */
#include "json_scan.h"
#include "lm_test.h"

struct trace {
  char out[8192];
  size_t len;
};

static void tput(struct trace *t, const char *p, size_t n) {
  if (t->len + n < sizeof t->out) {
    memcpy(t->out + t->len, p, n);
    t->len += n;
    t->out[t->len] = '\0';
  }
}

static void put_path(struct trace *t, const struct lm_json_scan *s) {
  for (size_t i = 0; i < lm_json_depth(s); i++) {
    if (lm_json_level_is_array(s, i)) {
      char b[16];
      snprintf(b, sizeof b, "[%u]", (unsigned)lm_json_index(s, i));
      tput(t, b, strlen(b));
    } else {
      size_t n;
      const char *k = lm_json_key(s, i, &n);
      if (i)
        tput(t, ".", 1);
      if (k)
        tput(t, k, n);
      else
        tput(t, "?", 1);
    }
  }
}

static void on_event(void *ctx, const struct lm_json_scan *s,
                     enum lm_json_event ev, const char *text, size_t len) {
  struct trace *t = ctx;
  switch (ev) {
  case LM_JSON_DOC_BEGIN:
    tput(t, "<", 1);
    return;
  case LM_JSON_DOC_END:
    tput(t, "> ", 2);
    return;
  case LM_JSON_ERROR:
    tput(t, "!", 1);
    return;
  default:
    break;
  }
  put_path(t, s);
  switch (ev) {
  case LM_JSON_OBJECT_BEGIN:
    tput(t, "{ ", 2);
    return;
  case LM_JSON_OBJECT_END:
    tput(t, "} ", 2);
    return;
  case LM_JSON_ARRAY_BEGIN:
    tput(t, "[ ", 2);
    return;
  case LM_JSON_ARRAY_END:
    tput(t, "] ", 2);
    return;
  case LM_JSON_STRING:
    tput(t, "=\"", 2);
    tput(t, text, len);
    if (lm_json_value_truncated(s))
      tput(t, "...", 3);
    tput(t, "\" ", 2);
    return;
  case LM_JSON_KEY:
    tput(t, ":key=", 5);
    if (text)
      tput(t, text, len);
    if (lm_json_value_truncated(s))
      tput(t, "...", 3);
    tput(t, " ", 1);
    return;
  default:
    tput(t, "=", 1);
    tput(t, text, len);
    tput(t, " ", 1);
    return;
  }
}

static void scan(struct trace *t, unsigned flags, const char *in, size_t n,
                 size_t split, bool bytewise) {
  struct lm_json_scan s;
  memset(t, 0, sizeof *t);
  lm_json_init(&s, flags, on_event, t);
  if (bytewise) {
    for (size_t i = 0; i < n; i++)
      lm_json_feed(&s, in + i, 1);
  } else {
    lm_json_feed(&s, in, split);
    lm_json_feed(&s, in + split, n - split);
  }
  lm_json_finish(&s);
}

static void expect_trace_flags(unsigned flags, const char *in,
                               const char *want) {
  struct trace t;
  size_t n = strlen(in);
  for (size_t split = 0; split <= n; split++) {
    scan(&t, flags, in, n, split, false);
    if (strcmp(t.out, want) != 0) {
      fprintf(stderr, "  split at %zu:\n    got  %s\n    want %s\n", split,
              t.out, want);
      lm_t_cur_failed = 1;
      return;
    }
  }
  scan(&t, flags, in, n, 0, true);
  CHECK_STR(t.out, want);
}

static void expect_trace(const char *in, const char *want) {
  expect_trace_flags(0, in, want);
}

LM_TEST(test_values_are_reported_at_their_paths) {
  expect_trace(
      "{\"usage\":{\"prompt_tokens\":5,\"d\":{\"c\":1}},\"a\":[true,null,\"x\"]}",
      "<{ usage{ usage.prompt_tokens=5 usage.d{ usage.d.c=1 usage.d} usage} "
      "a[ a[0]=true a[1]=null a[2]=\"x\" a] } > ");
}

LM_TEST(test_whitespace_anywhere_is_accepted) {
  expect_trace(" \r\n{ \"a\" :\t1 , \"b\"\n:[ ] }  \n", "<{ a=1 b[ b] } > ");
}

LM_TEST(test_escapes_are_decoded_across_any_split) {
  expect_trace("{\"t\":\"a\\\"b\\\\c\\/\\n\\u003c\\u00e9\\u20ac\"}",
               "<{ t=\"a\"b\\c/\n<\xC3\xA9\xE2\x82\xAC\" } > ");
}

LM_TEST(test_utf8_split_inside_a_character_is_kept_intact) {
  expect_trace("[\"\xF0\x9F\x98\x80\"]", "<[ [0]=\"\xF0\x9F\x98\x80\" ] > ");
}

LM_TEST(test_usage_inside_a_string_is_not_a_key) {
  expect_trace("{\"content\":\"{\\\"usage\\\":{\\\"prompt_tokens\\\":9}}\"}",
               "<{ content=\"{\"usage\":{\"prompt_tokens\":9}}\" } > ");
}

LM_TEST(test_numbers_floats_and_exponents_are_accepted) {
  expect_trace("[0,-1,0.0133176,6.92e-6,1E+3,-0.5e10]",
               "<[ [0]=0 [1]=-1 [2]=0.0133176 [3]=6.92e-6 [4]=1E+3 "
               "[5]=-0.5e10 ] > ");
}

LM_TEST(test_top_level_number_completes_at_finish) {
  expect_trace("42", "<=42 > ");
}

LM_TEST(test_malformed_numbers_are_errors) {
  static const char *const bad[] = {"[01]", "[1.]", "[-]",   "[1e]",
                                    "[.5]", "[+1]", "[1e+]", "[--1]"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct trace t;
    scan(&t, 0, bad[i], strlen(bad[i]), 0, false);
    CHECK(strchr(t.out, '!') != NULL);
  }
}

LM_TEST(test_malformed_documents_stop_at_the_error) {
  static const char *const bad[] = {"{\"a\":1,}",  "{\"a\" 1}",  "[1 2]",
                                    "{1:2}",       "[tru]",      "[nul,1]",
                                    "{\"a\":1]",   "]",          "\"\\x\"",
                                    "\"\\u12G4\"", "{\"a\":1}}", "[\"a\"x]"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct trace t;
    scan(&t, 0, bad[i], strlen(bad[i]), 1, false);
    if (!strchr(t.out, '!')) {
      fprintf(stderr, "  no error for %s: %s\n", bad[i], t.out);
      lm_t_cur_failed = 1;
    }
  }
}

LM_TEST(test_feed_returns_bytes_consumed_up_to_the_error) {
  struct trace t = {{0}, 0};
  struct lm_json_scan s;
  lm_json_init(&s, 0, on_event, &t);
  const char *in = "{\"a\":x, more}";
  CHECK_EQ_U64(lm_json_feed(&s, in, strlen(in)), 6);
  CHECK(lm_json_failed(&s));
  CHECK_EQ_U64(lm_json_feed(&s, "{}", 2), 0);
  lm_json_reset(&s);
  CHECK(!lm_json_failed(&s));
  CHECK_EQ_U64(lm_json_feed(&s, "{}", 2), 2);
}

LM_TEST(test_long_strings_are_truncated_with_raw_length) {
  char in[1200];
  struct trace t;
  memset(in, 0, sizeof in);
  memcpy(in, "{\"s\":\"", 7);
  size_t n = strlen(in);
  for (int i = 0; i < 1000; i++)
    in[n++] = (char)('a' + i % 26);
  memcpy(in + n, "\\n\"}", 5);
  struct lm_json_scan s;
  memset(&t, 0, sizeof t);
  lm_json_init(&s, 0, on_event, &t);
  lm_json_feed(&s, in, strlen(in));
  /* the reported prefix is LM_JSON_STR_MAX bytes, flagged truncated */
  CHECK(strstr(t.out, "...\"") != NULL);
  CHECK(strlen(t.out) < 300);
  CHECK(lm_json_idle(&s));
}

static uint64_t raw_len_seen;
static void on_raw(void *ctx, const struct lm_json_scan *s,
                   enum lm_json_event ev, const char *text, size_t len) {
  (void)ctx;
  (void)text;
  (void)len;
  if (ev == LM_JSON_STRING)
    raw_len_seen = lm_json_value_raw_len(s);
}

LM_TEST(test_string_raw_length_counts_every_byte_between_quotes) {
  struct lm_json_scan s;
  lm_json_init(&s, 0, on_raw, NULL);
  const char *in = "\"ab\\u00e9\\n\"";
  for (size_t i = 0; i < strlen(in); i++)
    lm_json_feed(&s, in + i, 1);
  CHECK_EQ_U64(raw_len_seen, 10);
}

LM_TEST(test_long_keys_never_match) {
  char in[256];
  snprintf(in, sizeof in, "{\"%s\":1}",
           "usageusageusageusageusageusageusageusageusageusage_");
  expect_trace(in, "<{ ?=1 } > ");
}

LM_TEST(test_deep_nesting_beyond_the_tracked_depth_still_parses) {
  char in[200];
  size_t n = 0;
  for (int i = 0; i < 30; i++)
    in[n++] = '[';
  in[n++] = '1';
  for (int i = 0; i < 30; i++)
    in[n++] = ']';
  in[n++] = ',';
  in[n] = '\0';
  struct trace t;
  struct lm_json_scan s;
  memset(&t, 0, sizeof t);
  lm_json_init(&s, 0, on_event, &t);
  lm_json_feed(&s, in, n - 1);
  CHECK(lm_json_idle(&s));
  CHECK(!lm_json_failed(&s));
}

LM_TEST(test_nesting_beyond_the_limit_is_an_error) {
  static char in[LM_JSON_NEST_LIMIT + 2];
  memset(in, '{', sizeof in);
  in[0] = '[';
  for (size_t i = 0; i < sizeof in; i++)
    in[i] = '[';
  struct trace t;
  scan(&t, 0, in, sizeof in, sizeof in, false);
  CHECK(strchr(t.out, '!') != NULL);
}

LM_TEST(test_multi_doc_mode_reads_concatenated_documents) {
  expect_trace_flags(LM_JSON_MULTI_DOC, "{\"a\":1}\n{\"b\":2}\n",
                     "<{ a=1 } > <{ b=2 } > ");
}

LM_TEST(test_single_doc_mode_rejects_trailing_values) {
  expect_trace("{} {}", "<{ } > !");
}

LM_TEST(test_split_root_array_makes_each_element_a_document) {
  expect_trace_flags(LM_JSON_SPLIT_ROOT_ARRAY,
                     "[{\"a\":1}\r\n,\r\n{\"b\":[2]}\r\n]",
                     "<{ a=1 } > <{ b[ b[0]=2 b] } > ");
  expect_trace_flags(LM_JSON_SPLIT_ROOT_ARRAY, "[]", "");
  expect_trace_flags(LM_JSON_SPLIT_ROOT_ARRAY, "{\"a\":1}", "<{ a=1 } > ");
}

LM_TEST(test_keys_are_reported_only_when_asked) {
  expect_trace_flags(LM_JSON_REPORT_KEYS, "{\"a\":{\"b\":1}}",
                     "<{ a:key=a a{ a.b:key=b a.b=1 a} } > ");
}

static bool path_result;
static const char *path_pattern;
static void on_path(void *ctx, const struct lm_json_scan *s,
                    enum lm_json_event ev, const char *text, size_t len) {
  (void)ctx;
  (void)text;
  (void)len;
  if (ev == LM_JSON_NUMBER && lm_json_path_is(s, path_pattern))
    path_result = true;
}

static bool path_matches(const char *json, const char *pattern) {
  struct lm_json_scan s;
  path_result = false;
  path_pattern = pattern;
  lm_json_init(&s, 0, on_path, NULL);
  lm_json_feed(&s, json, strlen(json));
  lm_json_finish(&s);
  return path_result;
}

LM_TEST(test_long_key_keeps_the_same_prefix_however_it_is_split) {
  /* found by fuzz_json_scan: the kept prefix used to depend on chunking */
  expect_trace_flags(
      LM_JSON_REPORT_KEYS,
      "{\"0123456789012345678901234567890123456789012345678901234\":1}",
      "<{ ?:key=012345678901234567890123456789012345678901234567... "
      "?=1 } > ");
}

LM_TEST(test_path_patterns_match_structurally) {
  CHECK(path_matches("{\"usage\":{\"iterations\":[{\"x\":1}]}}",
                     "usage.iterations[].x"));
  CHECK(!path_matches("{\"usage\":{\"iterations\":{\"x\":1}}}",
                      "usage.iterations[].x"));
  CHECK(!path_matches("{\"usage\":{\"x\":{\"y\":1}}}", "usage.x"));
  CHECK(!path_matches("{\"a\":{\"usage\":{\"x\":1}}}", "usage.x"));
  CHECK(path_matches("[1]", "[]"));
  CHECK(path_matches("7", ""));
}

LM_TEST(test_u64_conversion_is_exact) {
  uint64_t v = 0;
  CHECK(lm_json_parse_u64("12", 2, &v) && v == 12);
  CHECK(lm_json_parse_u64("12.0", 4, &v) && v == 12);
  CHECK(lm_json_parse_u64("1.2e1", 5, &v) && v == 12);
  CHECK(lm_json_parse_u64("0", 1, &v) && v == 0);
  CHECK(lm_json_parse_u64("-0", 2, &v) && v == 0);
  CHECK(lm_json_parse_u64("18446744073709551615", 20, &v) && v == UINT64_MAX);
  CHECK(!lm_json_parse_u64("18446744073709551616", 20, &v));
  CHECK(!lm_json_parse_u64("1.5", 3, &v));
  CHECK(!lm_json_parse_u64("-1", 2, &v));
  CHECK(!lm_json_parse_u64("1e999999999", 11, &v));
  CHECK(lm_json_parse_u64("0e999999999", 11, &v) && v == 0);
  CHECK(!lm_json_parse_u64("", 0, &v));
  CHECK(!lm_json_parse_u64("12x", 3, &v));
}

LM_TEST(test_cost_converts_exactly_to_pico_usd) {
  int64_t v = 0;
  CHECK(lm_json_parse_scaled("0.0133176", 9, 12, &v));
  CHECK_EQ_I64(v, 13317600000LL);
  CHECK(lm_json_parse_scaled("0.000048", 8, 12, &v));
  CHECK_EQ_I64(v, 48000000LL);
  CHECK(lm_json_parse_scaled("4.8e-05", 7, 12, &v));
  CHECK_EQ_I64(v, 48000000LL);
  CHECK(lm_json_parse_scaled("0", 1, 12, &v));
  CHECK_EQ_I64(v, 0);
  CHECK(lm_json_parse_scaled("1e-13", 5, 12, &v));
  CHECK_EQ_I64(v, 0);
  CHECK(lm_json_parse_scaled("5e-13", 5, 12, &v));
  CHECK_EQ_I64(v, 1); /* half rounds away from zero */
  CHECK(lm_json_parse_scaled("-5e-13", 6, 12, &v));
  CHECK_EQ_I64(v, -1);
  CHECK(lm_json_parse_scaled("1234567.123456789012345", 23, 12, &v));
  CHECK_EQ_I64(v, 1234567123456789012LL);
  CHECK(lm_json_parse_scaled("0.1", 3, 12, &v)); /* not 0.1000000000000000055 */
  CHECK_EQ_I64(v, 100000000000LL);
  CHECK(!lm_json_parse_scaled("1e7", 3, 12, &v)); /* 1e19 > INT64_MAX */
}

LM_TEST(test_find2_finds_the_first_match_at_every_alignment) {
  char buf[100];
  for (size_t len = 0; len < 80; len++)
    for (size_t at = 0; at <= len; at++) {
      memset(buf, 'x', sizeof buf);
      if (at < len)
        buf[at] = (at & 1) ? '"' : '\\';
      buf[len] = '"'; /* just outside the range: must not be found */
      const char *r = lm_find2(buf, buf + len, '"', '\\');
      if (at < len)
        CHECK(r == buf + at);
      else
        CHECK(r == NULL);
    }
}

/* ---- skipping whole values ----------------------------------------------- */

static int skip_events;
static char skip_seen[512];
static void skip_cb(void *ctx, const struct lm_json_scan *s,
                    enum lm_json_event ev, const char *text, size_t len) {
  (void)ctx;
  skip_events++;
  if (ev == LM_JSON_NUMBER || ev == LM_JSON_STRING) {
    size_t n = strlen(skip_seen), kl = 1;
    const char *k = lm_json_key(s, lm_json_depth(s) - 1, &kl);
    snprintf(skip_seen + n, sizeof(skip_seen) - n, "%.*s=%.*s;", (int)kl,
             k ? k : "?", (int)len, text);
  }
}
static bool skip_choices(void *ctx, const struct lm_json_scan *s) {
  (void)ctx;
  return lm_json_depth(s) == 1 && lm_json_key_is(s, 0, "choices");
}

LM_TEST(test_skipped_values_are_crossed_exactly_at_any_split) {
  const char doc[] =
      "{\"id\":\"x\",\"choices\":[{\"delta\":{\"content\":\"}]\\\"{[\\\\\"}},"
      "{\"usage\":7,\"a\":[[],{}]}],\"usage\":{\"total\":42},\"tail\":1}";
  size_t n = strlen(doc);
  for (size_t cut = 0; cut <= n; cut++) {
    struct lm_json_scan js;
    lm_json_init(&js, 0, skip_cb, NULL);
    lm_json_set_skip(&js, skip_choices);
    skip_seen[0] = 0;
    CHECK_EQ_U64(lm_json_feed(&js, doc, cut), cut);
    CHECK_EQ_U64(lm_json_feed(&js, doc + cut, n - cut), n - cut);
    CHECK(!lm_json_failed(&js));
    CHECK(lm_json_idle(&js));
    /* nothing inside choices is reported; everything after it is */
    CHECK_STR(skip_seen, "id=x;total=42;tail=1;");
  }
}

LM_TEST(test_escape_writes_json_string_bodies_and_never_splits_an_escape) {
  char out[64];
  CHECK_EQ_U64(lm_json_escape(out, sizeof(out), "a\"b\\c\n\x01"), 19);
  CHECK_STR(out, "a\\\"b\\\\c\\u000a\\u0001");
  char small[9];
  lm_json_escape(small, sizeof(small), "\n\n\n");
  CHECK_STR(small, "\\u000a"); /* the second escape would not fit whole */
  CHECK_EQ_U64(lm_json_escape(out, sizeof(out), NULL), 0);
  CHECK_STR(out, "");
}

int main(void) {
  LM_RUN(test_values_are_reported_at_their_paths);
  LM_RUN(test_escape_writes_json_string_bodies_and_never_splits_an_escape);
  LM_RUN(test_skipped_values_are_crossed_exactly_at_any_split);
  LM_RUN(test_whitespace_anywhere_is_accepted);
  LM_RUN(test_escapes_are_decoded_across_any_split);
  LM_RUN(test_utf8_split_inside_a_character_is_kept_intact);
  LM_RUN(test_usage_inside_a_string_is_not_a_key);
  LM_RUN(test_numbers_floats_and_exponents_are_accepted);
  LM_RUN(test_top_level_number_completes_at_finish);
  LM_RUN(test_malformed_numbers_are_errors);
  LM_RUN(test_malformed_documents_stop_at_the_error);
  LM_RUN(test_feed_returns_bytes_consumed_up_to_the_error);
  LM_RUN(test_long_strings_are_truncated_with_raw_length);
  LM_RUN(test_string_raw_length_counts_every_byte_between_quotes);
  LM_RUN(test_long_keys_never_match);
  LM_RUN(test_deep_nesting_beyond_the_tracked_depth_still_parses);
  LM_RUN(test_nesting_beyond_the_limit_is_an_error);
  LM_RUN(test_multi_doc_mode_reads_concatenated_documents);
  LM_RUN(test_single_doc_mode_rejects_trailing_values);
  LM_RUN(test_split_root_array_makes_each_element_a_document);
  LM_RUN(test_keys_are_reported_only_when_asked);
  LM_RUN(test_long_key_keeps_the_same_prefix_however_it_is_split);
  LM_RUN(test_path_patterns_match_structurally);
  LM_RUN(test_u64_conversion_is_exact);
  LM_RUN(test_cost_converts_exactly_to_pico_usd);
  LM_RUN(test_find2_finds_the_first_match_at_every_alignment);
  LM_TEST_END();
}
