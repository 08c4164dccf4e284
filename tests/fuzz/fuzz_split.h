/* fuzz_split.h — shared by the fuzz targets: cuts an input into pieces.
 *
 * seed 0 means "one piece"; otherwise piece sizes come from a small
 * xorshift generator, between 1 and 64 bytes, so chunk boundaries land
 * inside every token kind.
 */
#ifndef LM_FUZZ_SPLIT_H
#define LM_FUZZ_SPLIT_H

#include <stddef.h>
#include <stdint.h>

struct fuzz_split {
  uint32_t state;
};

static inline size_t fuzz_next_piece(struct fuzz_split *s, size_t left) {
  if (s->state == 0)
    return left;
  s->state ^= s->state << 13;
  s->state ^= s->state >> 17;
  s->state ^= s->state << 5;
  size_t n = 1 + s->state % 64;
  return n < left ? n : left;
}

#endif
