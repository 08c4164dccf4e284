/* price.h — what a model's tokens cost, exactly, in pico-USD.
 *
 * Prices are integers of pico-USD per token (= micro-USD per million
 * tokens), so a cost is an exact integer sum. The embedded table is
 * generated from the public genai-prices feed (scripts/gen_prices.py,
 * data/prices.json) and compiled in: nothing is parsed at library load. An
 * override file in LiteLLM's format (LLMMETER_PRICES) is read on the first
 * lookup only.
 */
#ifndef LM_PRICE_H
#define LM_PRICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "usage.h"

#define LM_PRICE_UNSET INT64_MIN /* "no separate price": bill at input */

struct lm_price_tier {
  uint64_t above_input_tokens; /* 0 = no tier */
  int64_t input, output, cache_read, cache_write, cache_write_1h;
};

/* Which part rates of a price are in force (struct lm_price.parts). */
#define LM_PRICE_HAS_INPUT_AUDIO 0x001u
#define LM_PRICE_HAS_CACHE_AUDIO_READ 0x002u
#define LM_PRICE_HAS_INPUT_IMAGE 0x004u
#define LM_PRICE_HAS_CACHE_IMAGE_READ 0x008u
#define LM_PRICE_HAS_INPUT_VIDEO 0x010u
#define LM_PRICE_HAS_CITATION 0x020u
#define LM_PRICE_HAS_OUTPUT_AUDIO 0x040u
#define LM_PRICE_HAS_OUTPUT_IMAGE 0x080u
#define LM_PRICE_HAS_OUTPUT_VIDEO 0x100u
#define LM_PRICE_HAS_OUTPUT_REASONING 0x200u

struct lm_price {
  int64_t input;             /* pUSD per uncached input token */
  int64_t output;            /* pUSD per output token (reasoning included) */
  int64_t cache_read;        /* LM_PRICE_UNSET: billed at input */
  int64_t cache_write;       /* 5-minute (or only) cache write price */
  int64_t cache_write_1h;    /* LM_PRICE_UNSET: billed at cache_write */
  struct lm_price_tier tier; /* a cliff: all tokens at the tier price */
  /* Rates of the parts of usage.h and of the counts beside its totals,
   * pUSD per token, each in force only when its LM_PRICE_HAS_* bit is in
   * `parts`. A part without its rate is billed with the rest of its total
   * (a cached audio token as a cache read, or at the audio rate when the
   * model has no cache price at all); a count beside the totals without
   * its rate is not billed. output_reasoning prices both the reasoning part
   * of output and separate reasoning; citation the citation tokens. Tiers
   * apply to the text rates above, never to these. parts == 0 (a zeroed
   * struct) is a text-only price. */
  uint32_t parts;
  int64_t input_audio, cache_audio_read, input_image, cache_image_read;
  int64_t input_video, citation;
  int64_t output_audio, output_image, output_video, output_reasoning;
  /* Fees per event, pUSD (0: none): the feed's requests_kcount and
   * web_searches_kcount, which are USD per 1,000, so $12 per 1,000 calls is
   * 12,000,000,000 pUSD a call. */
  int64_t request;    /* per call, charged once whatever its usage */
  int64_t web_search; /* per search the provider reports */
};

/* Cost of usage u at price p, in pico-USD; saturates, never wraps. Every
 * token is billed once: a part at its own rate where p has one, the rest
 * of input and output at the text rates; the counts beside the totals only
 * at their own rates (citation tokens at `citation`, separate reasoning at
 * `output_reasoning`; without one they cost nothing, as their provider
 * bills them); then u->requests request fees and u->web_searches search
 * fees. */
int64_t lm_price_cost(const struct lm_price *p, const struct lm_usage *u);

/* Whether every rate and fee of p is zero (a local or free model: dollar
 * limits do not apply to it). */
bool lm_price_is_zero(const struct lm_price *p);

enum lm_price_source {
  LM_PRICE_NONE = 0, /* unknown model */
  LM_PRICE_EMBEDDED,
  LM_PRICE_OVERRIDE, /* LLMMETER_PRICES file */
  LM_PRICE_DEFAULT,  /* LLMMETER_DEFAULT_PRICE */
};

struct lm_price_match {
  enum lm_price_source source;
  char matched[96]; /* the table key that matched */
  struct lm_price price;
  char provider[32]; /* the provider of the entry that matched ("" if none:
                        a default price, an override without a provider) */
};

/* Looks a model up: an override's exact key, then exact, then without a
 * provider prefix or date suffix, then the longest prefix (see
 * lm_price_lookup_query). provider_hint (e.g. "anthropic") may be NULL.
 * Returns true if found; otherwise m->source is LM_PRICE_NONE. */
bool lm_price_lookup(const char *model, const char *provider_hint,
                     struct lm_price_match *m);

/* ---- Added by the price module (src/price.c, src/price_override.c) ---- */

/* lm_price_lookup as of a given time (seconds since the epoch, UTC): dated
 * price changes of the embedded table (a price that changes on a known date)
 * apply from that date. lm_price_lookup uses time(NULL). */
bool lm_price_lookup_at(const char *model, const char *provider_hint,
                        int64_t unix_time, struct lm_price_match *m);

/* A lookup for a call whose provider is known (who bills it, from the
 * host it goes to) with a fallback (the provider of its API's shape).
 * Stages, the first that finds anything wins:
 *  0. the user's own key: an LLMMETER_PRICES entry for exactly this name,
 *     whatever characters it has ("openai/gpt-oss-120b" as written), the
 *     provider's own first ("groq/gpt-oss-120b" at groq), then any;
 *  1. the provider's entries, then the fallback's (exact, version suffix,
 *     prefix, as lm_price_lookup);
 *  2. first-party entries, then all (not with LM_PRICE_Q_OWN_ONLY);
 *  3. LLMMETER_DEFAULT_PRICE (not with LM_PRICE_Q_NO_DEFAULT).
 * With neither provider given, the name's first segment is the provider
 * when it names one ("azure/gpt-4o"), as in lm_price_lookup. */
struct lm_price_query {
  const char *model;
  const char *provider; /* who bills the call, or NULL */
  const char *fallback; /* the API's own provider, or NULL */
  unsigned flags;       /* LM_PRICE_Q_* */
  int64_t unix_time;    /* for dated price changes */
};
#define LM_PRICE_Q_OWN_ONLY \
  1u                             /* embedded entries only of the providers
                                    named (a local model must never match
                                    a cloud price by its name) */
#define LM_PRICE_Q_NO_DEFAULT 2u /* never LLMMETER_DEFAULT_PRICE */

bool lm_price_lookup_query(const struct lm_price_query *q,
                           struct lm_price_match *m);

/* Why the LLMMETER_PRICES file or LLMMETER_DEFAULT_PRICE could not be used,
 * fully or in part, as one line; NULL when all is well. Valid after the
 * first lookup (which reads the environment, once). Never prints. */
const char *lm_price_load_error(void);
/* The user's price sources (LLMMETER_PRICES, LLMMETER_DEFAULT_PRICE, as
 * read by the configuration): must be given before the first lookup, which
 * loads them once. NULL: none. */
void lm_price_set_sources(const char *prices_path, const char *default_spec);

/* Replaces the override table with the LiteLLM-format file at path (NULL:
 * no overrides). Returns the number of models loaded, or -1 if the file is
 * unreadable or not valid JSON (then no overrides are in effect). err gets
 * one line ("" if nothing was wrong; a note when some models were skipped
 * for an unusable price). For the CLI and tests: not safe while other
 * threads look prices up. */
int lm_price_load_file(const char *path, char *err, size_t errlen);

/* Sets the price used when nothing matches, "IN,OUT" in USD per million
 * tokens ("3,15"); NULL clears it. Returns 0, or -1 with err filled (and no
 * default in effect). Same threading caveat as lm_price_load_file. */
int lm_price_set_default(const char *spec, char *err, size_t errlen);

/* The highest input and the highest output price (separately, tiers and
 * dated changes included) over the embedded models of a provider ("openai",
 * "anthropic", "xai", "bedrock", ...), and its highest request and web
 * search fees; cache prices LM_PRICE_UNSET, no tier, no part rates.
 * For pricing an unknown model conservatively. False if the provider is
 * unknown. */
bool lm_price_provider_max(const char *provider, struct lm_price *out);

/* ---- Internal to the price module: the table format shared by the
 * generated embedded table (src/price_table.c) and the override table
 * (src/price_override.c). Nothing outside src/price*.c uses these. ---- */

#define LM_PRICE_KEY_EXACT \
  1u                            /* the name itself; as a prefix only at a
                                   boundary ('-', '@', ':', '_', '/') */
#define LM_PRICE_KEY_PREFIX 2u  /* the name and any continuation */
#define LM_PRICE_KEY_CHANGES 4u /* has dated changes (lm_price_changes) */
#define LM_PRICE_KEY_HINTED \
  8u /* matches only when the provider hint names
                                   its provider (override "azure/x" as "x") */
#define LM_PRICE_KEY_FIRST_PARTY \
  16u /* the provider's own model (openai for
                                        gpt-*, ...); every override entry */

struct lm_price_entry {
  uint32_t key_off; /* into the key pool; keys are lower-case, NUL-ended */
  uint8_t key_len;
  uint8_t provider; /* index into the provider names */
  uint8_t flags;    /* LM_PRICE_KEY_* */
  uint16_t set;     /* index into the price sets */
};

struct lm_price_change {
  uint16_t entry; /* index into lm_price_entries */
  int32_t day;    /* from this UTC day (days since 1970-01-01) on */
  uint16_t set;   /* the entry is priced at this set */
};

struct lm_price_provider_max {
  int64_t input, output;
  int64_t request, web_search; /* the highest fees, pUSD per event */
};

/* Entries sorted by key bytes (shorter first on a common prefix), then
 * preference (first-party provider first); lookups binary-search them. */
struct lm_price_db {
  const char *keys;
  const struct lm_price_entry *entries;
  size_t entry_count;
  const struct lm_price *sets;
  const char *const *providers;
  size_t provider_count;
  const struct lm_price_change *changes; /* sorted by entry, then day */
  size_t change_count;
};

/* The generated table (src/price_table.c). */
extern const char *const lm_price_providers[];
extern const size_t lm_price_provider_count;
extern const struct lm_price lm_price_sets[];
extern const size_t lm_price_set_count;
extern const char lm_price_keys[];
extern const struct lm_price_entry lm_price_entries[];
extern const size_t lm_price_entry_count;
extern const struct lm_price_change lm_price_changes[];
extern const size_t lm_price_change_count;
extern const struct lm_price_provider_max lm_price_provider_maxima[];

/* A provider name or alias ("xai", "bedrock", "vertex_ai", "gemini", ...)
 * to the feed's provider id ("x-ai", "aws", "google"), or NULL. */
const char *lm_price_provider_canonical(const char *name, size_t len);

/* Reads a LiteLLM model_prices_and_context_window.json file into a heap
 * table (free with lm_price_db_free; src/price_override.c says what is read).
 * Returns the number of models loaded or -1 (err filled, db empty); err
 * also notes skipped models. */
int lm_price_db_load_litellm(const char *path, struct lm_price_db *db,
                             char *err, size_t errlen);
void lm_price_db_free(struct lm_price_db *db);

#endif
