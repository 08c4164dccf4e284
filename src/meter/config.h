/* config.h — the library's settings, read from the environment once.
 *
 * Read lazily on the first hooked call that needs them (never at load), so
 * a process that never talks to an LLM pays nothing. Every variable is
 * documented in README.md; a malformed value is reported once (by the hook
 * layer) and replaced by its default, never a crash.
 */
#ifndef LM_CONFIG_H
#define LM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

enum lm_deny_style { LM_DENY_STYLE_ERROR = 0, LM_DENY_STYLE_HTTP = 1 };
enum lm_unpriced {
  LM_UNPRICED_CHARGE_MAX = 0,
  LM_UNPRICED_DENY,
  LM_UNPRICED_FREE
};

/* What the leak guard does with a process that resolves an LLM host while
 * no TLS library llmmeter can see is loaded (src/meter/unmetered.c). */
enum lm_unmetered_mode {
  LM_UNMETERED_DEFAULT = 0, /* refuse under a hard limit failing closed,
                               else warn once */
  LM_UNMETERED_ALLOW,       /* say nothing, refuse nothing */
  LM_UNMETERED_WARN,        /* warn once, never refuse */
  LM_UNMETERED_DENY,        /* refuse even without a hard limit */
};

struct lm_config {
  bool quiet;                 /* LLMMETER_QUIET=1: no stderr lines */
  enum lm_deny_style deny;    /* LLMMETER_DENY=error|http */
  int deny_curlcode;          /* LLMMETER_DENY_CURLCODE (default 42) */
  bool midstream_finish;      /* LLMMETER_MIDSTREAM=finish (default cut) */
  int on_error;               /* LLMMETER_ON_ERROR: 0 open, 1 closed,
                                 -1 unset: closed iff a hard limit is set */
  int64_t limit_pusd;         /* LLMMETER_LIMIT_USD, -1 unset */
  int64_t default_max_tokens; /* LLMMETER_DEFAULT_MAX_TOKENS (4096) */
  bool disabled;              /* LLMMETER_DISABLE=1: pass everything */
  bool inject;                /* LLMMETER_INJECT (default 1): add
                                 include_usage to OpenAI chat streams */
  const char *endpoints;      /* LLMMETER_ENDPOINTS (may be NULL) */
  const char *budget;         /* LLMMETER_BUDGET (may be NULL) */
  const char *ledger;        /* LLMMETER_LEDGER: the ledger file (NULL: none) */
  const char *library;       /* LLMMETER_LIBRARY: the preload `run` uses */
  const char *prices;        /* LLMMETER_PRICES: a LiteLLM price file */
  const char *default_price; /* LLMMETER_DEFAULT_PRICE: IN,OUT per M tokens */
  char agent[64];            /* LLMMETER_AGENT, else the program's name */
  int64_t wait_ms;           /* LLMMETER_WAIT_S (30): wait for in-flight
                                 calls when only their reservations block */
  enum lm_unpriced unpriced; /* LLMMETER_UNPRICED=charge-max|deny|free */
  int64_t max_call_pusd;     /* LLMMETER_MAX_CALL_USD (-1 none) */
  int64_t max_call_input_tokens;    /* LLMMETER_MAX_CALL_INPUT_TOKENS */
  int64_t max_call_output_tokens;   /* LLMMETER_MAX_CALL_OUTPUT_TOKENS */
  enum lm_unmetered_mode unmetered; /* LLMMETER_UNMETERED=allow|warn|deny */
  char errors[512];                 /* one line per malformed variable */
};

/* The process-wide configuration, read on first use (thread-safe). */
const struct lm_config *lm_config_get(void);
/* Re-reads the environment (tests). */
void lm_config_reload(void);

#endif
