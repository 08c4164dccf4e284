/* notify.c — the detached --on-soft command (see notify.h). */
#include "notify.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "budget.h"
#include "status.h"

extern char **environ;

static void *reap(void *arg) {
  pid_t pid = (pid_t)(intptr_t)arg;
  /* sh backgrounds the command and exits at once; reap it off the call's
   * thread so the host never sees a zombie of ours. */
  waitpid(pid, NULL, 0);
  return NULL;
}

int lm_notify_run(const char *cmd, const char *input, size_t len) {
  if (!cmd || !*cmd)
    return -1;
  int fd = memfd_create("llmmeter-status", MFD_CLOEXEC);
  if (fd < 0)
    return -1;
  if (write(fd, input, len) != (ssize_t)len || lseek(fd, 0, SEEK_SET) != 0) {
    close(fd);
    return -1;
  }
  /* sh -c '(CMD) &': the command ends up in the background, in its own
   * session (setsid), with the status on stdin and no output. */
  size_t n = strlen(cmd) + 64;
  char *script = malloc(n);
  if (!script) {
    close(fd);
    return -1;
  }
  /* A background job's stdin is /dev/null unless redirected explicitly:
   * the status arrives on fd 3 and becomes the command's stdin. */
  snprintf(script, n, "(%s) <&3 3<&- >/dev/null 2>&1 &", cmd);
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fd, 3);
  posix_spawnattr_init(&at);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                    POSIX_SPAWN_SETSIGDEF);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &all);
  char *argv[] = {"sh", "-c", script, NULL};
  pid_t pid;
  int rc = posix_spawn(&pid, "/bin/sh", &fa, &at, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  free(script);
  close(fd);
  if (rc != 0)
    return -1;
  pthread_t t;
  pthread_attr_t ta;
  pthread_attr_init(&ta);
  pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&t, &ta, reap, (void *)(intptr_t)pid) != 0)
    waitpid(pid, NULL, WNOHANG);
  pthread_attr_destroy(&ta);
  return 0;
}

int lm_notify_on_soft(struct lm_budget *b, const char *cmd) {
  struct lm_snapshot *snap = malloc(sizeof(*snap)); /* large: not on stack */
  char *json = NULL;
  size_t len = 0;
  int rc = -1;
  FILE *f = snap ? open_memstream(&json, &len) : NULL;
  if (f) {
    lm_budget_snapshot(b, snap);
    lm_status_print(f, snap, LM_FMT_JSON);
    if (fclose(f) == 0 && json)
      rc = lm_notify_run(cmd, json, len);
  }
  free(json);
  free(snap);
  return rc;
}
