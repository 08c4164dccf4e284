/* unmetered.h — the leak guard's policy, inside the meter.
 *
 * The functions a resolver hook calls are in lifecycle/resolve.h
 * (lm_meter_llm_host, lm_meter_resolve); this header adds what the meter's
 * own tests need. See unmetered.c for the policy.
 */
#ifndef LM_UNMETERED_H
#define LM_UNMETERED_H

#include "resolve.h"

/* Forgets that this process was warned or refused (tests: each case of
 * the policy matrix starts as a fresh process would). */
void lm_meter_unmetered_forget(void);

#endif
