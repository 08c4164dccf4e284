/* lm_stress.c — a libcurl load and crash client for the stress and chaos
 * tests: many requests down one handle, or one request whose every byte is
 * on disk the moment the program accepts it.
 *
 * usage:
 *   lm_stress plan PLAN-FILE RESULTS-FILE CUT-DIR
 *       Performs every request of PLAN-FILE, one per line:
 *         ID <TAB> URL <TAB> BODY-FILE [<TAB> HEADER]...
 *       down one reused easy handle (keep-alive, as an agent loop does).
 *       Appends "ID CURLE HTTP" per request to RESULTS-FILE. A response
 *       that ended in an error after a 2xx status (a stream cut by the
 *       budget) is kept in CUT-DIR/ID, exactly as the program received it.
 *   lm_stress once URL BODY-FILE OUT-FILE [HEADER]...
 *       One request. Every chunk the write callback accepts is written to
 *       OUT-FILE with write(2) before the callback returns, so a SIGKILL at
 *       any moment leaves on disk everything the program had received.
 *       Prints "curle=N http=N" to stderr; exit code: the CURLcode.
 */
#include <curl/curl.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "lm_slurp.h"

struct body_buf {
  char *p;
  size_t len, cap;
};

static size_t keep_cb(char *p, size_t s, size_t n, void *ud) {
  struct body_buf *b = ud;
  size_t len = s * n;
  if (b->len + len > b->cap) {
    size_t cap = (b->len + len) * 2;
    char *q = realloc(b->p, cap);
    if (!q)
      return 0;
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->len, p, len);
  b->len += len;
  return len;
}

static size_t disk_cb(char *p, size_t s, size_t n, void *ud) {
  int fd = *(int *)ud;
  size_t len = s * n, off = 0;
  while (off < len) {
    ssize_t w = write(fd, p + off, len - off);
    if (w <= 0)
      return 0;
    off += (size_t)w;
  }
  return len;
}

/* Body files are few and reused by many requests: cache them. */
struct body_cache {
  char path[512];
  char *data;
  size_t len;
};
static struct body_cache bodies[64];

static const char *body_for(const char *path, size_t *len) {
  for (int i = 0; i < 64; i++) {
    if (!bodies[i].data) {
      snprintf(bodies[i].path, sizeof(bodies[i].path), "%s", path);
      if (!(bodies[i].data = lm_slurp(path, &bodies[i].len)))
        return NULL;
    }
    if (strcmp(bodies[i].path, path) == 0) {
      *len = bodies[i].len;
      return bodies[i].data;
    }
  }
  return NULL;
}

static int run_plan(const char *plan, const char *results, const char *cutdir) {
  FILE *in = fopen(plan, "r");
  FILE *out = fopen(results, "w");
  if (!in || !out) {
    fprintf(stderr, "lm_stress: cannot open %s or %s\n", plan, results);
    return 2;
  }
  setvbuf(out, NULL, _IOLBF, 0);
  CURL *h = curl_easy_init();
  struct body_buf b = {0};
  char line[8192];
  int failures = 0;
  while (fgets(line, sizeof(line), in)) {
    line[strcspn(line, "\n")] = 0;
    char *save = NULL;
    char *id = strtok_r(line, "\t", &save);
    char *url = strtok_r(NULL, "\t", &save);
    char *bodyfile = strtok_r(NULL, "\t", &save);
    if (!id || !url || !bodyfile)
      continue;
    size_t body_len = 0;
    const char *body = body_for(bodyfile, &body_len);
    if (!body) {
      fprintf(stderr, "lm_stress: cannot read %s\n", bodyfile);
      return 2;
    }
    struct curl_slist *hdrs = NULL;
    for (char *hd; (hd = strtok_r(NULL, "\t", &save)) != NULL;)
      hdrs = curl_slist_append(hdrs, hd);
    b.len = 0;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, keep_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    fprintf(out, "%s %d %ld\n", id, (int)rc, code);
    if (rc != CURLE_OK && code >= 200 && code < 300) {
      char path[1024];
      snprintf(path, sizeof(path), "%s/%s", cutdir, id);
      FILE *f = fopen(path, "wb");
      if (f) {
        fwrite(b.p, 1, b.len, f);
        fclose(f);
      }
    }
    if (rc != CURLE_OK)
      failures++;
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
  }
  curl_easy_cleanup(h);
  free(b.p);
  for (int i = 0; i < 64 && bodies[i].data; i++)
    free(bodies[i].data);
  fclose(in);
  fclose(out);
  return 0;
}

static int run_once(int argc, char **argv) {
  const char *url = argv[2], *bodyfile = argv[3], *outfile = argv[4];
  size_t body_len = 0;
  char *body = lm_slurp(bodyfile, &body_len);
  int fd = open(outfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (!body || fd < 0) {
    fprintf(stderr, "lm_stress: cannot read %s or write %s\n", bodyfile,
            outfile);
    return 2;
  }
  struct curl_slist *hdrs = NULL;
  for (int i = 5; i < argc; i++)
    hdrs = curl_slist_append(hdrs, argv[i]);
  CURL *h = curl_easy_init();
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, disk_cb);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &fd);
  CURLcode rc = curl_easy_perform(h);
  long code = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  fprintf(stderr, "curle=%d http=%ld\n", (int)rc, code);
  curl_easy_cleanup(h);
  curl_slist_free_all(hdrs);
  close(fd);
  free(body);
  return (int)rc;
}

int main(int argc, char **argv) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int rc = 2;
  if (argc == 5 && strcmp(argv[1], "plan") == 0)
    rc = run_plan(argv[2], argv[3], argv[4]);
  else if (argc >= 5 && strcmp(argv[1], "once") == 0)
    rc = run_once(argc, argv);
  else
    fprintf(stderr, "usage: lm_stress plan PLAN RESULTS CUT-DIR | "
                    "lm_stress once URL BODY-FILE OUT-FILE [HEADER]...\n");
  curl_global_cleanup();
  return rc;
}
