/* str.h — a bounded string copy for the per-call path.
 *
 * snprintf(dst, cap, "%s", src) parses a format and walks stdio's
 * machinery: ~600 instructions of a metered call went to the model name's
 * copy alone (callgrind). This is strnlen and memmove: at most cap - 1
 * bytes of src, always NUL-terminated, the same result as that snprintf.
 * Header-only (every layer may use base/).
 */
#ifndef LM_STR_H
#define LM_STR_H

#include <string.h>

/* Copies src into dst[0..cap) (cap > 0), truncating; returns dst. */
static inline char *lm_str_copy(char *dst, size_t cap, const char *src) {
  size_t n = strnlen(src, cap - 1);
  memmove(dst, src, n); /* an overlap is harmless, unlike snprintf's */
  dst[n] = '\0';
  return dst;
}

#endif
