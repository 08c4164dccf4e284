/* tls_hook.c — the OpenSSL transport's entry points: the exported SSL_*
 * hooks.
 *
 * Translates OpenSSL's API to a tls_stream per connection and nothing
 * more: which SSL objects are ours, where their state lives, what the
 * program's call returns. Everything HTTP is tls_stream.c's, everything
 * about money the meter's.
 *
 * Per-connection state hangs off the SSL object as OpenSSL ex_data, with a
 * free callback, so it dies with the SSL (SSL_free), whatever the program
 * does; the SSL* is the only key that works for every client (the fd is -1
 * under the memory BIOs of asyncio and Node).
 *
 * Which connections are ours: client-side SSL objects not driven by
 * libcurl. A connection first seen from inside libcurl (the caller's
 * return address lies in a libcurl object) is metered by the libcurl
 * transport, which sees the same call one layer up: the TLS layer stands
 * aside for it, so no call is counted twice. Server-side objects are never
 * ours.
 *
 * Results the program sees: a write either took everything or returns the
 * real write's own failure, so SSL_get_error (the real one) tells the truth
 * about it. When the stream answers a read itself — a refused call's
 * response and then its EOF, or the reset after a cut (an EOF where there
 * is no socket: tls_stream.h) — SSL_get_error is answered for that result
 * (ZERO_RETURN, or SYSCALL with errno ECONNRESET), once, per thread.
 *
 * Never: anything at load (the real functions and the ex_data index are
 * found at the first hooked call), a lock on the I/O path, printing.
 */
#include <openssl/ssl.h>

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lifecycle.h"
#include "resolve.h"
#include "tls_alpn.h"
#include "tls_real.h"
#include "tls_stream.h"

#define EXPORT __attribute__((visibility("default")))
#define RET __builtin_return_address(0)

/* What ex_data holds for a connection we stand aside from. */
static char aside_mark;
#define ASIDE ((struct lm_tls_stream *)(void *)&aside_mark)

static atomic_int ex_index = -1;
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

/* A result the stream made up, for the SSL_get_error that follows it. */
static __thread SSL *synth_ssl __attribute__((tls_model("initial-exec")));
static __thread int synth_err __attribute__((tls_model("initial-exec")));

/* The last connection this thread called for, and what its ex_data
 * held: a stream, or ASIDE. An SSL_read on a connection we stand aside
 * from is then one compare on the way to the real function, not
 * OpenSSL's ex_data lookup (make bench: TLS added CPU per call, not
 * HTTP). The memo is good while `epoch` has not moved since it was taken;
 * epoch moves before any ex_data value of ours ends — the SSL freed (an
 * SSL allocated later at the same address must not inherit the memo) or
 * a stream dropped for ASIDE — so no thread can reach a freed stream
 * through its memo: a thread that goes on to use the SSL was ordered
 * after that change by whatever handed the SSL over, and sees the new
 * epoch (coherence). */
static atomic_uint epoch;
static __thread struct {
  const SSL *ssl;
  struct lm_tls_stream *s;
  unsigned epoch;
} memo __attribute__((tls_model("initial-exec")));

/* The key is written last, and cleared first: a signal handler that
 * interrupts this and calls a hook never sees one connection's key with
 * another's value. */
static void remember(const SSL *ssl, struct lm_tls_stream *s,
                     unsigned at_epoch) {
  memo.ssl = NULL;
  atomic_signal_fence(memory_order_seq_cst);
  memo.s = s;
  memo.epoch = at_epoch;
  atomic_signal_fence(memory_order_seq_cst);
  memo.ssl = ssl;
}

static void free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                    long argl, void *argp) {
  (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
  /* OpenSSL calls this on every SSL_free, whatever the value. */
  atomic_fetch_add_explicit(&epoch, 1, memory_order_relaxed);
  if (ptr && ptr != ASIDE)
    lm_tls_stream_free(ptr);
}

static const struct lm_tls_real *real_for_index;

/* The meter's lines for the user: one write, so that lines of processes
 * sharing a terminal do not interleave. */
static void print_line(const char *line, size_t len) {
  char buf[700];
  if (len > sizeof(buf) - 1)
    len = sizeof(buf) - 1;
  memcpy(buf, line, len);
  buf[len++] = '\n';
  (void)!write(STDERR_FILENO, buf, len);
}

static void make_index(void) {
  const struct lm_tls_real *r = real_for_index;
  lm_meter_set_printer(print_line);
  if (!r->get_ex_new_index || !r->get_ex_data || !r->set_ex_data)
    return;
  int i = r->get_ex_new_index(CRYPTO_EX_INDEX_SSL, 0, NULL, NULL, NULL,
                              free_cb);
  atomic_store(&ex_index, i);
}

/* Whether code at addr belongs to a libcurl (the libcurl transport meters
 * what it drives). Asked once per connection. */
static bool from_libcurl(const void *addr) {
  Dl_info di;
  if (!addr || !dladdr(addr, &di) || !di.dli_fname)
    return false;
  const char *base = strrchr(di.dli_fname, '/');
  base = base ? base + 1 : di.dli_fname;
  return strncmp(base, "libcurl", 7) == 0;
}

static int peer_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
    return 0;
  if (ss.ss_family == AF_INET)
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  if (ss.ss_family == AF_INET6)
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return 0;
}

/* Before a client connection's first flight (the hooks of the handshake,
 * and the first read or write, which start it implicitly — Node does): an
 * LLM host's ALPN offer loses h2 (tls_alpn.h). Past the first flight this
 * is one call (SSL_in_before). */
static void before_first_flight(SSL *ssl, const struct lm_tls_real *r,
                                const void *caller) {
  if (!r->in_before || !r->in_before(ssl) || !r->set_alpn_protos ||
      (r->is_server && r->is_server(ssl)))
    return;
  unsigned n = 0;
  unsigned char *offer = lm_tls_alpn_take_h2(r, ssl, &n);
  if (!offer)
    return;
  const char *host = r->get_servername
                         ? r->get_servername(ssl, TLSEXT_NAMETYPE_host_name)
                         : NULL;
  if (host && lm_meter_llm_host(host) && !from_libcurl(caller))
    (void)r->set_alpn_protos(ssl, offer, n);
  free(offer);
}

static struct lm_tls_stream *create(SSL *ssl, const struct lm_tls_real *r,
                                    int idx, const void *caller) {
  struct lm_tls_stream *s = ASIDE;
  before_first_flight(ssl, r, caller);
  if (!(r->is_server && r->is_server(ssl)) && !from_libcurl(caller)) {
    const char *host = r->get_servername
                           ? r->get_servername(ssl, TLSEXT_NAMETYPE_host_name)
                           : NULL;
    int fd = r->get_fd ? r->get_fd(ssl) : -1;
    s = lm_tls_stream_new(host, peer_port(fd));
    if (!s)
      s = ASIDE; /* out of memory: never fail the program's I/O */
    else if (fd < 0)
      lm_tls_stream_set_socketless(s);
  }
  if (!r->set_ex_data(ssl, idx, s)) {
    if (s != ASIDE)
      lm_tls_stream_free(s);
    return NULL;
  }
  return s == ASIDE ? NULL : s;
}

/* stream_of past the memo: OpenSSL's ex_data, or a new stream. Kept out
 * of line so that the memo's hit costs no stack frame. */
static __attribute__((noinline)) struct lm_tls_stream *
lookup(SSL *ssl, const struct lm_tls_real *r, const void *caller,
       unsigned now) {
  int idx = atomic_load_explicit(&ex_index, memory_order_acquire);
  if (idx < 0) {
    real_for_index = r;
    pthread_once(&index_once, make_index);
    if ((idx = atomic_load(&ex_index)) < 0)
      return NULL;
  }
  struct lm_tls_stream *s = r->get_ex_data(ssl, idx);
  if (!s) {
    s = create(ssl, r, idx, caller);
    if (!s && r->get_ex_data(ssl, idx) != ASIDE)
      return NULL; /* not stored: nothing to remember */
    remember(ssl, s ? s : ASIDE, now);
    return s;
  }
  remember(ssl, s, now);
  return s == ASIDE ? NULL : s;
}

/* The stream of a connection we meter, or NULL (stand aside). */
static inline struct lm_tls_stream *
stream_of(SSL *ssl, const struct lm_tls_real *r, const void *caller) {
  unsigned now = atomic_load_explicit(&epoch, memory_order_relaxed);
  if (memo.ssl == ssl && memo.epoch == now)
    return memo.s == ASIDE ? NULL : memo.s;
  return lookup(ssl, r, caller, now);
}

/* Whether the memo says this thread's last connection, ssl, is one we
 * stand aside from: the hooks' first question, answered before they set
 * up anything, so that such a call costs a few loads on its way to the
 * real function (the rest of each hook is out of line). */
static inline bool memo_aside(const SSL *ssl) {
  return memo.ssl == ssl && memo.s == ASIDE &&
         memo.epoch == atomic_load_explicit(&epoch, memory_order_relaxed);
}

static const struct lm_tls_real *real_or_fail(void) { return lm_tls_real(); }

/* A stream that stands aside for good (not HTTP/1.1, an upgrade) is
 * freed and the connection marked ASIDE: its later calls cost one ex_data
 * lookup on the way to the real function, not a trip through the stream
 * (make bench: TLS added CPU per SSL call, not HTTP). */
static void settle_aside(SSL *ssl, const struct lm_tls_real *r,
                         struct lm_tls_stream *s) {
  int idx = atomic_load_explicit(&ex_index, memory_order_acquire);
  if (idx < 0 || !lm_tls_stream_aside(s))
    return;
  /* Every thread's memo of this stream ends before the stream does. */
  unsigned now = atomic_fetch_add_explicit(&epoch, 1, memory_order_relaxed) + 1;
  if (!r->set_ex_data(ssl, idx, ASIDE))
    return;
  remember(ssl, ASIDE, now);
  lm_tls_stream_free(s);
}

/* ---- writing ---------------------------------------------------------- */

struct sender {
  SSL *ssl;
  const struct lm_tls_real *r;
};

static long send_real(void *ctx, const char *p, size_t n) {
  struct sender *w = ctx;
  int k = n > INT_MAX ? INT_MAX : (int)n;
  return w->r->write(w->ssl, p, k);
}

static long write_common(SSL *ssl, const void *buf, size_t num,
                         const struct lm_tls_real *r, const void *caller) {
  synth_ssl = NULL;
  struct lm_tls_stream *s = stream_of(ssl, r, caller);
  if (!s)
    return -2; /* not ours */
  struct sender w = {ssl, r};
  long k = lm_tls_stream_write(s, buf, num, send_real, &w);
  if (k == LM_TLS_BLOCKED) {
    /* refused as a whole (tls_stream.h): a connection error, as a
     * firewall's refusal would read */
    synth_ssl = ssl;
    synth_err = SSL_ERROR_SYSCALL;
    errno = EPERM;
    return -1;
  }
  if (k > 0 && lm_tls_stream_take_close(s) && r->shutdown) {
    /* Refused: nothing was sent; a close_notify makes the server answer,
     * which is what an event loop waits for before it reads. What the
     * program then reads is the refusal (lm_tls_stream_pre_read). */
    int saved = errno;
    (void)r->shutdown(ssl);
    errno = saved;
  }
  if (k > 0)
    settle_aside(ssl, r, s);
  return k;
}

static __attribute__((noinline)) int write_hook(SSL *ssl, const void *buf,
                                                int num, const void *caller) {
  const struct lm_tls_real *r = real_or_fail();
  if (!r)
    return -1;
  if (num <= 0)
    return r->write(ssl, buf, num);
  long k = write_common(ssl, buf, (size_t)num, r, caller);
  if (k == -2)
    return r->write(ssl, buf, num);
  return (int)k;
}

EXPORT int SSL_write(SSL *ssl, const void *buf, int num) {
  const struct lm_tls_real *r = lm_tls_real();
  if (r && memo_aside(ssl)) {
    synth_ssl = NULL;
    return r->write(ssl, buf, num);
  }
  return write_hook(ssl, buf, num, RET);
}

static __attribute__((noinline)) int write_ex_hook(SSL *ssl, const void *buf,
                                                   size_t num, size_t *written,
                                                   const void *caller) {
  const struct lm_tls_real *r = real_or_fail();
  if (!r)
    return 0;
  if (num == 0)
    return r->write_ex(ssl, buf, num, written);
  long k = write_common(ssl, buf, num, r, caller);
  if (k == -2)
    return r->write_ex(ssl, buf, num, written);
  if (k > 0) {
    *written = (size_t)k;
    return 1;
  }
  *written = 0;
  return 0;
}

EXPORT int SSL_write_ex(SSL *ssl, const void *buf, size_t num,
                        size_t *written) {
  const struct lm_tls_real *r = lm_tls_real();
  if (r && memo_aside(ssl)) {
    synth_ssl = NULL;
    return r->write_ex(ssl, buf, num, written);
  }
  return write_ex_hook(ssl, buf, num, written, RET);
}

/* ---- reading ---------------------------------------------------------- */

/* The stream's own answer to a read, as OpenSSL would give it: >0 bytes,
 * 0 (EOF), -1 (reset), or -2: not ours, do the real read. */
static int answer(SSL *ssl, struct lm_tls_stream *s, void *buf, size_t cap,
                  size_t *got, bool peek) {
  switch (lm_tls_stream_pre_read(s, buf, cap, got, peek)) {
  case LM_TLS_READ_DATA:
    return 1;
  case LM_TLS_READ_EOF:
    synth_ssl = ssl;
    synth_err = SSL_ERROR_ZERO_RETURN;
    return 0;
  case LM_TLS_READ_RESET:
    synth_ssl = ssl;
    synth_err = SSL_ERROR_SYSCALL;
    errno = ECONNRESET;
    return -1;
  case LM_TLS_READ_REAL:
    break;
  }
  return -2;
}

/* One read of the program's: the stream's own answer, or the real read's
 * bytes as metered (a filtered response may yield none yet: read again).
 * Returns > 0 bytes, or a result <= 0 for SSL_get_error (ours when made
 * up, else the real read's). ex: the _ex form (failure is 0). */
static long read_metered(SSL *ssl, const struct lm_tls_real *r,
                         struct lm_tls_stream *s, void *buf, size_t num,
                         bool ex) {
  for (;;) {
    size_t got = 0;
    int a = answer(ssl, s, buf, num, &got, false);
    if (a > 0)
      return (long)got;
    if (a != -2)
      return a;
    long ret;
    if (ex) {
      size_t rb = 0;
      ret = r->read_ex(ssl, buf, num, &rb) ? (long)rb : 0;
    } else {
      ret = r->read(ssl, buf, num > INT_MAX ? INT_MAX : (int)num);
    }
    if (ret <= 0) {
      int saved = errno;
      int e = r->get_error(ssl, (int)ret);
      if (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL ||
          e == SSL_ERROR_SSL) {
        lm_tls_stream_closed(s, e == SSL_ERROR_ZERO_RETURN);
        /* A filtered body that ended with the connection: its last
         * bytes first, the end on the next read. */
        if (lm_tls_stream_pre_read(s, buf, num, &got, false) ==
            LM_TLS_READ_DATA)
          return (long)got;
      }
      errno = saved;
      return ret;
    }
    bool cut = false;
    size_t k = lm_tls_stream_received(s, buf, (size_t)ret, num, &cut);
    if (cut) {
      /* The provider should stop generating, now. */
      int fd = r->get_fd ? r->get_fd(ssl) : -1;
      if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
    }
    if (k > 0) {
      settle_aside(ssl, r, s);
      return (long)k;
    }
  }
}

static __attribute__((noinline)) int read_hook(SSL *ssl, void *buf, int num,
                                               const void *caller) {
  const struct lm_tls_real *r = real_or_fail();
  if (!r)
    return -1;
  synth_ssl = NULL;
  struct lm_tls_stream *s = num > 0 ? stream_of(ssl, r, caller) : NULL;
  if (!s)
    return r->read(ssl, buf, num);
  return (int)read_metered(ssl, r, s, buf, (size_t)num, false);
}

EXPORT int SSL_read(SSL *ssl, void *buf, int num) {
  const struct lm_tls_real *r = lm_tls_real();
  if (r && memo_aside(ssl)) {
    synth_ssl = NULL;
    return r->read(ssl, buf, num);
  }
  return read_hook(ssl, buf, num, RET);
}

static __attribute__((noinline)) int read_ex_hook(SSL *ssl, void *buf,
                                                  size_t num, size_t *readbytes,
                                                  const void *caller) {
  const struct lm_tls_real *r = real_or_fail();
  if (!r)
    return 0;
  synth_ssl = NULL;
  struct lm_tls_stream *s = num > 0 ? stream_of(ssl, r, caller) : NULL;
  if (!s)
    return r->read_ex(ssl, buf, num, readbytes);
  long k = read_metered(ssl, r, s, buf, num, true);
  *readbytes = k > 0 ? (size_t)k : 0;
  return k > 0;
}

EXPORT int SSL_read_ex(SSL *ssl, void *buf, size_t num, size_t *readbytes) {
  const struct lm_tls_real *r = lm_tls_real();
  if (r && memo_aside(ssl)) {
    synth_ssl = NULL;
    return r->read_ex(ssl, buf, num, readbytes);
  }
  return read_ex_hook(ssl, buf, num, readbytes, RET);
}

/* Peeking never feeds the meter (the bytes are metered when read), but a
 * refused call's response is what a peek must show too. */
EXPORT int SSL_peek(SSL *ssl, void *buf, int num) {
  const struct lm_tls_real *r = real_or_fail();
  if (!r)
    return -1;
  synth_ssl = NULL;
  struct lm_tls_stream *s = num > 0 ? stream_of(ssl, r, RET) : NULL;
  if (s) {
    size_t got = 0;
    int a = answer(ssl, s, buf, (size_t)num, &got, true);
    if (a != -2)
      return a > 0 ? (int)got : a;
  }
  return r->peek(ssl, buf, num);
}

EXPORT int SSL_peek_ex(SSL *ssl, void *buf, size_t num, size_t *readbytes) {
  const struct lm_tls_real *r = real_or_fail();
  if (!r)
    return 0;
  synth_ssl = NULL;
  struct lm_tls_stream *s = num > 0 ? stream_of(ssl, r, RET) : NULL;
  if (s) {
    size_t got = 0;
    int a = answer(ssl, s, buf, num, &got, true);
    if (a != -2) {
      *readbytes = a > 0 ? got : 0;
      return a > 0;
    }
  }
  return r->peek_ex(ssl, buf, num, readbytes);
}

EXPORT int SSL_get_error(const SSL *ssl, int ret) {
  if (synth_ssl && synth_ssl == ssl && ret <= 0)
    return synth_err;
  const struct lm_tls_real *r = real_or_fail();
  return r ? r->get_error(ssl, ret) : SSL_ERROR_SSL;
}

/* ---- the handshake and its offer -------------------------------------- */

/* Where no complete table could be had (an OpenSSL without SSL_read_ex),
 * these hooks still forward: the program's handshake never depends on the
 * meter. */
static void *next_fn(const char *name) { return dlsym(RTLD_NEXT, name); }

EXPORT int SSL_CTX_set_alpn_protos(SSL_CTX *ctx, const unsigned char *p,
                                   unsigned int n) {
  const struct lm_tls_real *r = real_or_fail();
  int (*f)(
      SSL_CTX *, const unsigned char *,
      unsigned) = r && r->ctx_set_alpn_protos
                      ? r->ctx_set_alpn_protos
                      : (int (*)(SSL_CTX *, const unsigned char *,
                                 unsigned))next_fn("SSL_CTX_set_alpn_protos");
  if (!f)
    return 1;
  int rc = f(ctx, p, n);
  if (rc == 0 && r)
    lm_tls_alpn_ctx_set(r, ctx, p, n);
  return rc;
}

EXPORT int SSL_set_alpn_protos(SSL *ssl, const unsigned char *p,
                               unsigned int n) {
  const struct lm_tls_real *r = real_or_fail();
  int (*f)(SSL *, const unsigned char *,
           unsigned) = r && r->set_alpn_protos
                           ? r->set_alpn_protos
                           : (int (*)(SSL *, const unsigned char *,
                                      unsigned))next_fn("SSL_set_alpn_protos");
  if (!f)
    return 1;
  int rc = f(ssl, p, n);
  if (rc == 0 && r)
    lm_tls_alpn_ssl_set(r, ssl, p, n);
  return rc;
}

EXPORT int SSL_connect(SSL *ssl) {
  const struct lm_tls_real *r = real_or_fail();
  if (!r) {
    int (*f)(SSL *) = (int (*)(SSL *))next_fn("SSL_connect");
    return f ? f(ssl) : -1;
  }
  before_first_flight(ssl, r, RET);
  return r->connect(ssl);
}

EXPORT int SSL_do_handshake(SSL *ssl) {
  const struct lm_tls_real *r = real_or_fail();
  if (!r) {
    int (*f)(SSL *) = (int (*)(SSL *))next_fn("SSL_do_handshake");
    return f ? f(ssl) : -1;
  }
  before_first_flight(ssl, r, RET);
  return r->do_handshake(ssl);
}

/* After a refusal the stream closed the session's sending side itself and
 * then ended the program's reads: the program sees the session as the
 * peer's close would leave it (Python's read takes a 0 as a clean EOF only
 * when this says exactly SSL_RECEIVED_SHUTDOWN; Node ends the stream on
 * that bit), not as a close it never asked for. */
EXPORT int SSL_get_shutdown(const SSL *ssl) {
  const struct lm_tls_real *r = real_or_fail();
  int (*f)(const SSL *) = r && r->get_shutdown ? r->get_shutdown
                                               : (int (*)(const SSL *))next_fn(
                                                     "SSL_get_shutdown");
  int flags = f ? f(ssl) : 0;
  int idx = atomic_load_explicit(&ex_index, memory_order_acquire);
  if (!r || idx < 0 || !ssl)
    return flags;
  struct lm_tls_stream *s = r->get_ex_data(ssl, idx);
  if (!s || s == ASIDE)
    return flags;
  bool closed = false, ended = false;
  lm_tls_stream_refusal_state(s, &closed, &ended);
  if (closed)
    flags &= ~SSL_SENT_SHUTDOWN;
  if (ended)
    flags |= SSL_RECEIVED_SHUTDOWN;
  return flags;
}
