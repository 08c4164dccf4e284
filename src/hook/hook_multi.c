/* hook_multi.c — the libcurl transport's multi interface: which libcurl
 * a multi handle belongs to, transfers refused at add time, and the
 * curl_multi_* hook bodies.
 *
 * A transfer added to a multi handle is started at add time (described to
 * the meter, our callbacks installed if it is metered) and ended at the
 * first of: libcurl reporting it DONE through info_read, its removal, the
 * multi's cleanup. A program need not call info_read at all (PHP's
 * curl_multi_exec never does), so removal and cleanup settle what a
 * transfer carried by themselves. A refused transfer never reaches the
 * real multi: its refusal is carried out at add time, and its DONE message
 * is made up here and handed out by info_read once libcurl's own queue is
 * empty.
 *
 * Kept apart from hook.c because the easy path never needs any of this;
 * what the two share is the per-handle state and the start and end of a
 * metered call, through hook_internal.h. The multi registry below is this
 * file's own, under its own mutex (never held with hook.c's handle map
 * lock); the handles it looks for are found through lm_hook_*.
 */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "curl_vt.h"
#include "hook_internal.h"
#include "interpose.h"
#include "lifecycle.h"

/* ---- multi handles ---------------------------------------------------- */

/* A multi handle: the libcurl instance it belongs to, and the storage for
 * the DONE message of a transfer refused at add time. */
struct lm_multi {
  CURLM *m;
  int inst;
  struct lm_multi *next;
  CURLMsg msg; /* storage for a synthesised DONE message */
};
static struct lm_multi *multis;
static pthread_mutex_t multi_lock = PTHREAD_MUTEX_INITIALIZER;

static struct lm_multi *find_multi(CURLM *m, int inst_if_new) {
  pthread_mutex_lock(&multi_lock);
  struct lm_multi *e = multis;
  while (e && e->m != m)
    e = e->next;
  if (!e && inst_if_new >= 0 && (e = calloc(1, sizeof(*e))) != NULL) {
    e->m = m;
    e->inst = inst_if_new;
    e->next = multis;
    multis = e;
  }
  pthread_mutex_unlock(&multi_lock);
  return e;
}

static void drop_multi(CURLM *m) {
  pthread_mutex_lock(&multi_lock);
  struct lm_multi **pp = &multis;
  while (*pp && (*pp)->m != m)
    pp = &(*pp)->next;
  struct lm_multi *e = *pp;
  if (e)
    *pp = e->next;
  pthread_mutex_unlock(&multi_lock);
  free(e);
}

/* ---- the hook bodies (k = libcurl instance; -1 = find it) ------------ */

CURLM *lm_hook_multi_init(int k, const void *ret) {
  lm_hook_ensure_init();
  if (k < 0)
    k = lm_interpose_instance_for_caller(ret, "curl_multi_init");
  const struct lm_curl_vt *vt = lm_hook_real(k);
  if (!vt || !vt->multi_init)
    return NULL;
  lm_hook_depth++;
  CURLM *m = vt->multi_init();
  lm_hook_depth--;
  if (m && lm_hook_depth == 0)
    find_multi(m, k >= 0 ? k : 0);
  return m;
}

static int multi_inst(CURLM *m, int k, const void *ret, const char *name) {
  if (k >= 0)
    return k;
  struct lm_multi *mm = lm_hook_depth == 0 ? find_multi(m, -1) : NULL;
  return mm ? mm->inst : lm_interpose_instance_for_caller(ret, name);
}

CURLMcode lm_hook_multi_add_handle(int k, CURLM *m, CURL *h, const void *ret) {
  lm_hook_ensure_init();
  k = multi_inst(m, k, ret, "curl_multi_add_handle");
  const struct lm_curl_vt *vt = lm_hook_real(k);
  if (!vt || !vt->multi_add_handle)
    return CURLM_INTERNAL_ERROR;
  struct lm_handle *e = lm_hook_depth == 0 && h ? lm_hook_find_handle(h) : NULL;
  /* a multi handle's other transfers run when the program drives it: a
   * wait here for them to settle would wait for ever (lifecycle.h) */
  enum lm_verdict_kind s = e ? lm_hook_start_call(e, true) : LM_VERDICT_PASS;
  if (e) {
    e->multi = m;
    e->multi_denied = false;
    e->multi_done = false;
  }
  if (s == LM_VERDICT_DENY) {
    /* Never reaches the network: it completes at once, in info_read. */
    e->multi_denied = true;
    e->multi_result = lm_hook_deny_result(e);
    return CURLM_OK;
  }
  if (s == LM_VERDICT_METER)
    lm_hook_install(vt, e);
  lm_hook_depth++;
  CURLMcode r = vt->multi_add_handle(m, h);
  lm_hook_depth--;
  if (r != CURLM_OK && s == LM_VERDICT_METER) {
    lm_hook_uninstall(vt, e);
    lm_hook_finish_call(e, CURLE_FAILED_INIT);
  }
  return r;
}

CURLMcode lm_hook_multi_remove_handle(int k, CURLM *m, CURL *h,
                                      const void *ret) {
  lm_hook_ensure_init();
  k = multi_inst(m, k, ret, "curl_multi_remove_handle");
  const struct lm_curl_vt *vt = lm_hook_real(k);
  struct lm_handle *e = lm_hook_depth == 0 && h ? lm_hook_find_handle(h) : NULL;
  if (e && e->multi == m && e->multi_denied) {
    e->multi = NULL;
    e->multi_denied = false;
    return CURLM_OK; /* we never added it */
  }
  if (!vt || !vt->multi_remove_handle)
    return CURLM_INTERNAL_ERROR;
  lm_hook_depth++;
  CURLMcode r = vt->multi_remove_handle(m, h);
  lm_hook_depth--;
  if (e && e->multi == m) {
    /* Without info_read (PHP's curl_multi_exec never calls it) we cannot
     * know the result: a 2xx response that started is taken as complete
     * (charged, at its estimate if unreadable), anything else as failed. */
    CURLcode res = e->multi_done ? e->multi_result
                   : (lm_meter_status(e->call) >= 200 &&
                      lm_meter_status(e->call) < 300)
                       ? CURLE_OK
                       : CURLE_ABORTED_BY_CALLBACK;
    lm_hook_finish_call(e, res);
    lm_hook_depth++;
    lm_hook_uninstall(vt, e);
    lm_hook_depth--;
    e->multi = NULL;
  }
  return r;
}

CURLMcode lm_hook_multi_perform(int k, CURLM *m, int *running,
                                const void *ret) {
  lm_hook_ensure_init();
  k = multi_inst(m, k, ret, "curl_multi_perform");
  const struct lm_curl_vt *vt = lm_hook_real(k);
  if (!vt || !vt->multi_perform)
    return CURLM_INTERNAL_ERROR;
  lm_hook_depth++;
  CURLMcode r = vt->multi_perform(m, running);
  lm_hook_depth--;
  return r;
}

CURLMcode lm_hook_multi_socket_action(int k, CURLM *m, curl_socket_t s, int ev,
                                      int *running, const void *ret) {
  lm_hook_ensure_init();
  k = multi_inst(m, k, ret, "curl_multi_socket_action");
  const struct lm_curl_vt *vt = lm_hook_real(k);
  if (!vt || !vt->multi_socket_action)
    return CURLM_INTERNAL_ERROR;
  lm_hook_depth++;
  CURLMcode r = vt->multi_socket_action(m, s, ev, running);
  lm_hook_depth--;
  return r;
}

/* A refused handle of this multi whose DONE message is still due. */
static struct lm_handle *next_denied(CURLM *m) {
  return lm_hook_first_in_multi(m, true);
}

CURLMsg *lm_hook_multi_info_read(int k, CURLM *m, int *queue, const void *ret) {
  lm_hook_ensure_init();
  k = multi_inst(m, k, ret, "curl_multi_info_read");
  const struct lm_curl_vt *vt = lm_hook_real(k);
  if (!vt || !vt->multi_info_read)
    return NULL;
  lm_hook_depth++;
  CURLMsg *msg = vt->multi_info_read(m, queue);
  lm_hook_depth--;
  if (lm_hook_depth > 0)
    return msg;
  if (msg) {
    if (msg->msg == CURLMSG_DONE) {
      struct lm_handle *e = lm_hook_find_handle(msg->easy_handle);
      if (e && e->multi == m && !e->multi_done) {
        e->multi_done = true;
        e->multi_result = msg->data.result;
        lm_hook_finish_call(e, msg->data.result);
      }
    }
    return msg;
  }
  struct lm_handle *d = next_denied(m);
  struct lm_multi *mm = find_multi(m, -1);
  if (!d || !mm)
    return NULL;
  d->multi_done = true;
  memset(&mm->msg, 0, sizeof(mm->msg));
  mm->msg.msg = CURLMSG_DONE;
  mm->msg.easy_handle = d->h;
  mm->msg.data.result = d->multi_result;
  if (queue)
    *queue = next_denied(m) ? 1 : 0;
  return &mm->msg;
}

CURLMcode lm_hook_multi_cleanup(int k, CURLM *m, const void *ret) {
  lm_hook_ensure_init();
  k = multi_inst(m, k, ret, "curl_multi_cleanup");
  const struct lm_curl_vt *vt = lm_hook_real(k);
  if (lm_hook_depth == 0) {
    /* Transfers still attached end here: settle what they carried. */
    for (;;) {
      struct lm_handle *found = lm_hook_first_in_multi(m, false);
      if (!found)
        break;
      lm_hook_finish_call(found, found->multi_done ? found->multi_result
                                                   : CURLE_ABORTED_BY_CALLBACK);
      if (vt) { /* the handle outlives the multi: give it back as it was */
        lm_hook_depth++;
        lm_hook_uninstall(vt, found);
        lm_hook_depth--;
      }
      found->multi = NULL;
      found->multi_denied = false;
    }
    drop_multi(m);
  }
  if (!vt || !vt->multi_cleanup)
    return CURLM_INTERNAL_ERROR;
  lm_hook_depth++;
  CURLMcode r = vt->multi_cleanup(m);
  lm_hook_depth--;
  return r;
}
