/* bench_util.h — the small helpers the libcurl benchmark clients share
 * (bench_client, bench_paired): a clock read in µs, and a write callback
 * that only counts the bytes, so the library's wrapper sits on the path
 * and the client does nothing else with them. */
#ifndef LM_BENCH_UTIL_H
#define LM_BENCH_UTIL_H

#include <stddef.h>
#include <time.h>

static inline double bench_clock_us(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* CURLOPT_WRITEFUNCTION; ud: an unsigned long long byte count. */
static inline size_t bench_sink(char *p, size_t s, size_t n, void *ud) {
  (void)p;
  *(unsigned long long *)ud += s * n;
  return s * n;
}

#endif
