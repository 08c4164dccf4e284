/* lm_test.h — the smallest test harness that reads as a spec.
 *
 * Each unit test is a static function declared with LM_TEST(name) and run
 * with LM_RUN(name). Each check that fails prints file:line and the failing
 * expression; each test prints one "PASS: name" or "FAIL: name" line, which
 * tests/run.sh counts across every binary and script for the suite's final
 * "N passed, N failed" line. A test binary exits non-zero if any test failed.
 * A binary that runs its list more than once (e.g. on each budget backend)
 * sets LM_TEST_SUFFIX("[shm]") before each run to tell the lines apart.
 */
#ifndef LM_TEST_H
#define LM_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int lm_t_cur_failed;
static int lm_t_passed;
static int lm_t_failed;
static const char *lm_t_suffix = "";

#define LM_TEST_SUFFIX(s) (lm_t_suffix = (s))

#define LM_TEST(name) static void name(void)

#define CHECK(cond)                                                      \
  do {                                                                   \
    if (!(cond)) {                                                       \
      fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, \
              #cond);                                                    \
      lm_t_cur_failed = 1;                                               \
    }                                                                    \
  } while (0)

#define CHECK_EQ_I64(a, b)                                                  \
  do {                                                                      \
    long long lm_a_ = (long long)(a), lm_b_ = (long long)(b);               \
    if (lm_a_ != lm_b_) {                                                   \
      fprintf(stderr, "  %s:%d: %s == %s failed: %lld != %lld\n", __FILE__, \
              __LINE__, #a, #b, lm_a_, lm_b_);                              \
      lm_t_cur_failed = 1;                                                  \
    }                                                                       \
  } while (0)

#define CHECK_EQ_U64(a, b)                                                  \
  do {                                                                      \
    unsigned long long lm_a_ = (unsigned long long)(a),                     \
                       lm_b_ = (unsigned long long)(b);                     \
    if (lm_a_ != lm_b_) {                                                   \
      fprintf(stderr, "  %s:%d: %s == %s failed: %llu != %llu\n", __FILE__, \
              __LINE__, #a, #b, lm_a_, lm_b_);                              \
      lm_t_cur_failed = 1;                                                  \
    }                                                                       \
  } while (0)

#define CHECK_STR(a, b)                                               \
  do {                                                                \
    const char *lm_a_ = (a), *lm_b_ = (b);                            \
    if (!lm_a_ || !lm_b_ || strcmp(lm_a_, lm_b_) != 0) {              \
      fprintf(stderr, "  %s:%d: %s == %s failed: \"%s\" != \"%s\"\n", \
              __FILE__, __LINE__, #a, #b, lm_a_ ? lm_a_ : "(null)",   \
              lm_b_ ? lm_b_ : "(null)");                              \
      lm_t_cur_failed = 1;                                            \
    }                                                                 \
  } while (0)

#define LM_RUN(name)                              \
  do {                                            \
    lm_t_cur_failed = 0;                          \
    name();                                       \
    if (lm_t_cur_failed) {                        \
      lm_t_failed++;                              \
      printf("FAIL: %s%s\n", #name, lm_t_suffix); \
    } else {                                      \
      lm_t_passed++;                              \
      printf("PASS: %s%s\n", #name, lm_t_suffix); \
    }                                             \
    fflush(stdout);                               \
  } while (0)

#define LM_TEST_END() return lm_t_failed ? 1 : 0

#endif
