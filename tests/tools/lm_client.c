/* lm_client.c — a libcurl test program covering every way a program can
 * wire its callbacks, so the tests can prove the library passes the bytes
 * through untouched in each.
 *
 * usage: lm_client MODE URL [BODY-FILE] [HEADER...]
 * Writes what the program receives as the body to stdout (headers, where
 * the mode delivers them, to the file named by $LM_CLIENT_HEADERS) and one
 * line "curle=N http=N err=TEXT" to stderr. Exit code: the CURLcode.
 *
 * MODES
 *   default   no callbacks: libcurl's own fwrite to stdout
 *   wf        WRITEFUNCTION + WRITEDATA set before URL
 *   wf-late   callbacks set after everything else
 *   hd-only   HEADERDATA without HEADERFUNCTION (headers via write cb)
 *   hf        HEADERFUNCTION + HEADERDATA
 *   header    CURLOPT_HEADER=1 (headers inside the body stream)
 *   pause     write callback pauses every chunk once; unpaused from the
 *             progress callback (libcurl delivers the same bytes again)
 *   short     write callback accepts 10 bytes then returns a short count
 *   dup       perform a curl_easy_duphandle copy
 *   reset     curl_easy_reset, set everything again, perform
 *   copy      COPYPOSTFIELDS (the body buffer is freed before perform)
 *   read      body sent by a READFUNCTION
 *   multi     drive the transfer through the multi interface
 *   multi-noinfo   the same, never calling curl_multi_info_read (as PHP)
 *   multi-noremove the same, cleaning the multi up without removing the
 *             handle first (libcurl allows it)
 *   twice     perform the same handle twice (callbacks after the first)
 *   curlu     the URL given as a CURLU handle (CURLOPT_CURLU), no CURLOPT_URL
 *
 * With LM_CLIENT_SECOND_URL set, the same handle then GETs that URL (its
 * body appended to stdout); stderr gets "second=CODE". LM_CLIENT_RESOLVE
 * ("HOST:PORT:ADDR", as curl --resolve) sends a named host's requests to
 * ADDR: a provider's host name against the mock.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lm_slurp.h"

static FILE *hdr_out;
static struct curl_slist *resolve; /* LM_CLIENT_RESOLVE */
static int paused_once;

static size_t wf(char *p, size_t s, size_t n, void *ud) {
  return fwrite(p, s, n, (FILE *)ud);
}
static size_t hf(char *p, size_t s, size_t n, void *ud) {
  return fwrite(p, s, n, (FILE *)ud);
}
static size_t short_total;
static size_t wf_short(char *p, size_t s, size_t n, void *ud) {
  size_t len = s * n, room = 10 - short_total;
  if (len <= room) {
    short_total += len;
    return fwrite(p, 1, len, (FILE *)ud);
  }
  fwrite(p, 1, room, (FILE *)ud);
  short_total = 10;
  return room; /* short count: the program aborts the transfer */
}
static size_t wf_pause(char *p, size_t s, size_t n, void *ud) {
  if (!paused_once) {
    paused_once = 1;
    return CURL_WRITEFUNC_PAUSE;
  }
  paused_once = 0;
  return fwrite(p, s, n, (FILE *)ud);
}
static int xfer_unpause(void *ud, curl_off_t a, curl_off_t b, curl_off_t c,
                        curl_off_t d) {
  (void)a, (void)b, (void)c, (void)d;
  curl_easy_pause((CURL *)ud, CURLPAUSE_CONT);
  return 0;
}

struct rd {
  const char *p;
  size_t left;
};
static size_t rf(char *buf, size_t s, size_t n, void *ud) {
  struct rd *r = ud;
  size_t k = s * n < r->left ? s * n : r->left;
  if (k > 7)
    k = 7; /* small pieces, as a streaming uploader would send */
  memcpy(buf, r->p, k);
  r->p += k;
  r->left -= k;
  return k;
}

static char *body;
static size_t body_len;
static struct curl_slist *headers;
static struct rd reader;
static char errbuf[CURL_ERROR_SIZE];

static void common(CURL *h, const char *mode, const char *url) {
  int late = strcmp(mode, "wf-late") == 0;
  if (!late && strcmp(mode, "wf") == 0) {
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, wf);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, stdout);
  }
  if (strcmp(mode, "curlu") == 0) {
    static CURLU *u;
    if (!u)
      u = curl_url();
    curl_url_set(u, CURLUPART_URL, url, 0);
    curl_easy_setopt(h, CURLOPT_CURLU, u);
  } else {
    curl_easy_setopt(h, CURLOPT_URL, url);
  }
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  if (resolve)
    curl_easy_setopt(h, CURLOPT_RESOLVE, resolve);
  if (body) {
    if (strcmp(mode, "copy") == 0) {
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)body_len);
      curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, body);
    } else if (strcmp(mode, "read") == 0) {
      reader.p = body;
      reader.left = body_len;
      curl_easy_setopt(h, CURLOPT_POST, 1L);
      curl_easy_setopt(h, CURLOPT_READFUNCTION, rf);
      curl_easy_setopt(h, CURLOPT_READDATA, &reader);
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)body_len);
    } else {
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
  }
  if (late) {
    curl_easy_setopt(h, CURLOPT_WRITEDATA, stdout);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, wf);
  }
  if (strcmp(mode, "hd-only") == 0)
    curl_easy_setopt(h, CURLOPT_HEADERDATA, hdr_out);
  if (strcmp(mode, "hf") == 0) {
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, hf);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, hdr_out);
  }
  if (strcmp(mode, "header") == 0)
    curl_easy_setopt(h, CURLOPT_HEADER, 1L);
  if (strcmp(mode, "short") == 0) {
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, wf_short);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, stdout);
  }
  if (strcmp(mode, "pause") == 0) {
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, wf_pause);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, stdout);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xfer_unpause);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, h);
  }
}

static CURLcode run_multi(CURL *h, int info, int remove) {
  CURLM *m = curl_multi_init();
  curl_multi_add_handle(m, h);
  int running = 1;
  CURLcode result = CURLE_OK;
  int got_done = 0;
  while (running) {
    curl_multi_perform(m, &running);
    if (running)
      curl_multi_poll(m, NULL, 0, 100, NULL);
  }
  CURLMsg *msg;
  int q;
  while (info && (msg = curl_multi_info_read(m, &q)) != NULL)
    if (msg->msg == CURLMSG_DONE && msg->easy_handle == h) {
      result = msg->data.result;
      got_done = 1;
    }
  if (remove)
    curl_multi_remove_handle(m, h);
  curl_multi_cleanup(m);
  return got_done || !info ? result : CURLE_RECV_ERROR;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: lm_client MODE URL [BODY-FILE] [HEADER...]\n");
    return 2;
  }
  const char *mode = argv[1], *url = argv[2];
  if (argc > 3 && argv[3][0] && !(body = lm_slurp(argv[3], &body_len))) {
    fprintf(stderr, "lm_client: cannot read %s\n", argv[3]);
    return 2;
  }
  for (int i = 4; i < argc; i++)
    headers = curl_slist_append(headers, argv[i]);
  const char *rv = getenv("LM_CLIENT_RESOLVE");
  if (rv && *rv)
    resolve = curl_slist_append(NULL, rv);
  const char *hp = getenv("LM_CLIENT_HEADERS");
  hdr_out = fopen(hp ? hp : "/dev/null", "wb");
  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURL *h = curl_easy_init();
  common(h, mode, url);
  CURLcode rc;
  CURL *run = h;
  if (strcmp(mode, "copy") == 0) {
    memset(body, 'x', body_len); /* libcurl copied it: so must a meter */
    free(body);
    body = NULL;
  }
  if (strcmp(mode, "dup") == 0) {
    run = curl_easy_duphandle(h);
    curl_easy_cleanup(h);
  } else if (strcmp(mode, "reset") == 0) {
    curl_easy_reset(h);
    common(h, "wf", url);
  }
  if (strcmp(mode, "multi") == 0)
    rc = run_multi(run, 1, 1);
  else if (strcmp(mode, "multi-noinfo") == 0)
    rc = run_multi(run, 0, 1);
  else if (strcmp(mode, "multi-noremove") == 0)
    rc = run_multi(run, 1, 0);
  else
    rc = curl_easy_perform(run);
  if (strcmp(mode, "twice") == 0 && rc == CURLE_OK) {
    curl_easy_setopt(run, CURLOPT_WRITEFUNCTION, wf);
    curl_easy_setopt(run, CURLOPT_WRITEDATA, stdout);
    rc = curl_easy_perform(run);
  }
  long code = 0;
  curl_easy_getinfo(run, CURLINFO_RESPONSE_CODE, &code);
  fflush(stdout);
  fprintf(stderr, "curle=%d http=%ld err=%s\n", (int)rc, code, errbuf);
  const char *second = getenv("LM_CLIENT_SECOND_URL");
  if (second) {
    curl_easy_setopt(run, CURLOPT_URL, second);
    curl_easy_setopt(run, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(run, CURLOPT_WRITEFUNCTION, wf);
    curl_easy_setopt(run, CURLOPT_WRITEDATA, stdout);
    CURLcode r2 = curl_easy_perform(run);
    long c2 = 0;
    curl_easy_getinfo(run, CURLINFO_RESPONSE_CODE, &c2);
    fflush(stdout);
    fprintf(stderr, "second=%ld curle=%d\n", c2, (int)r2);
  }
  curl_easy_cleanup(run);
  curl_slist_free_all(headers);
  curl_slist_free_all(resolve);
  free(body);
  if (hdr_out)
    fclose(hdr_out);
  curl_global_cleanup();
  return (int)rc;
}
