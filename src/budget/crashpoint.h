/* crashpoint.h — numbered crash points on the budget's shared-memory write
 * paths, for the crash test (tests/unit/test_crash.c, `make crashtest`).
 *
 * LM_CRASH_POINT() marks a place just before or just after a store to the
 * segment. In a normal build it is nothing at all. Built with
 * -DLM_CRASHTEST, each point passed counts once, and the process kills
 * itself with SIGKILL when the count reaches the number armed by
 * lm_crash_arm(): the crash test runs the same workload once per number and
 * checks that another process recovers every counter exactly. The count is
 * per process (a fork()ed child starts from the parent's count). Never
 * reads the environment: the test arms it.
 */
#ifndef LM_CRASHPOINT_H
#define LM_CRASHPOINT_H

#include <stdint.h>

#ifdef LM_CRASHTEST
/* Kills the process with SIGKILL at point n (0: never, only count). */
void lm_crash_arm(uint64_t n);
/* Points passed so far by this process. */
uint64_t lm_crash_points(void);
void lm_crash_point(void);
#define LM_CRASH_POINT() lm_crash_point()
#else
#define LM_CRASH_POINT() ((void)0)
#endif

#endif
