/* money.h — exact integer money: pico-USD (1e-12 USD) in int64.
 *
 * Why pico: a price of $0.0375 per million tokens is 37,500 pico-USD per
 * token, so every price in the public feeds (at most six decimals per
 * million tokens) is an exact integer per token and every cost is an exact
 * integer sum. int64 pico-USD holds ±$9.2 million, far above any budget.
 * Parsing goes from decimal text straight to integers: no double anywhere.
 */
#ifndef LM_MONEY_H
#define LM_MONEY_H

#include <stddef.h>
#include <stdint.h>

#define LM_PUSD_PER_USD 1000000000000LL
#define LM_MONEY_MAX INT64_MAX

/* Parses a decimal amount ("5", "2.50", "0.0375", "3e-06", "1.25E-7") and
 * scales it by 10^scale_pow10 (e.g. 12 turns USD into pico-USD, 6 turns
 * USD-per-million-tokens into pico-USD per token). Returns 0 and stores the
 * exact integer, or -1 if the text is not a number, is negative (unless
 * allow_negative), does not fit, or has more precision than the scale can
 * hold exactly (no silent rounding of money). len may be (size_t)-1 for a
 * NUL-terminated string. */
int lm_money_parse(const char *s, size_t len, int scale_pow10,
                   int allow_negative, int64_t *out);

/* USD text ("5", "$2.50") to pico-USD. Same rules as above. */
int lm_money_parse_usd(const char *s, int64_t *out_pusd);

/* Formats pico-USD as USD with `decimals` fraction digits (0..12), rounded
 * half away from zero: lm_money_format(2500000000000, 2, ...) is "2.50".
 * Never fails; returns buf. */
char *lm_money_format(int64_t pusd, int decimals, char *buf, size_t size);

/* USD for people: at least min_decimals fraction digits, and below a
 * dollar as many more as two significant digits need (rounded half away
 * from zero, trailing zeros beyond min_decimals dropped): 0.0004 USD with 2
 * is "0.0004", 0.000183 is "0.00018", 5.0123 with 2 is "5.01". Returns buf. */
char *lm_money_format_display(int64_t pusd, int min_decimals, char *buf,
                              size_t size);

/* Exact decimal USD with trailing zeros trimmed (at least 2 decimals):
 * "0.000001375", "5.00". For JSON and ledgers. Returns buf. */
char *lm_money_format_exact(int64_t pusd, char *buf, size_t size);

/* Saturating helpers: money never wraps around. */
int64_t lm_money_add(int64_t a, int64_t b);
int64_t lm_money_mul(int64_t tokens, int64_t price);

#endif
