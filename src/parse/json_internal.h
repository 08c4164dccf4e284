/* json_internal.h — the byte primitives the two files of the JSON module
 * share, and nothing outside them sees.
 *
 * The module (json_scan.h) is one API in two files, one concern each:
 *   json_scan.c   the push scanner: state, path access, the tokeniser
 *   json_walk.c   work on bytes already whole in memory: the raw-byte
 *                 object walks and their validation, the exact number
 *                 conversions, string escaping
 * Both cross strings with the vectorised two-byte search and skip JSON
 * whitespace on their hottest paths. Those helpers are static inline here,
 * not functions in one file: the build has no LTO, and they were inlined
 * when the module was one file, so splitting it must not turn them into
 * calls. (lm_find2 and lm_json_skip_ws are the same code as functions, for
 * the framers.) Include it only from json_scan.c and json_walk.c.
 */
#ifndef LM_JSON_INTERNAL_H
#define LM_JSON_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* First byte equal to a or b in [p, end), or NULL: 32, then 16 bytes a
 * step, then byte by byte. */
static inline const char *lm_find2_inline(const char *p, const char *end,
                                          char a, char b) {
#if defined(__SSE2__)
  const __m128i va = _mm_set1_epi8(a), vb = _mm_set1_epi8(b);
  while (end - p >= 32) {
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i y = _mm_loadu_si128((const __m128i *)(const void *)(p + 16));
    __m128i mx = _mm_or_si128(_mm_cmpeq_epi8(x, va), _mm_cmpeq_epi8(x, vb));
    __m128i my = _mm_or_si128(_mm_cmpeq_epi8(y, va), _mm_cmpeq_epi8(y, vb));
    unsigned m = (unsigned)_mm_movemask_epi8(mx) |
                 ((unsigned)_mm_movemask_epi8(my) << 16);
    if (m)
      return p + __builtin_ctz(m);
    p += 32;
  }
  if (end - p >= 16) {
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
    unsigned m = (unsigned)_mm_movemask_epi8(
        _mm_or_si128(_mm_cmpeq_epi8(x, va), _mm_cmpeq_epi8(x, vb)));
    if (m)
      return p + __builtin_ctz(m);
    p += 16;
  }
#endif
  for (; p < end; p++)
    if (*p == a || *p == b)
      return p;
  return NULL;
}

/* Space, tab, LF, CR: one shift and a mask (bits 32, 9, 10, 13). */
static inline bool lm_json_is_ws(char c) {
  unsigned char u = (unsigned char)c;
  return u <= ' ' && ((0x100002600ull >> u) & 1);
}

/* First byte in [p, end) that is not JSON whitespace, or end. Compact JSON
 * has none or one byte of it; a pretty-printed body (OpenAI's non-stream
 * answers) a newline and an indent before each member, which are crossed
 * sixteen bytes a step. */
static inline const char *lm_json_skip_ws_inline(const char *p,
                                                 const char *end) {
  if (p == end || !lm_json_is_ws(*p))
    return p;
  if (++p == end || !lm_json_is_ws(*p))
    return p;
#if defined(__SSE2__)
  while (end - p >= 16) {
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i ws = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8(' ')),
                     _mm_cmpeq_epi8(x, _mm_set1_epi8('\n'))),
        _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('\r')),
                     _mm_cmpeq_epi8(x, _mm_set1_epi8('\t'))));
    unsigned m = ~(unsigned)_mm_movemask_epi8(ws) & 0xFFFFu;
    if (m)
      return p + __builtin_ctz(m);
    p += 16;
  }
#endif
  while (p < end && lm_json_is_ws(*p))
    p++;
  return p;
}

#endif
