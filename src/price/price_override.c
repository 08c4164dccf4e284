/* price_override.c — reads a LiteLLM price file into a price table.
 *
 * Owns the one JSON reader of the price module: LLMMETER_PRICES points at a
 * file in LiteLLM's model_prices_and_context_window.json shape (one object
 * per model name, prices in USD per token). It is read once, on the first
 * lookup, never at library load.
 *
 * Why a reader of its own: prices such as 3e-06 must be converted from the
 * number's TEXT (cJSON keeps only a double), and the streaming scanner of
 * json_scan.c truncates keys at 48 bytes (LiteLLM names are longer). This
 * is a small recursive-descent reader over the file bytes: strict JSON
 * grammar, nesting bounded (MAX_DEPTH), file size bounded (MAX_FILE), number
 * text handed to lm_money_parse.
 *
 * What is read, per model object (everything else is ignored):
 *   input_cost_per_token, output_cost_per_token      (absent: 0, as LiteLLM)
 *   cache_read_input_token_cost                      (absent: input price)
 *   cache_creation_input_token_cost                  (absent: input price)
 *   cache_creation_input_token_cost_above_1hr        (absent: cache write)
 *   <any of these>_above_<N>k_tokens                 a cliff tier at N*1000
 *     input tokens; one tier per model: the lowest threshold is kept
 *   input_cost_per_audio_token, output_cost_per_audio_token,
 *   output_cost_per_reasoning_token                  part rates (price.h:
 *     the audio part of input and of output, the reasoning part of output;
 *     absent: billed with the rest at the text rates; never tiered)
 *   litellm_provider                                 the entry's provider
 * A model with neither an input nor
 * an output token price (image, audio, rerank models) is ignored. Prices
 * may be JSON numbers or numeric strings; one finer than a pico-USD per
 * token is rounded UP to the next pico-USD (over-count, never under-count;
 * noted in the error line). A negative or non-numeric price skips its model
 * and is noted; a syntax error rejects the whole file.
 *
 * Keys are lower-cased. "azure/gpt-4o" is an entry for that exact name and
 * also, flagged LM_PRICE_KEY_HINTED, one for "gpt-4o" that matches only when
 * the caller's provider hint names azure.
 *
 * Never prints; allocates only while loading.
 */
#include "price.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "money.h"

#define MAX_FILE (64u << 20) /* a LiteLLM file is ~2 MB */
#define MAX_DEPTH 64
#define MAX_MODELS 65535u  /* price set indices are 16-bit */
#define MAX_PROVIDERS 255u /* provider indices are 8-bit */
#define KEY_MAX 255        /* longer model names are skipped */
#define FIELD_KEY_MAX 96
#define PROVIDER_MAX 63
#define MAX_TIER_VALUES 24

/* The text rates (F_TEXT_N of them, the ones a tier can change), then the
 * part rates. */
enum field {
  F_INPUT,
  F_OUTPUT,
  F_CACHE_READ,
  F_CACHE_WRITE,
  F_CACHE_1H,
  F_TEXT_N,
  F_INPUT_AUDIO = F_TEXT_N,
  F_OUTPUT_AUDIO,
  F_REASONING,
  F_N
};

static const char *const field_names[F_N] = {
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "cache_creation_input_token_cost_above_1hr",
    "input_cost_per_audio_token",
    "output_cost_per_audio_token",
    "output_cost_per_reasoning_token",
};

/* ---- A strict JSON reader over a byte buffer ---- */

struct reader {
  const char *p, *end;
  const char *err; /* first syntax error */
  const char *err_at;
};

static bool fail(struct reader *r, const char *why) {
  if (!r->err) {
    r->err = why;
    r->err_at = r->p;
  }
  return false;
}

static void skip_ws(struct reader *r) {
  while (r->p < r->end &&
         (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
    r->p++;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static bool read_hex4(struct reader *r, unsigned *out) {
  if (r->end - r->p < 4)
    return fail(r, "truncated \\u escape");
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hex_value(r->p[i]);
    if (h < 0)
      return fail(r, "bad \\u escape");
    v = v * 16 + (unsigned)h;
  }
  r->p += 4;
  *out = v;
  return true;
}

static void put(char *out, size_t cap, size_t *n, bool *trunc, char c) {
  if (!out)
    return;
  if (*n + 1 < cap)
    out[(*n)++] = c;
  else
    *trunc = true;
}

static void put_utf8(char *out, size_t cap, size_t *n, bool *trunc,
                     unsigned cp) {
  if (cp < 0x80) {
    put(out, cap, n, trunc, (char)cp);
  } else if (cp < 0x800) {
    put(out, cap, n, trunc, (char)(0xC0 | (cp >> 6)));
    put(out, cap, n, trunc, (char)(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    put(out, cap, n, trunc, (char)(0xE0 | (cp >> 12)));
    put(out, cap, n, trunc, (char)(0x80 | ((cp >> 6) & 0x3F)));
    put(out, cap, n, trunc, (char)(0x80 | (cp & 0x3F)));
  } else {
    put(out, cap, n, trunc, (char)(0xF0 | (cp >> 18)));
    put(out, cap, n, trunc, (char)(0x80 | ((cp >> 12) & 0x3F)));
    put(out, cap, n, trunc, (char)(0x80 | ((cp >> 6) & 0x3F)));
    put(out, cap, n, trunc, (char)(0x80 | (cp & 0x3F)));
  }
}

/* Reads a string at r->p (which is '"'). Decodes into out (NUL-terminated,
 * *trunc set if it did not fit) unless out is NULL; *raw and *raw_len give the
 * bytes between the quotes. */
static bool read_string(struct reader *r, char *out, size_t cap, size_t *len,
                        bool *trunc, const char **raw, size_t *raw_len) {
  size_t n = 0;
  bool tr = false;
  r->p++; /* opening quote */
  const char *begin = r->p;
  for (;;) {
    if (r->p >= r->end)
      return fail(r, "unterminated string");
    unsigned char c = (unsigned char)*r->p;
    if (c == '"')
      break;
    if (c < 0x20)
      return fail(r, "control character in string");
    if (c != '\\') {
      put(out, cap, &n, &tr, (char)c);
      r->p++;
      continue;
    }
    r->p++;
    if (r->p >= r->end)
      return fail(r, "unterminated string");
    char e = *r->p++;
    switch (e) {
    case '"':
    case '\\':
    case '/':
      put(out, cap, &n, &tr, e);
      break;
    case 'b':
      put(out, cap, &n, &tr, '\b');
      break;
    case 'f':
      put(out, cap, &n, &tr, '\f');
      break;
    case 'n':
      put(out, cap, &n, &tr, '\n');
      break;
    case 'r':
      put(out, cap, &n, &tr, '\r');
      break;
    case 't':
      put(out, cap, &n, &tr, '\t');
      break;
    case 'u': {
      unsigned cp;
      if (!read_hex4(r, &cp))
        return false;
      if (cp >= 0xD800 && cp < 0xDC00 && r->end - r->p >= 6 &&
          r->p[0] == '\\' && r->p[1] == 'u') {
        unsigned lo;
        r->p += 2;
        if (!read_hex4(r, &lo))
          return false;
        if (lo >= 0xDC00 && lo < 0xE000)
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        else
          cp = 0xFFFD;
      } else if (cp >= 0xD800 && cp < 0xE000) {
        cp = 0xFFFD;
      }
      put_utf8(out, cap, &n, &tr, cp);
      break;
    }
    default:
      return fail(r, "bad escape in string");
    }
  }
  if (raw)
    *raw = begin;
  if (raw_len)
    *raw_len = (size_t)(r->p - begin);
  r->p++; /* closing quote */
  if (out && cap)
    out[n] = '\0';
  if (len)
    *len = n;
  if (trunc)
    *trunc = tr;
  return true;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* A number per the JSON grammar; *s and *len its text. */
static bool read_number(struct reader *r, const char **s, size_t *len) {
  const char *b = r->p;
  if (r->p < r->end && *r->p == '-')
    r->p++;
  if (r->p >= r->end || !is_digit(*r->p))
    return fail(r, "bad number");
  if (*r->p == '0')
    r->p++;
  else
    while (r->p < r->end && is_digit(*r->p))
      r->p++;
  if (r->p < r->end && *r->p == '.') {
    r->p++;
    if (r->p >= r->end || !is_digit(*r->p))
      return fail(r, "bad number");
    while (r->p < r->end && is_digit(*r->p))
      r->p++;
  }
  if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
    r->p++;
    if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
      r->p++;
    if (r->p >= r->end || !is_digit(*r->p))
      return fail(r, "bad number");
    while (r->p < r->end && is_digit(*r->p))
      r->p++;
  }
  *s = b;
  *len = (size_t)(r->p - b);
  return true;
}

static bool read_literal(struct reader *r, const char *lit) {
  size_t n = strlen(lit);
  if ((size_t)(r->end - r->p) < n || memcmp(r->p, lit, n) != 0)
    return fail(r, "unexpected character");
  r->p += n;
  return true;
}

static bool skip_value(struct reader *r, int depth);

/* Calls member(ctx, r, key, key_len, key_trunc) for each member of the
 * object at r->p; member reads the value. */
typedef bool (*member_fn)(void *ctx, struct reader *r, const char *key,
                          size_t key_len, bool key_trunc, int depth);

static bool read_object(struct reader *r, int depth, char *keybuf,
                        size_t keycap, member_fn member, void *ctx) {
  if (depth > MAX_DEPTH)
    return fail(r, "nested too deeply");
  r->p++; /* '{' */
  skip_ws(r);
  if (r->p < r->end && *r->p == '}') {
    r->p++;
    return true;
  }
  for (;;) {
    skip_ws(r);
    if (r->p >= r->end || *r->p != '"')
      return fail(r, "expected a string key");
    size_t klen;
    bool ktrunc;
    if (!read_string(r, keybuf, keycap, &klen, &ktrunc, NULL, NULL))
      return false;
    skip_ws(r);
    if (r->p >= r->end || *r->p != ':')
      return fail(r, "expected ':'");
    r->p++;
    skip_ws(r);
    if (!member(ctx, r, keybuf, klen, ktrunc, depth + 1))
      return false;
    skip_ws(r);
    if (r->p < r->end && *r->p == ',') {
      r->p++;
      continue;
    }
    if (r->p < r->end && *r->p == '}') {
      r->p++;
      return true;
    }
    return fail(r, "expected ',' or '}'");
  }
}

static bool skip_member(void *ctx, struct reader *r, const char *key,
                        size_t key_len, bool key_trunc, int depth) {
  (void)ctx;
  (void)key;
  (void)key_len;
  (void)key_trunc;
  return skip_value(r, depth);
}

static bool skip_value(struct reader *r, int depth) {
  if (depth > MAX_DEPTH)
    return fail(r, "nested too deeply");
  skip_ws(r);
  if (r->p >= r->end)
    return fail(r, "unexpected end of file");
  char c = *r->p;
  if (c == '{') {
    char key[8];
    return read_object(r, depth, key, sizeof key, skip_member, NULL);
  }
  if (c == '[') {
    r->p++;
    skip_ws(r);
    if (r->p < r->end && *r->p == ']') {
      r->p++;
      return true;
    }
    for (;;) {
      if (!skip_value(r, depth + 1))
        return false;
      skip_ws(r);
      if (r->p < r->end && *r->p == ',') {
        r->p++;
        continue;
      }
      if (r->p < r->end && *r->p == ']') {
        r->p++;
        return true;
      }
      return fail(r, "expected ',' or ']'");
    }
  }
  if (c == '"')
    return read_string(r, NULL, 0, NULL, NULL, NULL, NULL);
  if (c == 't')
    return read_literal(r, "true");
  if (c == 'f')
    return read_literal(r, "false");
  if (c == 'n')
    return read_literal(r, "null");
  const char *s;
  size_t n;
  return read_number(r, &s, &n);
}

/* ---- One model object ---- */

struct tier_value {
  uint64_t above;
  enum field field;
  int64_t value;
};

struct model {
  bool have[F_N];
  int64_t value[F_N];
  struct tier_value tiers[MAX_TIER_VALUES];
  int tier_count;
  char provider[PROVIDER_MAX + 1];
  const char *bad_field; /* first unusable price */
  bool rounded;          /* a price was rounded up to whole pico-USD */
};

/* USD per token text -> pico-USD per token; finer than a pico-USD rounds
 * up. -1 if negative or not a number. */
static int parse_usd_per_token(const char *s, size_t len, int64_t *out,
                               bool *rounded) {
  if (lm_money_parse(s, len, 12, 0, out) == 0)
    return 0;
  int64_t fine; /* 1e-18 USD */
  if (lm_money_parse(s, len, 18, 0, &fine) == 0) {
    *out = fine / 1000000 + (fine % 1000000 != 0);
    *rounded = true;
    return 0;
  }
  return -1;
}

/* "input_cost_per_token_above_200k_tokens" -> F_INPUT, 200000. */
static bool parse_field(const char *key, size_t len, enum field *f,
                        uint64_t *above) {
  *above = 0;
  for (int i = 0; i < F_N; i++) {
    size_t n = strlen(field_names[i]);
    if (len == n && memcmp(key, field_names[i], n) == 0) {
      *f = (enum field)i;
      return true;
    }
  }
  static const char suffix[] = "_tokens";
  size_t sl = sizeof suffix - 1;
  if (len <= sl || memcmp(key + len - sl, suffix, sl) != 0)
    return false;
  size_t end = len - sl, i = end;
  uint64_t mult = 1;
  if (i > 0 && (key[i - 1] == 'k' || key[i - 1] == 'K')) {
    mult = 1000;
    i--;
  } else if (i > 0 && (key[i - 1] == 'm' || key[i - 1] == 'M')) {
    mult = 1000000;
    i--;
  }
  size_t digits_end = i;
  while (i > 0 && is_digit(key[i - 1]))
    i--;
  if (i == digits_end || digits_end - i > 12)
    return false;
  static const char above_s[] = "_above_";
  size_t al = sizeof above_s - 1;
  if (i < al || memcmp(key + i - al, above_s, al) != 0)
    return false;
  uint64_t n = 0;
  for (size_t k = i; k < digits_end; k++)
    n = n * 10 + (uint64_t)(key[k] - '0');
  size_t base_len = i - al;
  for (int fi = 0; fi < F_TEXT_N; fi++) {
    size_t fl = strlen(field_names[fi]);
    if (base_len == fl && memcmp(key, field_names[fi], fl) == 0) {
      *f = (enum field)fi;
      *above = n * mult;
      return *above > 0;
    }
  }
  return false;
}

static bool model_member(void *ctx, struct reader *r, const char *key,
                         size_t key_len, bool key_trunc, int depth) {
  struct model *m = ctx;
  if (key_trunc)
    return skip_value(r, depth);
  if (key_len == 16 && memcmp(key, "litellm_provider", 16) == 0 &&
      r->p < r->end && *r->p == '"') {
    bool tr;
    size_t n;
    return read_string(r, m->provider, sizeof m->provider, &n, &tr, NULL, NULL);
  }
  enum field f;
  uint64_t above;
  if (!parse_field(key, key_len, &f, &above))
    return skip_value(r, depth);
  const char *s;
  size_t n;
  if (r->p < r->end && *r->p == '"') {
    if (!read_string(r, NULL, 0, NULL, NULL, &s, &n))
      return false;
  } else if (r->p < r->end && *r->p == 'n') {
    return read_literal(r, "null"); /* null: as if absent */
  } else if (r->p < r->end && (*r->p == '-' || is_digit(*r->p))) {
    if (!read_number(r, &s, &n))
      return false;
  } else {
    if (!m->bad_field)
      m->bad_field = field_names[f];
    return skip_value(r, depth);
  }
  int64_t v;
  if (parse_usd_per_token(s, n, &v, &m->rounded) < 0) {
    if (!m->bad_field)
      m->bad_field = field_names[f];
    return true;
  }
  if (!above) {
    m->have[f] = true;
    m->value[f] = v;
  } else if (m->tier_count < MAX_TIER_VALUES) {
    m->tiers[m->tier_count++] = (struct tier_value){above, f, v};
  }
  return true;
}

static struct lm_price model_price(const struct model *m) {
  struct lm_price p;
  memset(&p, 0, sizeof p);
  p.input = m->have[F_INPUT] ? m->value[F_INPUT] : 0;
  p.output = m->have[F_OUTPUT] ? m->value[F_OUTPUT] : 0;
  p.cache_read = m->have[F_CACHE_READ] ? m->value[F_CACHE_READ]
                                       : LM_PRICE_UNSET;
  p.cache_write = m->have[F_CACHE_WRITE] ? m->value[F_CACHE_WRITE]
                                         : LM_PRICE_UNSET;
  p.cache_write_1h = m->have[F_CACHE_1H] ? m->value[F_CACHE_1H]
                                         : LM_PRICE_UNSET;
  if (m->have[F_INPUT_AUDIO]) {
    p.parts |= LM_PRICE_HAS_INPUT_AUDIO;
    p.input_audio = m->value[F_INPUT_AUDIO];
  }
  if (m->have[F_OUTPUT_AUDIO]) {
    p.parts |= LM_PRICE_HAS_OUTPUT_AUDIO;
    p.output_audio = m->value[F_OUTPUT_AUDIO];
  }
  if (m->have[F_REASONING]) {
    p.parts |= LM_PRICE_HAS_OUTPUT_REASONING;
    p.output_reasoning = m->value[F_REASONING];
  }
  uint64_t lowest = 0;
  for (int i = 0; i < m->tier_count; i++)
    if (!lowest || m->tiers[i].above < lowest)
      lowest = m->tiers[i].above;
  if (!lowest)
    return p;
  int64_t tier[F_TEXT_N] = {p.input, p.output, p.cache_read, p.cache_write,
                            p.cache_write_1h};
  for (int i = 0; i < m->tier_count; i++)
    if (m->tiers[i].above == lowest)
      tier[m->tiers[i].field] = m->tiers[i].value;
  p.tier.above_input_tokens = lowest;
  p.tier.input = tier[F_INPUT];
  p.tier.output = tier[F_OUTPUT];
  p.tier.cache_read = tier[F_CACHE_READ];
  p.tier.cache_write = tier[F_CACHE_WRITE];
  p.tier.cache_write_1h = tier[F_CACHE_1H];
  return p;
}

/* ---- Building the table ---- */

struct builder {
  char *keys; /* pool: model keys, then provider names */
  size_t keys_len, keys_cap;
  struct lm_price_entry *entries;
  size_t entry_count, entry_cap;
  struct lm_price *sets;
  size_t set_count, set_cap;
  uint32_t provider_off[MAX_PROVIDERS];
  size_t provider_count;
  unsigned skipped;        /* models with an unusable price or key */
  char first_skipped[160]; /* "name": reason */
  bool rounded;
};

static bool grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap)
    return true;
  size_t n = *cap ? *cap : 64;
  while (n < need)
    n *= 2;
  void *q = realloc(*p, n * elem);
  if (!q)
    return false;
  *p = q;
  *cap = n;
  return true;
}

static bool pool_add(struct builder *b, const char *s, size_t len,
                     uint32_t *off) {
  if (!grow((void **)&b->keys, &b->keys_cap, b->keys_len + len + 1, 1))
    return false;
  memcpy(b->keys + b->keys_len, s, len);
  b->keys[b->keys_len + len] = '\0';
  *off = (uint32_t)b->keys_len;
  b->keys_len += len + 1;
  return true;
}

/* Provider index of a (lower-case) name; 0 is "" (unknown). */
static int provider_index(struct builder *b, const char *name) {
  for (size_t i = 0; i < b->provider_count; i++)
    if (strcmp(b->keys + b->provider_off[i], name) == 0)
      return (int)i;
  if (b->provider_count >= MAX_PROVIDERS)
    return 0;
  uint32_t off;
  if (!pool_add(b, name, strlen(name), &off))
    return -1;
  b->provider_off[b->provider_count] = off;
  return (int)b->provider_count++;
}

static bool add_entry(struct builder *b, uint32_t key_off, size_t key_len,
                      int provider, uint8_t flags, size_t set) {
  if (!grow((void **)&b->entries, &b->entry_cap, b->entry_count + 1,
            sizeof *b->entries))
    return false;
  b->entries[b->entry_count++] = (struct lm_price_entry){
      key_off, (uint8_t)key_len, (uint8_t)provider, flags, (uint16_t)set};
  return true;
}

static void note_skip(struct builder *b, const char *key, const char *what,
                      const char *why) {
  if (!b->skipped++)
    snprintf(b->first_skipped, sizeof b->first_skipped, "\"%.60s\": %s%s", key,
             what, why);
}

struct top_ctx {
  struct builder *b;
};

static bool top_member(void *ctx, struct reader *r, const char *key,
                       size_t key_len, bool key_trunc, int depth) {
  struct builder *b = ((struct top_ctx *)ctx)->b;
  if (r->p >= r->end || *r->p != '{')
    return skip_value(r, depth); /* not a model object */
  struct model m;
  memset(&m, 0, sizeof m);
  char fkey[FIELD_KEY_MAX];
  if (!read_object(r, depth, fkey, sizeof fkey, model_member, &m))
    return false;
  if (key_len == 11 && memcmp(key, "sample_spec", 11) == 0)
    return true; /* LiteLLM's documentation entry */
  if (!m.have[F_INPUT] && !m.have[F_OUTPUT] && !m.bad_field)
    return true; /* not priced per token */
  if (m.bad_field) {
    note_skip(b, key, m.bad_field, ": not a non-negative number");
    return true;
  }
  if (key_trunc || key_len == 0 || key_len > KEY_MAX ||
      memchr(key, 0, key_len)) {
    note_skip(b, key, "name empty or longer than 255 bytes", "");
    return true;
  }
  if (b->set_count >= MAX_MODELS) {
    note_skip(b, key, "more than 65535 models", "");
    return true;
  }
  b->rounded |= m.rounded;

  char lower[KEY_MAX + 1];
  for (size_t i = 0; i < key_len; i++)
    lower[i] = (char)((key[i] >= 'A' && key[i] <= 'Z') ? key[i] + 32 : key[i]);
  lower[key_len] = '\0';

  /* Provider: litellm_provider, else the name's first segment. */
  char prov[PROVIDER_MAX + 1];
  const char *slash = memchr(lower, '/', key_len);
  if (m.provider[0]) {
    snprintf(prov, sizeof prov, "%s", m.provider);
  } else if (slash) {
    size_t n = (size_t)(slash - lower);
    if (n > PROVIDER_MAX)
      n = PROVIDER_MAX;
    memcpy(prov, lower, n);
    prov[n] = '\0';
  } else {
    prov[0] = '\0';
  }
  for (char *c = prov; *c; c++)
    *c = (char)((*c >= 'A' && *c <= 'Z') ? *c + 32 : *c);
  const char *canon = lm_price_provider_canonical(prov, strlen(prov));
  int pi = provider_index(b, canon ? canon : prov);
  if (pi < 0)
    return fail(r, "out of memory");

  if (!grow((void **)&b->sets, &b->set_cap, b->set_count + 1, sizeof *b->sets))
    return fail(r, "out of memory");
  size_t set = b->set_count++;
  b->sets[set] = model_price(&m);

  uint32_t off;
  if (!pool_add(b, lower, key_len, &off) ||
      !add_entry(b, off, key_len, pi,
                 LM_PRICE_KEY_EXACT | LM_PRICE_KEY_FIRST_PARTY, set))
    return fail(r, "out of memory");
  /* "azure/gpt-4o" also answers "gpt-4o" when the hint says azure. */
  for (size_t i = 0; i + 1 < key_len; i++) {
    if (lower[i] != '/' || pi == 0)
      continue;
    if (!add_entry(b, off + (uint32_t)(i + 1), key_len - i - 1, pi,
                   LM_PRICE_KEY_EXACT | LM_PRICE_KEY_HINTED, set))
      return fail(r, "out of memory");
  }
  return true;
}

static int entry_cmp(const void *a, const void *b, void *keys) {
  const struct lm_price_entry *x = a, *y = b;
  const char *k = keys;
  size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
  int c = memcmp(k + x->key_off, k + y->key_off, n);
  if (c)
    return c;
  if (x->key_len != y->key_len)
    return x->key_len < y->key_len ? -1 : 1;
  /* Plain names before hinted aliases, then file order (the set index). */
  int hx = (x->flags & LM_PRICE_KEY_HINTED) != 0;
  int hy = (y->flags & LM_PRICE_KEY_HINTED) != 0;
  if (hx != hy)
    return hx - hy;
  return (x->set > y->set) - (x->set < y->set);
}

static char *read_file(const char *path, size_t *len, char *err,
                       size_t errlen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, errlen, "%.120s: %s", path, strerror(errno));
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
      st.st_size > (off_t)MAX_FILE) {
    snprintf(err, errlen, "%.120s: not a regular file of at most %u MB", path,
             MAX_FILE >> 20);
    close(fd);
    return NULL;
  }
  size_t size = (size_t)st.st_size, got = 0;
  char *buf = malloc(size + 1);
  if (!buf) {
    snprintf(err, errlen, "%.120s: out of memory", path);
    close(fd);
    return NULL;
  }
  while (got < size) {
    ssize_t n = read(fd, buf + got, size - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  close(fd);
  if (got != size) {
    snprintf(err, errlen, "%.120s: short read", path);
    free(buf);
    return NULL;
  }
  buf[size] = '\0';
  *len = size;
  return buf;
}

void lm_price_db_free(struct lm_price_db *db) {
  if (!db)
    return;
  free((void *)db->keys);
  free((void *)db->entries);
  free((void *)db->sets);
  free((void *)db->providers);
  memset(db, 0, sizeof *db);
}

static void free_builder(struct builder *b) {
  free(b->keys);
  free(b->entries);
  free(b->sets);
}

int lm_price_db_load_litellm(const char *path, struct lm_price_db *db,
                             char *err, size_t errlen) {
  char scratch[8];
  if (!err || !errlen) {
    err = scratch;
    errlen = sizeof scratch;
  }
  err[0] = '\0';
  if (!db)
    return -1;
  memset(db, 0, sizeof *db);
  if (!path) {
    snprintf(err, errlen, "no price file given");
    return -1;
  }
  size_t len;
  char *text = read_file(path, &len, err, errlen);
  if (!text)
    return -1;

  struct builder b;
  memset(&b, 0, sizeof b);
  if (provider_index(&b, "") != 0) { /* index 0: unknown provider */
    free(text);
    snprintf(err, errlen, "%.120s: out of memory", path);
    return -1;
  }
  struct reader r = {text, text + len, NULL, NULL};
  struct top_ctx ctx = {&b};
  char key[KEY_MAX + 2];
  skip_ws(&r);
  bool ok;
  if (r.p >= r.end || *r.p != '{')
    ok = fail(&r, "expected a JSON object of models");
  else
    ok = read_object(&r, 1, key, sizeof key, top_member, &ctx);
  if (ok) {
    skip_ws(&r);
    if (r.p != r.end)
      ok = fail(&r, "trailing data after the object");
  }
  if (!ok) {
    unsigned line = 1;
    for (const char *q = text; q < r.err_at && q < r.end; q++)
      line += *q == '\n';
    snprintf(err, errlen, "%.120s: line %u: %s", path, line,
             r.err ? r.err : "malformed JSON");
    free(text);
    free_builder(&b);
    return -1;
  }
  free(text);

  const char **names = malloc(b.provider_count * sizeof *names);
  if (!names) {
    snprintf(err, errlen, "%.120s: out of memory", path);
    free_builder(&b);
    return -1;
  }
  for (size_t i = 0; i < b.provider_count; i++)
    names[i] = b.keys + b.provider_off[i]; /* pool no longer moves */
  if (b.entry_count)
    qsort_r(b.entries, b.entry_count, sizeof *b.entries, entry_cmp, b.keys);

  db->keys = b.keys;
  db->entries = b.entries;
  db->entry_count = b.entry_count;
  db->sets = b.sets;
  db->providers = names;
  db->provider_count = b.provider_count;
  db->changes = NULL;
  db->change_count = 0;

  if (b.skipped)
    snprintf(err, errlen, "%.100s: %u model(s) skipped, first %s%s", path,
             b.skipped, b.first_skipped,
             b.rounded ? "; prices finer than 1e-12 USD rounded up" : "");
  else if (b.rounded)
    snprintf(err, errlen,
             "%.120s: prices finer than 1e-12 USD per token rounded up", path);
  return (int)b.set_count;
}
