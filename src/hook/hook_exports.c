/* hook_exports.c — the libcurl transport's entry points: the exported
 * curl_* hooks and the per-instance hook sets.
 *
 * Two ways lead into the hook bodies (hook.c, hook_multi.c), which take
 * the libcurl instance k first. The exported symbols, which the dynamic
 * linker binds programs to, pass -1 and their return address: the body
 * finds the instance from the handle or from the calling module. The hook
 * sets, one table of functions per instance slot, pass their own k: they
 * are what the interposer writes into the GOT slots of modules that bypass
 * the exports (RTLD_DEEPBIND), so they need no lookup.
 *
 * The curl_* definitions here are the only symbols of the transport marked
 * for export (with interpose.c's dlopen); everything else is hidden, and
 * tests/integration/test_capi.sh checks the library's dynamic symbol
 * table against a fixed list. One short file, so that what the library
 * exports, and with which signatures, can be read in one place.
 */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>

#include <stdarg.h>
#include <stddef.h>

#include "curl_vt.h"
#include "hook_internal.h"

#define EXPORT __attribute__((visibility("default")))

/* ---- the exported hooks (global scope) ------------------------------- */

#define RET __builtin_return_address(0)

EXPORT CURL *curl_easy_init(void) { return lm_hook_easy_init(-1, RET); }
EXPORT CURLcode curl_easy_setopt(CURL *h, CURLoption o, ...) {
  va_list ap;
  va_start(ap, o);
  CURLcode r = lm_hook_easy_setopt(-1, h, o, ap, RET);
  va_end(ap);
  return r;
}
EXPORT CURLcode curl_easy_perform(CURL *h) {
  return lm_hook_easy_perform(-1, h, RET);
}
EXPORT CURL *curl_easy_duphandle(CURL *h) {
  return lm_hook_easy_duphandle(-1, h, RET);
}
EXPORT void curl_easy_reset(CURL *h) { lm_hook_easy_reset(-1, h, RET); }
EXPORT void curl_easy_cleanup(CURL *h) { lm_hook_easy_cleanup(-1, h, RET); }
EXPORT CURLcode curl_easy_getinfo(CURL *h, CURLINFO info, ...) {
  va_list ap;
  va_start(ap, info);
  CURLcode r = lm_hook_easy_getinfo(-1, h, info, ap, RET);
  va_end(ap);
  return r;
}
EXPORT CURLM *curl_multi_init(void) { return lm_hook_multi_init(-1, RET); }
EXPORT CURLMcode curl_multi_add_handle(CURLM *m, CURL *h) {
  return lm_hook_multi_add_handle(-1, m, h, RET);
}
EXPORT CURLMcode curl_multi_remove_handle(CURLM *m, CURL *h) {
  return lm_hook_multi_remove_handle(-1, m, h, RET);
}
EXPORT CURLMcode curl_multi_perform(CURLM *m, int *running) {
  return lm_hook_multi_perform(-1, m, running, RET);
}
EXPORT CURLMcode curl_multi_socket_action(CURLM *m, curl_socket_t s, int ev,
                                          int *running) {
  return lm_hook_multi_socket_action(-1, m, s, ev, running, RET);
}
EXPORT CURLMsg *curl_multi_info_read(CURLM *m, int *queue) {
  return lm_hook_multi_info_read(-1, m, queue, RET);
}
EXPORT CURLMcode curl_multi_cleanup(CURLM *m) {
  return lm_hook_multi_cleanup(-1, m, RET);
}

/* ---- per-instance hook sets (written into patched GOT slots) ---------- */

#define HOOKSET(K)                                                            \
  static CURL *hk##K##_easy_init(void) { return lm_hook_easy_init(K, NULL); } \
  static CURLcode hk##K##_easy_setopt(CURL *h, CURLoption o, ...) {           \
    va_list ap;                                                               \
    va_start(ap, o);                                                          \
    CURLcode r = lm_hook_easy_setopt(K, h, o, ap, NULL);                      \
    va_end(ap);                                                               \
    return r;                                                                 \
  }                                                                           \
  static CURLcode hk##K##_easy_perform(CURL *h) {                             \
    return lm_hook_easy_perform(K, h, NULL);                                  \
  }                                                                           \
  static CURL *hk##K##_easy_duphandle(CURL *h) {                              \
    return lm_hook_easy_duphandle(K, h, NULL);                                \
  }                                                                           \
  static void hk##K##_easy_reset(CURL *h) { lm_hook_easy_reset(K, h, NULL); } \
  static void hk##K##_easy_cleanup(CURL *h) {                                 \
    lm_hook_easy_cleanup(K, h, NULL);                                         \
  }                                                                           \
  static CURLcode hk##K##_easy_getinfo(CURL *h, CURLINFO i, ...) {            \
    va_list ap;                                                               \
    va_start(ap, i);                                                          \
    CURLcode r = lm_hook_easy_getinfo(K, h, i, ap, NULL);                     \
    va_end(ap);                                                               \
    return r;                                                                 \
  }                                                                           \
  static CURLM *hk##K##_multi_init(void) {                                    \
    return lm_hook_multi_init(K, NULL);                                       \
  }                                                                           \
  static CURLMcode hk##K##_multi_add_handle(CURLM *m, CURL *h) {              \
    return lm_hook_multi_add_handle(K, m, h, NULL);                           \
  }                                                                           \
  static CURLMcode hk##K##_multi_remove_handle(CURLM *m, CURL *h) {           \
    return lm_hook_multi_remove_handle(K, m, h, NULL);                        \
  }                                                                           \
  static CURLMcode hk##K##_multi_perform(CURLM *m, int *r) {                  \
    return lm_hook_multi_perform(K, m, r, NULL);                              \
  }                                                                           \
  static CURLMcode hk##K##_multi_socket_action(CURLM *m, curl_socket_t s,     \
                                               int e, int *r) {               \
    return lm_hook_multi_socket_action(K, m, s, e, r, NULL);                  \
  }                                                                           \
  static CURLMsg *hk##K##_multi_info_read(CURLM *m, int *q) {                 \
    return lm_hook_multi_info_read(K, m, q, NULL);                            \
  }                                                                           \
  static CURLMcode hk##K##_multi_cleanup(CURLM *m) {                          \
    return lm_hook_multi_cleanup(K, m, NULL);                                 \
  }

HOOKSET(0)
HOOKSET(1)
HOOKSET(2)
HOOKSET(3)

#define HOOKSET_VT(K)                                                     \
  (struct lm_curl_vt) {                                                   \
    hk##K##_easy_init, hk##K##_easy_setopt, hk##K##_easy_perform,         \
        hk##K##_easy_duphandle, hk##K##_easy_reset, hk##K##_easy_cleanup, \
        hk##K##_easy_getinfo, NULL, hk##K##_multi_init,                   \
        hk##K##_multi_add_handle, hk##K##_multi_remove_handle,            \
        hk##K##_multi_perform, hk##K##_multi_socket_action,               \
        hk##K##_multi_info_read, hk##K##_multi_cleanup                    \
  }

_Static_assert(LM_MAX_CURL_INSTANCES == 4, "one HOOKSET per instance");

void lm_hook_fill_tables(struct lm_curl_vt hooks[LM_MAX_CURL_INSTANCES],
                         struct lm_curl_vt *exports) {
  hooks[0] = HOOKSET_VT(0);
  hooks[1] = HOOKSET_VT(1);
  hooks[2] = HOOKSET_VT(2);
  hooks[3] = HOOKSET_VT(3);
  *exports = (struct lm_curl_vt){
      curl_easy_init,           curl_easy_setopt,
      curl_easy_perform,        curl_easy_duphandle,
      curl_easy_reset,          curl_easy_cleanup,
      curl_easy_getinfo,        NULL,
      curl_multi_init,          curl_multi_add_handle,
      curl_multi_remove_handle, curl_multi_perform,
      curl_multi_socket_action, curl_multi_info_read,
      curl_multi_cleanup};
}
