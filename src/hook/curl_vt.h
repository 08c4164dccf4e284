/* curl_vt.h — one table of libcurl entry points.
 *
 * A process may hold several libcurls at once (Debian: libcurl.so.4 with
 * OpenSSL, libcurl-gnutls.so.4 pulled in privately by pycurl or Perl). Each
 * loaded libcurl gets one lm_curl_vt of its real functions; the hook layer
 * also builds one table of hook functions per instance slot, which the
 * interposer writes into modules that bypass the exported hooks.
 */
#ifndef LM_CURL_VT_H
#define LM_CURL_VT_H

#include <curl/curl.h>

#define LM_MAX_CURL_INSTANCES 4

struct lm_curl_vt {
  CURL *(*easy_init)(void);
  CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
  CURLcode (*easy_perform)(CURL *);
  CURL *(*easy_duphandle)(CURL *);
  void (*easy_reset)(CURL *);
  void (*easy_cleanup)(CURL *);
  CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
  CURLcode (*easy_pause)(CURL *, int);
  CURLM *(*multi_init)(void);
  CURLMcode (*multi_add_handle)(CURLM *, CURL *);
  CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
  CURLMcode (*multi_perform)(CURLM *, int *);
  CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
  CURLMsg *(*multi_info_read)(CURLM *, int *);
  CURLMcode (*multi_cleanup)(CURLM *);
};

/* Names of the members above, in order, as exported by libcurl. Keep the
 * two lists in step: the interposer resolves and patches by these names. */
#define LM_CURL_VT_NAMES                                             \
  "curl_easy_init", "curl_easy_setopt", "curl_easy_perform",         \
      "curl_easy_duphandle", "curl_easy_reset", "curl_easy_cleanup", \
      "curl_easy_getinfo", "curl_easy_pause", "curl_multi_init",     \
      "curl_multi_add_handle", "curl_multi_remove_handle",           \
      "curl_multi_perform", "curl_multi_socket_action",              \
      "curl_multi_info_read", "curl_multi_cleanup"

#define LM_CURL_VT_COUNT 15

#endif
