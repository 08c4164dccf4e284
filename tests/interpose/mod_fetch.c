/* mod_fetch.c — a module linked against libcurl, dlopen()ed by host_dlopen.
 *
 * Built in several flavours by tests/mk/interpose.mk (lazy binding; -z now
 * with full RELRO; -fno-plt, whose calls go through GLOB_DAT slots; linked
 * against libcurl-gnutls). mod_fetch() does one GET with the easy or the
 * multi interface and copies the body out, so the host can check that the
 * real transfer worked while the interposer was in the way.
 */
#include <curl/curl.h>
#include <string.h>

struct sink {
  char *p;
  size_t n, cap;
};

static size_t on_body(char *d, size_t sz, size_t nm, void *u) {
  struct sink *s = u;
  size_t len = sz * nm, room = s->cap - 1 - s->n;
  memcpy(s->p + s->n, d, len < room ? len : room);
  s->n += len < room ? len : room;
  s->p[s->n] = '\0';
  return len;
}

__attribute__((visibility("default"))) int
mod_fetch(const char *url, int use_multi, char *out, size_t cap);

int mod_fetch(const char *url, int use_multi, char *out, size_t cap) {
  struct sink s = {out, 0, cap};
  long code = 0;
  int rc;
  out[0] = '\0';
  CURL *h = curl_easy_init();
  if (!h)
    return -1;
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_PROXY, "");
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
  if (!use_multi) {
    rc = (int)curl_easy_perform(h);
  } else {
    CURLM *m = curl_multi_init();
    int running = 1, q;
    curl_multi_add_handle(m, h);
    while (running) {
      if (curl_multi_perform(m, &running) != CURLM_OK)
        break;
      if (running)
        curl_multi_poll(m, NULL, 0, 200, NULL);
    }
    CURLMsg *msg = curl_multi_info_read(m, &q);
    rc = msg && msg->msg == CURLMSG_DONE ? (int)msg->data.result : -2;
    curl_multi_remove_handle(m, h);
    curl_multi_cleanup(m);
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(h);
  return rc == 0 && code == 200 ? 0 : (rc ? rc : (int)code);
}
