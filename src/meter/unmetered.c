/* unmetered.c — the leak guard's policy: may a process llmmeter cannot
 * meter resolve an LLM API host? (resolve.h). Prints only through the
 * transport's printer.
 *
 * Why at resolution: a program whose TLS is linked in statically (the
 * nodesource node, Bun, rustls, Go) never calls anything llmmeter hooks
 * on its way to the provider, but it does ask the system resolver for the
 * provider's name first. That is the last point where llmmeter can stop
 * it, and refusing the name (EAI_FAIL) makes the program fail the way it
 * fails offline, with an error it already handles.
 *
 * The decision, in order:
 *   LLMMETER_DISABLE=1, or a TLS library llmmeter meters is loaded  PASS
 *   LLMMETER_UNMETERED=allow                                          PASS
 *   LLMMETER_UNMETERED=deny                                           DENY
 *   LLMMETER_UNMETERED=warn                                           WARN
 *   default: a hard limit (LLMMETER_LIMIT_USD, or the budget's hard limit
 *            or a spend rule) that fails closed (LLMMETER_ON_ERROR unset
 *            or closed), or a budget that cannot be used while failing
 *            closed                                                   DENY
 *            otherwise                                                WARN
 * A hard limit is a promise that the bill stops; a process that could
 * spend past it unseen breaks that promise, so it is refused unless the
 * user says otherwise. Without a hard limit nothing is promised, and a
 * warning is enough.
 *
 * Once per process: the line for a refusal and the line for a warning are
 * each said once, and the process counted once for each, keyed by pid so
 * that a fork()ed child is a process of its own. A program that retries
 * the name is refused every time, silently after the first.
 */
#include "unmetered.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "budget.h"
#include "call.h"
#include "config.h"
#include "detect.h"
#include "provider_host.h"

#define NAME_MAX_LEN 253 /* a DNS name */

bool lm_meter_llm_host(const char *name) {
  if (!name || !*name)
    return false;
  size_t n = strnlen(name, NAME_MAX_LEN + 2);
  if (n > NAME_MAX_LEN + 1) /* one trailing '.' allowed */
    return false;
  if (lm_price_host_named(name, n))
    return true;
  const char *ep = lm_config_get()->endpoints;
  return ep && *ep && lm_detect_patterns_name_host(ep, name);
}

/* The pid that was last warned / refused (0: none), per cause for the
 * line, and once per process for the count in the budget. */
static atomic_int warned_pid, denied_pid;       /* resolutions */
static atomic_int unseen_warned, unseen_denied; /* connections */
static atomic_int counted_warned, counted_denied;

void lm_meter_unmetered_forget(void) {
  atomic_store(&warned_pid, 0);
  atomic_store(&denied_pid, 0);
  atomic_store(&unseen_warned, 0);
  atomic_store(&unseen_denied, 0);
  atomic_store(&counted_warned, 0);
  atomic_store(&counted_denied, 0);
}

/* A name for the line: printable ASCII only (a glob in LLMMETER_ENDPOINTS
 * may match bytes a terminal would act on), truncated. */
static void printable(const char *s, char *out, size_t size) {
  size_t k = 0;
  for (; s && *s && k + 1 < size; s++)
    out[k++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
  out[k] = '\0';
}

/* The policy (see the top of this file): whether to refuse, and why, in a
 * clause for the line. */
static bool policy(struct lm_budget **bp, char *why, size_t size) {
  const struct lm_config *c = lm_config_get();
  lm_meter_say_settings();
  const char *err = "";
  struct lm_budget *b = lm_meter_budget(&err);
  const char *budget = lm_meter_budget_name();
  bool deny;
  *bp = b;
  if (c->unmetered == LM_UNMETERED_DENY) {
    deny = true;
    snprintf(why, size, "LLMMETER_UNMETERED=deny refuses it");
  } else if (c->unmetered == LM_UNMETERED_WARN) {
    deny = false;
    snprintf(why, size, "LLMMETER_UNMETERED=warn lets it through");
  } else {
    bool hard = c->limit_pusd >= 0 || (b && lm_budget_hard_limit(b));
    bool closed = c->on_error == 1 || (c->on_error < 0 && hard);
    deny = closed && (hard || !b);
    if (deny && !b)
      snprintf(why, size,
               "budget '%.64s' cannot be used (%.160s) and fails closed "
               "(LLMMETER_UNMETERED=allow lets it through)",
               budget, err);
    else if (deny)
      snprintf(why, size,
               "budget '%.64s' has a hard limit (LLMMETER_UNMETERED=allow "
               "or warn lets it through)",
               budget);
    else
      snprintf(why, size,
               "with a hard limit it would be refused "
               "(LLMMETER_UNMETERED=deny refuses it now)");
  }
  return deny;
}

/* The line, once per process for its cause; the count, once per process
 * for its verdict. */
static void say_once(atomic_int *said, struct lm_budget *b, bool denied,
                     const char *line) {
  int me = (int)getpid();
  if (atomic_exchange(said, me) == me)
    return;
  if (b &&
      atomic_exchange(denied ? &counted_denied : &counted_warned, me) != me)
    lm_budget_count_unmetered(b, denied);
  lm_meter_say(line, NULL, NULL);
}

static void program(char *prog, size_t size) {
  extern char *program_invocation_short_name;
  printable(program_invocation_short_name ? program_invocation_short_name : "?",
            prog, size);
}

enum lm_resolve_verdict lm_meter_resolve(const char *name, bool visible_tls) {
  const struct lm_config *c = lm_config_get();
  if (c->disabled || visible_tls || c->unmetered == LM_UNMETERED_ALLOW)
    return LM_RESOLVE_PASS;
  struct lm_budget *b;
  char why[320], host[128], prog[64], line[800];
  bool deny = policy(&b, why, sizeof(why));
  printable(name, host, sizeof(host));
  program(prog, sizeof(prog));
  int me = (int)getpid();
  if (deny)
    snprintf(line, sizeof(line),
             "llmmeter: refused to resolve %s for %s[%d]: no TLS library "
             "llmmeter can see is loaded (static TLS?), so its LLM calls "
             "could not be metered; %s",
             host, prog, me, why);
  else
    snprintf(line, sizeof(line),
             "llmmeter: warning: %s[%d] resolves %s but loads no TLS library "
             "llmmeter can see (static TLS?): its LLM calls are NOT metered; "
             "%s",
             prog, me, host, why);
  say_once(deny ? &denied_pid : &warned_pid, b, deny, line);
  return deny ? LM_RESOLVE_DENY : LM_RESOLVE_WARN;
}

bool lm_meter_may_follow(const char *method, const char *url) {
  struct lm_meter_request r = {.method = method, .url = url, .has_body = true};
  if (!url || !lm_meter_wants(&r))
    return true;
  /* host[:port], never a user:password@ before it (never printed) */
  const char *host = strstr(url, "://");
  char h[256];
  host = host ? host + 3 : url;
  size_t n = strcspn(host, "/?#");
  const char *at = memchr(host, '@', n);
  for (; at; at = memchr(host, '@', n)) {
    n -= (size_t)(at + 1 - host);
    host = at + 1;
  }
  snprintf(h, sizeof(h), "%.*s", (int)n, host);
  return lm_meter_unseen(h, "a request redirected into an LLM endpoint") !=
         LM_RESOLVE_DENY;
}

enum lm_resolve_verdict lm_meter_unseen(const char *host, const char *what) {
  const struct lm_config *c = lm_config_get();
  if (c->disabled || c->unmetered == LM_UNMETERED_ALLOW)
    return LM_RESOLVE_PASS;
  struct lm_budget *b;
  char why[320], h[128], w[96], prog[64], line[800];
  bool deny = policy(&b, why, sizeof(why));
  printable(host, h, sizeof(h));
  printable(what, w, sizeof(w));
  program(prog, sizeof(prog));
  int me = (int)getpid();
  if (deny)
    snprintf(line, sizeof(line),
             "llmmeter: refused a connection to %s for %s[%d]: it carries %s, "
             "which llmmeter cannot meter; %s",
             h, prog, me, w, why);
  else
    snprintf(line, sizeof(line),
             "llmmeter: warning: %s[%d] sends %s to %s: NOT metered; %s", prog,
             me, w, h, why);
  say_once(deny ? &unseen_denied : &unseen_warned, b, deny, line);
  return deny ? LM_RESOLVE_DENY : LM_RESOLVE_WARN;
}
