/* redis_conn.h — a connection to the Redis server that holds a budget:
 * the budget URL, hiredis loaded on first use, bounded timeouts, one
 * script run at a time.
 *
 * Only the Redis backend (budget_redis.c) includes this. hiredis is opened
 * with dlopen when the first Redis budget connects, never at load: most
 * processes of a wrapped tree never touch Redis. The password is kept here
 * and sent in AUTH; nothing this module writes into an error names it.
 */
#ifndef LM_REDIS_CONN_H
#define LM_REDIS_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#define LM_REDIS_ARGS 40

/* redis://[:PASSWORD@]HOST:PORT[/DB]/NAME */
struct lm_redis_url {
  char host[256];
  int port;
  int db;
  char password[256];
  char name[64]; /* the budget's name inside Redis: [A-Za-z0-9._-]{1,63} */
};

/* Parses a budget URL; 0, or -1 with a one-line reason (no password). */
int lm_redis_parse_url(const char *url, struct lm_redis_url *u, char *err,
                       size_t errlen);
/* A server to list budgets on: redis://[:PASSWORD@]HOST:PORT[/DB], or a
 * budget URL (its name is ignored). A last part of digits alone is the
 * database. 0, or -1 with a one-line reason (no password). */
int lm_redis_parse_server(const char *url, struct lm_redis_url *u, char *err,
                          size_t errlen);
/* The URL without its password: what every message shows. */
void lm_redis_redacted(const struct lm_redis_url *u, char *out, size_t size);

struct lm_redis;

/* A connection made on first use (and again after a failure or a fork). */
struct lm_redis *lm_redis_new(const struct lm_redis_url *u, int timeout_ms);
void lm_redis_free(struct lm_redis *r);

/* Runs the backend's script (EVALSHA, loading it on NOSCRIPT) with one key
 * and argv. Returns the reply (free with lm_redis_reply_free) or NULL with
 * a one-line reason in err. Serialised per connection. */
redisReply *lm_redis_script(struct lm_redis *r, const char *key, int argc,
                            const char **argv, char *err, size_t errlen);
/* Runs one command (connecting first if needed). Returns the reply, or
 * NULL with a one-line reason (an error reply included). */
redisReply *lm_redis_command(struct lm_redis *r, int argc, const char **argv,
                             char *err, size_t errlen);
void lm_redis_reply_free(redisReply *rep);

#endif
