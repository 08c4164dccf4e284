/* serve.c — `llmmeter serve [--listen HOST:PORT] [--budget NAME]...`: an
 * HTTP/1.1 endpoint with /metrics (Prometheus text, every budget of this
 * user or the ones named) and /status.json (their `status --json`).
 *
 * Why it is built this way:
 * - Read only. A scrape snapshots budgets through budget.h and never
 *   reclaims, resets or configures: a monitoring endpoint must not change
 *   what it measures. Nothing is written to disk.
 * - Loopback unless told otherwise: spend and model names are this user's
 *   business; --listen 0.0.0.0:9464 is an explicit choice.
 * - Bounded: one thread and one poll(2) loop; at most CONN_MAX open
 *   connections, a request head of at most HEAD_MAX bytes (431 past it),
 *   DEADLINE_MS to send it (then the connection is dropped), one request
 *   per connection (Connection: close), GET and HEAD only, and at most
 *   BUDGETS_MAX budgets per answer. A slow or hostile client costs one
 *   slot for a few seconds, never memory or the loop.
 * - Clean shutdown: SIGTERM and SIGINT are blocked except inside ppoll(2),
 *   so the signal is taken exactly where the loop checks for it (no race
 *   between the check and the wait); the loop closes every socket and the
 *   command exits 0.
 */
#include "serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "budget.h"
#include "cli.h"
#include "status.h"

#define CONN_MAX 32
#define HEAD_MAX 4096
#define DEADLINE_MS 5000
#define BUDGETS_MAX 64

struct conn {
  int fd; /* -1: free */
  size_t len;
  int64_t deadline_ms;
  char head[HEAD_MAX];
};

struct server {
  int lfd;
  struct conn conns[CONN_MAX];
  const char *names[BUDGETS_MAX]; /* --budget; none: every budget */
  int n_names;
};

static volatile sig_atomic_t stopping;

static void on_stop(int sig) {
  (void)sig;
  stopping = 1;
}

static int64_t mono_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

/* HOST:PORT, [V6]:PORT or :PORT (loopback) into a listening socket. */
static int listen_on(const char *spec, char *shown, size_t shown_len) {
  char host[256];
  const char *colon = strrchr(spec, ':');
  if (!colon || !colon[1] || (size_t)(colon - spec) >= sizeof(host))
    return -2;
  memcpy(host, spec, (size_t)(colon - spec));
  host[colon - spec] = 0;
  char *h = host;
  if (h[0] == '[') { /* [::1]:9464 */
    size_t n = strlen(h);
    if (n < 2 || h[n - 1] != ']')
      return -2;
    h[n - 1] = 0;
    h++;
  }
  if (!*h)
    h = "127.0.0.1";
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                  *ai;
  if (getaddrinfo(h, colon + 1, &hints, &ai) != 0)
    return -2;
  int fd = -1;
  for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
      continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 64) != 0) {
      close(fd);
      fd = -1;
      continue;
    }
    /* What we listen on, with the port the kernel chose for :0. */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
      if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
        port = ntohs(s6->sin6_port);
      } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        port = ntohs(s4->sin_port);
      }
    }
    snprintf(shown, shown_len, ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d",
             ip, port);
  }
  freeaddrinfo(ai);
  return fd;
}

/* The budgets one answer covers: the --budget names, or every budget of
 * this user (up to BUDGETS_MAX). */
struct budget_set {
  struct lm_snapshot *snaps[BUDGETS_MAX];
  int n;
};

static void take_snapshot(const char *name, void *ctx) {
  struct budget_set *bs = ctx;
  struct lm_budget *b;
  char err[256];
  if (bs->n == BUDGETS_MAX ||
      lm_budget_open(name, false, &b, err, sizeof(err)) != 0)
    return; /* unusable or foreign budgets are left out, not fatal */
  struct lm_snapshot *s = malloc(sizeof(*s));
  if (s && lm_budget_snapshot(b, s) == 0)
    bs->snaps[bs->n++] = s;
  else
    free(s);
  lm_budget_close(b);
}

static void collect(const struct server *sv, struct budget_set *bs) {
  bs->n = 0;
  if (sv->n_names)
    for (int i = 0; i < sv->n_names; i++)
      take_snapshot(sv->names[i], bs);
  else
    lm_segment_list(take_snapshot, bs);
}

static void release(struct budget_set *bs) {
  for (int i = 0; i < bs->n; i++)
    free(bs->snaps[i]);
  bs->n = 0;
}

/* The body for a path, or NULL for an unknown one. */
static char *body_for(const struct server *sv, const char *path,
                      const char **type, size_t *len) {
  char *buf = NULL;
  FILE *o = open_memstream(&buf, len);
  if (!o)
    return NULL;
  struct budget_set bs;
  if (strcmp(path, "/metrics") == 0) {
    *type = "text/plain; version=0.0.4; charset=utf-8";
    collect(sv, &bs);
    lm_status_print_prom(o, (const struct lm_snapshot *const *)bs.snaps, bs.n);
    fprintf(o,
            "# HELP llmmeter_budgets Budgets this endpoint reports.\n"
            "# TYPE llmmeter_budgets gauge\nllmmeter_budgets %d\n",
            bs.n);
    release(&bs);
  } else if (strcmp(path, "/status.json") == 0) {
    *type = "application/json";
    collect(sv, &bs);
    fputs("{\"budgets\":[", o);
    for (int i = 0; i < bs.n; i++) {
      if (i)
        fputc(',', o);
      lm_status_print(o, bs.snaps[i], LM_FMT_JSON);
    }
    fputs("]}\n", o);
    release(&bs);
  } else if (strcmp(path, "/") == 0) {
    *type = "text/plain; charset=utf-8";
    fputs("llmmeter serve: /metrics (Prometheus), /status.json\n", o);
  } else {
    fclose(o);
    free(buf);
    return NULL;
  }
  if (fclose(o) != 0) {
    free(buf);
    return NULL;
  }
  return buf;
}

/* Sends all of buf or gives up at the deadline. The socket stays
 * non-blocking: a client that stops reading costs at most DEADLINE_MS. */
static void send_all(int fd, const char *buf, size_t len, int64_t deadline) {
  while (len) {
    ssize_t k = send(fd, buf, len, MSG_NOSIGNAL);
    if (k > 0) {
      buf += k;
      len -= (size_t)k;
      continue;
    }
    if (k < 0 && errno != EAGAIN && errno != EINTR)
      return;
    int64_t left = deadline - mono_ms();
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    if (left <= 0 || poll(&p, 1, (int)left) <= 0)
      return;
  }
}

static void respond(int fd, int code, const char *reason, const char *type,
                    const char *body, size_t len, bool head_only,
                    int64_t deadline) {
  char h[512];
  int n = snprintf(h, sizeof(h),
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                   "Content-Length: %zu\r\nCache-Control: no-store\r\n"
                   "X-Content-Type-Options: nosniff\r\n%s"
                   "Connection: close\r\n\r\n",
                   code, reason, type, len,
                   code == 405 ? "Allow: GET, HEAD\r\n" : "");
  send_all(fd, h, (size_t)n, deadline);
  if (!head_only)
    send_all(fd, body, len, deadline);
}

static void simple(int fd, int code, const char *reason, int64_t deadline) {
  char body[96];
  int n = snprintf(body, sizeof(body), "%d %s\n", code, reason);
  respond(fd, code, reason, "text/plain; charset=utf-8", body, (size_t)n, false,
          deadline);
}

/* A complete head is in c: answer it. */
static void handle(const struct server *sv, struct conn *c) {
  char method[8], target[1024], version[16];
  int64_t deadline = mono_ms() + DEADLINE_MS;
  c->head[c->len] = 0;
  /* The request line alone matters: no header changes the answer. */
  if (sscanf(c->head, "%7s %1023s %15s", method, target, version) != 3 ||
      strncmp(version, "HTTP/1.", 7) != 0) {
    simple(c->fd, 400, "Bad Request", deadline);
    return;
  }
  bool head_only = strcmp(method, "HEAD") == 0;
  if (!head_only && strcmp(method, "GET") != 0) {
    simple(c->fd, 405, "Method Not Allowed", deadline);
    return;
  }
  target[strcspn(target, "?#")] = 0; /* scrapers may add ?query */
  const char *type = NULL;
  size_t len = 0;
  char *body = body_for(sv, target, &type, &len);
  if (!body) {
    simple(c->fd, 404, "Not Found", deadline);
    return;
  }
  respond(c->fd, 200, "OK", type, body, len, head_only, deadline);
  free(body);
}

static void conn_close(struct conn *c) {
  close(c->fd);
  c->fd = -1;
}

static void conn_read(const struct server *sv, struct conn *c) {
  ssize_t k = recv(c->fd, c->head + c->len, HEAD_MAX - 1 - c->len, 0);
  if (k < 0 && (errno == EAGAIN || errno == EINTR))
    return;
  if (k <= 0) {
    conn_close(c);
    return;
  }
  c->len += (size_t)k;
  c->head[c->len] = 0;
  if (strstr(c->head, "\r\n\r\n") || strstr(c->head, "\n\n"))
    handle(sv, c);
  else if (c->len == HEAD_MAX - 1) {
    simple(c->fd, 431, "Request Header Fields Too Large",
           mono_ms() + DEADLINE_MS);
    /* Closing with the rest of the head unread would reset the
     * connection, and the client could lose the answer: end our side and
     * drop what has already arrived (bounded, never waiting). */
    shutdown(c->fd, SHUT_WR);
    char sink[4096];
    for (int i = 0; i < 16 && recv(c->fd, sink, sizeof(sink), 0) > 0; i++)
      ;
  } else
    return;
  conn_close(c);
}

/* Accepts while there are free slots; the rest wait in the backlog. */
static void conn_accept(struct server *sv) {
  for (int i = 0; i < CONN_MAX; i++) {
    struct conn *c = &sv->conns[i];
    if (c->fd >= 0)
      continue;
    struct sockaddr_storage peer;
    socklen_t pl = sizeof(peer);
    c->fd = accept4(sv->lfd, (struct sockaddr *)&peer, &pl,
                    SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c->fd < 0)
      return;
    c->len = 0;
    c->deadline_ms = mono_ms() + DEADLINE_MS;
  }
}

static int serve_loop(struct server *sv, const sigset_t *wait_mask) {
  struct pollfd p[CONN_MAX + 1];
  while (!stopping) {
    int n = 0, free_slots = 0, who[CONN_MAX + 1];
    int64_t now = mono_ms(), next = now + 60000;
    for (int i = 0; i < CONN_MAX; i++) {
      struct conn *c = &sv->conns[i];
      if (c->fd < 0) {
        free_slots++;
        continue;
      }
      if (c->deadline_ms <= now) {
        conn_close(c); /* too slow to send its request */
        free_slots++;
        continue;
      }
      if (c->deadline_ms < next)
        next = c->deadline_ms;
      p[n] = (struct pollfd){.fd = c->fd, .events = POLLIN};
      who[n++] = i;
    }
    if (free_slots) { /* full: new connections wait in the backlog */
      p[n] = (struct pollfd){.fd = sv->lfd, .events = POLLIN};
      who[n++] = -1;
    }
    int64_t wait = next - now;
    struct timespec ts = {.tv_sec = wait / 1000,
                          .tv_nsec = (wait % 1000) * 1000000};
    int r = ppoll(p, (nfds_t)n, &ts, wait_mask);
    if (r < 0 && errno != EINTR)
      return -1;
    for (int i = 0; r > 0 && i < n; i++) {
      if (!p[i].revents)
        continue;
      if (who[i] < 0)
        conn_accept(sv);
      else
        conn_read(sv, &sv->conns[who[i]]);
    }
  }
  return 0;
}

int lm_cli_serve(int argc, char **argv) {
  const char *listen_spec = LM_SERVE_DEFAULT_LISTEN;
  static struct server sv; /* 130 KiB of heads: not on the stack */
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
      listen_spec = argv[++i];
    else if (strcmp(argv[i], "--budget") == 0 && i + 1 < argc) {
      if (!lm_segment_name_valid(argv[i + 1]) || sv.n_names == BUDGETS_MAX) {
        fprintf(stderr, "llmmeter: invalid budget name '%s'\n", argv[i + 1]);
        return LM_EXIT_USAGE;
      }
      sv.names[sv.n_names++] = argv[++i];
    } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      printf("usage: llmmeter serve [--listen HOST:PORT] [--budget NAME]...\n"
             "  serves /metrics and /status.json (default %s)\n",
             LM_SERVE_DEFAULT_LISTEN);
      return LM_EXIT_OK;
    } else {
      fprintf(stderr,
              "llmmeter: serve: unknown option '%s' (see 'llmmeter --help')\n",
              argv[i]);
      return LM_EXIT_USAGE;
    }
  }
  for (int i = 0; i < CONN_MAX; i++)
    sv.conns[i].fd = -1;
  /* Blocked from here on, taken only inside ppoll (see the top). */
  sigset_t block, wait_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  sigprocmask(SIG_BLOCK, &block, &wait_mask);
  sigdelset(&wait_mask, SIGTERM);
  sigdelset(&wait_mask, SIGINT);
  struct sigaction sa = {.sa_handler = on_stop};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  char shown[300];
  sv.lfd = listen_on(listen_spec, shown, sizeof(shown));
  if (sv.lfd == -2) {
    fprintf(stderr,
            "llmmeter: --listen needs HOST:PORT such as 127.0.0.1:9464 (got "
            "'%s')\n",
            listen_spec);
    return LM_EXIT_USAGE;
  }
  if (sv.lfd < 0) {
    fprintf(stderr, "llmmeter: cannot listen on %s: %s\n", listen_spec,
            strerror(errno));
    return LM_EXIT_ERROR;
  }
  fprintf(stderr, "llmmeter: serving http://%s/metrics and /status.json\n",
          shown);
  int rc = serve_loop(&sv, &wait_mask);
  for (int i = 0; i < CONN_MAX; i++)
    if (sv.conns[i].fd >= 0)
      conn_close(&sv.conns[i]);
  close(sv.lfd);
  if (rc != 0) {
    fprintf(stderr, "llmmeter: serve: %s\n", strerror(errno));
    return LM_EXIT_ERROR;
  }
  fprintf(stderr, "llmmeter: serve: stopped\n");
  return LM_EXIT_OK;
}
