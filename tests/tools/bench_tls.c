/* bench_tls.c — the OpenSSL transport's cost, measured by a program that
 * calls OpenSSL itself (make bench: scripts/bench.sh runs it with and
 * without LD_PRELOAD=libllmmeter.so, interleaved).
 *
 * usage: bench_tls pair CERT KEY KIND N REPS
 *        bench_tls paired CERT KEY KIND N REPS
 *        bench_tls reuse CERT KEY N
 *        bench_tls serve CERT KEY PORT-FILE
 *
 * pair: one process, one thread, no socket: a client SSL and a server SSL
 * joined by a BIO pair (in-process memory, as asyncio and Node drive
 * OpenSSL), N round trips per repetition, REPS repetitions after one of
 * warm-up. Each round trip is the client's SSL_write of a request, the
 * server's reads and its answer, and the client's SSL_read(s) of it. The
 * client calls SSL_read/SSL_write by name, so under the preload they are
 * the library's hooks; the server calls libssl's own functions (looked up
 * in libssl by dlsym), so the server's side costs the same in both runs
 * and the difference between the runs is the client's hooks alone.
 * KIND:
 *   raw   32 bytes each way that are not HTTP, SNI localhost (a non-LLM
 *         connection the transport stops following at its first write)
 *   http  GET /ping HTTP/1.1 to Host: localhost, a 2-byte 200 answer,
 *         keep-alive (a non-LLM connection the transport follows)
 *   llm   POST /v1/chat/completions to api.openai.com (SNI and Host) with
 *         bench_client's JSON body, answered with bench_server's canned
 *         OpenAI chat.completion (Content-Length), keep-alive: every round
 *         trip is one metered LLM call
 * Prints one line:
 *   tls kind=K rts=N ops=O ns_per_op=X ns_per_op_med=Y us_per_rt=Z
 *     us_per_rt_med=W cpu_s=C
 * ops are the client's SSL_read/SSL_write calls per repetition; ns_per_op
 * and us_per_rt are the fastest repetition's thread CPU time per client
 * call and per round trip (the fastest: the one least disturbed by
 * whatever else the machine runs), _med the median repetition's. Exit 1
 * if an answer is not what the server sent.
 *
 * paired: the same kinds, two connections in this one process and
 * thread: A driven by name (the hooks, under the preload), B by libssl's
 * own functions (never seen by the library), alternating blocks of N
 * round trips (ABBA), REPS pairs of blocks after a warm-up block each.
 * Prints one line:
 *   tlsab kind=K rts=N reps=R ops=O added_ns_per_op=X added_ns_q1=Q1
 *     added_ns_q3=Q3 base_ns_per_op=B added_us_per_rt=Y base_us_per_rt=Z
 * added: the median over the pairs of (A - B) thread CPU per client call
 * (q1, q3: its quartiles), and per round trip; base: B's median. Without
 * the preload both sides are libssl's and added is the method's noise.
 *
 * serve: an HTTPS server on 127.0.0.1 (port written to PORT-FILE), one
 * connection at a time: for each GET /BYTES it answers 200 with BYTES zero
 * bytes (Content-Length), keep-alive, until the client closes. For the
 * download figure (a Python client); run it without the preload.
 */
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_requests.h"

/* libssl's own functions, for the server side (never the hooks). */
static int (*real_read)(SSL *, void *, int);
static int (*real_write)(SSL *, const void *, int);
static int (*real_handshake)(SSL *);

static int find_real(void) {
  Dl_info di;
  void *any = dlsym(RTLD_DEFAULT, "SSL_new"); /* not hooked: libssl's */
  if (!any || !dladdr(any, &di) || !di.dli_fname)
    return -1;
  void *h = dlopen(di.dli_fname, RTLD_NOW | RTLD_NOLOAD);
  if (!h)
    return -1;
  real_read = (int (*)(SSL *, void *, int))dlsym(h, "SSL_read");
  real_write = (int (*)(SSL *, const void *, int))dlsym(h, "SSL_write");
  real_handshake = (int (*)(SSL *))dlsym(h, "SSL_do_handshake");
  return real_read && real_write && real_handshake ? 0 : -1;
}

static SSL_CTX *server_ctx(const char *cert, const char *key) {
  SSL_CTX *c = SSL_CTX_new(TLS_server_method());
  if (!c || SSL_CTX_use_certificate_chain_file(c, cert) != 1 ||
      SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1) {
    ERR_print_errors_fp(stderr);
    exit(2);
  }
  SSL_CTX_set_num_tickets(c, 0);
  return c;
}

static double thread_cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static _Noreturn void fail(const char *what) {
  fprintf(stderr, "bench_tls: %s\n", what);
  ERR_print_errors_fp(stderr);
  exit(1);
}

/* ---- pair ------------------------------------------------------------- */

static char req[2048], resp[4096];
static size_t req_len, resp_len;
static long ops; /* the client's read/write calls */

static void make_messages(const char *kind) {
  if (strcmp(kind, "raw") == 0) {
    memset(req, 'q', 32);
    memset(resp, 'a', 32);
    req_len = resp_len = 32;
  } else if (strcmp(kind, "http") == 0) {
    req_len = (size_t)snprintf(req, sizeof req,
                               "GET /ping HTTP/1.1\r\nHost: localhost\r\n"
                               "Accept: */*\r\n\r\n");
    resp_len = (size_t)snprintf(resp, sizeof resp,
                                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                "Content-Type: text/plain\r\n\r\nok");
  } else {
    req_len = (size_t)snprintf(
        req, sizeof req,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\n"
        "Authorization: Bearer sk-llmmeter-bench\r\n"
        "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
        sizeof body_json - 1, body_json);
    resp_len = (size_t)snprintf(resp, sizeof resp,
                                "HTTP/1.1 200 OK\r\n"
                                "Content-Type: application/json\r\n"
                                "Content-Length: %zu\r\n\r\n%s",
                                sizeof resp_json - 1, resp_json);
  }
}

/* Server side: reads the whole request, answers it. */
static void serve_one(SSL *s) {
  char buf[4096];
  size_t got = 0;
  while (got < req_len) {
    int k = real_read(s, buf, (int)sizeof buf);
    if (k <= 0)
      fail("server read");
    got += (size_t)k;
  }
  if (got != req_len)
    fail("server: the request is not the one written");
  if (real_write(s, resp, (int)resp_len) != (int)resp_len)
    fail("server write");
}

/* The client's calls: by name (the hooks, under the preload) or libssl's
 * own. */
struct client_fns {
  int (*read)(SSL *, void *, int);
  int (*write)(SSL *, const void *, int);
};

static void round_trip(SSL *c, SSL *s, const struct client_fns *f) {
  ops++;
  if (f->write(c, req, (int)req_len) != (int)req_len)
    fail("client write");
  serve_one(s);
  char buf[4096];
  size_t got = 0;
  while (got < resp_len) {
    ops++;
    int k = f->read(c, buf + got, (int)(sizeof buf - got));
    if (k <= 0)
      fail("client read");
    got += (size_t)k;
  }
  if (got != resp_len || memcmp(buf, resp, resp_len) != 0)
    fail("client: the answer is not the one sent");
}

/* A client and a server SSL joined by a BIO pair, handshaken (the client's
 * handshake by name, or libssl's own when the pair is to stay unseen). */
struct conn {
  SSL *c, *s;
};

static struct conn connect_pair(SSL_CTX *cc, SSL_CTX *sc, const char *kind,
                                bool hooked) {
  struct conn k = {SSL_new(cc), SSL_new(sc)};
  BIO *bc, *bs;
  if (!k.c || !k.s || BIO_new_bio_pair(&bc, 0, &bs, 0) != 1)
    fail("SSL_new / BIO_new_bio_pair");
  SSL_set_bio(k.c, bc, bc);
  SSL_set_bio(k.s, bs, bs);
  SSL_set_connect_state(k.c);
  SSL_set_accept_state(k.s);
  SSL_set_tlsext_host_name(k.c, strcmp(kind, "llm") ? "localhost"
                                                    : "api.openai.com");
  int cd = 0, sd = 0;
  for (int i = 0; i < 100 && !(cd && sd); i++) {
    if (!cd)
      cd = (hooked ? SSL_do_handshake(k.c) : real_handshake(k.c)) == 1;
    if (!sd)
      sd = real_handshake(k.s) == 1;
  }
  if (!cd || !sd)
    fail("handshake");
  return k;
}

static double block(struct conn *k, const struct client_fns *f, long n) {
  double t0 = thread_cpu_s();
  for (long i = 0; i < n; i++)
    round_trip(k->c, k->s, f);
  return thread_cpu_s() - t0;
}

static bool known_kind(const char *kind) {
  if (strcmp(kind, "raw") && strcmp(kind, "http") && strcmp(kind, "llm")) {
    fprintf(stderr, "bench_tls: KIND is raw, http or llm\n");
    return false;
  }
  return true;
}

/* What every mode starts with: libssl's own functions, the kind's
 * messages, a server and a client context. False for an unknown kind. */
static bool setup(const char *cert, const char *key, const char *kind,
                  SSL_CTX **sc, SSL_CTX **cc) {
  if (!known_kind(kind))
    return false;
  if (find_real() != 0)
    fail("libssl's own SSL_read/SSL_write not found");
  make_messages(kind);
  *sc = server_ctx(cert, key);
  *cc = SSL_CTX_new(TLS_client_method());
  if (!*cc)
    fail("SSL_CTX_new");
  return true;
}

static int pair(const char *cert, const char *key, const char *kind, long n,
                int reps) {
  SSL_CTX *sc, *cc;
  if (!setup(cert, key, kind, &sc, &cc))
    return 2;
  struct conn k = connect_pair(cc, sc, kind, true);
  const struct client_fns named = {SSL_read, SSL_write};
  if (reps < 1 || reps > 100)
    reps = 5;
  double ns[100], us[100], cpu = 0;
  long ops_rep = 0;
  for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
    ops = 0;
    double t = block(&k, &named, n);
    if (r < 0)
      continue;
    cpu += t;
    ops_rep = ops;
    ns[r] = t / (double)ops * 1e9;
    us[r] = t / (double)n * 1e6;
  }
  qsort(ns, (size_t)reps, sizeof ns[0], cmp_d);
  qsort(us, (size_t)reps, sizeof us[0], cmp_d);
  printf("tls kind=%s rts=%ld ops=%ld ns_per_op=%.2f ns_per_op_med=%.2f "
         "us_per_rt=%.4f us_per_rt_med=%.4f cpu_s=%.4f\n",
         kind, n, ops_rep, ns[0], ns[reps / 2], us[0], us[reps / 2], cpu);
  SSL_free(k.c);
  SSL_free(k.s);
  SSL_CTX_free(cc);
  SSL_CTX_free(sc);
  return 0;
}

/* paired: two connections of the same kind in this one process and
 * thread, one driven by name (through the hooks under the preload), one by
 * libssl's own functions (never seen by the library), in alternating
 * blocks of n round trips (ABBA order, so that neither side is always
 * first). Each repetition's figure is (A - B) / client calls of the one
 * pair of blocks: the machine's drift between runs cancels, since both
 * sides ran within milliseconds of each other. Without the preload, A and
 * B are the same functions, and the spread of the figure is the method's
 * noise floor. */
static int paired(const char *cert, const char *key, const char *kind, long n,
                  int reps) {
  SSL_CTX *sc, *cc;
  if (!setup(cert, key, kind, &sc, &cc))
    return 2;
  struct conn a = connect_pair(cc, sc, kind, true);
  struct conn b = connect_pair(cc, sc, kind, false);
  const struct client_fns named = {SSL_read, SSL_write};
  const struct client_fns own = {real_read, real_write};
  if (reps < 3 || reps > 10000)
    reps = 101;
  double *d = malloc(sizeof *d * (size_t)reps);
  double *base = malloc(sizeof *base * (size_t)reps);
  if (!d || !base)
    fail("out of memory");
  (void)block(&a, &named, n); /* warm-up, both sides */
  (void)block(&b, &own, n);
  long calls = 0;
  for (int r = 0; r < reps; r++) {
    double ta, tb;
    ops = 0;
    if (r % 2 == 0) {
      ta = block(&a, &named, n);
      calls = ops;
      tb = block(&b, &own, n);
    } else {
      tb = block(&b, &own, n);
      ops = 0;
      ta = block(&a, &named, n);
      calls = ops;
    }
    d[r] = (ta - tb) / (double)calls * 1e9;
    base[r] = tb / (double)calls * 1e9;
  }
  qsort(d, (size_t)reps, sizeof d[0], cmp_d);
  qsort(base, (size_t)reps, sizeof base[0], cmp_d);
  printf("tlsab kind=%s rts=%ld reps=%d ops=%ld added_ns_per_op=%.2f "
         "added_ns_q1=%.2f added_ns_q3=%.2f base_ns_per_op=%.2f "
         "added_us_per_rt=%.4f base_us_per_rt=%.4f\n",
         kind, n, reps, calls, d[reps / 2], d[reps / 4], d[reps * 3 / 4],
         base[reps / 2], d[reps / 2] * (double)calls / (double)n / 1e3,
         base[reps / 2] * (double)calls / (double)n / 1e3);
  free(d);
  free(base);
  SSL_free(a.c);
  SSL_free(a.s);
  SSL_free(b.c);
  SSL_free(b.s);
  SSL_CTX_free(cc);
  SSL_CTX_free(sc);
  return 0;
}

/* reuse: N times, a connection that is not HTTP (stood aside) and then
 * an LLM call on a new connection, each freed after one round trip, in
 * one thread: OpenSSL's allocator hands a new SSL the address of the one
 * just freed, so the hooks' per-thread memo of the last connection must
 * not carry over (the LLM call would go unmetered, or a freed stream be
 * used). Prints "reuse rounds=N reused=K" (K: new SSLs at the address of
 * the one before); exit 1 if an answer is not what the server sent. */
static int reuse(const char *cert, const char *key, long n) {
  SSL_CTX *sc, *cc;
  (void)setup(cert, key, "raw", &sc, &cc);
  const struct client_fns named = {SSL_read, SSL_write};
  const void *last = NULL;
  long reused = 0;
  for (long i = 0; i < 2 * n; i++) {
    const char *kind = i % 2 ? "llm" : "raw";
    make_messages(kind);
    struct conn k = connect_pair(cc, sc, kind, true);
    reused += (const void *)k.c == last;
    last = k.c;
    round_trip(k.c, k.s, &named);
    SSL_free(k.c);
    SSL_free(k.s);
  }
  printf("reuse rounds=%ld reused=%ld\n", n, reused);
  SSL_CTX_free(cc);
  SSL_CTX_free(sc);
  return 0;
}

/* ---- serve ------------------------------------------------------------ */

static void serve_conn(SSL *s) {
  static char zeros[65536];
  char head[8192];
  for (;;) {
    size_t got = 0;
    char *end = NULL;
    while (!end) {
      if (got == sizeof head - 1)
        return;
      int k = real_read(s, head + got, (int)(sizeof head - 1 - got));
      if (k <= 0)
        return; /* the client closed */
      got += (size_t)k;
      head[got] = '\0';
      end = strstr(head, "\r\n\r\n");
    }
    unsigned long long bytes = 0;
    if (strncmp(head, "GET /", 5) == 0)
      bytes = strtoull(head + 5, NULL, 10);
    char h[256];
    int hl = snprintf(
        h, sizeof h,
        "HTTP/1.1 200 OK\r\nContent-Type: "
        "application/octet-stream\r\nContent-Length: %llu\r\n\r\n",
        bytes);
    if (real_write(s, h, hl) != hl)
      return;
    while (bytes) {
      int k = bytes < sizeof zeros ? (int)bytes : (int)sizeof zeros;
      if (real_write(s, zeros, k) != k)
        return;
      bytes -= (unsigned long long)k;
    }
  }
}

static int serve(const char *cert, const char *key, const char *port_file) {
  if (find_real() != 0)
    fail("libssl's own SSL_read/SSL_write not found");
  signal(SIGPIPE, SIG_IGN);
  SSL_CTX *sc = server_ctx(cert, key);
  int l = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof a;
  if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0 ||
      listen(l, 16) != 0 || getsockname(l, (struct sockaddr *)&a, &al) != 0)
    fail("listen");
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
  FILE *f = fopen(tmp, "w");
  if (!f)
    fail("port file");
  fprintf(f, "%d\n", ntohs(a.sin_port));
  fclose(f);
  rename(tmp, port_file);
  for (;;) {
    int fd = accept(l, NULL, NULL);
    if (fd < 0)
      continue;
    SSL *s = SSL_new(sc);
    SSL_set_fd(s, fd);
    SSL_set_accept_state(s);
    if (s && real_handshake(s) == 1) {
      serve_conn(s);
      SSL_shutdown(s);
    }
    SSL_free(s);
    close(fd);
  }
}

int main(int argc, char **argv) {
  if (argc == 7 && strcmp(argv[1], "pair") == 0)
    return pair(argv[2], argv[3], argv[4], atol(argv[5]), atoi(argv[6]));
  if (argc == 7 && strcmp(argv[1], "paired") == 0)
    return paired(argv[2], argv[3], argv[4], atol(argv[5]), atoi(argv[6]));
  if (argc == 5 && strcmp(argv[1], "reuse") == 0)
    return reuse(argv[2], argv[3], atol(argv[4]));
  if (argc == 5 && strcmp(argv[1], "serve") == 0)
    return serve(argv[2], argv[3], argv[4]);
  fprintf(stderr, "usage: bench_tls pair CERT KEY KIND N REPS\n"
                  "       bench_tls paired CERT KEY KIND N REPS\n"
                  "       bench_tls reuse CERT KEY N\n"
                  "       bench_tls serve CERT KEY PORT-FILE\n");
  return 2;
}
