/* hook.c — libcurl's entry points, interposed: per-handle state, our
 * callbacks, the metered call's start and end, and the easy interface.
 *
 * The libcurl transport is a translator between libcurl and the call
 * lifecycle (lifecycle.h), and nothing more: which options to remember so
 * that a request can be described, when to put our write/header callbacks
 * in front of the program's (only for metered calls, only while they run),
 * how a verdict is carried out with libcurl's means (a failed perform, a
 * 402 through the program's callbacks, a write error for a cut), and the
 * multi interface's bookkeeping. Whether a transfer is an LLM call, what it
 * costs, whether it may leave and what the user is told are the meter's
 * decisions; the transport cannot see the meter's modules (its include
 * path has only the lifecycle header).
 *
 * It is three files (hook_internal.h holds what crosses them). This one
 * owns the per-handle state, initialisation, our callbacks, starting and
 * ending a metered call and the easy interface's hook bodies: everything a
 * transfer's bytes pass through, so that the write path stays within one
 * file and the compiler's reach. hook_multi.c is the multi interface;
 * hook_exports.c the exported curl_* symbols and the per-instance hook
 * sets, which call the bodies here and there.
 *
 * Rules every hook follows:
 *  - Do nothing at load. The first hooked call initialises (interposer,
 *    configuration); the budget is opened by the first LLM transfer.
 *  - Re-entrancy: libcurl calls its own exported functions through its PLT
 *    (curl_easy_perform drives curl_multi_*), which lands here again. A
 *    thread-local depth makes those inner calls plain pass-throughs.
 *  - Non-LLM transfers are never wrapped: their callbacks stay the
 *    program's own, so their bytes never pass through us.
 *  - The program's bytes are sacred: our callbacks forward exactly what
 *    libcurl gives and return exactly what the program returns (pause,
 *    short counts), feeding the meter only with bytes the program accepted,
 *    so a paused chunk delivered twice is counted once.
 *  - Never crash a host: a missing real function is reported once and the
 *    call fails cleanly (or passes, per LLMMETER_ON_ERROR).
 */
#define CURL_DISABLE_TYPECHECK 1
#define CURL_DISABLE_DEPRECATION 1 /* we answer CURLINFO_PROTOCOL too */
#include <curl/curl.h>

#include <dlfcn.h>
#include <pthread.h>
#include <strings.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "curl_vt.h"
#include "hook_internal.h"
#include "interpose.h"
#include "lifecycle.h"

/* ---- per-handle state ----------------------------------------------- */

#define NBUCKETS 1024
static struct lm_handle *buckets[NBUCKETS];
static pthread_mutex_t map_lock = PTHREAD_MUTEX_INITIALIZER;
/* >0 while inside real libcurl (see hook_internal.h) */
__thread int lm_hook_depth __attribute__((tls_model("local-dynamic")));

static size_t bucket_of(const void *h) {
  uintptr_t v = (uintptr_t)h;
  return (size_t)((v >> 4) ^ (v >> 14)) % NBUCKETS;
}

struct lm_handle *lm_hook_find_handle(CURL *h) {
  pthread_mutex_lock(&map_lock);
  struct lm_handle *e = buckets[bucket_of(h)];
  while (e && e->h != h)
    e = e->next;
  pthread_mutex_unlock(&map_lock);
  return e;
}

static struct lm_handle *add_handle(CURL *h, int inst) {
  struct lm_handle *e = calloc(1, sizeof(*e));
  if (!e)
    return NULL;
  e->h = h;
  e->inst = inst;
  e->post_size = -1;
  pthread_mutex_lock(&map_lock);
  size_t b = bucket_of(h);
  e->next = buckets[b];
  buckets[b] = e;
  pthread_mutex_unlock(&map_lock);
  return e;
}

static void clear_options(struct lm_handle *e) {
  e->synth_status = 0;
  free(e->url);
  free(e->target);
  free(e->post_copy);
  e->url = e->target = e->post_copy = NULL;
  e->curlu = NULL;
  e->follow = false;
  e->host_prereq = NULL;
  e->host_prereqd = NULL;
  e->post = NULL;
  e->post_size = -1;
  e->read_body = false;
  e->host_wf = e->host_hf = NULL;
  e->host_wd = e->host_hd = NULL;
  e->host_wd_set = false;
  e->header_in_body = false;
  e->errbuf = NULL;
}

static void drop_handle(CURL *h) {
  pthread_mutex_lock(&map_lock);
  struct lm_handle **pp = &buckets[bucket_of(h)];
  while (*pp && (*pp)->h != h)
    pp = &(*pp)->next;
  struct lm_handle *e = *pp;
  if (e)
    *pp = e->next;
  pthread_mutex_unlock(&map_lock);
  if (e) {
    clear_options(e);
    lm_meter_free(e->call);
    free(e);
  }
}

struct lm_handle *lm_hook_first_in_multi(CURLM *m, bool refused_undone) {
  struct lm_handle *found = NULL;
  pthread_mutex_lock(&map_lock);
  for (size_t b = 0; b < NBUCKETS && !found; b++)
    for (struct lm_handle *e = buckets[b]; e; e = e->next)
      if (e->multi == m &&
          (!refused_undone || (e->multi_denied && !e->multi_done))) {
        found = e;
        break;
      }
  pthread_mutex_unlock(&map_lock);
  return found;
}

/* ---- initialisation and the real functions -------------------------- */

static struct lm_curl_vt hooksets[LM_MAX_CURL_INSTANCES];
static struct lm_curl_vt exports;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static atomic_int init_done;
static atomic_int said_missing;

/* The meter's lines for the user: one write(2) each, so that lines from
 * many processes never interleave. */
static void print_line(const char *line, size_t len) {
  char buf[700];
  if (len > sizeof(buf) - 1)
    len = sizeof(buf) - 1;
  memcpy(buf, line, len);
  buf[len++] = '\n';
  (void)!write(STDERR_FILENO, buf, len);
}

static void do_init(void) {
  lm_hook_fill_tables(hooksets, &exports);
  lm_meter_set_printer(print_line);
  lm_interpose_init(hooksets, &exports);
  atomic_store(&init_done, 1);
}

void lm_hook_ensure_init(void) {
  if (!atomic_load_explicit(&init_done, memory_order_acquire))
    pthread_once(&init_once, do_init);
}

/* Concatenates pieces into dst, truncating (a reason is one short line). */
static void put_line(char *dst, size_t size, const char *a, const char *b,
                     const char *c) {
  size_t k = 0;
  const char *parts[3] = {a, b, c};
  for (int i = 0; i < 3; i++)
    for (const char *p = parts[i]; p && *p && k + 1 < size; p++)
      dst[k++] = *p;
  dst[k] = 0;
}

const struct lm_curl_vt *lm_hook_real(int k) {
  const struct lm_curl_vt *vt = k >= 0 ? lm_interpose_real(k) : NULL;
  if (!vt && lm_interpose_count() == 1)
    vt = lm_interpose_real(0);
  if (!vt && !atomic_exchange(&said_missing, 1)) {
    const char *why = lm_interpose_last_error();
    lm_meter_notice("llmmeter: cannot find the real libcurl function (",
                    why ? why : "no libcurl instance found",
                    "); failing the call");
  }
  return vt;
}

static int inst_of(CURL *h, const void *ret, const char *name) {
  struct lm_handle *e = h ? lm_hook_find_handle(h) : NULL;
  if (e)
    return e->inst;
  return lm_interpose_instance_for_caller(ret, name);
}

/* ---- our callbacks ---------------------------------------------------- */

static size_t host_write(struct lm_handle *e, char *p, size_t size, size_t n,
                         void *data) {
  int saved = lm_hook_depth;
  lm_hook_depth = 0; /* the program may call libcurl from its callback */
  size_t r;
  if (e->host_wf)
    r = e->host_wf(p, size, n, data);
  else
    r = fwrite(p, size, n, (FILE *)data); /* libcurl's default */
  lm_hook_depth = saved;
  return r;
}

static void *host_wdata(struct lm_handle *e) {
  return e->host_wd_set ? e->host_wd : stdout;
}

/* With CURLOPT_HEADER, libcurl writes every header line to the write
 * callback, one line per call, before it calls the header callback; a
 * block ends with a blank line, and another block (after a 1xx, or a
 * redirect) starts with a status line. */
static bool is_header_write(struct lm_handle *e, const char *p, size_t len) {
  bool status = len >= 5 && memcmp(p, "HTTP/", 5) == 0;
  if (!e->hdr_block && !(e->hdr_maybe_next && status)) {
    e->hdr_maybe_next = false;
    return false;
  }
  e->hdr_block = true;
  if ((len == 2 && p[0] == '\r' && p[1] == '\n') ||
      (len == 1 && p[0] == '\n')) {
    e->hdr_block = false;
    e->hdr_maybe_next = true;
  }
  return true;
}

static size_t emit_to_host(void *ctx, const char *p, size_t len) {
  struct lm_handle *e = ctx;
  return host_write(e, (char *)p, 1, len, host_wdata(e));
}

/* The write path of a filtered stream: the meter reads every byte, the
 * program gets the filtered events. When the program pauses, libcurl keeps
 * the chunk and hands it to us again later; we already hold it, so that
 * second delivery is skipped and what the program did not take goes first. */
static size_t filtered_write(struct lm_handle *e, char *p, size_t len) {
  /* After a pause libcurl hands the same bytes again (possibly in other
   * pieces, possibly with more after them): the meter already read
   * meter_skip of them and the filter holds filter_skip. */
  size_t mskip = e->meter_skip < len ? e->meter_skip : len;
  size_t fskip = e->filter_skip < len ? e->filter_skip : len;
  size_t mleft = e->meter_skip - mskip, fleft = e->filter_skip - fskip;
  e->meter_skip = mleft;
  e->filter_skip = fleft;
  if (!mskip && e->header_in_body && is_header_write(e, p, len))
    return emit_to_host(e, p, len);
  if (mskip < len && lm_meter_body(e->call, p + mskip, len - mskip))
    return 0; /* the limit was crossed: cut the stream */
  bool stopped = false;
  size_t r = lm_meter_filter_feed(e->call, p + fskip, len - fskip, emit_to_host,
                                  e, &stopped);
  if (!stopped)
    return len;
  if (r == CURL_WRITEFUNC_PAUSE) {
    /* All of this chunk comes back: skip what was read and held. */
    e->meter_skip = len + mleft;
    e->filter_skip = fskip + lm_meter_filter_taken(e->call) + fleft;
    return CURL_WRITEFUNC_PAUSE;
  }
  return 0; /* the program took less: it aborts */
}

static bool metering(const struct lm_handle *e) {
  return e->call && lm_meter_running(e->call);
}

static size_t lm_write_cb(char *p, size_t size, size_t n, void *ud) {
  struct lm_handle *e = ud;
  size_t len = size * n;
  if (e->filtering && metering(e))
    return filtered_write(e, p, len);
  size_t r = host_write(e, p, size, n, host_wdata(e));
  if (r != len || !metering(e))
    return r; /* paused, aborted or short: nothing accepted, nothing fed */
  if (e->header_in_body && is_header_write(e, p, len))
    return r; /* CURLOPT_HEADER: libcurl hands each header line here too */
  if (lm_meter_body(e->call, p, len))
    return 0; /* the limit was crossed: cut the stream */
  return r;
}

static size_t lm_header_cb(char *p, size_t size, size_t n, void *ud) {
  struct lm_handle *e = ud;
  size_t len = size * n;
  if (metering(e))
    lm_meter_header(e->call, p, len);
  if (e->host_hf) {
    int saved = lm_hook_depth;
    lm_hook_depth = 0;
    size_t r = e->host_hf(p, size, n, e->host_hd);
    lm_hook_depth = saved;
    return r;
  }
  if (e->host_hd) /* HEADERDATA without HEADERFUNCTION: the write callback */
    return host_write(e, p, size, n, e->host_hd);
  return len;
}

void lm_hook_install(const struct lm_curl_vt *vt, struct lm_handle *e) {
  vt->easy_setopt(e->h, CURLOPT_WRITEFUNCTION, lm_write_cb);
  vt->easy_setopt(e->h, CURLOPT_WRITEDATA, (void *)e);
  vt->easy_setopt(e->h, CURLOPT_HEADERFUNCTION, lm_header_cb);
  vt->easy_setopt(e->h, CURLOPT_HEADERDATA, (void *)e);
  e->sent_body = e->v.kind == LM_VERDICT_METER && e->v.body;
  if (e->sent_body) {
    vt->easy_setopt(e->h, CURLOPT_POSTFIELDSIZE_LARGE,
                    (curl_off_t)e->v.body_len);
    vt->easy_setopt(e->h, CURLOPT_POSTFIELDS, e->v.body);
  }
  e->filtering = e->v.kind == LM_VERDICT_METER && e->v.filter_response;
  e->meter_skip = e->filter_skip = 0;
  e->hdr_block = true; /* a response starts with its headers */
  e->hdr_maybe_next = false;
  e->installed = true;
}

void lm_hook_uninstall(const struct lm_curl_vt *vt, struct lm_handle *e) {
  if (!e->installed)
    return;
  vt->easy_setopt(e->h, CURLOPT_WRITEFUNCTION, e->host_wf);
  vt->easy_setopt(e->h, CURLOPT_WRITEDATA, host_wdata(e));
  vt->easy_setopt(e->h, CURLOPT_HEADERFUNCTION, e->host_hf);
  vt->easy_setopt(e->h, CURLOPT_HEADERDATA, e->host_hd);
  if (e->sent_body) { /* the program's own body again, as it set it */
    vt->easy_setopt(e->h, CURLOPT_POSTFIELDSIZE_LARGE,
                    (curl_off_t)e->post_size);
    if (e->post_copy)
      vt->easy_setopt(e->h, CURLOPT_COPYPOSTFIELDS, e->post_copy);
    else
      vt->easy_setopt(e->h, CURLOPT_POSTFIELDS, e->post);
    e->sent_body = false;
  }
  e->installed = false;
}

/* ---- starting and ending a metered call -------------------------------- */

static const char *request_body(struct lm_handle *e, size_t *len) {
  const char *b = e->post_copy ? e->post_copy : e->post;
  if (!b || e->read_body)
    return NULL;
  *len = e->post_size >= 0 ? (size_t)e->post_size : strlen(b);
  if (e->post_copy && *len > e->post_copy_len)
    return NULL; /* a size beyond our copy: libcurl sends no body then */
  return b;
}

/* The URL a CURLU handle holds, read by the handle's own libcurl (the
 * instance's curl_url_get, found from its real curl_easy_setopt): a copy
 * to free, or NULL. */
static char *curlu_url(int inst, void *u) {
  const struct lm_curl_vt *vt = lm_hook_real(inst);
  Dl_info di;
  if (!u || !vt || !vt->easy_setopt ||
      !dladdr(*(void **)(void *)&vt->easy_setopt, &di) || !di.dli_fname)
    return NULL;
  void *lib = dlopen(di.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
  if (!lib)
    return NULL;
  CURLUcode (*get)(const CURLU *, CURLUPart, char **, unsigned int);
  void (*cfree)(void *);
  *(void **)&get = dlsym(lib, "curl_url_get");
  *(void **)&cfree = dlsym(lib, "curl_free");
  char *s = NULL, *out = NULL;
  if (get && cfree && get(u, CURLUPART_URL, &s, 0) == CURLUE_OK && s)
    out = strdup(s);
  if (s && cfree)
    cfree(s);
  dlclose(lib);
  return out;
}

/* The URL the request goes to: CURLOPT_CURLU's, else CURLOPT_URL; with
 * CURLOPT_REQUEST_TARGET, what is sent instead of its path (an origin-form
 * target after the URL's scheme and authority; an absolute-form one
 * whole). NULL: none, or no memory. *owned: what to free after. */
static const char *request_url(const struct lm_handle *e, char **owned) {
  *owned = NULL;
  char *cu = e->curlu ? curlu_url(e->inst, e->curlu) : NULL;
  const char *url = e->curlu ? cu : e->url;
  const char *t = e->target;
  if (!url || !t || *t != '/') {
    /* no target, "*" (OPTIONS), or an absolute-form one: the whole URL */
    bool absolute = url && t && *t && *t != '*';
    *owned = cu;
    return absolute ? t : url;
  }
  const char *auth = strstr(url, "://");
  auth = auth ? auth + 3 : url;
  size_t n = strcspn(auth, "/?#");
  size_t head = (size_t)(auth - url) + n, tl = strlen(t);
  char *o = malloc(head + tl + 1);
  if (o) {
    memcpy(o, url, head);
    memcpy(o + head, t, tl + 1);
  }
  free(cu);
  *owned = o;
  return o;
}

/* Describes the transfer to the meter and keeps its verdict. */
enum lm_verdict_kind lm_hook_start_call(struct lm_handle *e, bool no_wait) {
  if (!metering(e))
    e->synth_status = 0; /* a new transfer: our last 402 is history */
  char *owned;
  const char *url = request_url(e, &owned);
  if (!url)
    return LM_VERDICT_PASS;
  struct lm_meter_request req = {
      .url = url,
      .has_body = e->post || e->post_copy || e->read_body,
      .no_wait = no_wait,
  };
  req.body = request_body(e, &req.body_len);
  struct lm_verdict v;
  enum lm_verdict_kind k = lm_meter_begin(&e->call, &req, &v);
  free(owned); /* the meter keeps no pointer into the request */
  if (k != LM_VERDICT_PASS)
    e->v = v;
  return k;
}

/* LLMMETER_DENY=http: the meter's response through the program's own
 * callbacks, so an agent that handles API errors handles this one. */
static void present_response(struct lm_handle *e) {
  const struct lm_verdict *v = &e->v;
  e->synth_status = v->status;
  const char *p = v->response, *end = v->response + v->head_len;
  while (p < end) { /* header lines, one a call, as libcurl delivers them */
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
    lm_header_cb((char *)p, 1, n, e);
    if (e->header_in_body)
      host_write(e, (char *)p, 1, n, host_wdata(e));
    p += n;
  }
  host_write(e, (char *)end, 1, v->response_len - v->head_len, host_wdata(e));
}

CURLcode lm_hook_deny_result(struct lm_handle *e) {
  if (e->v.present) {
    present_response(e);
    return CURLE_OK;
  }
  if (e->errbuf)
    put_line(e->errbuf, CURL_ERROR_SIZE, "llmmeter: ", e->v.reason, NULL);
  return (CURLcode)e->v.error_code;
}

void lm_hook_finish_call(struct lm_handle *e, CURLcode result) {
  if (e->filtering) {
    /* An unterminated last event is still the program's: hand it over. */
    bool stopped = false;
    if (result == CURLE_OK)
      lm_meter_filter_finish(e->call, emit_to_host, e, &stopped);
    e->filtering = false;
  }
  if (!metering(e))
    return;
  lm_meter_end(e->call, result == CURLE_OK);
  if (lm_meter_was_cut(e->call) && e->errbuf)
    put_line(e->errbuf, CURL_ERROR_SIZE, "llmmeter: ", lm_meter_reason(e->call),
             NULL);
}

/* ---- the hooks' bodies (k = libcurl instance; -1 = find it) ------------ */

CURL *lm_hook_easy_init(int k, const void *ret) {
  lm_hook_ensure_init();
  if (k < 0)
    k = lm_interpose_instance_for_caller(ret, "curl_easy_init");
  const struct lm_curl_vt *vt = lm_hook_real(k);
  if (!vt || !vt->easy_init)
    return NULL;
  lm_hook_depth++;
  CURL *h = vt->easy_init();
  lm_hook_depth--;
  if (h && lm_hook_depth == 0)
    add_handle(h, k >= 0 ? k : 0);
  return h;
}

static CURLcode forward_setopt(const struct lm_curl_vt *vt, CURL *h,
                               CURLoption o, va_list ap, void **ptr_out,
                               long *long_out, curl_off_t *off_out) {
  CURLcode r;
  lm_hook_depth++;
  if (o < CURLOPTTYPE_OBJECTPOINT) {
    long v = va_arg(ap, long);
    *long_out = v;
    r = vt->easy_setopt(h, o, v);
  } else if (o < CURLOPTTYPE_OFF_T) {
    /* object and function pointers travel the same way on this ABI */
    void *v = va_arg(ap, void *);
    *ptr_out = v;
    r = vt->easy_setopt(h, o, v);
  } else if (o < CURLOPTTYPE_BLOB) {
    curl_off_t v = va_arg(ap, curl_off_t);
    *off_out = v;
    r = vt->easy_setopt(h, o, v);
  } else {
    void *v = va_arg(ap, void *);
    *ptr_out = v;
    r = vt->easy_setopt(h, o, v);
  }
  lm_hook_depth--;
  return r;
}

/* Keeps what describing the request needs from an option libcurl took: p,
 * l or off is its value, as forward_setopt read it. */
static void remember_option(struct lm_handle *e, CURLoption o, void *p, long l,
                            curl_off_t off) {
  switch (o) {
  case CURLOPT_URL:
    if (p && e->url && strcmp(e->url, p) == 0)
      break; /* the same URL again, as a loop over one endpoint sets it */
    free(e->url);
    e->url = p ? strdup(p) : NULL;
    break;
  case CURLOPT_CURLU:
    e->curlu = p;
    break;
  case CURLOPT_FOLLOWLOCATION:
    e->follow = l != 0;
    break;
  case CURLOPT_PREREQFUNCTION:
    *(void **)&e->host_prereq = p;
    break;
  case CURLOPT_PREREQDATA:
    e->host_prereqd = p;
    break;
  case CURLOPT_REQUEST_TARGET:
    free(e->target);
    e->target = p ? strdup(p) : NULL;
    break;
  case CURLOPT_POSTFIELDS:
    free(e->post_copy);
    e->post_copy = NULL;
    e->post = p;
    e->read_body = false;
    break;
  case CURLOPT_COPYPOSTFIELDS: {
    free(e->post_copy);
    e->post_copy = NULL;
    e->post = NULL;
    e->read_body = false;
    if (p) {
      size_t n = e->post_size >= 0 ? (size_t)e->post_size : strlen(p);
      if ((e->post_copy = malloc(n + 1)) != NULL) {
        memcpy(e->post_copy, p, n);
        e->post_copy[n] = 0;
        e->post_copy_len = n;
        e->post_size = (long long)n;
      }
    }
    break;
  }
  case CURLOPT_POSTFIELDSIZE:
    e->post_size = l;
    break;
  case CURLOPT_POSTFIELDSIZE_LARGE:
    e->post_size = (long long)off;
    break;
  case CURLOPT_UPLOAD:
    e->read_body = l != 0;
    break;
  case CURLOPT_READFUNCTION:
    if (!e->post && !e->post_copy)
      e->read_body = p != NULL;
    break;
  case CURLOPT_HTTPGET:
    if (l) {
      e->post = NULL;
      free(e->post_copy);
      e->post_copy = NULL;
      e->read_body = false;
    }
    break;
  case CURLOPT_WRITEFUNCTION:
    e->host_wf = (curl_write_callback)p;
    break;
  case CURLOPT_WRITEDATA:
    e->host_wd = p;
    e->host_wd_set = true;
    break;
  case CURLOPT_HEADERFUNCTION:
    e->host_hf = (curl_write_callback)p;
    break;
  case CURLOPT_HEADERDATA:
    e->host_hd = p;
    break;
  case CURLOPT_HEADER:
    e->header_in_body = l != 0;
    break;
  case CURLOPT_ERRORBUFFER:
    e->errbuf = p;
    break;
  default:
    break;
  }
}

CURLcode lm_hook_easy_setopt(int k, CURL *h, CURLoption o, va_list ap,
                             const void *ret) {
  lm_hook_ensure_init();
  struct lm_handle *e = lm_hook_depth == 0 && h ? lm_hook_find_handle(h) : NULL;
  if (k < 0)
    k = e ? e->inst : inst_of(h, ret, "curl_easy_setopt");
  const struct lm_curl_vt *vt = lm_hook_real(k);
  if (!vt || !vt->easy_setopt)
    return CURLE_FAILED_INIT;
  if (!e && lm_hook_depth == 0 && h)
    e = add_handle(h, k); /* a handle we did not see created */
  void *p = NULL;
  long l = 0;
  curl_off_t off = 0;
  /* While our redirect watch is in place, keep it: record the program's. */
  if (e && e->watching &&
      (o == CURLOPT_PREREQFUNCTION || o == CURLOPT_PREREQDATA)) {
    p = va_arg(ap, void *);
    if (o == CURLOPT_PREREQFUNCTION)
      *(void **)&e->host_prereq = p;
    else
      e->host_prereqd = p;
    return CURLE_OK;
  }
  /* While our callbacks are installed, keep them: record the program's. */
  if (e && e->installed &&
      (o == CURLOPT_WRITEFUNCTION || o == CURLOPT_WRITEDATA ||
       o == CURLOPT_HEADERFUNCTION || o == CURLOPT_HEADERDATA)) {
    p = va_arg(ap, void *);
    if (o == CURLOPT_WRITEFUNCTION)
      e->host_wf = (curl_write_callback)p;
    else if (o == CURLOPT_WRITEDATA)
      e->host_wd = p, e->host_wd_set = true;
    else if (o == CURLOPT_HEADERFUNCTION)
      e->host_hf = (curl_write_callback)p;
    else
      e->host_hd = p;
    return CURLE_OK;
  }
  CURLcode r = forward_setopt(vt, h, o, ap, &p, &l, &off);
  if (e && r == CURLE_OK)
    remember_option(e, o, p, l, off);
  return r;
}

/* ---- a redirect into an LLM endpoint ------------------------------------ */

/* A transfer that is no LLM call as it starts but may follow a redirect
 * (CURLOPT_FOLLOWLOCATION, with a body): libcurl would send its body on
 * to wherever a 307 or 308 points, an LLM endpoint included, without a
 * call of ours in between. The prerequest callback runs before every
 * request libcurl sends, the redirected ones too: there the URL and the
 * method are libcurl's own, and the meter says whether such a request may
 * go unmetered (lm_meter_may_follow: the leak guard's policy). */
static int prereq_cb(void *clientp, char *ip, char *local_ip, int port,
                     int local_port) {
  struct lm_handle *e = clientp;
  const struct lm_curl_vt *vt = lm_hook_real(e->inst);
  char *url = NULL, *method = NULL;
  if (vt && vt->easy_getinfo &&
      vt->easy_getinfo(e->h, CURLINFO_EFFECTIVE_URL, &url) == CURLE_OK &&
      vt->easy_getinfo(e->h, CURLINFO_EFFECTIVE_METHOD, &method) == CURLE_OK &&
      url && method && !lm_meter_may_follow(method, url))
    return CURL_PREREQFUNC_ABORT;
  return e->host_prereq
             ? e->host_prereq(e->host_prereqd, ip, local_ip, port, local_port)
             : CURL_PREREQFUNC_OK;
}

static bool watch_redirects(const struct lm_curl_vt *vt, struct lm_handle *e) {
  if (!e->follow || !(e->post || e->post_copy || e->read_body) ||
      !vt->easy_setopt)
    return false;
  if (vt->easy_setopt(e->h, CURLOPT_PREREQDATA, (void *)e) != CURLE_OK ||
      vt->easy_setopt(e->h, CURLOPT_PREREQFUNCTION, prereq_cb) != CURLE_OK) {
    vt->easy_setopt(e->h, CURLOPT_PREREQDATA, e->host_prereqd);
    return false; /* a libcurl before 7.80: nothing to watch with */
  }
  e->watching = true;
  return true;
}

static void unwatch_redirects(const struct lm_curl_vt *vt,
                              struct lm_handle *e) {
  e->watching = false;
  vt->easy_setopt(e->h, CURLOPT_PREREQFUNCTION, e->host_prereq);
  vt->easy_setopt(e->h, CURLOPT_PREREQDATA, e->host_prereqd);
}

CURLcode lm_hook_easy_perform(int k, CURL *h, const void *ret) {
  lm_hook_ensure_init();
  struct lm_handle *e = lm_hook_depth == 0 && h ? lm_hook_find_handle(h) : NULL;
  if (k < 0)
    k = e ? e->inst : inst_of(h, ret, "curl_easy_perform");
  const struct lm_curl_vt *vt = lm_hook_real(k);
  if (!vt || !vt->easy_perform)
    return CURLE_FAILED_INIT;
  enum lm_verdict_kind s = e ? lm_hook_start_call(e, false) : LM_VERDICT_PASS;
  if (s == LM_VERDICT_DENY)
    return lm_hook_deny_result(e);
  if (s == LM_VERDICT_PASS) {
    bool watch = e && watch_redirects(vt, e);
    lm_hook_depth++;
    CURLcode r = vt->easy_perform(h);
    lm_hook_depth--;
    if (watch)
      unwatch_redirects(vt, e);
    return r;
  }
  lm_hook_install(vt, e);
  lm_hook_depth++;
  CURLcode r = vt->easy_perform(h);
  lm_hook_depth--;
  lm_hook_uninstall(vt, e);
  lm_hook_finish_call(e, r);
  return r;
}

CURL *lm_hook_easy_duphandle(int k, CURL *h, const void *ret) {
  lm_hook_ensure_init();
  struct lm_handle *e = lm_hook_depth == 0 && h ? lm_hook_find_handle(h) : NULL;
  if (k < 0)
    k = e ? e->inst : inst_of(h, ret, "curl_easy_duphandle");
  const struct lm_curl_vt *vt = lm_hook_real(k);
  if (!vt || !vt->easy_duphandle)
    return NULL;
  lm_hook_depth++;
  CURL *d = vt->easy_duphandle(h);
  lm_hook_depth--;
  if (!d || !e)
    return d;
  struct lm_handle *n = add_handle(d, e->inst);
  if (!n)
    return d;
  n->url = e->url ? strdup(e->url) : NULL;
  n->target = e->target ? strdup(e->target) : NULL;
  n->curlu = e->curlu;
  n->follow = e->follow;
  n->host_prereq = e->host_prereq;
  n->host_prereqd = e->host_prereqd;
  n->post = e->post;
  n->post_size = e->post_size;
  if (e->post_copy && (n->post_copy = malloc(e->post_copy_len + 1))) {
    memcpy(n->post_copy, e->post_copy, e->post_copy_len + 1);
    n->post_copy_len = e->post_copy_len;
  }
  n->read_body = e->read_body;
  n->host_wf = e->host_wf;
  n->host_wd = e->host_wd;
  n->host_wd_set = e->host_wd_set;
  n->host_hf = e->host_hf;
  n->host_hd = e->host_hd;
  n->header_in_body = e->header_in_body;
  n->errbuf = e->errbuf;
  if (e->installed) { /* duplicated mid-transfer: give it the program's */
    lm_hook_depth++;
    n->installed = true;
    lm_hook_uninstall(vt, n);
    lm_hook_depth--;
  }
  return d;
}

void lm_hook_easy_reset(int k, CURL *h, const void *ret) {
  lm_hook_ensure_init();
  struct lm_handle *e = lm_hook_depth == 0 && h ? lm_hook_find_handle(h) : NULL;
  if (k < 0)
    k = e ? e->inst : inst_of(h, ret, "curl_easy_reset");
  const struct lm_curl_vt *vt = lm_hook_real(k);
  if (!vt || !vt->easy_reset)
    return;
  lm_hook_depth++;
  vt->easy_reset(h);
  lm_hook_depth--;
  if (e) {
    if (metering(e))
      lm_meter_end(e->call, false);
    e->installed = false;
    clear_options(e);
  }
}

void lm_hook_easy_cleanup(int k, CURL *h, const void *ret) {
  lm_hook_ensure_init();
  struct lm_handle *e = lm_hook_depth == 0 && h ? lm_hook_find_handle(h) : NULL;
  if (k < 0)
    k = e ? e->inst : inst_of(h, ret, "curl_easy_cleanup");
  const struct lm_curl_vt *vt = lm_hook_real(k);
  if (e && metering(e))
    lm_meter_end(e->call, false); /* never leave a lease behind */
  if (vt && vt->easy_cleanup) {
    lm_hook_depth++;
    vt->easy_cleanup(h);
    lm_hook_depth--;
  }
  if (e)
    drop_handle(h);
}

CURLcode lm_hook_easy_getinfo(int k, CURL *h, CURLINFO info, va_list ap,
                              const void *ret) {
  lm_hook_ensure_init();
  struct lm_handle *e = lm_hook_depth == 0 && h ? lm_hook_find_handle(h) : NULL;
  if (k < 0)
    k = e ? e->inst : inst_of(h, ret, "curl_easy_getinfo");
  const struct lm_curl_vt *vt = lm_hook_real(k);
  void *p = va_arg(ap, void *);
  if (e && e->synth_status && p) {
    /* Our 402 never touched the network: answer what the program asks
     * about it as libcurl would have for a real one. */
    bool tls = e->url && strncasecmp(e->url, "https:", 6) == 0;
    switch (info) {
    case CURLINFO_RESPONSE_CODE:
      *(long *)p = e->synth_status;
      return CURLE_OK;
    case CURLINFO_PROTOCOL:
      *(long *)p = tls ? CURLPROTO_HTTPS : CURLPROTO_HTTP;
      return CURLE_OK;
    case CURLINFO_SCHEME:
      *(const char **)p = tls ? "HTTPS" : "HTTP";
      return CURLE_OK;
    case CURLINFO_CONTENT_TYPE:
      *(const char **)p = "application/json";
      return CURLE_OK;
    default:
      break;
    }
  }
  if (!vt || !vt->easy_getinfo)
    return CURLE_FAILED_INIT;
  lm_hook_depth++;
  CURLcode r = vt->easy_getinfo(h, info, p);
  lm_hook_depth--;
  return r;
}
