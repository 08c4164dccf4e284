/* str.h — a bounded string copy for the per-call path.
 *
 * snprintf(dst, cap, "%s", src) parses a format and walks stdio's
 * machinery: a tenth of a metered call's instructions went there. This is
 * strnlen and memcpy: at most cap - 1 bytes of src, always NUL-terminated,
 * the same result as that snprintf. Header-only (every layer may use
 * base/).
 */
#ifndef LM_STR_H
#define LM_STR_H

#include <string.h>

/* Copies src into dst[0..cap) (cap > 0), truncating; returns dst. */
static inline char *lm_str_copy(char *dst, size_t cap, const char *src) {
  size_t n = strnlen(src, cap - 1);
  memmove(dst, src, n); /* src may overlap dst (a model copied onto itself) */
  dst[n] = '\0';
  return dst;
}

#endif
