/* tcp_relay: the cheapest proxy the gateway benchmark can measure, as a floor for the others.
 *
 *   tcp_relay LISTEN_PORT THREADS POD_ADDR:PORT [POD_ADDR:PORT ...]
 *
 * It does what every proxy that does not pipeline must do and nothing else: each thread has its
 * own SO_REUSEPORT listener on 127.0.0.1:LISTEN_PORT and its own epoll; each accepted client
 * connection gets its own connection to the next Pod (round robin over the Pods given), and bytes
 * are copied both ways as they come, one read() and one write() per readiness event. No HTTP
 * parsing, no routing, no pooling, no timers. Its CPU per request is what the kernel and the
 * system calls of a request cost a proxy (docs/gateway-performance.md, "The floor").
 *
 * Only loopback addresses are accepted. It runs until it is killed (the harness stops it by PID).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { kBufSize = 16384, kMaxPods = 16, kMaxEvents = 64 };

/* One side of a relayed pair. `pending` holds bytes read from this side that the peer's socket
 * did not take yet; while there are any, this side is not read. */
struct side {
  int fd;
  int closed;
  struct side* peer;
  struct side* next_closed;
  size_t pending_off;
  size_t pending_len;
  char buf[kBufSize];
};

struct worker {
  int epfd;
  int listen_fd;
  unsigned next_pod;
  struct side* closed; /* freed after the batch of events that closed them */
};

static struct sockaddr_in pods[kMaxPods];
static int pod_count;
static int listen_port;

static void die(const char* what) {
  perror(what);
  exit(1);
}

static int parse_loopback(const char* spec, struct sockaddr_in* out) {
  char host[64];
  const char* colon = strrchr(spec, ':');
  if (colon == NULL || (size_t)(colon - spec) >= sizeof host) return -1;
  memcpy(host, spec, (size_t)(colon - spec));
  host[colon - spec] = '\0';
  memset(out, 0, sizeof *out);
  out->sin_family = AF_INET;
  out->sin_port = htons((unsigned short)atoi(colon + 1));
  if (inet_pton(AF_INET, host, &out->sin_addr) != 1) return -1;
  if ((ntohl(out->sin_addr.s_addr) >> 24) != 127) return -1; /* loopback only */
  return 0;
}

static void watch(struct worker* w, struct side* s, int op, unsigned events) {
  struct epoll_event ev = {.events = events, .data.ptr = s};
  if (epoll_ctl(w->epfd, op, s->fd, &ev) != 0) die("epoll_ctl");
}

static void close_pair(struct worker* w, struct side* s) {
  struct side* both[2] = {s, s->peer};
  for (int i = 0; i < 2; ++i) {
    if (both[i]->closed) continue;
    both[i]->closed = 1;
    close(both[i]->fd);
    both[i]->next_closed = w->closed;
    w->closed = both[i];
  }
}

/* Writes what `from` holds to its peer. Returns 0 when all of it went, 1 when the peer's socket
 * is full (the caller waits for EPOLLOUT), -1 on an error. */
static int flush(struct side* from) {
  while (from->pending_len > 0) {
    ssize_t n = write(from->peer->fd, from->buf + from->pending_off, from->pending_len);
    if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 1 : -1;
    from->pending_off += (size_t)n;
    from->pending_len -= (size_t)n;
  }
  return 0;
}

static void on_readable(struct worker* w, struct side* s) {
  ssize_t n = read(s->fd, s->buf, kBufSize);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
    close_pair(w, s);
    return;
  }
  if (n < 0) return;
  s->pending_off = 0;
  s->pending_len = (size_t)n;
  int r = flush(s);
  if (r < 0) {
    close_pair(w, s);
  } else if (r > 0) { /* stop reading this side until the peer drains */
    watch(w, s, EPOLL_CTL_MOD, 0);
    watch(w, s->peer, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT);
  }
}

static void on_writable(struct worker* w, struct side* s) {
  struct side* from = s->peer;
  int r = flush(from);
  if (r < 0) {
    close_pair(w, s);
  } else if (r == 0) {
    watch(w, s, EPOLL_CTL_MOD, EPOLLIN);
    watch(w, from, EPOLL_CTL_MOD, EPOLLIN);
  }
}

static struct side* new_side(int fd) {
  struct side* s = calloc(1, sizeof *s);
  if (s == NULL) die("calloc");
  s->fd = fd;
  return s;
}

static void on_accept(struct worker* w) {
  int one = 1;
  int cfd = accept4(w->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (cfd < 0) return;
  int ufd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (ufd < 0) die("socket");
  setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const struct sockaddr_in* pod = &pods[w->next_pod++ % (unsigned)pod_count];
  if (connect(ufd, (const struct sockaddr*)pod, sizeof *pod) != 0 && errno != EINPROGRESS) {
    close(cfd);
    close(ufd);
    return;
  }
  struct side* c = new_side(cfd);
  struct side* u = new_side(ufd);
  c->peer = u;
  u->peer = c;
  watch(w, c, EPOLL_CTL_ADD, EPOLLIN);
  watch(w, u, EPOLL_CTL_ADD, EPOLLIN);
}

static void* run_worker(void* arg) {
  struct worker* w = arg;
  struct epoll_event events[kMaxEvents];
  for (;;) {
    int n = epoll_wait(w->epfd, events, kMaxEvents, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      struct side* s = events[i].data.ptr;
      if (s == NULL) {
        on_accept(w);
        continue;
      }
      if (s->closed) continue;
      if (events[i].events & EPOLLOUT) on_writable(w, s);
      if (!s->closed && (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && s->pending_len == 0)
        on_readable(w, s);
    }
    while (w->closed != NULL) {
      struct side* s = w->closed;
      w->closed = s->next_closed;
      free(s);
    }
  }
  return NULL;
}

static int make_listener(void) {
  int one = 1;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) die("SO_REUSEPORT");
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)listen_port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr*)&a, sizeof a) != 0) die("bind (address in use?)");
  if (listen(fd, 1024) != 0) die("listen");
  return fd;
}

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s LISTEN_PORT THREADS POD_ADDR:PORT [POD_ADDR:PORT ...]\n", argv[0]);
    return 2;
  }
  listen_port = atoi(argv[1]);
  int threads = atoi(argv[2]);
  if (listen_port <= 0 || listen_port > 65535 || threads < 1 || threads > 64) {
    fprintf(stderr, "tcp_relay: bad LISTEN_PORT %s or THREADS %s\n", argv[1], argv[2]);
    return 2;
  }
  for (int i = 3; i < argc; ++i) {
    if (pod_count == kMaxPods || parse_loopback(argv[i], &pods[pod_count++]) != 0) {
      fprintf(stderr, "tcp_relay: Pod %s is not a loopback ADDR:PORT (or more than %d Pods)\n", argv[i],
              kMaxPods);
      return 2;
    }
  }
  pthread_t tids[64];
  struct worker* workers = calloc((size_t)threads, sizeof *workers);
  if (workers == NULL) die("calloc");
  for (int i = 0; i < threads; ++i) {
    struct worker* w = &workers[i];
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->epfd < 0) die("epoll_create1");
    w->listen_fd = make_listener();
    w->next_pod = (unsigned)i;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->listen_fd, &ev) != 0) die("epoll_ctl listener");
  }
  for (int i = 1; i < threads; ++i)
    if (pthread_create(&tids[i], NULL, run_worker, &workers[i]) != 0) die("pthread_create");
  run_worker(&workers[0]);
  return 0;
}
