/* price.c — what a model's tokens cost: exact cost arithmetic and lookup.
 *
 * Owns lm_price_cost (integers only, saturating) and the lookup of a model
 * name in two sorted tables of the same shape (struct lm_price_db): the
 * overrides from LLMMETER_PRICES (src/price_override.c) and the embedded
 * table generated from the genai-prices feed (src/price_table.c).
 *
 * Why this shape: the embedded table is const data (no pointers per entry,
 * so no relocations and nothing to do at library load); a lookup is a few
 * binary searches over it and never allocates. The environment is read
 * once, lazily, under pthread_once, on the first lookup, so a process that
 * never talks to an LLM never opens the override file.
 *
 * Matching, in stages; the first stage that finds anything wins, and within
 * a stage an override entry beats an embedded one:
 *  0. the user's exact key: an override whose key is the whole name as
 *     written, whatever characters it has ("openai/gpt-oss-120b" is the
 *     user's price for that name at every provider and API; the hinted
 *     provider's own override, "groq/gpt-oss-120b" at groq, first);
 *  1. exact: the lower-cased name, then each part after a '/' (so
 *     "openrouter/anthropic/claude-x" tries "anthropic/claude-x", then
 *     "claude-x");
 *  2. the same candidates without a version suffix: "@..." (Vertex),
 *     "-latest", "-YYYY-MM-DD", "-YYYYMMDD", "-NNNN" / "-NNN" ("-0613",
 *     "-001"), stripped up to three times;
 *  3. the longest key that is a prefix of a candidate: a prefix key
 *     (feed `starts_with`) at any length, an exact key only where the name
 *     continues with '-', '@', ':', '_' or '/' (so "gpt-4o-mini-foo" finds
 *     "gpt-4o-mini", and "gpt-4o" never finds "gpt-4");
 * Provider first, like genai-prices: stages 1-3 run over the entries of
 * the provider the caller hints at (who bills the call: the meter names it
 * from the host, src/price/provider_host.c), then of the fallback it gives
 * (the API's own provider), or, with neither, of the provider the name's
 * first segment names ("azure/gpt-4o", "openrouter/anthropic/claude-...");
 * then over first-party entries (openai's gpt-*, anthropic's claude-*,
 * google's gemini-*, ... and every override entry), then over all entries;
 * the first pass that finds anything wins. So "claude-sonnet-4-5-20250929"
 * is Anthropic's price, not a Bedrock region's, unless the hint says
 * bedrock. When nothing matches, LLMMETER_DEFAULT_PRICE ("IN,OUT" USD per
 * Mtok) if set (LM_PRICE_DEFAULT); lm_price_lookup_query can restrict the
 * passes to the named providers and leave the default out (price.h).
 *
 * Dated price changes in the feed (a model repriced from a given day) are
 * applied at lookup time against the current UTC day, so the compiled-in
 * table stays right after the date passes.
 *
 * Never prints; errors are kept for lm_price_load_error().
 */
#include "price.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "money.h"

#define NAME_MAX_LEN 255 /* longer model names are unknown */
#define MAX_CANDIDATES 8 /* the name and its parts after '/' */
#define ERR_LEN 256

/* ---- Cost ---- */

static int64_t tokens_i64(uint64_t n) {
  return n > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)n;
}

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* Adds n tokens at rate to *cost. */
static void bill(int64_t *cost, uint64_t n, int64_t rate) {
  *cost = lm_money_add(*cost, lm_money_mul(tokens_i64(n), rate));
}

/* One input modality (audio, image, video): its part of input and the part
 * of that read from the cache. Tokens billed here leave the uncached and
 * cached buckets the text rates bill. */
static void bill_input_part(const struct lm_price *p, int64_t *cost,
                            uint64_t part, uint64_t cached_part, unsigned has,
                            int64_t rate, unsigned has_cached,
                            int64_t cached_rate, bool cache_priced,
                            uint64_t *uncached, uint64_t *cached) {
  uint64_t c = min_u64(min_u64(cached_part, part), *cached);
  uint64_t n = min_u64(part - c, *uncached);
  if (has_cached && (p->parts & has_cached)) {
    bill(cost, c, cached_rate);
    *cached -= c;
  } else if (!cache_priced && (p->parts & has)) {
    bill(cost, c, rate); /* no cache price at all: at the modality's rate */
    *cached -= c;
  } /* else: a cache read like any other */
  if (p->parts & has) {
    bill(cost, n, rate);
    *uncached -= n;
  }
}

/* One part of output with a rate of its own. */
static void bill_output_part(const struct lm_price *p, int64_t *cost,
                             uint64_t part, unsigned has, int64_t rate,
                             uint64_t *rest) {
  if (!(p->parts & has))
    return;
  uint64_t n = min_u64(part, *rest);
  bill(cost, n, rate);
  *rest -= n;
}

int64_t lm_price_cost(const struct lm_price *p, const struct lm_usage *u) {
  if (!p || !u)
    return 0;
  int64_t in = p->input, out = p->output, cr = p->cache_read,
          cw = p->cache_write, cw1h = p->cache_write_1h;
  if (p->tier.above_input_tokens && u->input > p->tier.above_input_tokens) {
    in = p->tier.input;
    out = p->tier.output;
    cr = p->tier.cache_read;
    cw = p->tier.cache_write;
    cw1h = p->tier.cache_write_1h;
  }
  bool cache_priced = cr != LM_PRICE_UNSET;
  if (cr == LM_PRICE_UNSET)
    cr = in;
  if (cw == LM_PRICE_UNSET)
    cw = in;
  if (cw1h == LM_PRICE_UNSET)
    cw1h = cw;

  uint64_t cached = u->cache_read + u->cache_write;
  if (cached < u->cache_read) /* wrapped */
    cached = UINT64_MAX;
  uint64_t uncached = u->input > cached ? u->input - cached : 0;
  uint64_t reads = u->cache_read;
  uint64_t w1h = u->cache_write_1h < u->cache_write ? u->cache_write_1h
                                                    : u->cache_write;
  uint64_t w5m = u->cache_write - w1h;

  int64_t cost = 0;
  if (p->parts) {
    bill_input_part(p, &cost, u->input_audio, u->cache_audio_read,
                    LM_PRICE_HAS_INPUT_AUDIO, p->input_audio,
                    LM_PRICE_HAS_CACHE_AUDIO_READ, p->cache_audio_read,
                    cache_priced, &uncached, &reads);
    bill_input_part(p, &cost, u->input_image, u->cache_image_read,
                    LM_PRICE_HAS_INPUT_IMAGE, p->input_image,
                    LM_PRICE_HAS_CACHE_IMAGE_READ, p->cache_image_read,
                    cache_priced, &uncached, &reads);
    bill_input_part(p, &cost, u->input_video, 0, LM_PRICE_HAS_INPUT_VIDEO,
                    p->input_video, 0, 0, cache_priced, &uncached, &reads);
  }
  bill(&cost, uncached, in);
  bill(&cost, reads, cr);
  bill(&cost, w5m, cw);
  bill(&cost, w1h, cw1h);

  uint64_t rest = u->output;
  if (p->parts) {
    bill_output_part(p, &cost, u->output_audio, LM_PRICE_HAS_OUTPUT_AUDIO,
                     p->output_audio, &rest);
    bill_output_part(p, &cost, u->output_image, LM_PRICE_HAS_OUTPUT_IMAGE,
                     p->output_image, &rest);
    bill_output_part(p, &cost, u->output_video, LM_PRICE_HAS_OUTPUT_VIDEO,
                     p->output_video, &rest);
    bill_output_part(p, &cost, u->reasoning, LM_PRICE_HAS_OUTPUT_REASONING,
                     p->output_reasoning, &rest);
  }
  bill(&cost, rest, out);

  /* Beside the totals: only at their own rates. */
  if (p->parts & LM_PRICE_HAS_CITATION)
    bill(&cost, u->citation, p->citation);
  if (p->parts & LM_PRICE_HAS_OUTPUT_REASONING)
    bill(&cost, u->separate_reasoning, p->output_reasoning);

  bill(&cost, u->requests, p->request);
  bill(&cost, u->web_searches, p->web_search);
  return cost;
}

bool lm_price_is_zero(const struct lm_price *p) {
  if (!p || p->input != 0 || p->output != 0 || p->request != 0 ||
      p->web_search != 0)
    return false;
  const struct {
    unsigned bit;
    int64_t rate;
  } parts[] = {
      {LM_PRICE_HAS_INPUT_AUDIO, p->input_audio},
      {LM_PRICE_HAS_CACHE_AUDIO_READ, p->cache_audio_read},
      {LM_PRICE_HAS_INPUT_IMAGE, p->input_image},
      {LM_PRICE_HAS_CACHE_IMAGE_READ, p->cache_image_read},
      {LM_PRICE_HAS_INPUT_VIDEO, p->input_video},
      {LM_PRICE_HAS_CITATION, p->citation},
      {LM_PRICE_HAS_OUTPUT_AUDIO, p->output_audio},
      {LM_PRICE_HAS_OUTPUT_IMAGE, p->output_image},
      {LM_PRICE_HAS_OUTPUT_VIDEO, p->output_video},
      {LM_PRICE_HAS_OUTPUT_REASONING, p->output_reasoning},
  };
  for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
    if ((p->parts & parts[i].bit) && parts[i].rate != 0)
      return false;
  return true;
}

/* ---- Providers ---- */

struct provider_alias {
  const char *alias, *id;
};

/* Names callers and LiteLLM files use for the feed's providers. */
static const struct provider_alias provider_aliases[] = {
    {"xai", "x-ai"},
    {"grok", "x-ai"},
    {"bedrock", "aws"},
    {"bedrock_converse", "aws"},
    {"amazon", "aws"},
    {"aws_bedrock", "aws"},
    {"vertex", "google"},
    {"vertex_ai", "google"},
    {"vertexai", "google"},
    {"gemini", "google"},
    {"google_ai", "google"},
    {"googleai", "google"},
    {"azure_ai", "azure"},
    {"azure_openai", "azure"},
    {"together_ai", "together"},
    {"togetherai", "together"},
    {"fireworks_ai", "fireworks"},
    {"mistralai", "mistral"},
    {"moonshot", "moonshotai"},
    {"zhipu", "zhipuai"},
    {"voyage", "voyageai"},
    {"cohere_chat", "cohere"},
    {"text-completion-openai", "openai"},
    {"claude", "anthropic"},
};

static int ascii_lower(int c) {
  return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

/* name[0..len) equals the NUL-terminated s, ignoring ASCII case. */
static bool name_is(const char *name, size_t len, const char *s) {
  size_t i = 0;
  for (; i < len && s[i]; i++)
    if (ascii_lower((unsigned char)name[i]) != (unsigned char)s[i])
      return false;
  return i == len && s[i] == '\0';
}

const char *lm_price_provider_canonical(const char *name, size_t len) {
  if (!name)
    return NULL;
  if (len == (size_t)-1)
    len = strlen(name);
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < lm_price_provider_count; i++)
      if (name_is(name, len, lm_price_providers[i]))
        return lm_price_providers[i];
    for (size_t i = 0; i < sizeof provider_aliases / sizeof *provider_aliases;
         i++)
      if (name_is(name, len, provider_aliases[i].alias))
        return provider_aliases[i].id;
    /* "vertex_ai-anthropic_models": try the part before the first '-'. */
    const char *dash = memchr(name, '-', len);
    if (!dash || dash == name)
      break;
    len = (size_t)(dash - name);
  }
  return NULL;
}

/* Index of the provider the hint names in db, or -1. Compares canonical
 * ids, so "xai" finds "x-ai" and "bedrock" finds an override's "aws". */
static int db_provider_index(const struct lm_price_db *db, const char *hint) {
  if (!hint || !*hint)
    return -1;
  const char *canon = lm_price_provider_canonical(hint, (size_t)-1);
  for (size_t i = 0; i < db->provider_count; i++) {
    const char *p = db->providers[i];
    if (name_is(hint, strlen(hint), p))
      return (int)i;
    if (canon && strcmp(canon, p) == 0)
      return (int)i;
  }
  return -1;
}

/* ---- Table search ---- */

static const struct lm_price_db embedded_db = {
    lm_price_keys,
    lm_price_entries,
    0,
    lm_price_sets,
    lm_price_providers,
    0,
    lm_price_changes,
    0,
};

/* The counts are extern consts of another file: not constant expressions
 * in C, so they are filled in here. */
static struct lm_price_db embedded_view(void) {
  struct lm_price_db db = embedded_db;
  db.entry_count = lm_price_entry_count;
  db.provider_count = lm_price_provider_count;
  db.change_count = lm_price_change_count;
  return db;
}

static int key_cmp(const struct lm_price_db *db, size_t i, const char *k,
                   size_t len) {
  const struct lm_price_entry *e = &db->entries[i];
  size_t n = e->key_len < len ? e->key_len : len;
  int c = memcmp(db->keys + e->key_off, k, n);
  if (c)
    return c;
  return (e->key_len > len) - (e->key_len < len);
}

/* [*lo, *hi) = the entries whose key is exactly k[0..len). */
static bool find_range(const struct lm_price_db *db, const char *k, size_t len,
                       size_t *lo, size_t *hi) {
  size_t a = 0, b = db->entry_count;
  while (a < b) { /* first entry >= k */
    size_t mid = a + (b - a) / 2;
    if (key_cmp(db, mid, k, len) < 0)
      a = mid + 1;
    else
      b = mid;
  }
  size_t end = a;
  while (end < db->entry_count && key_cmp(db, end, k, len) == 0)
    end++;
  *lo = a;
  *hi = end;
  return end > a;
}

static bool is_boundary(char c) {
  return c == '-' || c == '@' || c == ':' || c == '_' || c == '/';
}

/* Which entries a search pass may return: only those of one provider
 * (provider >= 0: the hinted pass), or only first-party ones, or all. */
struct filter {
  int provider;
  bool first_party;
};

/* The first entry of [lo, hi) that passes f and may match: `whole` when the
 * key is the whole candidate name, else the name continues with `next`.
 * -1 if none. */
static long pick(const struct lm_price_db *db, size_t lo, size_t hi,
                 struct filter f, bool whole, char next) {
  for (size_t i = lo; i < hi; i++) {
    const struct lm_price_entry *e = &db->entries[i];
    bool ok = whole || (e->flags & LM_PRICE_KEY_PREFIX) ||
              ((e->flags & LM_PRICE_KEY_EXACT) && is_boundary(next));
    if (!ok)
      continue;
    if (f.provider >= 0 ? e->provider != f.provider
                        : (e->flags & LM_PRICE_KEY_HINTED) != 0)
      continue;
    if (f.first_party && !(e->flags & LM_PRICE_KEY_FIRST_PARTY))
      continue;
    return (long)i;
  }
  return -1;
}

static long find_exact(const struct lm_price_db *db, const char *k, size_t len,
                       struct filter f) {
  size_t lo, hi;
  if (!db->entry_count || !find_range(db, k, len, &lo, &hi))
    return -1;
  return pick(db, lo, hi, f, true, '\0');
}

/* Longest key that is a usable prefix of k[0..len); *mlen its length. */
static long find_prefix(const struct lm_price_db *db, const char *k, size_t len,
                        struct filter f, size_t *mlen) {
  if (!db->entry_count)
    return -1;
  /* A key that is a prefix of k sorts at or before k, and every entry
   * between the two shares that prefix; so the longest candidate length is
   * k's common prefix with the last entry at or before it. */
  size_t lo, hi, top = len;
  if (!find_range(db, k, len, &lo, &hi)) {
    top = 0;
    if (lo > 0) {
      const struct lm_price_entry *e = &db->entries[lo - 1];
      const char *key = db->keys + e->key_off;
      while (top < e->key_len && top < len && key[top] == k[top])
        top++;
    }
  }
  for (size_t n = top; n > 0; n--) {
    if (!find_range(db, k, n, &lo, &hi))
      continue;
    long i = pick(db, lo, hi, f, n == len, n < len ? k[n] : '\0');
    if (i >= 0) {
      *mlen = n;
      return i;
    }
  }
  return -1;
}

/* ---- Name normalisation ---- */

static bool all_digits(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9')
      return false;
  return true;
}

/* Length of s without one version suffix, or len if it has none. */
static size_t strip_version(const char *s, size_t len) {
  const char *at = memchr(s, '@', len);
  if (at && at > s)
    return (size_t)(at - s); /* Vertex: claude-sonnet-4@20250514 */
  if (len > 7 && memcmp(s + len - 7, "-latest", 7) == 0)
    return len - 7;
  if (len > 11 && s[len - 11] == '-' && s[len - 6] == '-' &&
      s[len - 3] == '-' && all_digits(s + len - 10, 4) &&
      all_digits(s + len - 5, 2) && all_digits(s + len - 2, 2))
    return len - 11; /* gpt-4o-2024-08-06 */
  if (len > 9 && s[len - 9] == '-' && all_digits(s + len - 8, 8))
    return len - 9; /* claude-sonnet-4-20250514 */
  if (len > 5 && s[len - 5] == '-' && all_digits(s + len - 4, 4))
    return len - 5; /* gpt-4-0613, mistral-large-2407 */
  if (len > 4 && s[len - 4] == '-' && all_digits(s + len - 3, 3))
    return len - 4; /* gemini-1.5-pro-002 */
  return len;
}

struct candidates {
  char name[NAME_MAX_LEN + 1];
  size_t len;
  size_t off[MAX_CANDIDATES]; /* the name, then each part after a '/' */
  size_t count;
};

static bool make_candidates(const char *model, struct candidates *c) {
  size_t len = strlen(model);
  if (len == 0 || len > NAME_MAX_LEN)
    return false;
  for (size_t i = 0; i < len; i++)
    c->name[i] = (char)ascii_lower((unsigned char)model[i]);
  c->name[len] = '\0';
  c->len = len;
  c->count = 0;
  c->off[c->count++] = 0;
  for (size_t i = 0; i + 1 < len && c->count < MAX_CANDIDATES; i++)
    if (c->name[i] == '/')
      c->off[c->count++] = i + 1;
  return true;
}

/* ---- Configuration: overrides and the default price ---- */

static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static struct lm_price_db override_db; /* heap; empty when no overrides */
static bool default_set;
static struct lm_price default_price;
static char load_err[ERR_LEN];    /* LLMMETER_PRICES */
static char default_err[ERR_LEN]; /* LLMMETER_DEFAULT_PRICE */
static char combined_err[2 * ERR_LEN + 4];

static void update_error(void) {
  snprintf(combined_err, sizeof combined_err, "%s%s%s", load_err,
           load_err[0] && default_err[0] ? "; " : "", default_err);
}

static int set_default(const char *spec, char *err, size_t errlen);

/* Where the user's prices come from: given by the configuration reader
 * (config.c) before the first lookup; this module reads no environment. */
static const char *source_path, *source_spec;

void lm_price_set_sources(const char *prices_path, const char *default_spec) {
  source_path = prices_path;
  source_spec = default_spec;
}

static void load_environment(void) {
  const char *path = source_path;
  if (path && *path) {
    struct lm_price_db db;
    if (lm_price_db_load_litellm(path, &db, load_err, sizeof load_err) >= 0)
      override_db = db;
  }
  const char *spec = source_spec;
  if (spec && *spec) {
    char err[ERR_LEN - 32];
    if (set_default(spec, err, sizeof err) < 0)
      snprintf(default_err, sizeof default_err, "LLMMETER_DEFAULT_PRICE: %s",
               err);
  }
  update_error();
}

static void ensure_environment(void) {
  pthread_once(&env_once, load_environment);
}

const char *lm_price_load_error(void) {
  ensure_environment();
  return combined_err[0] ? combined_err : NULL;
}

int lm_price_load_file(const char *path, char *err, size_t errlen) {
  ensure_environment(); /* so the environment never replaces this later */
  struct lm_price_db db;
  int n = 0;
  lm_price_db_free(&override_db);
  load_err[0] = '\0';
  if (path) {
    n = lm_price_db_load_litellm(path, &db, load_err, sizeof load_err);
    if (n >= 0)
      override_db = db;
  }
  update_error();
  if (err && errlen)
    snprintf(err, errlen, "%s", load_err);
  return n;
}

/* One "USD per million tokens" number of the default price spec. */
static int parse_mtok(const char *s, size_t len, int64_t *out) {
  while (len && (*s == ' ' || *s == '\t')) {
    s++;
    len--;
  }
  while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
    len--;
  if (len && *s == '$') {
    s++;
    len--;
  }
  return len ? lm_money_parse(s, len, 6, 0, out) : -1;
}

int lm_price_set_default(const char *spec, char *err, size_t errlen) {
  ensure_environment();
  default_err[0] = '\0';
  int rc = set_default(spec, err, errlen);
  if (rc < 0 && err && errlen)
    snprintf(default_err, sizeof default_err, "LLMMETER_DEFAULT_PRICE: %s",
             err);
  update_error();
  return rc;
}

static int set_default(const char *spec, char *err, size_t errlen) {
  default_set = false;
  if (err && errlen)
    err[0] = '\0';
  if (!spec)
    return 0;
  const char *comma = strchr(spec, ',');
  int64_t in, out;
  if (!comma || parse_mtok(spec, (size_t)(comma - spec), &in) < 0 ||
      parse_mtok(comma + 1, strlen(comma + 1), &out) < 0) {
    if (err && errlen)
      snprintf(err, errlen,
               "expected \"IN,OUT\" in USD per million tokens (e.g. "
               "\"3,15\"), exact to 6 decimals; got \"%.60s\"",
               spec);
    return -1;
  }
  memset(&default_price, 0, sizeof default_price);
  default_price.input = in;
  default_price.output = out;
  default_price.cache_read = LM_PRICE_UNSET;
  default_price.cache_write = LM_PRICE_UNSET;
  default_price.cache_write_1h = LM_PRICE_UNSET;
  default_set = true;
  return 0;
}

/* ---- Lookup ---- */

/* The price set in force for entry i of db on UTC day `day`. */
static const struct lm_price *entry_price(const struct lm_price_db *db,
                                          size_t i, int64_t day) {
  uint16_t set = db->entries[i].set;
  if (db->entries[i].flags & LM_PRICE_KEY_CHANGES) {
    for (size_t c = 0; c < db->change_count; c++) {
      const struct lm_price_change *ch = &db->changes[c];
      if (ch->entry == i && ch->day <= day)
        set = ch->set; /* sorted by day: the latest in force wins */
    }
  }
  return &db->sets[set];
}

static bool found(struct lm_price_match *m, const struct lm_price_db *db,
                  long i, enum lm_price_source src, int64_t day) {
  const struct lm_price_entry *e = &db->entries[i];
  const char *key = db->keys + e->key_off;
  size_t len = e->key_len;
  if (e->flags & LM_PRICE_KEY_HINTED) {
    /* "gpt-4o" of "azure/gpt-4o": name the key as the file spells it (the
     * alias is the tail of that key in the NUL-separated pool). */
    while (key > db->keys && key[-1] != '\0') {
      key--;
      len++;
    }
  }
  size_t n = len < sizeof m->matched - 1 ? len : sizeof m->matched - 1;
  memcpy(m->matched, key, n);
  m->matched[n] = '\0';
  snprintf(m->provider, sizeof m->provider, "%s",
           e->provider < db->provider_count ? db->providers[e->provider] : "");
  m->source = src;
  m->price = *entry_price(db, (size_t)i, day);
  return true;
}

/* One search pass over both tables: exact, then without a version suffix,
 * then the longest prefix; an override beats an embedded entry within each
 * stage (and on equal prefix length). */
/* The user's table first, then the embedded one, for one exact key. */
static bool probe_exact(const struct lm_price_db *ovr, struct filter fo,
                        const struct lm_price_db *emb, struct filter fe,
                        const char *s, size_t len, int64_t day,
                        struct lm_price_match *m) {
  long i = fo.provider == -2 ? -1 : find_exact(ovr, s, len, fo);
  if (i >= 0)
    return found(m, ovr, i, LM_PRICE_OVERRIDE, day);
  i = fe.provider == -2 ? -1 : find_exact(emb, s, len, fe);
  if (i >= 0)
    return found(m, emb, i, LM_PRICE_EMBEDDED, day);
  return false;
}

static bool search_pass(const struct candidates *c,
                        const struct lm_price_db *ovr, struct filter fo,
                        const struct lm_price_db *emb, struct filter fe,
                        int64_t day, struct lm_price_match *m) {
  if (fo.provider == -2 && fe.provider == -2)
    return false; /* the hinted provider is in neither table */
  /* 1. exact */
  for (size_t k = 0; k < c->count; k++) {
    const char *s = c->name + c->off[k];
    size_t len = c->len - c->off[k];
    if (probe_exact(ovr, fo, emb, fe, s, len, day, m))
      return true;
  }
  /* 2. without a version suffix */
  for (size_t k = 0; k < c->count; k++) {
    const char *s = c->name + c->off[k];
    size_t len = c->len - c->off[k];
    for (int round = 0; round < 3; round++) {
      size_t n = strip_version(s, len);
      if (n == len)
        break;
      len = n;
      if (probe_exact(ovr, fo, emb, fe, s, len, day, m))
        return true;
    }
  }
  /* 3. longest prefix */
  for (size_t k = 0; k < c->count; k++) {
    const char *s = c->name + c->off[k];
    size_t len = c->len - c->off[k], olen = 0, elen = 0;
    long oi = fo.provider == -2 ? -1 : find_prefix(ovr, s, len, fo, &olen);
    long ei = fe.provider == -2 ? -1 : find_prefix(emb, s, len, fe, &elen);
    if (oi >= 0 && (ei < 0 || olen >= elen))
      return found(m, ovr, oi, LM_PRICE_OVERRIDE, day);
    if (ei >= 0)
      return found(m, emb, ei, LM_PRICE_EMBEDDED, day);
  }
  return false;
}

/* The provider a name's first segment names ("azure/gpt-4o",
 * "openai/gpt-4o", "openrouter/anthropic/..."), for a lookup that names
 * none; NULL if it names none. */
static const char *name_provider(const char *model, char *buf, size_t size) {
  const char *slash = model ? strchr(model, '/') : NULL;
  if (!slash || slash == model || (size_t)(slash - model) >= size)
    return NULL;
  memcpy(buf, model, (size_t)(slash - model));
  buf[slash - model] = '\0';
  return lm_price_provider_canonical(buf, (size_t)-1) ? buf : NULL;
}

/* Stage 0 (lm_price_query): an override entry whose key is exactly the
 * whole name, whatever characters it has; the hinted provider's own entry
 * first ("groq/gpt-oss-120b" answers "gpt-oss-120b" at groq), then any
 * key the file spells exactly so. */
static bool override_exact_key(const struct candidates *c,
                               const struct lm_price_db *ovr, const char *hint,
                               int64_t day, struct lm_price_match *m) {
  if (!ovr->entry_count)
    return false;
  int oh = db_provider_index(ovr, hint);
  long i = oh > 0 ? find_exact(ovr, c->name, c->len, (struct filter){oh, false})
                  : -1;
  if (i < 0)
    i = find_exact(ovr, c->name, c->len, (struct filter){-1, false});
  return i >= 0 && found(m, ovr, i, LM_PRICE_OVERRIDE, day);
}

/* Two hints name the same provider ("xai" and "x-ai"). */
static bool same_provider(const char *a, const char *b) {
  const char *ca = lm_price_provider_canonical(a, (size_t)-1);
  const char *cb = lm_price_provider_canonical(b, (size_t)-1);
  if (ca && cb)
    return strcmp(ca, cb) == 0;
  return strlen(a) == strlen(b) && name_is(a, strlen(a), b);
}

bool lm_price_lookup_query(const struct lm_price_query *q,
                           struct lm_price_match *m) {
  if (!m)
    return false;
  memset(m, 0, sizeof *m);
  m->source = LM_PRICE_NONE;
  if (!q)
    return false;
  ensure_environment();

  const struct lm_price_db emb = embedded_view();
  const struct lm_price_db *ovr = &override_db;
  int64_t day = q->unix_time >= 0 ? q->unix_time / 86400 : -1;
  bool own_only = (q->flags & LM_PRICE_Q_OWN_ONLY) != 0;
  struct candidates c;
  if (q->model && make_candidates(q->model, &c)) {
    char seg[64];
    const char *hints[2] = {q->provider && *q->provider ? q->provider : NULL,
                            q->fallback && *q->fallback ? q->fallback : NULL};
    if (!hints[0] && !hints[1])
      hints[0] = name_provider(q->model, seg, sizeof seg);
    if (!hints[0]) {
      hints[0] = hints[1];
      hints[1] = NULL;
    }
    if (hints[1] && same_provider(hints[0], hints[1]))
      hints[1] = NULL;
    if (override_exact_key(&c, ovr, hints[0], day, m))
      return true;
    /* Provider first, as genai-prices does: the billing provider's own
     * entries, then the API's provider's; then first-party entries (and
     * every override); then any. */
    for (int h = 0; h < 2 && hints[h]; h++) {
      int oh = db_provider_index(ovr, hints[h]);
      int eh = db_provider_index(&emb, hints[h]);
      struct filter fo = {oh >= 0 ? oh : -2, false};
      struct filter fe = {eh >= 0 ? eh : -2, false};
      if (search_pass(&c, ovr, fo, &emb, fe, day, m))
        return true;
    }
    struct filter first = {-1, true}, any = {-1, false}, none = {-2, false};
    if (search_pass(&c, ovr, first, &emb, own_only ? none : first, day, m))
      return true;
    if (!own_only && search_pass(&c, ovr, any, &emb, any, day, m))
      return true;
  }
  if (default_set && !(q->flags & LM_PRICE_Q_NO_DEFAULT)) {
    m->source = LM_PRICE_DEFAULT;
    snprintf(m->matched, sizeof m->matched, "%s", "LLMMETER_DEFAULT_PRICE");
    m->price = default_price;
    return true;
  }
  return false;
}

bool lm_price_lookup_at(const char *model, const char *provider_hint,
                        int64_t unix_time, struct lm_price_match *m) {
  struct lm_price_query q = {model, provider_hint, NULL, 0, unix_time};
  return lm_price_lookup_query(&q, m);
}

bool lm_price_lookup(const char *model, const char *provider_hint,
                     struct lm_price_match *m) {
  return lm_price_lookup_at(model, provider_hint, (int64_t)time(NULL), m);
}

bool lm_price_provider_max(const char *provider, struct lm_price *out) {
  if (!provider || !out)
    return false;
  const struct lm_price_db emb = embedded_view();
  int i = db_provider_index(&emb, provider);
  if (i < 0)
    return false;
  memset(out, 0, sizeof *out);
  out->input = lm_price_provider_maxima[i].input;
  out->output = lm_price_provider_maxima[i].output;
  out->request = lm_price_provider_maxima[i].request;
  out->web_search = lm_price_provider_maxima[i].web_search;
  out->cache_read = LM_PRICE_UNSET;
  out->cache_write = LM_PRICE_UNSET;
  out->cache_write_1h = LM_PRICE_UNSET;
  return true;
}
