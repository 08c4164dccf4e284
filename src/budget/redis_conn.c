/* redis_conn.c — the Redis backend's connection: the budget URL, hiredis
 * through dlopen, bounded timeouts, the script by its SHA.
 *
 * hiredis (Debian's libhiredis0.14) is opened on the first connection a
 * process makes, so a process that never uses a Redis budget maps nothing
 * of it. Every wait is bounded (connect and each command: timeout_ms), so a
 * Redis that is down or stopped costs a call at most that long before it is
 * refused. A connection is dropped on any error (a reply lost to a timeout
 * must not be read as the next command's) and after a fork (a child must
 * not speak on its parent's socket); the next call connects again.
 * On Redis Cluster (hiredis 0.14 has no cluster client) a MOVED reply is
 * followed: a budget's keys share one hash tag, so the node that owns its
 * slot answers everything; an ASK (a slot being migrated) is an error, and
 * so is a script run while its slot is being migrated (the script checks
 * that first, before it writes: budget_redis.lua).
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "redis_conn.h"

/* The script, generated from budget_redis.lua (see the Makefile). */
#include "budget_redis_lua.h"

/* ---- hiredis, loaded on first use -------------------------------------- */

static struct {
  redisContext *(*connect)(const char *, int, const struct timeval);
  int (*set_timeout)(redisContext *, const struct timeval);
  void *(*command_argv)(redisContext *, int, const char **, const size_t *);
  void (*free_reply)(void *);
  void (*free_ctx)(redisContext *);
  void *handle;
  int ok; /* 1 loaded, -1 missing */
} hi;
static pthread_once_t hi_once = PTHREAD_ONCE_INIT;

static void hi_load(void) {
  void *h = dlopen("libhiredis.so.0.14", RTLD_NOW | RTLD_LOCAL);
  if (!h)
    h = dlopen("libhiredis.so", RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    hi.ok = -1;
    return;
  }
  *(void **)&hi.connect = dlsym(h, "redisConnectWithTimeout");
  *(void **)&hi.set_timeout = dlsym(h, "redisSetTimeout");
  *(void **)&hi.command_argv = dlsym(h, "redisCommandArgv");
  *(void **)&hi.free_reply = dlsym(h, "freeReplyObject");
  *(void **)&hi.free_ctx = dlsym(h, "redisFree");
  bool all = hi.connect && hi.set_timeout && hi.command_argv && hi.free_reply &&
             hi.free_ctx;
  if (!all) {
    dlclose(h);
    hi.ok = -1;
    return;
  }
  hi.handle = h; /* kept open for the life of the process */
  hi.ok = 1;
}

/* ---- the URL ----------------------------------------------------------- */

static int name_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 63)
    return 0;
  for (; *s; s++)
    if (!(*s == '.' || *s == '_' || *s == '-' || (*s >= '0' && *s <= '9') ||
          (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
      return 0;
  return 1;
}

int lm_redis_parse_url(const char *url, struct lm_redis_url *u, char *err,
                       size_t errlen) {
  memset(u, 0, sizeof(*u));
  const char *bad = "expected redis://[:PASSWORD@]HOST:PORT[/DB]/NAME";
  if (strncmp(url, "redis://", 8) != 0) {
    snprintf(err, errlen, "budget URL: %s", bad);
    return -1;
  }
  const char *p = url + 8;
  const char *at = strrchr(p, '@');
  if (at) { /* userinfo: ":PASSWORD" or "USER:PASSWORD" (user ignored) */
    const char *colon = memchr(p, ':', (size_t)(at - p));
    const char *pw = colon ? colon + 1 : p;
    size_t n = (size_t)(at - pw);
    if (n >= sizeof(u->password)) {
      snprintf(err, errlen, "budget URL: the password is too long");
      return -1;
    }
    memcpy(u->password, pw, n);
    p = at + 1;
  }
  const char *slash = strchr(p, '/');
  const char *colon = memchr(p, ':', slash ? (size_t)(slash - p) : strlen(p));
  if (!slash || !colon || colon == p ||
      (size_t)(colon - p) >= sizeof(u->host)) {
    snprintf(err, errlen, "budget URL: %s", bad);
    return -1;
  }
  memcpy(u->host, p, (size_t)(colon - p));
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (end != slash || port <= 0 || port > 65535) {
    snprintf(err, errlen, "budget URL: bad port (%s)", bad);
    return -1;
  }
  u->port = (int)port;
  const char *rest = slash + 1;
  const char *s2 = strchr(rest, '/');
  if (s2) {
    long db = strtol(rest, &end, 10);
    if (end != s2 || db < 0 || db > 1000000) {
      snprintf(err, errlen, "budget URL: bad database number (%s)", bad);
      return -1;
    }
    u->db = (int)db;
    rest = s2 + 1;
  }
  if (!name_ok(rest)) {
    snprintf(err, errlen,
             "budget URL: the name after the last / must be "
             "[A-Za-z0-9._-]{1,63}");
    return -1;
  }
  snprintf(u->name, sizeof(u->name), "%s", rest);
  return 0;
}

int lm_redis_parse_server(const char *url, struct lm_redis_url *u, char *err,
                          size_t errlen) {
  /* HOST:PORT[/DB] becomes a budget URL with a placeholder name, parsed as
   * one: both forms share every rule of the parser */
  const char *p = strncmp(url, "redis://", 8) == 0 ? url + 8 : url;
  const char *at = strrchr(p, '@');
  const char *slash = strchr(at ? at + 1 : p, '/');
  const char *rest = slash ? slash + 1 : "";
  size_t head = slash ? (size_t)(slash - url) : strlen(url);
  size_t digits = strspn(rest, "0123456789");
  char tmp[1024];
  int n;
  if (!rest[0])
    n = snprintf(tmp, sizeof(tmp), "%.*s/x", (int)head, url);
  else if (digits > 0 && (!rest[digits] || strcmp(rest + digits, "/") == 0))
    n = snprintf(tmp, sizeof(tmp), "%.*s/%.*s/x", (int)head, url, (int)digits,
                 rest);
  else
    n = snprintf(tmp, sizeof(tmp), "%s", url);
  int rc = -1;
  if (n < 0 || (size_t)n >= sizeof(tmp))
    snprintf(err, errlen, "budget URL: too long");
  else
    rc = lm_redis_parse_url(tmp, u, err, errlen);
  memset(tmp, 0, sizeof(tmp)); /* it held the password */
  return rc;
}

void lm_redis_redacted(const struct lm_redis_url *u, char *out, size_t size) {
  snprintf(out, size, "redis://%.120s:%d/%d/%s", u->host, u->port, u->db,
           u->name);
}

/* ---- the connection ---------------------------------------------------- */

struct lm_redis {
  pthread_mutex_t mu;
  struct lm_redis_url url;
  int timeout_ms;
  redisContext *c;
  pid_t pid; /* the process that made c */
  char sha[48];
};

struct lm_redis *lm_redis_new(const struct lm_redis_url *u, int timeout_ms) {
  struct lm_redis *r = calloc(1, sizeof(*r));
  if (!r)
    return NULL;
  pthread_mutex_init(&r->mu, NULL);
  r->url = *u;
  r->timeout_ms = timeout_ms > 0 ? timeout_ms : 1000;
  return r;
}

static void drop(struct lm_redis *r) {
  /* In a fork()ed child the context is the parent's: closing our copy of
   * its descriptor is harmless, speaking on it is not. */
  if (r->c)
    hi.free_ctx(r->c);
  r->c = NULL;
  r->sha[0] = 0;
}

void lm_redis_free(struct lm_redis *r) {
  if (!r)
    return;
  if (r->c && r->pid == getpid())
    drop(r);
  pthread_mutex_destroy(&r->mu);
  memset(r->url.password, 0, sizeof(r->url.password));
  free(r);
}

void lm_redis_reply_free(redisReply *rep) {
  if (rep)
    hi.free_reply(rep);
}

/* One command; NULL (and the connection dropped) on any failure. */
static redisReply *cmd(struct lm_redis *r, int argc, const char **argv,
                       char *err, size_t errlen) {
  redisReply *rep = hi.command_argv(r->c, argc, argv, NULL);
  if (!rep) {
    snprintf(err, errlen, "Redis %.100s:%d: %s", r->url.host, r->url.port,
             r->c->errstr[0] ? r->c->errstr : "no reply");
    drop(r);
  }
  return rep;
}

static int connect_now(struct lm_redis *r, char *err, size_t errlen) {
  struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};
  r->c = hi.connect(r->url.host, r->url.port, tv);
  r->pid = getpid();
  if (!r->c || r->c->err) {
    snprintf(err, errlen, "Redis %.100s:%d unreachable: %s", r->url.host,
             r->url.port, r->c ? r->c->errstr : "out of memory");
    if (r->c)
      hi.free_ctx(r->c);
    r->c = NULL;
    return -1;
  }
  hi.set_timeout(r->c, tv);
  char db[16];
  snprintf(db, sizeof(db), "%d", r->url.db);
  const char *auth[] = {"AUTH", r->url.password};
  const char *sel[] = {"SELECT", db};
  const char *load[] = {"SCRIPT", "LOAD", lm_redis_lua};
  struct {
    int argc;
    const char **argv;
    const char *what;
  } steps[] = {{2, auth, "AUTH"}, {2, sel, "SELECT"}, {3, load, "SCRIPT LOAD"}};
  for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
    if (i == 0 && !r->url.password[0])
      continue;
    if (i == 1 && r->url.db == 0)
      continue;
    redisReply *rep = cmd(r, steps[i].argc, steps[i].argv, err, errlen);
    if (!rep)
      return -1;
    if (rep->type == REDIS_REPLY_ERROR) {
      /* Redis's own words (never the password: it is not echoed back) */
      snprintf(err, errlen, "Redis %.100s:%d: %s refused: %.80s", r->url.host,
               r->url.port, steps[i].what, rep->str);
      hi.free_reply(rep);
      drop(r);
      return -1;
    }
    if (i == 2)
      snprintf(r->sha, sizeof(r->sha), "%s",
               rep->type == REDIS_REPLY_STRING ? rep->str : "");
    hi.free_reply(rep);
  }
  return 0;
}

/* Reconnects to the node a MOVED reply ("MOVED SLOT HOST:PORT", HOST
 * empty: this one's) names. 0, or -1 with a one-line reason. */
static int follow_moved(struct lm_redis *r, const char *moved, char *err,
                        size_t errlen) {
  const char *sp = strchr(moved + 6, ' ');
  const char *colon = sp ? strrchr(sp + 1, ':') : NULL;
  char *end;
  long port = colon ? strtol(colon + 1, &end, 10) : 0;
  size_t hl = colon ? (size_t)(colon - sp - 1) : 0;
  if (!colon || *end || port <= 0 || port > 65535 ||
      hl >= sizeof(r->url.host)) {
    snprintf(err, errlen,
             "Redis %.100s:%d: a cluster redirect it cannot "
             "follow: %.80s",
             r->url.host, r->url.port, moved);
    drop(r);
    return -1;
  }
  if (hl) {
    memcpy(r->url.host, sp + 1, hl);
    r->url.host[hl] = 0;
  }
  r->url.port = (int)port;
  drop(r);
  return connect_now(r, err, errlen);
}

/* hiredis loaded (on first use: nothing at the library's load), or why
 * not in err. */
static bool hi_ready(char *err, size_t errlen) {
  pthread_once(&hi_once, hi_load);
  if (hi.ok >= 0)
    return true;
  snprintf(err, errlen,
           "Redis budget: libhiredis.so.0.14 is not installed "
           "(apt-get install libhiredis0.14)");
  return false;
}

redisReply *lm_redis_command(struct lm_redis *r, int argc, const char **argv,
                             char *err, size_t errlen) {
  if (!hi_ready(err, errlen))
    return NULL;
  pthread_mutex_lock(&r->mu);
  if (r->c && r->pid != getpid())
    drop(r);
  redisReply *rep = NULL;
  if (r->c || connect_now(r, err, errlen) == 0)
    rep = cmd(r, argc, argv, err, errlen);
  if (rep && rep->type == REDIS_REPLY_ERROR) {
    snprintf(err, errlen, "Redis %.100s:%d: %.120s", r->url.host, r->url.port,
             rep->str);
    hi.free_reply(rep);
    rep = NULL;
  }
  pthread_mutex_unlock(&r->mu);
  return rep;
}

redisReply *lm_redis_script(struct lm_redis *r, const char *key, int argc,
                            const char **argv, char *err, size_t errlen) {
  if (!hi_ready(err, errlen))
    return NULL;
  if (argc > LM_REDIS_ARGS) {
    snprintf(err, errlen, "Redis budget: too many arguments");
    return NULL;
  }
  pthread_mutex_lock(&r->mu);
  if (r->c && r->pid != getpid())
    drop(r);
  redisReply *rep = NULL;
  if (!r->c && connect_now(r, err, errlen) != 0)
    goto out;
  const char *av[LM_REDIS_ARGS + 4] = {"EVALSHA", r->sha, "1", key};
  memcpy(av + 4, argv, (size_t)argc * sizeof(*argv));
  bool reloaded = false;
  for (int moved = 0;;) {
    rep = cmd(r, argc + 4, av, err, errlen);
    if (!rep)
      goto out;
    if (rep->type == REDIS_REPLY_ERROR &&
        strncmp(rep->str, "NOSCRIPT", 8) == 0 && !reloaded) {
      /* flushed or restarted: load it again, once */
      reloaded = true;
      hi.free_reply(rep);
      rep = NULL;
      const char *load[] = {"SCRIPT", "LOAD", lm_redis_lua};
      redisReply *l = cmd(r, 3, load, err, errlen);
      if (!l)
        goto out;
      snprintf(r->sha, sizeof(r->sha), "%s",
               l->type == REDIS_REPLY_STRING ? l->str : "");
      hi.free_reply(l);
      av[1] = r->sha;
      continue;
    }
    if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "MOVED ", 6) == 0 &&
        moved++ < 3) {
      /* a cluster node that does not own the budget's slot: the budget
       * has one hash tag, so the owner has every key of it; go there and
       * stay (its script is loaded on connecting) */
      int rc = follow_moved(r, rep->str, err, errlen);
      hi.free_reply(rep);
      rep = NULL;
      if (rc != 0)
        goto out;
      av[1] = r->sha;
      continue;
    }
    break;
  }
  if (rep && rep->type == REDIS_REPLY_ERROR) {
    snprintf(err, errlen, "Redis %.100s:%d: %.120s", r->url.host, r->url.port,
             rep->str);
    hi.free_reply(rep);
    rep = NULL;
  }
out:
  pthread_mutex_unlock(&r->mu);
  return rep;
}
