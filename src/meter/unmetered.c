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

/* The pid that was last warned / refused and counted (0: none). */
static atomic_int warned_pid, denied_pid;

void lm_meter_unmetered_forget(void) {
  atomic_store(&warned_pid, 0);
  atomic_store(&denied_pid, 0);
}

/* A name for the line: printable ASCII only (a glob in LLMMETER_ENDPOINTS
 * may match bytes a terminal would act on), truncated. */
static void printable(const char *s, char *out, size_t size) {
  size_t k = 0;
  for (; s && *s && k + 1 < size; s++)
    out[k++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
  out[k] = '\0';
}

static void say_once(atomic_int *said, struct lm_budget *b, bool denied,
                     const char *name, const char *why) {
  int me = (int)getpid();
  if (atomic_exchange(said, me) == me)
    return;
  if (b)
    lm_budget_count_unmetered(b, denied);
  extern char *program_invocation_short_name;
  char host[128], prog[64], line[600];
  printable(name, host, sizeof(host));
  printable(program_invocation_short_name ? program_invocation_short_name : "?",
            prog, sizeof(prog));
  if (denied)
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
  lm_meter_say(line, NULL, NULL);
}

enum lm_resolve_verdict lm_meter_resolve(const char *name, bool visible_tls) {
  const struct lm_config *c = lm_config_get();
  if (c->disabled || visible_tls || c->unmetered == LM_UNMETERED_ALLOW)
    return LM_RESOLVE_PASS;
  lm_meter_say_settings();
  const char *err = "";
  struct lm_budget *b = lm_meter_budget(&err);
  const char *budget = lm_meter_budget_name();
  char why[320];
  bool deny;
  if (c->unmetered == LM_UNMETERED_DENY) {
    deny = true;
    snprintf(why, sizeof(why), "LLMMETER_UNMETERED=deny refuses it");
  } else if (c->unmetered == LM_UNMETERED_WARN) {
    deny = false;
    snprintf(why, sizeof(why), "LLMMETER_UNMETERED=warn lets it through");
  } else {
    bool hard = c->limit_pusd >= 0 || (b && lm_budget_hard_limit(b));
    bool closed = c->on_error == 1 || (c->on_error < 0 && hard);
    deny = closed && (hard || !b);
    if (deny && !b)
      snprintf(why, sizeof(why),
               "budget '%.64s' cannot be used (%.160s) and fails closed "
               "(LLMMETER_UNMETERED=allow lets it through)",
               budget, err);
    else if (deny)
      snprintf(why, sizeof(why),
               "budget '%.64s' has a hard limit (LLMMETER_UNMETERED=allow "
               "or warn lets it through)",
               budget);
    else
      snprintf(why, sizeof(why),
               "with a hard limit it would be refused "
               "(LLMMETER_UNMETERED=deny refuses it now)");
  }
  if (deny) {
    say_once(&denied_pid, b, true, name, why);
    return LM_RESOLVE_DENY;
  }
  say_once(&warned_pid, b, false, name, why);
  return LM_RESOLVE_WARN;
}
