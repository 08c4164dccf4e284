/* resolve_hook.c — the leak guard's getaddrinfo: refuses, or warns about,
 * an LLM API host resolved by a process whose TLS llmmeter cannot see.
 *
 * A transport like src/hook/: it sees only the lifecycle headers
 * (resolve.h asks the meter; the meter decides and says the line) and
 * applies the verdict: DENY returns EAI_FAIL without asking DNS, anything
 * else goes to the real getaddrinfo with the caller's arguments untouched.
 *
 * Every resolution of the process passes through here, so the common case
 * must cost nothing: a NULL name, a numeric address, "localhost" and every
 * name that is not a known LLM host go straight to the real function, with
 * no allocation and no lock (the host table is const data; the settings
 * are read once, on the first name that is not numeric). Nothing is done
 * at load: the real function is found with dlsym(RTLD_NEXT) on the first
 * call. Thread-safe: resolvers run on many threads (libuv's pool in node,
 * Go's cgo resolver).
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lifecycle.h"
#include "resolve.h"
#include "tls_seen.h"

#define LM_EXPORT __attribute__((visibility("default")))

typedef int (*getaddrinfo_fn)(const char *, const char *,
                              const struct addrinfo *, struct addrinfo **);

static _Atomic(getaddrinfo_fn) real_getaddrinfo;

/* The next getaddrinfo (libc's). Two threads racing here store the same
 * pointer. */
static getaddrinfo_fn real(void) {
  getaddrinfo_fn f = atomic_load_explicit(&real_getaddrinfo,
                                          memory_order_acquire);
  if (!f) {
    f = (getaddrinfo_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    atomic_store_explicit(&real_getaddrinfo, f, memory_order_release);
  }
  return f;
}

/* Names that never reach DNS or cannot be an LLM provider: an address
 * (what inet_aton or inet_pton accept, as getaddrinfo does), a caller
 * asking for numeric only, and localhost. */
static bool never_guarded(const char *name, const struct addrinfo *hints) {
  if (hints && (hints->ai_flags & AI_NUMERICHOST))
    return true;
  if (strchr(name, ':')) /* an IPv6 address: host names have no ':' */
    return true;
  struct in_addr a4;
  if (inet_aton(name, &a4))
    return true;
  size_t n = strlen(name);
  if (n && name[n - 1] == '.')
    n--;
  static const char lh[] = "localhost";
  size_t m = sizeof(lh) - 1;
  return (n == m || (n > m && name[n - m - 1] == '.')) &&
         strncasecmp(name + n - m, lh, m) == 0;
}

/* The meter's lines for the user: one write(2) each (lines from many
 * processes never interleave), as the libcurl hooks write theirs. */
static void print_line(const char *line, size_t len) {
  char buf[700];
  if (len > sizeof(buf) - 1)
    len = sizeof(buf) - 1;
  memcpy(buf, line, len);
  buf[len++] = '\n';
  (void)!write(STDERR_FILENO, buf, len);
}

static pthread_once_t printer_once = PTHREAD_ONCE_INIT;
static void install_printer(void) { lm_meter_set_printer(print_line); }

LM_EXPORT int getaddrinfo(const char *name, const char *service,
                          const struct addrinfo *hints, struct addrinfo **res) {
  getaddrinfo_fn next = real();
  if (!next) { /* no libc below us: nothing could resolve */
    errno = ENOSYS;
    return EAI_SYSTEM;
  }
  if (!name || never_guarded(name, hints) || !lm_meter_llm_host(name))
    return next(name, service, hints, res);
  pthread_once(&printer_once, install_printer);
  if (lm_meter_resolve(name, lm_tls_seen()) == LM_RESOLVE_DENY)
    return EAI_FAIL;
  return next(name, service, hints, res);
}
