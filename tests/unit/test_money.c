/* test_money.c — money as people read it (status, denials, the CLI). */
#include "lm_test.h"
#include "money.h"
#include "utc.h"

#include <stdint.h>

static char buf[64];
#define SHOW(pusd, min) lm_money_format_display((pusd), (min), buf, sizeof(buf))

LM_TEST(test_a_limit_below_a_cent_never_reads_as_zero) {
  CHECK_STR(SHOW(400000000LL, 2), "0.0004"); /* $0.0004, not $0.00 */
  CHECK_STR(SHOW(1000000LL, 2), "0.000001");
  CHECK_STR(SHOW(1LL, 2), "0.000000000001");
  CHECK_STR(SHOW(-400000000LL, 2), "-0.0004");
}

LM_TEST(test_small_amounts_show_two_significant_digits) {
  CHECK_STR(SHOW(183000000LL, 4), "0.00018"); /* rounded, 2 digits */
  CHECK_STR(SHOW(187500000LL, 4), "0.00019"); /* half away from zero */
  CHECK_STR(SHOW(390000000LL, 2), "0.00039");
  CHECK_STR(SHOW(12300000000LL, 2), "0.012");
}

LM_TEST(test_amounts_with_enough_digits_keep_their_usual_form) {
  CHECK_STR(SHOW(0, 2), "0.00");
  CHECK_STR(SHOW(0, 4), "0.0000");
  CHECK_STR(SHOW(5012300000000LL, 2), "5.01");
  CHECK_STR(SHOW(5012300000000LL, 4), "5.0123");
  CHECK_STR(SHOW(50000000000LL, 4), "0.0500");
  CHECK_STR(SHOW(2500000000000LL, 2), "2.50");
  CHECK_STR(SHOW(999999999999LL, 2), "1.00");
}

/* Times gmtime_r cannot represent (a hostile segment's deadline, a
 * corrupt ledger's minute) read as the edge of years 0..9999, never as
 * an untouched struct. */
LM_TEST(test_utc_clamps_what_gmtime_cannot_represent) {
  struct tm tm;
  char s[32];
  time_t huge = (time_t)INT64_MAX, tiny = (time_t)INT64_MIN;
  strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%SZ", lm_utc(huge, &tm));
  CHECK_STR(s, "9999-12-31T23:59:59Z");
  lm_utc(tiny, &tm);
  CHECK(tm.tm_year == -1900 && tm.tm_mon == 0 && tm.tm_mday == 1 &&
        tm.tm_hour == 0 && tm.tm_min == 0 && tm.tm_sec == 0);
  strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%SZ", lm_utc(86400, &tm));
  CHECK_STR(s, "1970-01-02T00:00:00Z");
}

int main(void) {
  LM_RUN(test_a_limit_below_a_cent_never_reads_as_zero);
  LM_RUN(test_small_amounts_show_two_significant_digits);
  LM_RUN(test_amounts_with_enough_digits_keep_their_usual_form);
  LM_RUN(test_utc_clamps_what_gmtime_cannot_represent);
  LM_TEST_END();
}
