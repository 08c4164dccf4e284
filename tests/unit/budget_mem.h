/* budget_mem.h — an in-memory budget backend for the tests.
 *
 * A second implementation of every lm_budget_ops operation, written from
 * budget.h, so that the budget unit tests can run on it as well as on the
 * shared-memory backend (select it with lm_budget_force_backend). Budgets
 * live in one anonymous shared mapping created on first use: processes
 * fork()ed after that share every budget, and opening a name finds the
 * same budget anywhere in that process tree. Never prints.
 */
#ifndef LM_BUDGET_MEM_H
#define LM_BUDGET_MEM_H

#include "budget_backend.h"

extern const struct lm_budget_backend lm_budget_backend_mem;

/* Removes the budget NAME (the in-memory counterpart of
 * lm_segment_remove); handles still open on it stop working. Returns 0, or
 * LM_SEG_ENOENT if there is no such budget. */
int lm_budget_mem_remove(const char *name);

#endif
