/* kup-c-gateway: a minimal HTTP/1.1 gateway in C on libuv and llhttp that sends every request to
 * one kupstream Upstream through the C ABI (kupstream/kupstream_c.h). It shows what a C host
 * does: create a cluster and an upstream from a YAML/JSON document, parse client requests with
 * llhttp, forward them with streamed request bodies (reading stops while the Pod side is full)
 * and streamed responses (the Pod side pauses while the client is slow), and close everything
 * on SIGTERM/SIGINT so that the loop closes cleanly.
 *
 *   kup-c-gateway --upstream FILE [--kubeconfig F] [--context C] [--cluster NAME]
 *                 [--listen ADDRESS:PORT] [--ready-file FILE]
 *
 * GET /__kup/metrics answers the upstream's Prometheus text. Requests are served one at a time
 * per connection (pipelined ones wait their turn). See docs/bindings-c.md.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <llhttp.h>
#include <uv.h>

#include "kupstream/kupstream_c.h"

#define MAX_HEADERS 100
#define CLIENT_HIGH_WATER (1u << 20) /* bytes queued to a client before the Pod side pauses */

typedef struct {
  char* data;
  size_t len, cap;
} buf_t;

static int buf_add(buf_t* b, const char* p, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char* d = (char*)realloc(b->data, cap);
    if (d == NULL) return -1;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

static int buf_printf(buf_t* b, const char* fmt, ...) {
  char tmp[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return -1;
  return buf_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

typedef struct gateway gateway;

typedef struct conn {
  uv_tcp_t tcp;
  gateway* gw;
  struct conn *prev, *next;
  llhttp_t parser;
  int closing;
  char peer[64];
  /* the request being read */
  buf_t url;
  buf_t names[MAX_HEADERS], values[MAX_HEADERS];
  size_t header_count;
  int in_value;
  /* the exchange */
  kup_forward* fwd;
  int request_done;     /* client request fully read */
  int response_started; /* head sent to the client */
  int streamed;         /* the request has a body, streamed to the Pod */
  int chunked;          /* response relayed with chunked encoding */
  int keep_alive;
  int reading_stopped_for_body; /* the Pod side is full: wait for on_writable */
  int pod_paused;               /* the client side is full: kup_forward_pause */
  buf_t pending;                /* bytes read past a complete request (pipelining) */
} conn;

struct gateway {
  uv_loop_t* loop;
  uv_tcp_t server;
  uv_signal_t sigterm, sigint;
  kup_cluster* cluster;
  kup_upstream* upstream;
  conn* conns;
  int stopping;
};

typedef struct {
  uv_write_t req;
  conn* c;
  char* data;
} write_req;

static void conn_close(conn* c);
static void read_cb(uv_stream_t* s, ssize_t n, const uv_buf_t* b);
static void alloc_cb(uv_handle_t* h, size_t size, uv_buf_t* b);
static void feed(conn* c, const char* data, size_t len);
static void close_after_writes(conn* c);

static void log_cb(kup_log_level level, const char* message, size_t len, void* data) {
  static const char* names[] = {"debug", "info", "warning", "error"};
  (void)data;
  if (level >= KUP_LOG_INFO) fprintf(stderr, "[%s] %.*s\n", names[level], (int)len, message);
}

/* ---- writing to the client ---- */

static void on_written(uv_write_t* w, int status) {
  write_req* wr = (write_req*)w;
  conn* c = wr->c;
  free(wr->data);
  free(wr);
  if (status < 0) {
    conn_close(c);
    return;
  }
  if (c->pod_paused && c->fwd != NULL && uv_stream_get_write_queue_size((uv_stream_t*)&c->tcp) < CLIENT_HIGH_WATER / 2) {
    c->pod_paused = 0;
    kup_forward_resume(c->fwd);
  }
}

/* Takes ownership of data (malloc'ed). */
static void send_owned(conn* c, char* data, size_t len) {
  if (c->closing || len == 0) {
    free(data);
    return;
  }
  write_req* wr = (write_req*)malloc(sizeof *wr);
  if (wr == NULL) {
    free(data);
    conn_close(c);
    return;
  }
  wr->c = c;
  wr->data = data;
  uv_buf_t b = uv_buf_init(data, (unsigned)len);
  if (uv_write(&wr->req, (uv_stream_t*)&c->tcp, &b, 1, on_written) != 0) {
    free(data);
    free(wr);
    conn_close(c);
  }
}

static void send_buf(conn* c, buf_t* b) {
  send_owned(c, b->data, b->len);
  b->data = NULL;
  b->len = b->cap = 0;
}

static void send_simple(conn* c, int status, const char* reason, const char* ctype, const char* body, size_t len) {
  buf_t b = {0};
  buf_printf(&b, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n", status, reason, ctype, len,
             c->keep_alive ? "" : "Connection: close\r\n");
  buf_add(&b, body, len);
  c->response_started = 1;
  send_buf(c, &b);
}

/* ---- request lifecycle ---- */

static void reset_request(conn* c) {
  c->url.len = 0;
  for (size_t i = 0; i < c->header_count; ++i) c->names[i].len = c->values[i].len = 0;
  c->header_count = 0;
  c->in_value = 0;
  c->request_done = c->response_started = c->chunked = c->streamed = 0;
}

static void on_shutdown(uv_shutdown_t* sd, int status) {
  conn* c = (conn*)sd->data;
  (void)status;
  free(sd);
  conn_close(c);
}

/* uv_close would cancel queued writes: shut the write side down first, then close. */
static void close_after_writes(conn* c) {
  if (c->closing) return;
  uv_read_stop((uv_stream_t*)&c->tcp);
  uv_shutdown_t* sd = (uv_shutdown_t*)malloc(sizeof *sd);
  if (sd != NULL) sd->data = c;
  if (sd == NULL || uv_shutdown(sd, (uv_stream_t*)&c->tcp, on_shutdown) != 0) {
    free(sd);
    conn_close(c);
  }
}

/* The exchange is over (the response was sent or failed): go on with the next request. */
static void finish_exchange(conn* c) {
  if (c->fwd != NULL) {
    kup_forward_destroy(c->fwd);
    c->fwd = NULL;
  }
  c->pod_paused = 0;
  if (!c->keep_alive || c->gw->stopping) {
    close_after_writes(c);
    return;
  }
  reset_request(c);
  llhttp_resume(&c->parser);
  if (c->reading_stopped_for_body) c->reading_stopped_for_body = 0;
  uv_read_start((uv_stream_t*)&c->tcp, alloc_cb, read_cb);
  if (c->pending.len > 0) {
    buf_t p = c->pending;
    c->pending = (buf_t){0};
    feed(c, p.data, p.len);
    free(p.data);
  }
}

static void fwd_head(kup_forward* f, const kup_response_head* h, void* data) {
  conn* c = (conn*)data;
  (void)f;
  buf_t b = {0};
  c->chunked = h->content_length < 0 && h->status != 204 && h->status != 304;
  buf_printf(&b, "HTTP/1.1 %d %s\r\n", h->status, h->status < 400 ? "OK" : "Error");
  for (size_t i = 0; i < h->header_count; ++i) {
    const kup_header* x = &h->headers[i];
    if ((x->name_len == 17 && strncasecmp(x->name, "transfer-encoding", 17) == 0) ||
        (x->name_len == 10 && strncasecmp(x->name, "connection", 10) == 0))
      continue;
    buf_add(&b, x->name, x->name_len);
    buf_add(&b, ": ", 2);
    buf_add(&b, x->value, x->value_len);
    buf_add(&b, "\r\n", 2);
  }
  if (c->chunked) buf_printf(&b, "Transfer-Encoding: chunked\r\n");
  if (!c->keep_alive) buf_printf(&b, "Connection: close\r\n");
  buf_add(&b, "\r\n", 2);
  c->response_started = 1;
  send_buf(c, &b);
}

static void fwd_body(kup_forward* f, const char* chunk, size_t len, void* data) {
  conn* c = (conn*)data;
  buf_t b = {0};
  if (c->chunked) buf_printf(&b, "%zx\r\n", len);
  buf_add(&b, chunk, len);
  if (c->chunked) buf_add(&b, "\r\n", 2);
  send_buf(c, &b);
  if (!c->closing && uv_stream_get_write_queue_size((uv_stream_t*)&c->tcp) >= CLIENT_HIGH_WATER) {
    c->pod_paused = 1;
    kup_forward_pause(f);
  }
}

static void fwd_writable(kup_forward* f, void* data) {
  conn* c = (conn*)data;
  (void)f;
  if (c->reading_stopped_for_body && !c->closing) {
    c->reading_stopped_for_body = 0;
    uv_read_start((uv_stream_t*)&c->tcp, alloc_cb, read_cb);
  }
}

static void fwd_complete(kup_forward* f, int code, const char* reason, void* data) {
  conn* c = (conn*)data;
  (void)f;
  if (code != KUP_OK) {
    fprintf(stderr, "[warning] %s %s: %s: %s\n", c->peer, c->url.data ? c->url.data : "", kup_errc_name(code), reason);
    if (c->response_started) { /* cannot report it any more: cut the connection */
      conn_close(c);
      return;
    }
    int status = code == KUP_NO_ENDPOINT ? 503 : code == KUP_TIMED_OUT ? 504 : 502;
    c->keep_alive = c->keep_alive && c->request_done;
    buf_t body = {0};
    buf_printf(&body, "%s: %s\n", kup_errc_name(code), reason);
    send_simple(c, status, "Error", "text/plain", body.data, body.len);
    free(body.data);
  } else if (c->chunked) {
    char* end = strdup("0\r\n\r\n");
    send_owned(c, end, 5);
  }
  if (!c->request_done) c->keep_alive = 0; /* the client is still sending a body nobody reads */
  finish_exchange(c);
}

/* ---- llhttp callbacks ---- */

static int on_url(llhttp_t* p, const char* at, size_t len) { return buf_add(&((conn*)p->data)->url, at, len); }

static int on_header_field(llhttp_t* p, const char* at, size_t len) {
  conn* c = (conn*)p->data;
  if (c->in_value || c->header_count == 0) {
    if (c->header_count == MAX_HEADERS) return -1;
    ++c->header_count;
    c->in_value = 0;
  }
  return buf_add(&c->names[c->header_count - 1], at, len);
}

static int on_header_value(llhttp_t* p, const char* at, size_t len) {
  conn* c = (conn*)p->data;
  c->in_value = 1;
  return buf_add(&c->values[c->header_count - 1], at, len);
}

static int on_headers_complete(llhttp_t* p) {
  conn* c = (conn*)p->data;
  c->keep_alive = llhttp_should_keep_alive(p);
  const char* url = c->url.data ? c->url.data : "/";
  if (strcmp(url, "/__kup/metrics") == 0) {
    size_t len = 0;
    char* text = kup_upstream_metrics(c->gw->upstream, &len);
    send_simple(c, 200, "OK", "text/plain; version=0.0.4", text ? text : "", text ? len : 0);
    kup_string_free(text);
    return 0; /* answered when the message completes */
  }
  kup_header headers[MAX_HEADERS];
  const char* host = NULL;
  const char* hash_header = kup_upstream_hash_header(c->gw->upstream);
  uint64_t hash = 0;
  for (size_t i = 0; i < c->header_count; ++i) {
    headers[i] = (kup_header){c->names[i].data ? c->names[i].data : "", c->names[i].len,
                              c->values[i].data ? c->values[i].data : "", c->values[i].len};
    if (strcasecmp(headers[i].name, "host") == 0) host = headers[i].value;
    if (hash_header[0] != '\0' && strcasecmp(headers[i].name, hash_header) == 0)
      hash = kup_hash_key(headers[i].value, headers[i].value_len);
  }
  int has_body = (p->flags & F_CHUNKED) != 0 || ((p->flags & F_CONTENT_LENGTH) != 0 && p->content_length > 0);
  kup_request req;
  memset(&req, 0, sizeof req);
  req.method = llhttp_method_name((llhttp_method_t)llhttp_get_method(p));
  req.target = url;
  req.headers = headers;
  req.header_count = c->header_count;
  req.client_address = c->peer;
  req.client_host = host;
  req.streamed = has_body;
  c->streamed = has_body;
  req.content_length = (p->flags & F_CHUNKED) ? -1 : (int64_t)p->content_length;
  req.hash = hash;
  kup_forward_callbacks cb = {fwd_head, fwd_body, fwd_writable, fwd_complete, c};
  kup_error err = KUP_ERROR_INIT;
  if (kup_upstream_forward(c->gw->upstream, &req, &cb, &c->fwd, &err) != KUP_OK) {
    c->keep_alive = 0;
    send_simple(c, 400, "Bad Request", "text/plain", err.reason ? err.reason : "", err.reason ? strlen(err.reason) : 0);
    c->fwd = NULL;
    kup_error_clear(&err);
    return -1;
  }
  return 0;
}

static int on_body(llhttp_t* p, const char* at, size_t len) {
  conn* c = (conn*)p->data;
  if (c->fwd == NULL) return 0;
  int writable = 1;
  if (kup_forward_write(c->fwd, at, len, &writable, NULL) != KUP_OK) return 0; /* it failed: on_complete says why */
  if (!writable && !c->reading_stopped_for_body) {
    c->reading_stopped_for_body = 1; /* resume in on_writable */
    uv_read_stop((uv_stream_t*)&c->tcp);
  }
  return 0;
}

static int on_message_complete(llhttp_t* p) {
  conn* c = (conn*)p->data;
  c->request_done = 1;
  if (c->fwd != NULL && c->streamed) (void)kup_forward_end(c->fwd, NULL); /* a failure reaches on_complete */
  /* One request at a time: the rest waits in `pending`; feed() finishes a local answer. */
  return HPE_PAUSED;
}

static llhttp_settings_t settings;

static void feed(conn* c, const char* data, size_t len) {
  if (c->closing) return;
  llhttp_errno_t e = llhttp_execute(&c->parser, data, len);
  if (e == HPE_OK) return;
  if (e == HPE_PAUSED) {
    const char* pos = llhttp_get_error_pos(&c->parser);
    size_t used = pos != NULL ? (size_t)(pos - data) : len;
    if (used < len) buf_add(&c->pending, data + used, len - used);
    uv_read_stop((uv_stream_t*)&c->tcp);
    if (c->fwd == NULL) finish_exchange(c); /* a local answer */
    return;
  }
  fprintf(stderr, "[warning] %s: bad request: %s\n", c->peer, llhttp_get_error_reason(&c->parser));
  if (c->fwd == NULL && !c->response_started) {
    c->keep_alive = 0;
    const char* msg = "bad request\n";
    send_simple(c, 400, "Bad Request", "text/plain", msg, strlen(msg));
  }
  if (c->fwd != NULL) {
    kup_forward_destroy(c->fwd);
    c->fwd = NULL;
  }
  close_after_writes(c);
}

/* ---- connections ---- */

static void alloc_cb(uv_handle_t* h, size_t size, uv_buf_t* b) {
  (void)h;
  b->base = (char*)malloc(size);
  b->len = b->base ? size : 0;
}

static void read_cb(uv_stream_t* s, ssize_t n, const uv_buf_t* b) {
  conn* c = (conn*)s->data;
  if (n > 0) feed(c, b->base, (size_t)n);
  else if (n < 0) conn_close(c);
  free(b->base);
}

static void on_conn_closed(uv_handle_t* h) {
  conn* c = (conn*)h->data;
  free(c->url.data);
  for (size_t i = 0; i < MAX_HEADERS; ++i) {
    free(c->names[i].data);
    free(c->values[i].data);
  }
  free(c->pending.data);
  free(c);
}

static void conn_close(conn* c) {
  if (c->closing) return;
  c->closing = 1;
  if (c->fwd != NULL) {
    kup_forward_destroy(c->fwd); /* may run inside one of its callbacks: allowed */
    c->fwd = NULL;
  }
  if (c->prev) c->prev->next = c->next;
  else c->gw->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  uv_close((uv_handle_t*)&c->tcp, on_conn_closed);
}

static void on_connection(uv_stream_t* server, int status) {
  gateway* gw = (gateway*)server->data;
  if (status < 0) return;
  conn* c = (conn*)calloc(1, sizeof *c);
  if (c == NULL) return;
  c->gw = gw;
  uv_tcp_init(gw->loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(server, (uv_stream_t*)&c->tcp) != 0) {
    uv_close((uv_handle_t*)&c->tcp, on_conn_closed);
    return;
  }
  c->next = gw->conns;
  if (gw->conns) gw->conns->prev = c;
  gw->conns = c;
  struct sockaddr_storage ss;
  int namelen = sizeof ss;
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr*)&ss, &namelen) == 0) {
    if (ss.ss_family == AF_INET) uv_ip4_name((struct sockaddr_in*)&ss, c->peer, sizeof c->peer);
    else uv_ip6_name((struct sockaddr_in6*)&ss, c->peer, sizeof c->peer);
  }
  llhttp_init(&c->parser, HTTP_REQUEST, &settings);
  c->parser.data = c;
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t*)&c->tcp, alloc_cb, read_cb);
}

static void on_signal(uv_signal_t* s, int signum) {
  gateway* gw = (gateway*)s->data;
  fprintf(stderr, "[info] signal %d: stopping\n", signum);
  gw->stopping = 1;
  while (gw->conns != NULL) conn_close(gw->conns);
  uv_close((uv_handle_t*)&gw->server, NULL);
  uv_close((uv_handle_t*)&gw->sigterm, NULL);
  uv_close((uv_handle_t*)&gw->sigint, NULL);
  kup_upstream_destroy(gw->upstream);
  gw->upstream = NULL;
  kup_cluster_destroy(gw->cluster);
  gw->cluster = NULL;
}

static char* read_file(const char* path) {
  FILE* f = fopen(path, "rb");
  if (f == NULL) return NULL;
  buf_t b = {0};
  char tmp[4096];
  size_t n;
  while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) buf_add(&b, tmp, n);
  fclose(f);
  if (b.data == NULL) buf_add(&b, "", 0);
  return b.data;
}

int main(int argc, char** argv) {
  const char *upstream_file = NULL, *kubeconfig = NULL, *context = NULL, *cluster_name = NULL,
             *listen = "127.0.0.1:8080", *ready_file = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--upstream") == 0) upstream_file = argv[i + 1];
    else if (strcmp(argv[i], "--kubeconfig") == 0) kubeconfig = argv[i + 1];
    else if (strcmp(argv[i], "--context") == 0) context = argv[i + 1];
    else if (strcmp(argv[i], "--cluster") == 0) cluster_name = argv[i + 1];
    else if (strcmp(argv[i], "--listen") == 0) listen = argv[i + 1];
    else if (strcmp(argv[i], "--ready-file") == 0) ready_file = argv[i + 1];
    else {
      fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (upstream_file == NULL) {
    fprintf(stderr, "usage: %s --upstream FILE [--kubeconfig F] [--context C] [--cluster NAME] "
                    "[--listen ADDRESS:PORT] [--ready-file FILE]\n", argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  char* document = read_file(upstream_file);
  if (document == NULL) {
    fprintf(stderr, "%s: cannot read\n", upstream_file);
    return 1;
  }

  uv_loop_t loop;
  uv_loop_init(&loop);
  gateway gw;
  memset(&gw, 0, sizeof gw);
  gw.loop = &loop;
  llhttp_settings_init(&settings);
  settings.on_url = on_url;
  settings.on_header_field = on_header_field;
  settings.on_header_value = on_header_value;
  settings.on_headers_complete = on_headers_complete;
  settings.on_body = on_body;
  settings.on_message_complete = on_message_complete;

  kup_cluster_options co;
  kup_cluster_options_init(&co);
  co.name = cluster_name;
  co.kubeconfig = kubeconfig;
  co.context = context;
  co.log = log_cb;
  kup_error err = KUP_ERROR_INIT;
  int status = 1;
  if (kup_cluster_create(&loop, &co, &gw.cluster, &err) != KUP_OK) {
    fprintf(stderr, "cluster: %s: %s\n", kup_errc_name(err.code), err.reason);
    goto out;
  }
  if (kup_upstream_create(&loop, document, (size_t)-1, &gw.cluster, 1, log_cb, NULL, &gw.upstream, &err) != KUP_OK) {
    fprintf(stderr, "%s: %s: %s\n", upstream_file, kup_errc_name(err.code), err.reason);
    goto out;
  }

  char host[64];
  snprintf(host, sizeof host, "%s", listen);
  char* colon = strrchr(host, ':');
  struct sockaddr_in addr;
  if (colon == NULL || uv_ip4_addr((*colon = '\0', host), atoi(colon + 1), &addr) != 0) {
    fprintf(stderr, "--listen %s: not ADDRESS:PORT\n", listen);
    goto out;
  }
  uv_tcp_init(&loop, &gw.server);
  gw.server.data = &gw;
  int rc = uv_tcp_bind(&gw.server, (const struct sockaddr*)&addr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t*)&gw.server, 128, on_connection);
  if (rc != 0) {
    fprintf(stderr, "--listen %s: %s\n", listen, uv_strerror(rc));
    uv_close((uv_handle_t*)&gw.server, NULL);
    goto out;
  }
  struct sockaddr_in bound;
  int len = sizeof bound;
  uv_tcp_getsockname(&gw.server, (struct sockaddr*)&bound, &len);
  uv_signal_init(&loop, &gw.sigterm);
  uv_signal_init(&loop, &gw.sigint);
  gw.sigterm.data = gw.sigint.data = &gw;
  uv_signal_start(&gw.sigterm, on_signal, SIGTERM);
  uv_signal_start(&gw.sigint, on_signal, SIGINT);
  fprintf(stderr, "[info] kup-c-gateway %s: listening on port %d, upstream \"%s\"\n", kup_version_string(),
          ntohs(bound.sin_port), kup_upstream_name(gw.upstream));
  if (ready_file != NULL) {
    FILE* f = fopen(ready_file, "w");
    if (f != NULL) {
      fprintf(f, "{\"port\": %d}\n", ntohs(bound.sin_port));
      fclose(f);
    }
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  status = 0;

out:
  kup_error_clear(&err);
  kup_upstream_destroy(gw.upstream);
  kup_cluster_destroy(gw.cluster);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop) != 0) {
    fprintf(stderr, "[error] the loop did not close cleanly\n");
    status = 1;
  }
  free(document);
  return status;
}
