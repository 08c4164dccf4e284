/* resolve_probe.c — a program with no TLS library, resolving names.
 *
 * What the leak guard sees from a program whose TLS llmmeter cannot see:
 * getaddrinfo of a host and nothing else. Links neither libcurl nor libssl
 * (tests/mk/resolve.mk), so under LD_PRELOAD it is such a program until it
 * loads one. Arguments are done in order:
 *
 *   NAME     getaddrinfo(NAME, "443"); prints "NAME RESULT", RESULT one of
 *            ok, EAI_FAIL, EAI_NONAME, EAI_AGAIN, EAI_SYSTEM, or the number
 *   +LIB     dlopen(LIB, RTLD_NOW | RTLD_LOCAL), as Python loads _ssl
 *   -tN      resolve each later NAME from N threads at once (one line per
 *            thread, in thread order)
 *
 * Exits 0 unless an argument could not be done (a LIB that does not load).
 */
#include <dlfcn.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 64

static const char *result_name(int rc, char *buf, size_t size) {
  switch (rc) {
  case 0:
    return "ok";
  case EAI_FAIL:
    return "EAI_FAIL";
  case EAI_NONAME:
    return "EAI_NONAME";
  case EAI_AGAIN:
    return "EAI_AGAIN";
  case EAI_SYSTEM:
    return "EAI_SYSTEM";
  default:
    snprintf(buf, size, "%d", rc);
    return buf;
  }
}

static int resolve(const char *name) {
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof(hints));
  hints.ai_socktype = SOCK_STREAM;
  int rc = getaddrinfo(name, "443", &hints, &res);
  if (rc == 0)
    freeaddrinfo(res);
  return rc;
}

struct job {
  const char *name;
  int rc;
};

static void *run_job(void *arg) {
  struct job *j = arg;
  j->rc = resolve(j->name);
  return NULL;
}

int main(int argc, char **argv) {
  int threads = 1;
  char buf[32];
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] == '+') {
      if (!dlopen(a + 1, RTLD_NOW | RTLD_LOCAL)) {
        fprintf(stderr, "resolve_probe: cannot load %s\n", a + 1);
        return 1;
      }
      continue;
    }
    if (strncmp(a, "-t", 2) == 0) {
      threads = atoi(a + 2);
      if (threads < 1 || threads > MAX_THREADS)
        threads = 1;
      continue;
    }
    struct job jobs[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    for (int t = 0; t < threads; t++) {
      jobs[t].name = a;
      if (pthread_create(&tid[t], NULL, run_job, &jobs[t]) != 0)
        return 1;
    }
    for (int t = 0; t < threads; t++) {
      pthread_join(tid[t], NULL);
      printf("%s %s\n", a, result_name(jobs[t].rc, buf, sizeof(buf)));
    }
  }
  return 0;
}
