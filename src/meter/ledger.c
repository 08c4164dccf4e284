/* ledger.c — appends call records as JSON lines (see ledger.h). */
#include "ledger.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "json_scan.h"
#include "money.h"
#include "utc.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int fd = -1;
static pid_t fd_pid;
static char err[256];
static int failed;

const char *lm_ledger_error(void) { return err[0] ? err : NULL; }

struct buf {
  char b[4096];
  size_t n;
};

static void add(struct buf *b, const char *s) {
  size_t l = strlen(s);
  if (b->n + l < sizeof(b->b)) {
    memcpy(b->b + b->n, s, l);
    b->n += l;
  }
}

static void add_str(struct buf *b, const char *key, const char *v) {
  add(b, ",\"");
  add(b, key);
  add(b, "\":\"");
  b->n += lm_json_escape(b->b + b->n, sizeof(b->b) - b->n - 4, v);
  add(b, "\"");
}

static void add_num(struct buf *b, const char *key, long long v) {
  char t[64];
  snprintf(t, sizeof(t), ",\"%s\":%lld", key, v);
  add(b, t);
}

/* LLMMETER_LEDGER, as the configuration read it once. */
static const char *ledger_path(void) { return lm_config_get()->ledger; }

static int open_ledger(void) {
  const char *path = ledger_path();
  if (!path || !*path)
    return -1;
  if (fd >= 0 && fd_pid == getpid())
    return fd;
  if (failed)
    return -1;
  fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    failed = 1;
    snprintf(err, sizeof(err), "cannot open ledger %.180s: %s", path,
             strerror(errno));
    return -1;
  }
  fd_pid = getpid();
  return fd;
}

void lm_ledger_write(const struct lm_ledger_rec *r) {
  const char *path = ledger_path();
  if (!path || !*path)
    return;
  struct buf b = {.n = 0};
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  time_t sec = ts.tv_sec;
  lm_utc(sec, &tm);
  char t[96];
  snprintf(t, sizeof(t),
           "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"pid\":%d",
           tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
           tm.tm_sec, ts.tv_nsec / 1000000, (int)getpid());
  add(&b, t);
  add_str(&b, "budget", r->budget);
  add_str(&b, "agent", r->agent);
  /* Older ledgers have no "api" and the API in "provider"; now "api" is
   * the API and "provider" who bills the call (cli_report.c reads both). */
  add_str(&b, "api", r->api);
  if (r->provider && *r->provider)
    add_str(&b, "provider", r->provider);
  add_str(&b, "model", r->model);
  if (r->reported_model && *r->reported_model)
    add_str(&b, "reported_model", r->reported_model);
  if (r->downgraded_from)
    add_str(&b, "requested_model", r->downgraded_from);
  const struct lm_usage z = {0};
  const struct lm_usage *u = r->usage ? r->usage : &z;
  snprintf(t, sizeof(t),
           ",\"tokens\":{\"input\":%llu,\"output\":%llu,\"cache_read\":%llu,",
           (unsigned long long)u->input, (unsigned long long)u->output,
           (unsigned long long)u->cache_read);
  add(&b, t);
  snprintf(t, sizeof(t), "\"cache_write\":%llu,\"reasoning\":%llu",
           (unsigned long long)u->cache_write,
           (unsigned long long)u->reasoning);
  add(&b, t);
  /* The parts beyond text (audio, image, video) and the counts beside the
   * totals (citation, separate reasoning) only where the call had them, so
   * a text call's line is as it always was; a reader takes a missing one
   * as 0. */
  uint64_t kinds[LM_TOK_KINDS];
  lm_usage_kinds(u, kinds);
  for (int k = LM_TOK_REASONING + 1; k < LM_TOK_KINDS; k++)
    if (kinds[k] && k != LM_TOK_WEB_SEARCHES) {
      snprintf(t, sizeof(t), ",\"%s\":%llu", lm_token_kind_name(k),
               (unsigned long long)kinds[k]);
      add(&b, t);
    }
  /* Parts priced apart that status does not count as kinds: with them a
   * line can be priced again exactly (`llmmeter prices --usage`). */
  const struct {
    const char *name;
    uint64_t v;
  } extra[] = {{"cache_write_1h", u->cache_write_1h},
               {"cache_audio_read", u->cache_audio_read},
               {"cache_image_read", u->cache_image_read}};
  for (size_t k = 0; k < sizeof(extra) / sizeof(extra[0]); k++)
    if (extra[k].v) {
      snprintf(t, sizeof(t), ",\"%s\":%llu", extra[k].name,
               (unsigned long long)extra[k].v);
      add(&b, t);
    }
  add(&b, "}");
  if (u->web_searches)
    add_num(&b, "web_searches", (long long)u->web_searches);
  char money[40];
  add(&b, ",\"cost_usd\":");
  add(&b, lm_money_format_exact(r->cost_pusd, money, sizeof(money)));
  add_num(&b, "cost_pusd", r->cost_pusd);
  add_num(&b, "status", r->http_status);
  add_num(&b, "duration_ms", r->duration_ms);
  add_str(&b, "outcome", r->outcome);
  add(&b, r->unpriced ? ",\"unpriced\":true" : ",\"unpriced\":false");
  if (r->reason && *r->reason)
    add_str(&b, "reason", r->reason);
  add(&b, "}\n");
  b.b[b.n - 1] = '\n'; /* even when truncated: still one line */
  pthread_mutex_lock(&lock);
  int f = open_ledger();
  if (f >= 0 && write(f, b.b, b.n) != (ssize_t)b.n && !err[0])
    snprintf(err, sizeof(err), "cannot write ledger: %s", strerror(errno));
  pthread_mutex_unlock(&lock);
}
