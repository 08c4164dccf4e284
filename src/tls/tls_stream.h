/* tls_stream.h — one TLS connection's plaintext, as HTTP/1.1 calls.
 *
 * Owns: turning what a program writes into requests and what it reads into
 * responses (any split, keep-alive: many calls on one connection), driving
 * the call lifecycle with them, holding an LLM request until its body is
 * complete (the verdict needs it), sending the program's bytes — or the
 * meter's rewritten body — through the real write, and what the program
 * reads instead when a call is refused (the meter's HTTP response, then
 * EOF) or cut (a reset).
 *
 * Knows nothing of OpenSSL: the real write is a function it is handed, so
 * that the same stream serves any TLS library and runs in unit tests over a
 * fake. Never prints; never allocates per byte (a held request grows its
 * buffer geometrically, up to LM_TLS_HOLD_MAX).
 *
 * The program's write contract is kept exactly: a write either takes all
 * its bytes (and returns their count) or returns the real write's failure
 * (WANT_READ/WANT_WRITE: the program retries the same bytes, and the retry
 * finishes what the first attempt started — nothing is taken twice).
 */
#ifndef LM_TLS_STREAM_H
#define LM_TLS_STREAM_H

#include <stdbool.h>
#include <stddef.h>

/* A request body held beyond this is decided without being read. */
#define LM_TLS_HOLD_MAX (64u << 20)
/* A request head longer than this is not HTTP we meter: passed through. */
#define LM_TLS_HEAD_MAX (64u << 10)

struct lm_tls_stream;

/* The real write: sends p[0..n) and returns how many bytes went (> 0), or
 * the real function's result (<= 0), which the caller hands back to the
 * program as it is. */
typedef long (*lm_tls_send_fn)(void *ctx, const char *p, size_t n);

/* host: the server name (SNI) or NULL; port: 0 if unknown. NULL when out of
 * memory. */
struct lm_tls_stream *lm_tls_stream_new(const char *host, int port);
/* Ends a call still running (the connection went away: what was received
 * is charged, the rest released) and frees. */
void lm_tls_stream_free(struct lm_tls_stream *s);

/* The program writes p[0..n). Returns n when all was taken, the real
 * write's result (<= 0), or LM_TLS_BLOCKED: the connection goes to an LLM
 * API host but carries what the stream cannot follow (HTTP/2, an upgrade,
 * bytes that are not HTTP/1.1), and the policy refuses it unmetered
 * (lm_meter_unseen: under a hard limit that fails closed). Nothing more is
 * sent on it; the caller fails the write as a connection error. */
#define LM_TLS_BLOCKED (-100L)
long lm_tls_stream_write(struct lm_tls_stream *s, const char *p, size_t n,
                         lm_tls_send_fn send, void *ctx);

/* Before the program's read reaches the real read. */
enum lm_tls_read {
  LM_TLS_READ_REAL = 0, /* nothing of ours: do the real read */
  LM_TLS_READ_DATA,     /* *got bytes copied into buf */
  LM_TLS_READ_EOF,      /* the end of a refused call's response */
  LM_TLS_READ_RESET,    /* the meter cut the call: fail as a reset */
};
enum lm_tls_read lm_tls_stream_pre_read(struct lm_tls_stream *s, char *buf,
                                        size_t cap, size_t *got, bool peek);

/* The real read put buf[0..n) (of cap) in the program's buffer: meters
 * it. Returns how many bytes the program gets now — n, untouched, unless
 * the meter filters the response: then buf holds what the filter let
 * through (0: nothing yet, read again). *cut is set when the call was cut
 * now (the bytes still go to the program; its next read fails as a reset;
 * the caller may shut the socket down). */
size_t lm_tls_stream_received(struct lm_tls_stream *s, char *buf, size_t n,
                              size_t cap, bool *cut);

/* The real read reported the end of the connection: clean (close_notify
 * or an orderly EOF) or not. A response delimited by the close ends here. */
void lm_tls_stream_closed(struct lm_tls_stream *s, bool clean);

/* Once, right after the write that a refusal swallowed: true when the
 * caller should close the TLS session's sending side (close_notify). An
 * event-loop client (asyncio, Node: memory BIOs) reads only when bytes
 * arrive from the network, and a refused request sends none: the server's
 * answer to the close is what wakes its read, which then gets the
 * refusal's response. */
bool lm_tls_stream_take_close(struct lm_tls_stream *s);

/* The connection has no socket the caller could shut down (memory BIOs:
 * asyncio, Node). A cut then ends the program's reads with an EOF rather
 * than a reset: the connection ends under it mid-message, which every HTTP
 * client takes as a failure and answers by closing its transport — the
 * close the provider must see. (Node takes a reset without a socket error
 * for nothing and waits on a connection the server keeps open.) */
void lm_tls_stream_set_socketless(struct lm_tls_stream *s);

/* After a refusal, for SSL_get_shutdown: *closed says the stream itself
 * sent the close_notify (the program never asked for it), *ended that the
 * program has read the refusal to its end (or a socketless cut's EOF): for
 * the program the session is over, as if the peer had closed it. Both
 * false for any other stream. */
void lm_tls_stream_refusal_state(const struct lm_tls_stream *s, bool *closed,
                                 bool *ended);

/* Whether the stream stands aside for good (not HTTP/1.1, or an upgrade):
 * the caller may stop calling it. */
bool lm_tls_stream_aside(const struct lm_tls_stream *s);

#endif
