/* bench_spawn.c — process start cost: fork + exec + wait, N times.
 *
 * usage: bench_spawn N PRELOAD|- PROGRAM [ARGS...]
 * Runs PROGRAM N times (stdout and stderr to /dev/null), with LD_PRELOAD
 * set to PRELOAD (or removed for "-"), and prints
 *   spawn us_per_start=X
 * (wall time / N). Exit 1 if a run failed.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: bench_spawn N PRELOAD|- PROGRAM [ARGS...]\n");
    return 2;
  }
  long n = atol(argv[1]);
  if (argv[2][0] == '-' && argv[2][1] == '\0')
    unsetenv("LD_PRELOAD");
  else
    setenv("LD_PRELOAD", argv[2], 1);
  int devnull = open("/dev/null", O_WRONLY);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < n; i++) {
    pid_t pid = fork();
    if (pid == 0) {
      dup2(devnull, 1);
      dup2(devnull, 2);
      execv(argv[3], argv + 3);
      _exit(127);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) ||
        WEXITSTATUS(st)) {
      fprintf(stderr, "bench_spawn: %s failed\n", argv[3]);
      return 1;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double us = ((double)(t1.tv_sec - t0.tv_sec) * 1e6 +
               (double)(t1.tv_nsec - t0.tv_nsec) / 1e3) /
              (double)n;
  printf("spawn us_per_start=%.1f\n", us);
  return 0;
}
