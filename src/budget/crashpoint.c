/* crashpoint.c — the counter behind LM_CRASH_POINT() (crashpoint.h).
 *
 * Compiled in every build, empty unless -DLM_CRASHTEST: only the crash
 * test's own copy of the budget engine is built with it. A point is a
 * relaxed counter increment and a compare; at the armed number the
 * process sends itself SIGKILL, which no handler can catch, as a kill -9
 * from outside would.
 */
#include "crashpoint.h"

#ifdef LM_CRASHTEST
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

static _Atomic uint64_t crash_passed;
static _Atomic uint64_t crash_at;

void lm_crash_arm(uint64_t n) {
  atomic_store(&crash_passed, 0);
  atomic_store(&crash_at, n);
}

uint64_t lm_crash_points(void) { return atomic_load(&crash_passed); }

void lm_crash_point(void) {
  uint64_t n = atomic_fetch_add(&crash_passed, 1) + 1;
  if (n == atomic_load_explicit(&crash_at, memory_order_relaxed))
    kill(getpid(), SIGKILL);
}
#else
/* ISO C forbids an empty translation unit. */
typedef int lm_crashpoint_unused;
#endif
