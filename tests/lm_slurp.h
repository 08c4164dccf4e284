/* lm_slurp.h — read a whole file for the tests and test tools.
 *
 * Returns a malloc'd, NUL-terminated copy of the file (binary safe: *len
 * is its size), or NULL if it cannot be read. Header-only so every test
 * program and tool can use it without a library of test code.
 */
#ifndef LM_SLURP_H
#define LM_SLURP_H

#include <stdio.h>
#include <stdlib.h>

static inline char *lm_slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  char *b = NULL;
  long n = -1;
  if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
      fseek(f, 0, SEEK_SET) == 0 && (b = malloc((size_t)n + 1)) != NULL &&
      fread(b, 1, (size_t)n, f) != (size_t)n) {
    free(b);
    b = NULL;
  }
  fclose(f);
  if (b) {
    b[n] = '\0';
    *len = (size_t)n;
  }
  return b;
}

#endif
