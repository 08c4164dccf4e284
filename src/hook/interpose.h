/* interpose.h — finding the real libcurl(s) and reaching modules that
 * bypass the exported hooks.
 *
 * Owns: the table of loaded libcurl instances (one lm_curl_vt of real
 * functions per instance, at most LM_MAX_CURL_INSTANCES), the routing of
 * handle-less calls to an instance, the exported dlopen() wrapper, and the
 * rewriting of GOT slots in modules that would otherwise call libcurl
 * directly (RTLD_DEEPBIND modules such as PHP's curl extension): which
 * slots, and what goes in them (reading the ELF structures and writing a
 * slot is elf_got.h's).
 *
 * Never: runs anything at library load (no constructor: nothing is scanned,
 * mapped or allocated until the first hooked call or the first dlopen that
 * needs it), allocates memory itself, prints, or leaves a RELRO page
 * writable. Every failure leaves the module as it was and records a one-line
 * reason for lm_interpose_last_error().
 *
 * Module constructors of a dlopen()ed object run before it is patched: calls
 * they make into libcurl through a DEEPBIND binding are not hooked.
 */
#ifndef LM_INTERPOSE_H
#define LM_INTERPOSE_H

#include "curl_vt.h"

/* Initialise once, lazily, from the hook layer's first hooked call (never
 * from a constructor). hooks[k] is the hook layer's table of hook functions
 * for instance slot k (functions that know their k): these are what patched
 * GOT slots are rewritten to. exports is the table of the library's own
 * exported curl_* symbols: a GOT slot already holding one of them is left
 * alone. Both tables are copied. Scans every loaded object, registers each
 * libcurl instance and patches every module that bypasses the exports.
 * Thread-safe and idempotent: later calls return at once. */
void lm_interpose_init(const struct lm_curl_vt hooks[LM_MAX_CURL_INSTANCES],
                       const struct lm_curl_vt *exports);

/* Number of libcurl instances registered so far (0..LM_MAX_CURL_INSTANCES).
 * Instances are never removed: each is pinned with RTLD_NODELETE. */
int lm_interpose_count(void);

/* The real functions of instance k, or NULL if slot k is unused. Members
 * are NULL where that libcurl lacks the symbol: callers check. */
const struct lm_curl_vt *lm_interpose_real(int k);

/* The instance a handle-less call (curl_easy_init, curl_multi_init) made
 * from retaddr should go to: the instance that dlsym(caller module, name)
 * resolves to within the caller's own dependency scope; else the one
 * dlsym(RTLD_NEXT, name) finds; else the only instance; else -1. The answer
 * is cached per module, so dlsym runs at most once per module. */
int lm_interpose_instance_for_caller(const void *retaddr, const char *name);

/* The instance whose mapping contains the code address fn (a real libcurl
 * function), or -1. Lock-free. */
int lm_interpose_instance_of_addr(const void *fn);

/* One line saying why the last attempt to find or patch something failed,
 * or NULL if nothing failed. The text stays valid for the process
 * lifetime; it may be replaced by a later failure. */
const char *lm_interpose_last_error(void);

/* Provided by the hook layer (a weak reference here; may be absent): runs
 * the hook layer's one-time lazy initialisation, which calls
 * lm_interpose_init(). The dlopen() wrapper calls it when a newly loaded
 * module imports curl_* before any hooked call has happened (a DEEPBIND
 * module never reaches the exports, so nothing else would initialise).
 * Called without any interposer lock held. */
void lm_hook_ensure_init(void);

#endif
