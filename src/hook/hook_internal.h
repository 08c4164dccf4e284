/* hook_internal.h — what the files of the libcurl transport share, and
 * nothing outside them sees.
 *
 * The transport is one module in three files, one concern each:
 *   hook.c          per-handle state, initialisation, our write and header
 *                   callbacks, starting and ending a metered call, the
 *                   easy interface's hook bodies
 *   hook_multi.c    the multi interface: which instance a multi handle
 *                   belongs to, refused transfers, the curl_multi_* bodies
 *   hook_exports.c  the exported curl_* symbols and the per-instance hook
 *                   sets that the interposer writes into GOT slots
 * This header owns the per-handle state (struct lm_handle), the
 * re-entrancy depth and the lm_hook_* functions that cross those files.
 * All of it is hidden (the pragma below), so the compiler binds it locally
 * as it did when the transport was one file, and nothing here can leave
 * the library: only hook_exports.c's curl_* and interpose.c's dlopen do.
 * Include it only from src/hook/hook*.c, after defining
 * CURL_DISABLE_TYPECHECK (the exports define curl_easy_setopt and
 * curl_easy_getinfo, which curl.h's type checks would turn into macros).
 */
#ifndef LM_HOOK_INTERNAL_H
#define LM_HOOK_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "curl_vt.h"
#include "lifecycle.h"

#pragma GCC visibility push(hidden)

/* ---- per-handle state (hook.c) ---------------------------------------- */

/* One easy handle the program created or configured through us: the
 * options that describe its request, the program's callbacks, and the
 * metered call in progress. Kept in hook.c's map from CURL * to entry. */
struct lm_handle {
  CURL *h;
  int inst;
  struct lm_handle *next; /* hash chain */
  char *url;              /* CURLOPT_URL, copied */
  char *target;           /* CURLOPT_REQUEST_TARGET, copied */
  void *curlu; /* CURLOPT_CURLU: the program's CURLU, which wins over url */
  bool follow; /* CURLOPT_FOLLOWLOCATION */
  curl_prereq_callback host_prereq; /* program's CURLOPT_PREREQFUNCTION */
  void *host_prereqd;               /* and its CURLOPT_PREREQDATA */
  bool watching;        /* our prereq callback is in place (watch_redirects) */
  const char *post;     /* CURLOPT_POSTFIELDS (program's memory) */
  char *post_copy;      /* CURLOPT_COPYPOSTFIELDS, copied */
  size_t post_copy_len; /* bytes in post_copy */
  long long post_size;  /* POSTFIELDSIZE(_LARGE), -1 = strlen */
  bool read_body;       /* body comes from a read callback */
  curl_write_callback host_wf; /* program's callbacks and data */
  void *host_wd;
  bool host_wd_set;
  curl_write_callback host_hf;
  void *host_hd;
  bool header_in_body; /* CURLOPT_HEADER */
  char *errbuf;        /* CURLOPT_ERRORBUFFER */
  /* the metered call in progress, if any */
  struct lm_meter_call *call; /* the meter's, kept for later calls */
  struct lm_verdict v;        /* its verdict (points into call) */
  bool installed;             /* our callbacks are in place */
  bool hdr_block;             /* CURLOPT_HEADER: inside a header block */
  bool hdr_maybe_next;        /* a blank line ended one; another may come */
  long synth_status;          /* a presented refusal's status */
  CURLM *multi;               /* multi it was added to */
  bool multi_denied;          /* refused at add: not in the real multi */
  bool multi_done;            /* its DONE message was delivered */
  CURLcode multi_result;
  bool sent_body;     /* the meter's body is set on the handle */
  size_t meter_skip;  /* bytes libcurl hands us again after a
                                      pause that the meter already read */
  size_t filter_skip; /* ... that the filter already holds */
  bool filtering;     /* this transfer's output is filtered */
};

/* >0 while inside real libcurl: the calls libcurl makes to its own exports
 * (curl_easy_perform drives curl_multi_*) are then plain pass-throughs.
 * Reset to 0 around the program's callbacks, which may call libcurl: the
 * write path touches it twice a chunk. local-dynamic is the TLS access
 * the compiler chose when it was a static of one file; a global would get
 * global-dynamic, another __tls_get_addr sequence, and the write path
 * would no longer be the code it was. */
extern __thread int lm_hook_depth __attribute__((tls_model("local-dynamic")));

/* The entry of handle h, or NULL if we never saw it. */
struct lm_handle *lm_hook_find_handle(CURL *h);
/* The first entry (in map order) added to multi m; with refused_undone,
 * the first of those refused at add time whose DONE message is still due.
 * NULL if there is none. */
struct lm_handle *lm_hook_first_in_multi(CURLM *m, bool refused_undone);

/* The real functions of libcurl instance k, or of the only instance when
 * slot k is empty (or k is -1) and there is exactly one; else NULL, which
 * the user is told once. */
const struct lm_curl_vt *lm_hook_real(int k);

/* ---- a metered call (hook.c) ------------------------------------------ */

/* Describes the transfer to the meter and keeps its verdict in e->v;
 * no_wait: it is added to a multi handle (lm_meter_request's). */
enum lm_verdict_kind lm_hook_start_call(struct lm_handle *e, bool no_wait);
/* Carries out a refusal: the meter's HTTP response through the program's
 * callbacks (CURLE_OK), or the error code with the reason in the error
 * buffer. */
CURLcode lm_hook_deny_result(struct lm_handle *e);
/* Puts our callbacks (and the meter's body, if it rewrote it) in front of
 * the program's for a metered transfer; lm_hook_uninstall gives the handle
 * back as the program set it. Both call the real easy_setopt of vt. */
void lm_hook_install(const struct lm_curl_vt *vt, struct lm_handle *e);
void lm_hook_uninstall(const struct lm_curl_vt *vt, struct lm_handle *e);
/* Ends the metered call of e with libcurl's result for the transfer. */
void lm_hook_finish_call(struct lm_handle *e, CURLcode result);

/* ---- the hook bodies (hook.c, hook_multi.c) --------------------------- */

/* k is the libcurl instance, or -1 for an exported hook: then the body
 * finds it from the handle, or from ret (the caller's return address). */
CURL *lm_hook_easy_init(int k, const void *ret);
CURLcode lm_hook_easy_setopt(int k, CURL *h, CURLoption o, va_list ap,
                             const void *ret);
CURLcode lm_hook_easy_perform(int k, CURL *h, const void *ret);
CURL *lm_hook_easy_duphandle(int k, CURL *h, const void *ret);
void lm_hook_easy_reset(int k, CURL *h, const void *ret);
void lm_hook_easy_cleanup(int k, CURL *h, const void *ret);
CURLcode lm_hook_easy_getinfo(int k, CURL *h, CURLINFO info, va_list ap,
                              const void *ret);
CURLM *lm_hook_multi_init(int k, const void *ret);
CURLMcode lm_hook_multi_add_handle(int k, CURLM *m, CURL *h, const void *ret);
CURLMcode lm_hook_multi_remove_handle(int k, CURLM *m, CURL *h,
                                      const void *ret);
CURLMcode lm_hook_multi_perform(int k, CURLM *m, int *running, const void *ret);
CURLMcode lm_hook_multi_socket_action(int k, CURLM *m, curl_socket_t s, int ev,
                                      int *running, const void *ret);
CURLMsg *lm_hook_multi_info_read(int k, CURLM *m, int *queue, const void *ret);
CURLMcode lm_hook_multi_cleanup(int k, CURLM *m, const void *ret);

/* ---- the tables (hook_exports.c) -------------------------------------- */

/* Fills hooks[k] with instance k's hook set and exports with the exported
 * curl_* hooks, for lm_interpose_init. */
void lm_hook_fill_tables(struct lm_curl_vt hooks[LM_MAX_CURL_INSTANCES],
                         struct lm_curl_vt *exports);

#pragma GCC visibility pop

#endif
