/* bench_server.c — a small epoll HTTP/1.1 server with canned responses, so
 * the per-request benchmarks measure the client and the library, not the
 * (python) mock provider.
 *
 * usage: bench_server PORT-FILE
 * Listens on 127.0.0.1 on a free port, writes the port to PORT-FILE
 * (atomically, once listening) and serves, keep-alive, one thread:
 *
 *   GET  /hello                   25 bytes of text/plain
 *   GET  /download?bytes=N        N bytes of application/octet-stream
 *   POST .../chat/completions     body without "stream":true: a recorded-
 *                                 shape OpenAI chat.completion JSON (~0.6 KB);
 *                                 with it: a ~2 KB OpenAI SSE stream (role
 *                                 chunk, 3 content chunks, finish chunk,
 *                                 include_usage chunk, [DONE]), chunked
 *   header X-Mock-Stream-Bytes: N the stream is padded with content chunks
 *                                 to about N bytes (generated as it is sent)
 *
 * Every response reports usage input=100, output=20 for gpt-4o-mini.
 * Never buffers a large body: big bodies are produced 64 KiB at a time as
 * the socket accepts them. Exits on SIGTERM/SIGINT.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_requests.h"

#define IN_MAX 65536
#define GEN_BUF 65536

static const char hello_body[] = "hello from llmmeter mock\n";

#define CHUNK_HEAD                                                       \
  "data: {\"id\":\"chatcmpl-Dx0Xq5Xx9rHB2ehcHZCRDsnuymUXc\",\"object\":" \
  "\"chat.completion.chunk\",\"created\":1782955818,\"model\":"          \
  "\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\","             \
  "\"system_fingerprint\":\"fp_d0469e1700\",\"choices\":"
#define DELTA(text)                                                           \
  CHUNK_HEAD "[{\"index\":0,\"delta\":{\"content\":\"" text                   \
             "\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null," \
             "\"obfuscation\":\"auU6fTns\"}\n\n"

static const char sse_head[] = CHUNK_HEAD
    "[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":"
    "\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":"
    "null}],\"usage\":null,\"obfuscation\":\"HM7mrUsjk\"}\n\n";
static const char sse_deltas[] = DELTA("The sky is") DELTA(" blue because")
    DELTA(" of Rayleigh scattering.");
static const char sse_pad[] = DELTA(" padding padding padding");
static const char sse_tail[] = CHUNK_HEAD
    "[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":"
    "\"stop\"}],\"usage\":null,\"obfuscation\":\"q1\"}\n\n" CHUNK_HEAD
    "[],\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":20,"
    "\"total_tokens\":120,\"prompt_tokens_details\":{"
    "\"cached_tokens\":0,\"audio_tokens\":0},"
    "\"completion_tokens_details\":{\"reasoning_tokens\":0,"
    "\"audio_tokens\":0,\"accepted_prediction_tokens\":0,"
    "\"rejected_prediction_tokens\":0}},\"obfuscation\":\"x\"}\n\n"
    "data: [DONE]\n\n";

enum gen_kind { GEN_NONE, GEN_BYTES, GEN_PAD };

struct conn {
  int fd;
  size_t in_len;
  char in[IN_MAX];
  char *out; /* heap: headers and small bodies */
  size_t out_len, out_off;
  enum gen_kind gen;
  unsigned long long gen_left; /* bytes (GEN_BYTES) or pad events left */
  int gen_tail;                /* GEN_PAD: tail + last chunk still to send */
};

static char gen_buf[GEN_BUF];
static volatile sig_atomic_t stop;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static void out_add(struct conn *c, const char *p, size_t n) {
  char *o = realloc(c->out, c->out_len + n);
  if (!o) {
    perror("realloc");
    exit(1);
  }
  c->out = o;
  memcpy(c->out + c->out_len, p, n);
  c->out_len += n;
}

static void out_chunk(struct conn *c, const char *p, size_t n) {
  char h[32];
  int k = snprintf(h, sizeof h, "%zx\r\n", n);
  out_add(c, h, (size_t)k);
  out_add(c, p, n);
  out_add(c, "\r\n", 2);
}

static void out_head(struct conn *c, const char *ct, long long len) {
  char h[256];
  int k;
  if (len >= 0)
    k = snprintf(h, sizeof h,
                 "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: "
                 "%lld\r\n\r\n",
                 ct, len);
  else
    k = snprintf(h, sizeof h,
                 "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n",
                 ct);
  out_add(c, h, (size_t)k);
}

static const char *find_header(const char *req, size_t n, const char *name) {
  size_t nl = strlen(name);
  for (const char *p = req; p + nl < req + n; p++)
    if ((p == req || p[-1] == '\n') && strncasecmp(p, name, nl) == 0 &&
        p[nl] == ':')
      return p + nl + 1;
  return NULL;
}

/* A complete request is in c->in[0, hlen + blen): answer it. */
static void respond(struct conn *c, size_t hlen, size_t blen) {
  const char *req = c->in;
  if (strncmp(req, "GET /hello", 10) == 0) {
    out_head(c, "text/plain", (long long)sizeof hello_body - 1);
    out_add(c, hello_body, sizeof hello_body - 1);
  } else if (strncmp(req, "GET /download?bytes=", 20) == 0) {
    unsigned long long n = strtoull(req + 20, NULL, 10);
    out_head(c, "application/octet-stream", (long long)n);
    c->gen = GEN_BYTES;
    c->gen_left = n;
  } else if (strncmp(req, "POST ", 5) == 0 &&
             memmem(req, hlen, "/chat/completions", 17)) {
    const char *body = req + hlen;
    int stream = memmem(body, blen, "\"stream\":true", 13) ||
                 memmem(body, blen, "\"stream\": true", 14);
    if (!stream) {
      out_head(c, "application/json", (long long)sizeof resp_json - 1);
      out_add(c, resp_json, sizeof resp_json - 1);
    } else {
      out_head(c, "text/event-stream; charset=utf-8", -1);
      out_chunk(c, sse_head, sizeof sse_head - 1);
      const char *pad = find_header(req, hlen, "X-Mock-Stream-Bytes");
      unsigned long long want = pad ? strtoull(pad, NULL, 10) : 0;
      if (want) {
        c->gen = GEN_PAD;
        c->gen_left = want / (sizeof sse_pad - 1) + 1;
        c->gen_tail = 1;
      } else {
        out_chunk(c, sse_deltas, sizeof sse_deltas - 1);
        out_chunk(c, sse_tail, sizeof sse_tail - 1);
        out_add(c, "0\r\n\r\n", 5);
      }
    }
  } else {
    static const char nf[] =
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    out_add(c, nf, sizeof nf - 1);
  }
  memmove(c->in, c->in + hlen + blen, c->in_len - hlen - blen);
  c->in_len -= hlen + blen;
}

/* Produces the next piece of a generated body into gen_buf. */
static size_t gen_next(struct conn *c) {
  if (c->gen == GEN_BYTES) {
    size_t n = c->gen_left < GEN_BUF ? (size_t)c->gen_left : GEN_BUF;
    c->gen_left -= n;
    if (c->gen_left == 0)
      c->gen = GEN_NONE;
    return n;
  }
  /* GEN_PAD: one HTTP chunk of whole padding events, then the tail. */
  size_t ev = sizeof sse_pad - 1, n = 0;
  if (c->gen_left) {
    char *p = gen_buf + 16;
    while (c->gen_left && n + ev + 16 < GEN_BUF - 16) {
      memcpy(p + n, sse_pad, ev);
      n += ev;
      c->gen_left--;
    }
    int k = snprintf(gen_buf, 16, "%zx\r\n", n);
    memmove(gen_buf + k, gen_buf + 16, n);
    memcpy(gen_buf + k + n, "\r\n", 2);
    return (size_t)k + n + 2;
  }
  c->gen = GEN_NONE;
  int k = snprintf(gen_buf, GEN_BUF, "%zx\r\n%s\r\n0\r\n\r\n",
                   sizeof sse_tail - 1, sse_tail);
  return (size_t)k;
}

/* Writes what is pending; 0 = done for now, -1 = close. */
static int flush_out(struct conn *c) {
  for (;;) {
    if (c->out_off < c->out_len) {
      ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                       MSG_NOSIGNAL);
      if (w < 0)
        return errno == EAGAIN ? 0 : -1;
      c->out_off += (size_t)w;
      continue;
    }
    c->out_len = c->out_off = 0;
    if (c->gen == GEN_NONE)
      return 0;
    size_t n = gen_next(c);
    out_add(c, gen_buf, n);
  }
}

static int try_requests(struct conn *c) {
  for (;;) {
    char *e = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!e)
      return c->in_len < IN_MAX ? 0 : -1;
    size_t hlen = (size_t)(e - c->in) + 4, blen = 0;
    const char *cl = find_header(c->in, hlen, "Content-Length");
    if (cl)
      blen = strtoul(cl, NULL, 10);
    if (hlen + blen > IN_MAX)
      return -1;
    if (c->in_len < hlen + blen)
      return 0;
    if (c->gen != GEN_NONE || c->out_off < c->out_len)
      return 0; /* one response at a time */
    respond(c, hlen, blen);
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: bench_server PORT-FILE\n");
    return 2;
  }
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 512) ||
      getsockname(ls, (struct sockaddr *)&a, &al)) {
    perror("bench_server");
    return 1;
  }
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
  FILE *pf = fopen(tmp, "w");
  if (!pf || fprintf(pf, "%d\n", ntohs(a.sin_port)) < 0 || fclose(pf) ||
      rename(tmp, argv[1])) {
    perror(argv[1]);
    return 1;
  }
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  struct epoll_event evs[64];
  while (!stop) {
    int n = epoll_wait(ep, evs, 64, 200);
    for (int i = 0; i < n; i++) {
      struct conn *c = evs[i].data.ptr;
      if (!c) {
        int fd;
        while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct conn *nc = calloc(1, sizeof *nc);
          if (!nc) {
            close(fd);
            continue;
          }
          nc->fd = fd;
          struct epoll_event ce = {.events = EPOLLIN | EPOLLOUT | EPOLLET,
                                   .data.ptr = nc};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ce);
        }
        continue;
      }
      int dead = 0;
      if (evs[i].events & (EPOLLERR | EPOLLHUP))
        dead = 1;
      while (!dead) { /* edge-triggered: drain reads and writes */
        ssize_t r = 0;
        if (c->in_len < IN_MAX) {
          r = recv(c->fd, c->in + c->in_len, IN_MAX - c->in_len, 0);
          if (r == 0) {
            dead = 1;
            break;
          }
          if (r < 0 && errno != EAGAIN) {
            dead = 1;
            break;
          }
          if (r > 0)
            c->in_len += (size_t)r;
        }
        if (flush_out(c) < 0 || try_requests(c) < 0 || flush_out(c) < 0) {
          dead = 1;
          break;
        }
        int blocked = c->out_off < c->out_len;
        if (r <= 0 || blocked)
          break;
      }
      if (dead) {
        close(c->fd);
        free(c->out);
        free(c);
      }
    }
  }
  return 0;
}
