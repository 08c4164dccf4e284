/* money.c — exact decimal parsing and formatting of pico-USD amounts.
 *
 * Owns the only conversions between text and money. Never uses floating
 * point; refuses (rather than rounds) input that cannot be held exactly.
 */
#include "money.h"

#include <stdio.h>
#include <string.h>

int lm_money_parse(const char *s, size_t len, int scale_pow10,
                   int allow_negative, int64_t *out) {
  if (!s || !out)
    return -1;
  if (len == (size_t)-1)
    len = strlen(s);
  size_t i = 0;
  int neg = 0;
  if (i < len && (s[i] == '+' || s[i] == '-')) {
    neg = s[i] == '-';
    i++;
  }
  /* Collect up to 30 significant digits and the decimal exponent. */
  char digits[40];
  int nd = 0, exp10 = 0, seen_digit = 0, seen_point = 0;
  for (; i < len; i++) {
    char c = s[i];
    if (c >= '0' && c <= '9') {
      seen_digit = 1;
      if (nd == 0 && c == '0') { /* leading zero: shifts nothing */
        if (seen_point)
          exp10--;
        continue;
      }
      if (nd >= 30)
        return -1; /* more precision than money needs */
      digits[nd++] = c;
      if (seen_point)
        exp10--;
    } else if (c == '.' && !seen_point) {
      seen_point = 1;
    } else {
      break;
    }
  }
  if (!seen_digit)
    return -1;
  if (i < len && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    int eneg = 0, ev = 0, ed = 0;
    if (i < len && (s[i] == '+' || s[i] == '-')) {
      eneg = s[i] == '-';
      i++;
    }
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
      if (ev > 1000)
        return -1;
      ev = ev * 10 + (s[i] - '0');
      ed++;
    }
    if (!ed)
      return -1;
    exp10 += eneg ? -ev : ev;
  }
  if (i != len)
    return -1;
  exp10 += scale_pow10;
  /* Drop trailing zeros of the mantissa into the exponent. */
  while (nd > 0 && digits[nd - 1] == '0') {
    nd--;
    exp10++;
  }
  if (nd == 0) {
    *out = 0;
    return 0;
  }
  if (exp10 < 0)
    return -1; /* a fraction of a pico-USD: not exact */
  uint64_t v = 0;
  for (int k = 0; k < nd; k++) {
    if (v > (UINT64_MAX - 9) / 10)
      return -1;
    v = v * 10 + (uint64_t)(digits[k] - '0');
  }
  for (int k = 0; k < exp10; k++) {
    if (v > UINT64_MAX / 10)
      return -1;
    v *= 10;
  }
  if (v > (uint64_t)INT64_MAX)
    return -1;
  if (neg && !allow_negative && v != 0)
    return -1;
  *out = neg ? -(int64_t)v : (int64_t)v;
  return 0;
}

int lm_money_parse_usd(const char *s, int64_t *out_pusd) {
  if (!s)
    return -1;
  if (*s == '$')
    s++;
  return lm_money_parse(s, (size_t)-1, 12, 0, out_pusd);
}

char *lm_money_format(int64_t pusd, int decimals, char *buf, size_t size) {
  if (decimals < 0)
    decimals = 0;
  if (decimals > 12)
    decimals = 12;
  int neg = pusd < 0;
  uint64_t v = neg ? (uint64_t)0 - (uint64_t)pusd : (uint64_t)pusd;
  uint64_t unit = 1;
  for (int k = 0; k < 12 - decimals; k++)
    unit *= 10;
  uint64_t q = v / unit, r = v % unit;
  if (unit > 1 && r * 2 >= unit)
    q++; /* half away from zero */
  uint64_t div = 1;
  for (int k = 0; k < decimals; k++)
    div *= 10;
  if (decimals)
    snprintf(buf, size, "%s%llu.%0*llu", neg ? "-" : "",
             (unsigned long long)(q / div), decimals,
             (unsigned long long)(q % div));
  else
    snprintf(buf, size, "%s%llu", neg ? "-" : "", (unsigned long long)q);
  return buf;
}

char *lm_money_format_display(int64_t pusd, int min_decimals, char *buf,
                              size_t size) {
  if (min_decimals < 0)
    min_decimals = 0;
  if (min_decimals > 12)
    min_decimals = 12;
  uint64_t v = pusd < 0 ? (uint64_t)0 - (uint64_t)pusd : (uint64_t)pusd;
  int digits = 0;
  for (uint64_t t = v; t; t /= 10)
    digits++;
  /* Below a dollar, the second significant digit sits at decimal
   * 14 - digits (v is in 1e-12 units): show at least that far, so that a
   * limit of $0.0004 never reads as $0.00. */
  int d = min_decimals;
  if (v && v < (uint64_t)LM_PUSD_PER_USD && 14 - digits > d)
    d = 14 - digits > 12 ? 12 : 14 - digits;
  lm_money_format(pusd, d, buf, size);
  /* The extra decimals carry no trailing zeros. */
  size_t n = strlen(buf);
  char *dot = strchr(buf, '.');
  while (dot && d > min_decimals && n > 0 && buf[n - 1] == '0') {
    buf[--n] = 0;
    d--;
  }
  if (dot && n > 0 && buf[n - 1] == '.')
    buf[--n] = 0;
  return buf;
}

char *lm_money_format_exact(int64_t pusd, char *buf, size_t size) {
  int decimals = 12;
  uint64_t v = pusd < 0 ? (uint64_t)0 - (uint64_t)pusd : (uint64_t)pusd;
  while (decimals > 2 && v % 10 == 0) {
    v /= 10;
    decimals--;
  }
  return lm_money_format(pusd, decimals, buf, size);
}

int64_t lm_money_add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r))
    return (a > 0) ? INT64_MAX : INT64_MIN;
  return r;
}

int64_t lm_money_mul(int64_t tokens, int64_t price) {
  int64_t r;
  if (__builtin_mul_overflow(tokens, price, &r))
    return ((tokens > 0) == (price > 0)) ? INT64_MAX : INT64_MIN;
  return r;
}
