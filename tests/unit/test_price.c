/* test_price.c — the price module as a spec: exact costs on real feed
 * prices, the matching rules, dated changes, LiteLLM overrides, defaults.
 *
 * Every expected number is worked out by hand in the comment beside it, in
 * pico-USD (pUSD, 1e-12 USD). A price of X USD per million tokens is
 * X * 10^6 pUSD per token.
 *
 * Order matters once: the environment (LLMMETER_PRICES,
 * LLMMETER_DEFAULT_PRICE) is read on the first lookup of the process, so
 * main() sets it before anything else and the first test checks it; later
 * tests replace the configuration through lm_price_load_file /
 * lm_price_set_default.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "lm_test.h"
#include "price.h"

#define USAGE(...) ((struct lm_usage){__VA_ARGS__})

/* 2026-09-01T00:00:00Z = day 20697 since the epoch. */
#define T_2026_09_01 ((int64_t)20697 * 86400)

static char tmpdir[512];

/* Writes text to a fresh file under $LM_TEST_TMP (or /tmp); path out. */
static void write_temp(const char *text, size_t len, char *path, size_t size) {
  snprintf(path, size, "%s/test_price_XXXXXX", tmpdir);
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd < 0)
    return;
  CHECK(write(fd, text, len) == (ssize_t)len);
  close(fd);
}

static struct lm_price_match look(const char *model, const char *hint) {
  struct lm_price_match m;
  lm_price_lookup(model, hint, &m);
  return m;
}

static const char override_json[] =
    "{\n"
    "  \"sample_spec\": {\"input_cost_per_token\": 0.0,\n"
    "                  \"max_tokens\": \"LEGACY parameter\"},\n"
    "  \"gpt-4o\": {\"input_cost_per_token\": 3e-06,\n"
    "             \"output_cost_per_token\": 1.25e-07,\n"
    "             \"litellm_provider\": \"openai\", \"mode\": \"chat\",\n"
    "             \"supports_vision\": true, \"max_tokens\": 4096},\n"
    "  \"My-Custom-Model\": {\n"
    "    \"input_cost_per_token\": 1e-06, \"output_cost_per_token\": 2E-6,\n"
    "    \"cache_read_input_token_cost\": 1e-07,\n"
    "    \"cache_creation_input_token_cost\": 1.25e-06,\n"
    "    \"cache_creation_input_token_cost_above_1hr\": 2e-06,\n"
    "    \"input_cost_per_token_above_200k_tokens\": 2e-06,\n"
    "    \"output_cost_per_token_above_200k_tokens\": 4e-06,\n"
    "    \"output_cost_per_reasoning_token\": 9e-06,\n"
    "    \"litellm_provider\": \"custom\",\n"
    "    \"metadata\": {\"notes\": [\"a\\u00e9\\\"\", {\"b\": null}, -1.5e+3]}\n"
    "  },\n"
    "  \"azure/gpt-4o-mini\": {\"input_cost_per_token\": 5e-07,\n"
    "                        \"output_cost_per_token\": 1.5e-06,\n"
    "                        \"litellm_provider\": \"azure\"},\n"
    "  \"dall-e-3\": {\"output_cost_per_image\": 0.04,\n"
    "               \"mode\": \"image_generation\"},\n"
    "  \"tiny-model\": {\"input_cost_per_token\": 1.5e-13,\n"
    "                 \"output_cost_per_token\": 0}\n"
    "}\n";

/* ---- The environment, read once on the first lookup ---- */

LM_TEST(test_environment_is_read_on_first_lookup) {
  /* main() set LLMMETER_PRICES to override_json and
   * LLMMETER_DEFAULT_PRICE to "3,15" before any lookup. */
  struct lm_price_match m = look("gpt-4o", NULL);
  CHECK(m.source == LM_PRICE_OVERRIDE);
  CHECK_EQ_I64(m.price.input, 3000000); /* 3e-06 USD = 3,000,000 pUSD */
  m = look("no-such-model-anywhere", NULL);
  CHECK(m.source == LM_PRICE_DEFAULT);
  CHECK_EQ_I64(m.price.input, 3000000);   /* $3/Mtok */
  CHECK_EQ_I64(m.price.output, 15000000); /* $15/Mtok */
  CHECK_EQ_I64(m.price.cache_read, LM_PRICE_UNSET);
  /* 1.5e-13 was rounded up, and said so. */
  const char *e = lm_price_load_error();
  CHECK(e != NULL && strstr(e, "rounded up") != NULL);
}

static char env_path[600]; /* the override file main() exports */

static void *lookup_many(void *arg) {
  long bad = 0;
  for (int i = 0; i < 2000; i++) {
    struct lm_price_match m;
    if (!lm_price_lookup(i % 2 ? "gpt-4o" : "claude-sonnet-4-5", NULL, &m))
      bad++;
    else if (i % 2 &&
             (m.source != LM_PRICE_OVERRIDE || m.price.input != 3000000))
      bad++;
  }
  *(long *)arg = bad;
  return NULL;
}

LM_TEST(test_first_lookup_from_many_threads_loads_the_file_once) {
  /* In a child, so that this process's first lookup stays ahead: eight
   * threads race to the first lookup; every one sees the override. */
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    pthread_t t[8];
    long bad[8] = {0};
    for (int i = 0; i < 8; i++)
      pthread_create(&t[i], NULL, lookup_many, &bad[i]);
    long total = 0;
    for (int i = 0; i < 8; i++) {
      pthread_join(t[i], NULL);
      total += bad[i];
    }
    _exit(total ? 1 : 0);
  }
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ---- Cost arithmetic on real prices ---- */

LM_TEST(test_feed_price_0_0375_per_mtok_is_37500_pusd_per_token) {
  lm_price_load_file(NULL, NULL, 0);
  lm_price_set_default(NULL, NULL, 0);
  /* Cohere command-r7b: $0.0375 in, $0.15 out per million tokens. */
  struct lm_price_match m = look("command-r7b", NULL);
  CHECK(m.source == LM_PRICE_EMBEDDED);
  CHECK_EQ_I64(m.price.input, 37500);
  CHECK_EQ_I64(m.price.output, 150000);
  /* One input token: 37,500 pUSD. A million: 37,500,000,000 = $0.0375. */
  CHECK_EQ_I64(lm_price_cost(&m.price, &USAGE(.input = 1)), 37500);
  CHECK_EQ_I64(lm_price_cost(&m.price, &USAGE(.input = 1000000)),
               37500000000LL);
  /* 3 in + 7 out: 3*37,500 + 7*150,000 = 112,500 + 1,050,000. */
  CHECK_EQ_I64(lm_price_cost(&m.price, &USAGE(.input = 3, .output = 7)),
               1162500);
}

LM_TEST(test_sonnet_4_5_cache_write_5m_and_1h_are_priced_apart) {
  /* Claude Sonnet 4.5: in $3, out $15, cache read $0.30, cache write (5m)
   * $3.75, cache write 1h $6 per Mtok. */
  struct lm_price_match m = look("claude-sonnet-4-5", "anthropic");
  CHECK(m.source == LM_PRICE_EMBEDDED);
  CHECK_EQ_I64(m.price.input, 3000000);
  CHECK_EQ_I64(m.price.output, 15000000);
  CHECK_EQ_I64(m.price.cache_read, 300000);
  CHECK_EQ_I64(m.price.cache_write, 3750000);
  CHECK_EQ_I64(m.price.cache_write_1h, 6000000);
  /* input 10,000 = 5,000 uncached + 2,000 cache read + 3,000 cache write,
   * of which 1,000 at the 1h TTL; output 500 (200 of it reasoning).
   *   5,000 x 3,000,000  = 15,000,000,000
   *   2,000 x   300,000  =    600,000,000
   *   2,000 x 3,750,000  =  7,500,000,000   (5-minute writes)
   *   1,000 x 6,000,000  =  6,000,000,000   (1-hour writes)
   *     500 x 15,000,000 =  7,500,000,000   (reasoning is output)
   *   total                 36,600,000,000 pUSD = $0.0366 */
  struct lm_usage u = USAGE(.input = 10000, .cache_read = 2000,
                            .cache_write = 3000, .cache_write_1h = 1000,
                            .output = 500, .reasoning = 200);
  CHECK_EQ_I64(lm_price_cost(&m.price, &u), 36600000000LL);
}

LM_TEST(test_sonnet_4_5_tier_is_a_cliff_above_200k_input_tokens) {
  struct lm_price_match m = look("claude-sonnet-4-5-20250929", NULL);
  CHECK(m.source == LM_PRICE_EMBEDDED);
  CHECK_EQ_U64(m.price.tier.above_input_tokens, 200000);
  CHECK_EQ_I64(m.price.tier.input, 6000000);   /* $6 */
  CHECK_EQ_I64(m.price.tier.output, 22500000); /* $22.50 */
  /* Exactly 200,000 input: not above, base prices.
   *   200,000 x 3,000,000 + 1,000 x 15,000,000
   *   = 600,000,000,000 + 15,000,000,000 = 615,000,000,000 */
  CHECK_EQ_I64(lm_price_cost(&m.price, &USAGE(.input = 200000, .output = 1000)),
               615000000000LL);
  /* 200,001: every token at the tier price, not only the one above.
   *   200,001 x 6,000,000 + 1,000 x 22,500,000
   *   = 1,200,006,000,000 + 22,500,000,000 = 1,222,506,000,000 */
  CHECK_EQ_I64(lm_price_cost(&m.price, &USAGE(.input = 200001, .output = 1000)),
               1222506000000LL);
  /* Cache tokens count toward the threshold and take tier prices too:
   * input 250,000 = 100,000 uncached + 100,000 read + 50,000 written
   * (10,000 of them 1h); output 2,000. Tier: read $0.60, write $7.50,
   * 1h write $12.
   *   100,000 x  6,000,000 = 600,000,000,000
   *   100,000 x    600,000 =  60,000,000,000
   *    40,000 x  7,500,000 = 300,000,000,000
   *    10,000 x 12,000,000 = 120,000,000,000
   *     2,000 x 22,500,000 =  45,000,000,000
   *   total                 1,125,000,000,000 pUSD = $1.125 */
  struct lm_usage u = USAGE(.input = 250000, .cache_read = 100000,
                            .cache_write = 50000, .cache_write_1h = 10000,
                            .output = 2000);
  CHECK_EQ_I64(lm_price_cost(&m.price, &u), 1125000000000LL);
}

LM_TEST(test_cache_tokens_without_a_cache_price_bill_at_input) {
  /* claude-2: $8 in, $24 out, no cache prices in the feed. */
  struct lm_price_match m = look("claude-2", NULL);
  CHECK_EQ_I64(m.price.cache_read, LM_PRICE_UNSET);
  CHECK_EQ_I64(m.price.cache_write, LM_PRICE_UNSET);
  /* 1,000 input (400 read, 100 written) all at 8,000,000 = 8,000,000,000 */
  CHECK_EQ_I64(lm_price_cost(&m.price, &USAGE(.input = 1000, .cache_read = 400,
                                              .cache_write = 100)),
               8000000000LL);
  /* A 1h write without a 1h price bills at the cache write price. */
  struct lm_price p = {.input = 10,
                       .output = 20,
                       .cache_read = 1,
                       .cache_write = 13,
                       .cache_write_1h = LM_PRICE_UNSET};
  /* 100 in = 50 uncached + 50 written (20 of them 1h): 50*10 + 50*13 */
  CHECK_EQ_I64(lm_price_cost(&p, &USAGE(.input = 100, .cache_write = 50,
                                        .cache_write_1h = 20)),
               1150);
}

LM_TEST(test_cost_saturates_and_clamps_inconsistent_usage) {
  struct lm_price_match m = look("o1-pro", NULL); /* $600/Mtok out */
  CHECK_EQ_I64(m.price.output, 600000000);
  CHECK_EQ_I64(lm_price_cost(&m.price, &USAGE(.output = UINT64_MAX)),
               INT64_MAX);
  CHECK_EQ_I64(lm_price_cost(&m.price,
                             &USAGE(.input = UINT64_MAX, .output = UINT64_MAX)),
               INT64_MAX);
  /* Cache parts larger than input: uncached clamps at 0; a 1h part larger
   * than the writes clamps to the writes. */
  struct lm_price p = {.input = 10,
                       .output = 0,
                       .cache_read = 1,
                       .cache_write = 2,
                       .cache_write_1h = 3};
  /* 5 read x 1 + 5 written (all 1h) x 3 = 20 */
  CHECK_EQ_I64(lm_price_cost(&p, &USAGE(.input = 3, .cache_read = 5,
                                        .cache_write = 5, .cache_write_1h = 9)),
               20);
  CHECK_EQ_I64(lm_price_cost(NULL, &USAGE(.input = 1)), 0);
}

/* ---- Every price the feed carries: parts and fees ---- */

LM_TEST(test_perplexity_sonar_request_fee_is_charged_once_per_call) {
  /* sonar: $1 in, $1 out per Mtok and requests_kcount 12: $12 per 1,000
   * calls = 12 x 10^12 / 1,000 = 12,000,000,000 pUSD a call, exactly. */
  struct lm_price_match m = look("sonar", "perplexity");
  CHECK(m.source == LM_PRICE_EMBEDDED);
  CHECK_EQ_I64(m.price.request, 12000000000LL);
  CHECK_EQ_I64(m.price.web_search, 0);
  /* No tokens, one call: $0.012. */
  CHECK_EQ_I64(lm_price_cost(&m.price, &USAGE(.requests = 1)), 12000000000LL);
  /* 1,000 in + 500 out: 1,000 x 1,000,000 + 500 x 1,000,000 + the fee
   *   = 1,500,000,000 + 12,000,000,000 = 13,500,000,000 */
  CHECK_EQ_I64(lm_price_cost(&m.price, &USAGE(.input = 1000, .output = 500,
                                              .requests = 1)),
               13500000000LL);
  /* The fee is per call: a usage of no call has none; 1,000 calls $12. */
  CHECK_EQ_I64(lm_price_cost(&m.price, &USAGE(.input = 1000)), 1000000000);
  CHECK_EQ_I64(lm_price_cost(&m.price, &USAGE(.requests = 1000)),
               12000000000000LL);
  /* The prefixed name resolves to Perplexity's own price. */
  m = look("perplexity/sonar", NULL);
  CHECK_EQ_I64(m.price.request, 12000000000LL);
  CHECK(!lm_price_is_zero(&m.price));
}

LM_TEST(test_claude_web_searches_cost_10_usd_per_1000) {
  /* Claude Sonnet 4.5 with 1,000 input, 100 output and 2 web searches:
   *   1,000 x  3,000,000 =  3,000,000,000
   *     100 x 15,000,000 =  1,500,000,000
   *       2 x 10,000,000,000 = 20,000,000,000  (web_searches_kcount 10)
   *   total                 24,500,000,000 pUSD = $0.0245 */
  struct lm_price_match m = look("claude-sonnet-4-5", "anthropic");
  CHECK_EQ_I64(m.price.web_search, 10000000000LL);
  CHECK_EQ_I64(m.price.request, 0);
  CHECK_EQ_I64(
      lm_price_cost(&m.price, &USAGE(.input = 1000, .output = 100,
                                     .web_searches = 2, .requests = 1)),
      24500000000LL);
  /* Every Claude model the feed prices searches for, the same $10. */
  const char *claude[] = {"claude-haiku-4-5", "claude-opus-4-1",
                          "claude-3-7-sonnet-latest", "claude-opus-4-5"};
  for (size_t i = 0; i < sizeof claude / sizeof *claude; i++)
    CHECK_EQ_I64(look(claude[i], "anthropic").price.web_search, 10000000000LL);
  /* The fee is no token price: above the 200k tier it stays $0.01.
   *   200,001 x 6,000,000 + 1 x 10,000,000,000 = 1,210,006,000,000 */
  CHECK_EQ_I64(
      lm_price_cost(&m.price, &USAGE(.input = 200001, .web_searches = 1)),
      1210006000000LL);
}

LM_TEST(test_gpt_audio_audio_tokens_at_audio_prices_rest_at_text) {
  /* gpt-audio: text $2.50 in / $10 out, audio $32 in / $64 out per Mtok. */
  struct lm_price_match m = look("gpt-audio", "openai");
  CHECK(m.price.parts ==
        (LM_PRICE_HAS_INPUT_AUDIO | LM_PRICE_HAS_OUTPUT_AUDIO));
  CHECK_EQ_I64(m.price.input_audio, 32000000);
  CHECK_EQ_I64(m.price.output_audio, 64000000);
  /* 1,000 input of which 800 audio, 100 output (text):
   *     200 x  2,500,000 =    500,000,000
   *     800 x 32,000,000 = 25,600,000,000
   *     100 x 10,000,000 =  1,000,000,000
   *   total                 27,100,000,000 pUSD = $0.0271 */
  CHECK_EQ_I64(lm_price_cost(&m.price, &USAGE(.input = 1000, .input_audio = 800,
                                              .output = 100, .requests = 1)),
               27100000000LL);
  /* 100 output of which 60 audio: 40 x 10,000,000 + 60 x 64,000,000
   *   = 400,000,000 + 3,840,000,000 = 4,240,000,000 */
  CHECK_EQ_I64(
      lm_price_cost(&m.price, &USAGE(.output = 100, .output_audio = 60)),
      4240000000LL);
  /* No cache price at all: a cached audio token is still an audio token.
   * 1,000 in, 800 audio (all of them cached), 100 text cached:
   *   100 x 2,500,000 (cache reads bill at input) + 800 x 32,000,000 +
   *   100 x 2,500,000 = 25,600,000,000 + 500,000,000 */
  CHECK_EQ_I64(lm_price_cost(&m.price, &USAGE(.input = 1000, .cache_read = 900,
                                              .input_audio = 800,
                                              .cache_audio_read = 800)),
               26100000000LL);
}

LM_TEST(test_gemini_cached_audio_has_its_own_cache_price) {
  /* gemini-2.5-flash: text $0.30 in, cache read $0.03, out $2.50; audio
   * $1 in, cached audio $0.10 per Mtok. The usage of the recorded fixture
   * gemini_generate_content_nonstream: 17,713 prompt tokens, 17,379 of them
   * cached; audio 1,917 of which 1,881 cached; video 15,780 (no price of
   * its own: text); output 68 + 821 thoughts.
   *   cached audio   1,881 x   100,000 =   188,100,000
   *   audio            36 x 1,000,000 =    36,000,000
   *   cached rest  15,498 x    30,000 =   464,940,000
   *   text            298 x   300,000 =    89,400,000
   *   output          889 x 2,500,000 = 2,222,500,000
   *   total                             3,000,940,000 pUSD */
  struct lm_price_match m = look("gemini-2.5-flash", "google");
  CHECK(m.price.parts ==
        (LM_PRICE_HAS_INPUT_AUDIO | LM_PRICE_HAS_CACHE_AUDIO_READ));
  struct lm_usage u = USAGE(.input = 17713, .cache_read = 17379,
                            .input_audio = 1917, .cache_audio_read = 1881,
                            .input_video = 15780, .output = 889,
                            .reasoning = 821, .requests = 1);
  CHECK_EQ_I64(lm_price_cost(&m.price, &u), 3000940000LL);
  /* The same tokens as text only (what was charged before): 334 x 300,000
   * + 17,379 x 30,000 + 889 x 2,500,000 = 2,844,070,000 */
  u.input_audio = u.cache_audio_read = 0;
  CHECK_EQ_I64(lm_price_cost(&m.price, &u), 2844070000LL);
}

LM_TEST(test_gemini_image_output_at_the_image_price) {
  /* gemini-2.5-flash-image: output text $2.50, output image $30 per Mtok.
   * 1,290 image tokens + 10 text tokens out, 20 in:
   *   20 x 300,000 + 10 x 2,500,000 + 1,290 x 30,000,000
   *   = 6,000,000 + 25,000,000 + 38,700,000,000 = 38,731,000,000 */
  struct lm_price_match m = look("gemini-2.5-flash-image", "google");
  CHECK(m.price.parts == LM_PRICE_HAS_OUTPUT_IMAGE);
  CHECK_EQ_I64(lm_price_cost(&m.price, &USAGE(.input = 20, .output = 1300,
                                              .output_image = 1290)),
               38731000000LL);
}

LM_TEST(test_deep_research_reasoning_citations_and_searches) {
  /* sonar-deep-research: in $2, out $8, reasoning $3, citation $2 per
   * Mtok, searches $5 per 1,000. A recorded usage: prompt 1,188, citation
   * 8,014, completion 4,240, reasoning 92,431 (both beside prompt and
   * completion: total_tokens was 5,428), 54 searches. Perplexity's own
   * breakdown of that call: 0.00238 + 0.03392 + 0.01603 + 0.27729 + 0.27
   * = $0.59962.
   *   prompt      1,188 x 2,000,000 =   2,376,000,000
   *   citation    8,014 x 2,000,000 =  16,028,000,000
   *   completion  4,240 x 8,000,000 =  33,920,000,000
   *   reasoning  92,431 x 3,000,000 = 277,293,000,000
   *   searches       54 x 5,000,000,000 = 270,000,000,000
   *   total                            599,617,000,000 pUSD */
  struct lm_price_match m = look("sonar-deep-research", "perplexity");
  CHECK(m.price.parts ==
        (LM_PRICE_HAS_CITATION | LM_PRICE_HAS_OUTPUT_REASONING));
  CHECK_EQ_I64(m.price.output_reasoning, 3000000);
  CHECK_EQ_I64(m.price.web_search, 5000000000LL);
  CHECK_EQ_I64(lm_price_cost(&m.price,
                             &USAGE(.input = 1188, .citation = 8014,
                                    .output = 4240, .separate_reasoning = 92431,
                                    .web_searches = 54, .requests = 1)),
               599617000000LL);
  /* Sonar Reasoning Pro has no reasoning, citation or search price: the
   * counts beside the totals cost nothing there (Perplexity bills them for
   * Deep Research only); the call pays its tokens and its $14 / 1,000.
   *   1,000 x 2,000,000 + 100 x 8,000,000 + 14,000,000,000 */
  m = look("sonar-reasoning-pro", "perplexity");
  CHECK(m.price.parts == 0);
  CHECK_EQ_I64(
      lm_price_cost(&m.price,
                    &USAGE(.input = 1000, .output = 100, .citation = 500,
                           .separate_reasoning = 90000, .web_searches = 20,
                           .requests = 1)),
      16800000000LL);
}

LM_TEST(test_parts_without_a_rate_bill_at_the_text_rates) {
  /* claude-haiku-4-5 has no audio or image rates: its parts are text.
   * 1,000 in (300 "audio") + 100 out (50 "image"): 1,000 x 1,000,000 +
   * 100 x 5,000,000 = 1,500,000,000 */
  struct lm_price_match m = look("claude-haiku-4-5", "anthropic");
  CHECK(m.price.parts == 0);
  CHECK_EQ_I64(lm_price_cost(&m.price, &USAGE(.input = 1000, .output = 100)),
               1500000000LL);
  CHECK_EQ_I64(
      lm_price_cost(&m.price, &USAGE(.input = 1000, .output = 100,
                                     .input_audio = 300, .output_image = 50)),
      1500000000LL);
  /* A zeroed price is text only and free. */
  struct lm_price zero = {0};
  CHECK(lm_price_is_zero(&zero));
  CHECK_EQ_I64(lm_price_cost(&zero, &USAGE(.input = 5, .input_audio = 5,
                                           .web_searches = 3, .requests = 1)),
               0);
}

LM_TEST(test_parts_never_bill_more_tokens_than_their_totals) {
  struct lm_price p = {.input = 1,
                       .output = 2,
                       .cache_read = LM_PRICE_UNSET,
                       .cache_write = LM_PRICE_UNSET,
                       .cache_write_1h = LM_PRICE_UNSET,
                       .parts = LM_PRICE_HAS_INPUT_AUDIO |
                                LM_PRICE_HAS_OUTPUT_AUDIO |
                                LM_PRICE_HAS_OUTPUT_REASONING,
                       .input_audio = 100,
                       .output_audio = 1000,
                       .output_reasoning = 10000};
  /* audio 50 of an input of 10: the 10 at the audio rate, none at text */
  CHECK_EQ_I64(lm_price_cost(&p, &USAGE(.input = 10, .input_audio = 50)), 1000);
  /* output 10 = 4 audio + 6 reasoning (of 9 claimed): 4 x 1,000 +
   * 6 x 10,000, and no text left */
  CHECK_EQ_I64(lm_price_cost(
                   &p, &USAGE(.output = 10, .output_audio = 4, .reasoning = 9)),
               64000);
  CHECK_EQ_I64(lm_price_cost(&p, &USAGE(.input_audio = UINT64_MAX)), 0);
  struct lm_price fee = {.input = 0, .output = 0, .request = INT64_MAX};
  CHECK_EQ_I64(lm_price_cost(&fee, &USAGE(.requests = 2)), INT64_MAX);
  CHECK(!lm_price_is_zero(&fee));
}

LM_TEST(test_every_feed_fee_is_a_whole_number_of_pusd) {
  /* requests_kcount and web_searches_kcount (USD per 1,000) x 10^9: every
   * fee the generator wrote is a positive multiple of 10^6 pUSD (the feed
   * has at most 3 decimals of USD per 1,000 in these two keys), and every
   * set with a part rate names it in `parts`. */
  size_t fees = 0;
  for (size_t i = 0; i < lm_price_set_count; i++) {
    const struct lm_price *p = &lm_price_sets[i];
    CHECK(p->request >= 0 && p->web_search >= 0);
    CHECK(p->request % 1000000 == 0 && p->web_search % 1000000 == 0);
    fees += p->request > 0 || p->web_search > 0;
    if (!(p->parts & LM_PRICE_HAS_INPUT_AUDIO))
      CHECK_EQ_I64(p->input_audio, 0);
    if (!(p->parts & LM_PRICE_HAS_OUTPUT_REASONING))
      CHECK_EQ_I64(p->output_reasoning, 0);
  }
  CHECK(fees >= 10); /* Claude's searches, Perplexity's calls */
}

/* ---- Matching ---- */

LM_TEST(test_lookup_exact_key_and_case) {
  struct lm_price_match m = look("gpt-4o", NULL);
  CHECK(m.source == LM_PRICE_EMBEDDED);
  CHECK_STR(m.matched, "gpt-4o");
  CHECK_EQ_I64(m.price.input, 2500000);   /* $2.50 */
  CHECK_EQ_I64(m.price.output, 10000000); /* $10 */
  m = look("GPT-4o", NULL);
  CHECK_STR(m.matched, "gpt-4o");
}

LM_TEST(test_lookup_strips_a_provider_prefix) {
  struct lm_price_match m = look("openai/gpt-4o", NULL);
  CHECK_STR(m.matched, "gpt-4o");
  CHECK_EQ_I64(m.price.cache_read, 1250000); /* OpenAI's own entry */
  m = look("anthropic/claude-sonnet-4-5", NULL);
  CHECK_STR(m.matched, "claude-sonnet-4-5");
  CHECK_EQ_I64(m.price.cache_write_1h, 6000000);
  /* OpenRouter's names keep their vendor segment. */
  m = look("openrouter/anthropic/claude-sonnet-4.5", NULL);
  CHECK_STR(m.matched, "anthropic/claude-sonnet-4.5");
  CHECK_EQ_I64(m.price.input, 3000000);
  /* An unknown first segment is just dropped. */
  m = look("models/gemini-2.5-flash", NULL);
  CHECK_STR(m.matched, "gemini-2.5-flash");
  CHECK_EQ_I64(m.price.input, 300000); /* $0.30 */
}

LM_TEST(test_lookup_strips_a_date_or_version_suffix) {
  /* Not keys in the feed; the dated names find their model. */
  struct lm_price_match m = look("gpt-5.6-luna-2026-08-01", NULL);
  CHECK_STR(m.matched, "gpt-5.6-luna");
  m = look("claude-sonnet-4-20250514", NULL);
  CHECK_STR(m.matched, "claude-sonnet-4");
  CHECK_EQ_I64(m.price.input, 3000000);
  m = look("claude-sonnet-4@20250514", NULL); /* Vertex */
  CHECK_STR(m.matched, "claude-sonnet-4");
  m = look("claude-opus-4-1-20250805", NULL);
  CHECK_STR(m.matched, "claude-opus-4-1");
  CHECK_EQ_I64(m.price.output, 75000000);
  m = look("gemini-1.5-pro-002", NULL);
  CHECK_STR(m.matched, "gemini-1.5-pro");
  m = look("claude-3-5-sonnet-latest", NULL);
  CHECK_STR(m.matched, "claude-3-5-sonnet");
  m = look("grok-4.3-20260101", NULL); /* a feed regex head */
  CHECK_STR(m.matched, "grok-4.3");
}

LM_TEST(test_lookup_longest_prefix_never_a_shorter_one) {
  struct lm_price_match m = look("gpt-4o-mini-foo", NULL);
  CHECK_STR(m.matched, "gpt-4o-mini");
  CHECK_EQ_I64(m.price.input, 150000); /* $0.15, not gpt-4o's $2.50 */
  m = look("gpt-4o-foo", NULL);
  CHECK_STR(m.matched, "gpt-4o"); /* not "gpt-4" ($30) */
  CHECK_EQ_I64(m.price.input, 2500000);
  /* An exact key is a prefix only at a boundary: "gpt-4" is not a prefix
   * of "gpt-4z" but is of "gpt-4-turbo-custom". */
  m = look("gpt-4-turbo-custom", NULL);
  CHECK(m.source == LM_PRICE_EMBEDDED);
  CHECK_STR(m.matched, "gpt-4-turbo");
  CHECK(!lm_price_lookup("gpt-4z", NULL, &m));
}

LM_TEST(test_lookup_first_party_before_a_reseller_and_hint_breaks_ties) {
  /* The Bedrock regional entry lists this exact name at +10%; without a
   * hint it is Anthropic's price, with "bedrock" it is Bedrock's. */
  struct lm_price_match m = look("claude-sonnet-4-5-20250929", NULL);
  CHECK_EQ_I64(m.price.input, 3000000);
  m = look("claude-sonnet-4-5-20250929", "bedrock");
  CHECK_EQ_I64(m.price.input, 3300000);
  /* o4-mini: OpenAI caches reads at $0.275, Azure at $0.28. */
  m = look("o4-mini", NULL);
  CHECK_EQ_I64(m.price.cache_read, 275000);
  m = look("o4-mini", "azure");
  CHECK_EQ_I64(m.price.cache_read, 280000);
  m = look("azure/o4-mini", NULL); /* the name's segment is a hint */
  CHECK_EQ_I64(m.price.cache_read, 280000);
  /* A hint naming no provider of the table does no harm. */
  m = look("o4-mini", "no-such-provider");
  CHECK_EQ_I64(m.price.cache_read, 275000);
}

LM_TEST(test_lookup_unknown_model_is_not_found) {
  struct lm_price_match m;
  CHECK(!lm_price_lookup("totally-unknown-model", NULL, &m));
  CHECK(m.source == LM_PRICE_NONE);
  CHECK_STR(m.matched, "");
  CHECK(!lm_price_lookup("", NULL, &m));
  CHECK(!lm_price_lookup(NULL, NULL, &m));
  CHECK(!lm_price_lookup(NULL, NULL, NULL));
  char longname[400];
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  memcpy(longname, "gpt-4o-", 7);
  CHECK(!lm_price_lookup(longname, NULL, &m));
}

LM_TEST(test_dated_price_change_applies_from_its_date) {
  /* claude-sonnet-5: $2/$10 until 2026-08-31, $3/$15 from 2026-09-01. */
  struct lm_price_match m;
  CHECK(lm_price_lookup_at("claude-sonnet-5", NULL, T_2026_09_01 - 1, &m));
  CHECK_EQ_I64(m.price.input, 2000000);
  CHECK_EQ_I64(m.price.output, 10000000);
  CHECK(lm_price_lookup_at("claude-sonnet-5", NULL, T_2026_09_01, &m));
  CHECK_EQ_I64(m.price.input, 3000000);
  CHECK_EQ_I64(m.price.output, 15000000);
  /* o3: $10/$40 until 2025-06-09, $2/$8 from 2025-06-10 (day 20249). */
  CHECK(lm_price_lookup_at("o3", NULL, (int64_t)20249 * 86400 - 1, &m));
  CHECK_EQ_I64(m.price.input, 10000000);
  CHECK(lm_price_lookup_at("o3", NULL, (int64_t)20249 * 86400, &m));
  CHECK_EQ_I64(m.price.input, 2000000);
}

LM_TEST(test_time_of_day_prices_take_the_peak) {
  /* deepseek-chat: $0.135/$0.55 off-peak, $0.27/$1.10 peak: the table
   * holds the peak price (a budget must not under-count). */
  struct lm_price_match m = look("deepseek-chat", NULL);
  CHECK_EQ_I64(m.price.input, 270000);
  CHECK_EQ_I64(m.price.output, 1100000);
  CHECK_EQ_I64(m.price.cache_read, 70000);
}

LM_TEST(test_default_price_used_only_when_nothing_matches) {
  char err[200];
  CHECK_EQ_I64(lm_price_set_default(" 0.5 , $2.25 ", err, sizeof err), 0);
  struct lm_price_match m;
  CHECK(lm_price_lookup("my-local-finetune", NULL, &m));
  CHECK(m.source == LM_PRICE_DEFAULT);
  CHECK_EQ_I64(m.price.input, 500000);
  CHECK_EQ_I64(m.price.output, 2250000);
  /* 10 in + 10 out = 5,000,000 + 22,500,000 */
  CHECK_EQ_I64(lm_price_cost(&m.price, &USAGE(.input = 10, .output = 10)),
               27500000);
  m = look("gpt-4o", NULL);
  CHECK(m.source == LM_PRICE_EMBEDDED);
  /* Malformed specs are refused with a reason, and leave no default. */
  const char *bad[] = {"3",    "3,",          ",15", "abc,15",
                       "3,-1", "3,0.0000001", "3;15"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    err[0] = '\0';
    CHECK_EQ_I64(lm_price_set_default(bad[i], err, sizeof err), -1);
    CHECK(err[0] != '\0');
  }
  CHECK(lm_price_load_error() != NULL);
  CHECK(!lm_price_lookup("my-local-finetune", NULL, &m));
  CHECK_EQ_I64(lm_price_set_default(NULL, NULL, 0), 0);
  CHECK(lm_price_load_error() == NULL);
}

/* ---- Overrides in LiteLLM's format ---- */

LM_TEST(test_override_file_takes_precedence_and_is_exact) {
  char path[600], err[300];
  write_temp(override_json, sizeof override_json - 1, path, sizeof path);
  /* gpt-4o, My-Custom-Model, azure/gpt-4o-mini, tiny-model: 4 models;
   * sample_spec and the per-image dall-e-3 are not token-priced models. */
  CHECK_EQ_I64(lm_price_load_file(path, err, sizeof err), 4);
  CHECK(strstr(err, "rounded up") != NULL);

  struct lm_price_match m = look("gpt-4o", NULL);
  CHECK(m.source == LM_PRICE_OVERRIDE);
  CHECK_STR(m.matched, "gpt-4o");
  CHECK_EQ_I64(m.price.input, 3000000); /* 3e-06 USD = 3,000,000 pUSD */
  CHECK_EQ_I64(m.price.output, 125000); /* 1.25e-07 USD = 125,000 pUSD */
  CHECK_EQ_I64(m.price.cache_read, LM_PRICE_UNSET);

  m = look("my-custom-model", NULL);
  CHECK(m.source == LM_PRICE_OVERRIDE);
  CHECK_EQ_I64(m.price.input, 1000000);
  CHECK_EQ_I64(m.price.output, 2000000);
  CHECK_EQ_I64(m.price.cache_read, 100000);
  CHECK_EQ_I64(m.price.cache_write, 1250000);
  CHECK_EQ_I64(m.price.cache_write_1h, 2000000);
  CHECK_EQ_U64(m.price.tier.above_input_tokens, 200000);
  CHECK_EQ_I64(m.price.tier.input, 2000000);
  CHECK_EQ_I64(m.price.tier.output, 4000000);
  CHECK_EQ_I64(m.price.tier.cache_read, 100000); /* no tier: base */
  /* output_cost_per_reasoning_token prices the reasoning part of output,
   * untiered. Above 200k: 200,001 x 2,000,000 + 5 x 4,000,000 (the rest of
   * output, at the tier) + 5 x 9,000,000 (reasoning)
   *   = 400,002,000,000 + 20,000,000 + 45,000,000 = 400,067,000,000 */
  CHECK(m.price.parts == LM_PRICE_HAS_OUTPUT_REASONING);
  CHECK_EQ_I64(m.price.output_reasoning, 9000000);
  CHECK_EQ_I64(lm_price_cost(&m.price, &USAGE(.input = 200001, .output = 10,
                                              .reasoning = 5)),
               400067000000LL);
  m = look("my-custom-model-v2", NULL); /* the matching rules apply */
  CHECK(m.source == LM_PRICE_OVERRIDE);
  CHECK_STR(m.matched, "my-custom-model");

  /* "azure/gpt-4o-mini": that name, or "gpt-4o-mini" when hinted azure;
   * unhinted "gpt-4o-mini" stays OpenAI's. */
  m = look("azure/gpt-4o-mini", NULL);
  CHECK(m.source == LM_PRICE_OVERRIDE);
  CHECK_EQ_I64(m.price.input, 500000);
  m = look("gpt-4o-mini", "azure");
  CHECK(m.source == LM_PRICE_OVERRIDE);
  CHECK_EQ_I64(m.price.output, 1500000);
  m = look("gpt-4o-mini", NULL);
  CHECK(m.source == LM_PRICE_EMBEDDED);
  CHECK_EQ_I64(m.price.input, 150000);

  /* 1.5e-13 USD is 0.15 pUSD: rounded up to 1, never down to 0. */
  m = look("tiny-model", NULL);
  CHECK_EQ_I64(m.price.input, 1);

  /* Models the file does not name still come from the embedded table. */
  m = look("claude-sonnet-4-5", NULL);
  CHECK(m.source == LM_PRICE_EMBEDDED);
  lm_price_load_file(NULL, NULL, 0);
  m = look("gpt-4o", NULL);
  CHECK(m.source == LM_PRICE_EMBEDDED);
  unlink(path);
}

LM_TEST(test_override_model_with_a_bad_price_is_skipped_and_named) {
  static const char json[] =
      "{\"good\": {\"input_cost_per_token\": 1e-06},"
      " \"bad\": {\"input_cost_per_token\": -1e-06},"
      " \"worse\": {\"output_cost_per_token\": \"lots\"},"
      " \"odd\": {\"input_cost_per_token\": [1]}}";
  char path[600], err[300];
  write_temp(json, sizeof json - 1, path, sizeof path);
  CHECK_EQ_I64(lm_price_load_file(path, err, sizeof err), 1);
  CHECK(strstr(err, "3 model(s) skipped") != NULL);
  CHECK(strstr(err, "\"bad\"") != NULL);
  CHECK(lm_price_load_error() != NULL);
  struct lm_price_match m = look("good", NULL);
  CHECK(m.source == LM_PRICE_OVERRIDE);
  CHECK_EQ_I64(m.price.output, 0); /* absent: 0, as LiteLLM bills it */
  lm_price_load_file(NULL, NULL, 0);
  CHECK(lm_price_load_error() == NULL);
  unlink(path);
}

LM_TEST(test_malformed_override_is_an_error_never_a_crash) {
  static const char *const bad[] = {
      "",
      "   ",
      "[1, 2]",
      "{\"gpt-4o\": {\"input_cost_per_token\": 3e-06}",
      "{\"gpt-4o\": {\"input_cost_per_token\": 3e-06,}}",
      "{\"gpt-4o\": {\"input_cost_per_token\": 01}}",
      "{\"gpt-4o\": {\"input_cost_per_token\": 1.}}",
      "{\"gpt-4o\": {\"input_cost_per_token\": 1e}}",
      "{\"gpt-4o\": {\"litellm_provider\": \"a\\q\"}}",
      "{\"gpt-4o\": {\"litellm_provider\": \"\\u12\"}}",
      "{\"gpt-4o\" {}}",
      "{\"gpt-4o\": tru}",
      "{\"unterminated: 1}",
      "{} trailing",
      "{\"a\": {}} {}",
      "\x01\x02\x03",
  };
  char path[600], err[300];
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    write_temp(bad[i], strlen(bad[i]), path, sizeof path);
    err[0] = '\0';
    int n = lm_price_load_file(path, err, sizeof err);
    CHECK_EQ_I64(n, -1);
    CHECK(err[0] != '\0' && strstr(err, "line ") != NULL);
    const char *e = lm_price_load_error();
    CHECK(e != NULL && strcmp(e, err) == 0);
    /* Nothing half-loaded; the embedded table still answers. */
    struct lm_price_match m = look("gpt-4o", NULL);
    CHECK(m.source == LM_PRICE_EMBEDDED);
    unlink(path);
  }
  /* Nesting far past the limit. */
  static char deep[20000];
  memset(deep, '[', sizeof deep);
  memcpy(deep, "{\"a\": ", 6);
  write_temp(deep, sizeof deep, path, sizeof path);
  CHECK_EQ_I64(lm_price_load_file(path, err, sizeof err), -1);
  CHECK(strstr(err, "nested too deeply") != NULL);
  unlink(path);
  /* Unreadable: missing file, a directory. */
  CHECK_EQ_I64(lm_price_load_file("/nonexistent/prices.json", err, sizeof err),
               -1);
  CHECK(strstr(err, "/nonexistent/prices.json") != NULL);
  CHECK_EQ_I64(lm_price_load_file(tmpdir, err, sizeof err), -1);
  CHECK(err[0] != '\0');
  /* A tiny error buffer is filled safely. */
  char small[8];
  CHECK_EQ_I64(lm_price_load_file("/nonexistent/x", small, sizeof small), -1);
  CHECK(strlen(small) == sizeof small - 1);
  lm_price_load_file(NULL, NULL, 0);
}

/* ---- Provider maxima and the table itself ---- */

/* ---- Who bills the call: provider first, the user's exact key first ---- */

static struct lm_price_match query(const char *model, const char *provider,
                                   const char *fallback, unsigned flags) {
  struct lm_price_query q = {model, provider, fallback, flags, T_2026_09_01};
  struct lm_price_match m;
  lm_price_lookup_query(&q, &m);
  return m;
}

LM_TEST(test_the_billing_provider_prices_first_the_api_second) {
  /* gpt-oss-120b: OpenAI's own entry $0.039/$0.18; Groq lists it as
   * "openai/gpt-oss-120b" at $0.15/$0.60; Cerebras as "gpt-oss-120b" at
   * $0.35/$0.75. */
  struct lm_price_match m = query("openai/gpt-oss-120b", "groq", "openai", 0);
  CHECK(m.source == LM_PRICE_EMBEDDED);
  CHECK_STR(m.matched, "openai/gpt-oss-120b");
  CHECK_STR(m.provider, "groq");
  CHECK_EQ_I64(m.price.input, 150000);
  CHECK_EQ_I64(m.price.output, 600000);
  CHECK_EQ_I64(m.price.cache_read, 75000);
  /* The API's provider alone (what every OpenAI-compatible call got). */
  m = query("openai/gpt-oss-120b", "openai", NULL, 0);
  CHECK_STR(m.provider, "openai");
  CHECK_EQ_I64(m.price.input, 39000);
  m = query("gpt-oss-120b", "cerebras", "openai", 0);
  CHECK_STR(m.provider, "cerebras");
  CHECK_EQ_I64(m.price.input, 350000);
  CHECK_EQ_I64(m.price.output, 750000);
  /* A provider the table does not know: the API's provider's prices. */
  m = query("gpt-oss-120b", "deepinfra", "openai", 0);
  CHECK_STR(m.provider, "openai");
  CHECK_EQ_I64(m.price.input, 39000);
  /* Aliases name the same provider: "xai" is "x-ai". */
  m = query("grok-4", "xai", "x-ai", 0);
  CHECK_STR(m.provider, "x-ai");
}

LM_TEST(test_the_users_exact_key_wins_whatever_its_characters) {
  /* A Groq model id with a slash, priced by the user: that price at every
   * provider and API, before any embedded entry (the bug: the OpenAI hint
   * found the embedded "gpt-oss-120b" first). */
  static const char json[] =
      "{\"openai/gpt-oss-120b\": {\"input_cost_per_token\": 1e-06,"
      "  \"output_cost_per_token\": 2e-06, \"litellm_provider\": \"groq\"},"
      " \"groq/llama-3.3-70b-versatile\": {\"input_cost_per_token\": 5e-06,"
      "  \"output_cost_per_token\": 6e-06},"
      " \"llama-3.3-70b-versatile\": {\"input_cost_per_token\": 7e-06,"
      "  \"output_cost_per_token\": 8e-06}}";
  char path[600];
  write_temp(json, sizeof json - 1, path, sizeof path);
  CHECK_EQ_I64(lm_price_load_file(path, NULL, 0), 3);
  const char *hints[][2] = {{"openai", NULL},
                            {"groq", "openai"},
                            {"openrouter", "openai"},
                            {NULL, NULL}};
  for (size_t i = 0; i < sizeof hints / sizeof *hints; i++) {
    struct lm_price_match m = query("openai/gpt-oss-120b", hints[i][0],
                                    hints[i][1], 0);
    CHECK(m.source == LM_PRICE_OVERRIDE);
    CHECK_STR(m.matched, "openai/gpt-oss-120b");
    CHECK_EQ_I64(m.price.input, 1000000); /* $1 / Mtok */
    CHECK_EQ_I64(m.price.output, 2000000);
  }
  struct lm_price_match m = look("openai/gpt-oss-120b", "openai");
  CHECK(m.source == LM_PRICE_OVERRIDE);
  /* The provider's own override before the plain one: "groq/x" at groq. */
  m = query("llama-3.3-70b-versatile", "groq", "openai", 0);
  CHECK_STR(m.matched, "groq/llama-3.3-70b-versatile");
  CHECK_EQ_I64(m.price.input, 5000000);
  m = query("llama-3.3-70b-versatile", "cerebras", "openai", 0);
  CHECK_STR(m.matched, "llama-3.3-70b-versatile");
  CHECK_EQ_I64(m.price.input, 7000000);
  /* Names the file does not spell so still find the embedded table. */
  m = query("gpt-oss-120b", "openai", NULL, 0);
  CHECK(m.source == LM_PRICE_EMBEDDED);
  lm_price_load_file(NULL, NULL, 0);
  unlink(path);
}

LM_TEST(test_own_only_never_prices_a_local_model_as_a_cloud_one) {
  /* An Ollama model's name ("llama3.3:70b", "gpt-oss:20b") must not find a
   * cloud provider's price by prefix: only the user's prices and the
   * named provider's own entries count, and no default price. */
  char err[200];
  CHECK_EQ_I64(lm_price_set_default("3,15", err, sizeof err), 0);
  unsigned own = LM_PRICE_Q_OWN_ONLY | LM_PRICE_Q_NO_DEFAULT;
  struct lm_price_match m = query("gpt-oss-120b", "ollama", NULL, own);
  CHECK(m.source == LM_PRICE_NONE);
  m = query("gpt-oss-120b", "ollama", NULL, 0);
  CHECK(m.source == LM_PRICE_EMBEDDED); /* without the flags: a cloud price */
  m = query("gpt-oss-120b", "cerebras", NULL, own); /* its own entry */
  CHECK_STR(m.provider, "cerebras");
  m = query("no-such-model", "ollama", NULL, LM_PRICE_Q_OWN_ONLY);
  CHECK(m.source == LM_PRICE_DEFAULT);
  static const char json[] = "{\"llama3.2\": {\"input_cost_per_token\": 1e-07,"
                             " \"output_cost_per_token\": 2e-07}}";
  char path[600];
  write_temp(json, sizeof json - 1, path, sizeof path);
  CHECK_EQ_I64(lm_price_load_file(path, NULL, 0), 1);
  m = query("llama3.2", "ollama", NULL, own);
  CHECK(m.source == LM_PRICE_OVERRIDE);
  CHECK_EQ_I64(m.price.input, 100000);
  m = query("llama3.2:latest", "ollama", NULL, own); /* the matching rules */
  CHECK(m.source == LM_PRICE_OVERRIDE);
  lm_price_load_file(NULL, NULL, 0);
  lm_price_set_default(NULL, NULL, 0);
  unlink(path);
}

LM_TEST(test_provider_max_is_the_highest_input_and_output) {
  struct lm_price p;
  CHECK(lm_price_provider_max("openai", &p));
  CHECK_EQ_I64(p.input, 150000000);  /* o1-pro $150 */
  CHECK_EQ_I64(p.output, 600000000); /* o1-pro $600 */
  CHECK_EQ_I64(p.cache_read, LM_PRICE_UNSET);
  CHECK_EQ_U64(p.tier.above_input_tokens, 0);
  CHECK(lm_price_provider_max("anthropic", &p));
  CHECK_EQ_I64(p.input, 15000000);           /* Claude Opus 4 / 4.1 $15 */
  CHECK_EQ_I64(p.output, 75000000);          /* $75 */
  CHECK_EQ_I64(p.web_search, 10000000000LL); /* $10 per 1,000 searches */
  CHECK(lm_price_provider_max("perplexity", &p));
  CHECK_EQ_I64(p.request, 14000000000LL);      /* sonar-pro: $14 / 1,000 */
  CHECK_EQ_I64(p.web_search, 5000000000LL);    /* deep research: $5 */
  CHECK(lm_price_provider_max("xai", &p));     /* alias of x-ai */
  CHECK(lm_price_provider_max("Bedrock", &p)); /* alias of aws */
  CHECK(!lm_price_provider_max("no-such-provider", &p));
  CHECK(!lm_price_provider_max(NULL, &p));
}

LM_TEST(test_embedded_table_is_sorted_lowercase_and_consistent) {
  CHECK(lm_price_entry_count > 1000);
  for (size_t i = 0; i < lm_price_entry_count; i++) {
    const struct lm_price_entry *e = &lm_price_entries[i];
    const char *k = lm_price_keys + e->key_off;
    CHECK(e->key_len > 0 && strlen(k) == e->key_len);
    CHECK(e->set < lm_price_set_count);
    CHECK(e->provider < lm_price_provider_count);
    CHECK(e->flags & (LM_PRICE_KEY_EXACT | LM_PRICE_KEY_PREFIX));
    for (size_t j = 0; j < e->key_len; j++)
      CHECK(!(k[j] >= 'A' && k[j] <= 'Z'));
    if (i) {
      const struct lm_price_entry *p = &lm_price_entries[i - 1];
      int c = strcmp(lm_price_keys + p->key_off, k);
      CHECK(c <= 0);
    }
    const struct lm_price *s = &lm_price_sets[e->set];
    CHECK(s->input >= 0 && s->output >= 0);
  }
  for (size_t i = 0; i < lm_price_change_count; i++) {
    const struct lm_price_change *c = &lm_price_changes[i];
    CHECK(c->entry < lm_price_entry_count && c->set < lm_price_set_count);
    CHECK(lm_price_entries[c->entry].flags & LM_PRICE_KEY_CHANGES);
    if (i && lm_price_changes[i - 1].entry == c->entry)
      CHECK(lm_price_changes[i - 1].day <= c->day);
  }
}

int main(void) {
  const char *t = getenv("LM_TEST_TMP");
  snprintf(tmpdir, sizeof tmpdir, "%s", t && *t ? t : "/tmp");

  /* The environment is read on the first lookup: set it up first. */
  write_temp(override_json, sizeof override_json - 1, env_path,
             sizeof env_path);
  setenv("LLMMETER_PRICES", env_path, 1);
  setenv("LLMMETER_DEFAULT_PRICE", "3,15", 1);
  lm_config_reload(); /* config.c reads the environment for every module */
  LM_RUN(test_first_lookup_from_many_threads_loads_the_file_once);
  LM_RUN(test_environment_is_read_on_first_lookup);
  unlink(env_path);

  LM_RUN(test_feed_price_0_0375_per_mtok_is_37500_pusd_per_token);
  LM_RUN(test_sonnet_4_5_cache_write_5m_and_1h_are_priced_apart);
  LM_RUN(test_sonnet_4_5_tier_is_a_cliff_above_200k_input_tokens);
  LM_RUN(test_cache_tokens_without_a_cache_price_bill_at_input);
  LM_RUN(test_cost_saturates_and_clamps_inconsistent_usage);
  LM_RUN(test_perplexity_sonar_request_fee_is_charged_once_per_call);
  LM_RUN(test_claude_web_searches_cost_10_usd_per_1000);
  LM_RUN(test_gpt_audio_audio_tokens_at_audio_prices_rest_at_text);
  LM_RUN(test_gemini_cached_audio_has_its_own_cache_price);
  LM_RUN(test_gemini_image_output_at_the_image_price);
  LM_RUN(test_deep_research_reasoning_citations_and_searches);
  LM_RUN(test_parts_without_a_rate_bill_at_the_text_rates);
  LM_RUN(test_parts_never_bill_more_tokens_than_their_totals);
  LM_RUN(test_every_feed_fee_is_a_whole_number_of_pusd);
  LM_RUN(test_lookup_exact_key_and_case);
  LM_RUN(test_lookup_strips_a_provider_prefix);
  LM_RUN(test_lookup_strips_a_date_or_version_suffix);
  LM_RUN(test_lookup_longest_prefix_never_a_shorter_one);
  LM_RUN(test_lookup_first_party_before_a_reseller_and_hint_breaks_ties);
  LM_RUN(test_lookup_unknown_model_is_not_found);
  LM_RUN(test_dated_price_change_applies_from_its_date);
  LM_RUN(test_time_of_day_prices_take_the_peak);
  LM_RUN(test_default_price_used_only_when_nothing_matches);
  LM_RUN(test_override_file_takes_precedence_and_is_exact);
  LM_RUN(test_override_model_with_a_bad_price_is_skipped_and_named);
  LM_RUN(test_malformed_override_is_an_error_never_a_crash);
  LM_RUN(test_the_billing_provider_prices_first_the_api_second);
  LM_RUN(test_the_users_exact_key_wins_whatever_its_characters);
  LM_RUN(test_own_only_never_prices_a_local_model_as_a_cloud_one);
  LM_RUN(test_provider_max_is_the_highest_input_and_output);
  LM_RUN(test_embedded_table_is_sorted_lowercase_and_consistent);
  LM_TEST_END();
}
