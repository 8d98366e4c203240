/* The C ABI (kupstream_c.h) driven from C on a libuv loop, against kubesim and real HTTP Pods
 * (pods.py), which tests/c/run_c_test.py starts: cluster "tke-a" holds Service default/httpbin
 * (port "http" 8000 -> 8080) with the Pods named in KUP_TEST_PODS ("name=address,...").
 * Covers: errors and versions, bad configs, watch + snapshot iteration + a change, pick from
 * another thread, forward (GET, streamed POST with backpressure both ways), destroying handles
 * inside their own callbacks, stats and metrics; and that the loop closes cleanly. */
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "c_test_util.h"
#include "kupstream/kupstream_c.h"

static uv_loop_t loop;
static char pod_names[2][64];
static char pod_addrs[2][64];

static const char* kDocument =
    "name: web\n"
    "services:\n"
    "  - {cluster: tke-a, namespace: default, service: httpbin, port: http, weight: 1}\n"
    "timeouts: {connect_ms: 5000, response_header_ms: 60000, total_ms: 120000}\n"
    "retries: {max: 1}\n";

static kup_cluster* make_cluster(void) {
  kup_cluster* c = make_test_cluster(&loop);
  CHECK(strcmp(kup_cluster_name(c), "tke-a") == 0);
  return c;
}

static kup_upstream* make_upstream(kup_cluster* c) {
  kup_upstream* u = NULL;
  kup_error err = KUP_ERROR_INIT;
  int rc = kup_upstream_create(&loop, kDocument, (size_t)-1, &c, 1, NULL, NULL, &u, &err);
  if (rc != KUP_OK) fprintf(stderr, "kup_upstream_create: %s\n", err.reason);
  REQUIRE(rc == KUP_OK && u != NULL);
  kup_error_clear(&err);
  return u;
}

/* Ready, with both Pods in the picker. */
static int ready_flag;
static void poll_ready(uv_timer_t* t) {
  kup_upstream* u = (kup_upstream*)t->data;
  if (!kup_upstream_ready(u)) return;
  kup_picker* p = kup_upstream_picker(u);
  if (p != NULL && kup_picker_count(p) == 2) ready_flag = 1;
  kup_picker_destroy(p);
}
static void wait_ready(kup_upstream* u) {
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  t.data = u;
  ready_flag = 0;
  uv_timer_start(&t, poll_ready, 5, 5);
  REQUIRE(run_until(&loop, &ready_flag, 20000));
  uv_close((uv_handle_t*)&t, NULL);
  run_for(&loop, 1);
}

/* ---------------------------------------------------------------------------------------- */

static void test_versions_and_errors(void) {
  CHECK(kup_version() == KUP_VERSION_NUMBER);
  CHECK(strcmp(kup_version_string(), KUP_VERSION_STRING) == 0);
  CHECK(strcmp(kup_strerror(KUP_NO_ENDPOINT), "no endpoint available") == 0);
  CHECK(strcmp(kup_strerror(KUP_OK), "success") == 0);
  CHECK(strcmp(kup_strerror(9999), "unknown error") == 0);
  CHECK(strcmp(kup_errc_name(KUP_INVALID_CONFIG), "KUP_INVALID_CONFIG") == 0);
  CHECK(strcmp(kup_errc_name(KUP_INTERNAL), "KUP_INTERNAL") == 0);
  CHECK(strcmp(kup_errc_name(KUP_NO_MEMORY), "KUP_NO_MEMORY") == 0);
  CHECK(strcmp(kup_errc_name(-3), "KUP_UNKNOWN") == 0);
}

static void test_bad_config(kup_cluster* c) {
  kup_error err = KUP_ERROR_INIT;
  kup_upstream* u = (kup_upstream*)&err; /* must be reset to NULL */

  /* A bad field: code and a reason naming the field and value. */
  const char* bad_ns =
      "name: web\n"
      "services:\n"
      "  - {cluster: tke-a, namespace: Default, service: httpbin, port: http}\n";
  CHECK(kup_upstream_create(&loop, bad_ns, strlen(bad_ns), &c, 1, NULL, NULL, &u, &err) == KUP_INVALID_CONFIG);
  CHECK(u == NULL);
  CHECK(err.code == KUP_INVALID_CONFIG);
  REQUIRE(err.reason != NULL);
  CHECK(strstr(err.reason, "services[0].namespace") != NULL);
  CHECK(strstr(err.reason, "Default") != NULL);
  printf("bad config reason: %s\n", err.reason);

  /* An unknown key (a typo) in JSON; the same kup_error is reused (it is cleared first). */
  const char* typo = "{\"name\": \"web\", \"services\": [{\"cluster\": \"tke-a\", \"namespace\": \"default\","
                     " \"service\": \"httpbin\", \"port\": 8000}], \"retries\": {\"max_retry\": 3}}";
  CHECK(kup_upstream_create(&loop, typo, (size_t)-1, &c, 1, NULL, NULL, &u, &err) == KUP_INVALID_CONFIG);
  CHECK(err.reason != NULL && strstr(err.reason, "retries.max_retry") != NULL);

  /* A cluster that was not given. */
  const char* other = "name: web\nservices:\n  - {cluster: tke-z, namespace: default, service: httpbin, port: http}\n";
  CHECK(kup_upstream_create(&loop, other, (size_t)-1, &c, 1, NULL, NULL, &u, &err) == KUP_INVALID_CONFIG);
  CHECK(err.reason != NULL && strstr(err.reason, "tke-z") != NULL);
  kup_error_clear(&err);
  CHECK(err.reason == NULL && err.code == KUP_OK);

  /* A bad watch argument names the field. */
  kup_watcher* w = NULL;
  CHECK(kup_watch(c, "default", "Not_A_Service", "http", NULL, NULL, &w, &err) == KUP_INVALID_CONFIG);
  CHECK(w == NULL && err.reason != NULL && strstr(err.reason, "Not_A_Service") != NULL);
  CHECK(kup_watch(c, "default", "httpbin", "http", "pool", NULL, &w, &err) == KUP_INVALID_CONFIG);
  CHECK(err.reason != NULL && strstr(err.reason, "node_labels[0]") != NULL);

  /* A kubeconfig that does not exist: the reason names the file. */
  kup_cluster_options o;
  kup_cluster_options_init(&o);
  o.kubeconfig = "/nonexistent/kubeconfig.yaml";
  kup_cluster* bad = (kup_cluster*)&err;
  int rc = kup_cluster_create(&loop, &o, &bad, &err);
  CHECK(rc != KUP_OK);
  CHECK(bad == NULL);
  CHECK(err.reason != NULL && strstr(err.reason, "/nonexistent/kubeconfig.yaml") != NULL);

  /* A size the library does not know. */
  o.size = 3;
  CHECK(kup_cluster_create(&loop, &o, &bad, NULL) == KUP_INVALID_ARGUMENT);
  kup_error_clear(&err);
}

/* ---- watch ---- */

typedef struct {
  int changes, states, synced;
  size_t last_ready;
  int saw_both_pods, pod_names_ok;
  int destroy_on_change; /* destroy the watcher inside on_change number N */
  int destroyed;
  kup_snapshot* kept;
} watch_ctx;

static void on_change(kup_watcher* w, const kup_snapshot* s, void* data) {
  watch_ctx* ctx = (watch_ctx*)data;
  CHECK(!ctx->destroyed);
  ++ctx->changes;
  ctx->last_ready = kup_snapshot_count(s, KUP_ENDPOINTS_READY);
  int found[2] = {0, 0};
  ctx->pod_names_ok = 1;
  for (size_t i = 0; i < ctx->last_ready; ++i) {
    kup_endpoint e;
    CHECK(kup_snapshot_endpoint(s, KUP_ENDPOINTS_READY, i, &e) == KUP_OK);
    CHECK(e.port == 8080);
    CHECK(e.ready == 1 && e.terminating == 0);
    for (int p = 0; p < 2; ++p)
      if (strcmp(e.address, pod_addrs[p]) == 0) {
        found[p] = 1;
        if (strcmp(e.pod_name, pod_names[p]) != 0) ctx->pod_names_ok = 0;
      }
  }
  kup_endpoint past;
  CHECK(kup_snapshot_endpoint(s, KUP_ENDPOINTS_READY, ctx->last_ready, &past) == KUP_INVALID_ARGUMENT);
  if (found[0] && found[1]) ctx->saw_both_pods = 1;
  CHECK(kup_snapshot_generation(s) > 0);
  if (ctx->kept == NULL) ctx->kept = kup_snapshot_copy(s);
  if (ctx->destroy_on_change == ctx->changes) {
    kup_watcher_destroy(w);
    ctx->destroyed = 1;
  }
}

static void on_state(kup_watcher* w, const kup_watch_state* st, void* data) {
  watch_ctx* ctx = (watch_ctx*)data;
  (void)w;
  CHECK(!ctx->destroyed);
  ++ctx->states;
  CHECK(st->phase_name != NULL && st->reason != NULL);
  if (st->phase == KUP_WATCH_SYNCED) {
    ctx->synced = 1;
    CHECK(strcmp(st->phase_name, "synced") == 0);
  }
}

static void test_watch(kup_cluster* c) {
  watch_ctx ctx;
  memset(&ctx, 0, sizeof ctx);
  ctx.destroy_on_change = 2; /* the change after the scale-down */
  kup_watcher_callbacks cb = {on_change, on_state, &ctx};
  kup_watcher* w = NULL;
  kup_error err = KUP_ERROR_INIT;
  REQUIRE(kup_watch(c, "default", "httpbin", "http", NULL, &cb, &w, &err) == KUP_OK);
  CHECK(ctx.changes == 0); /* never inside the call */
  CHECK(kup_watcher_snapshot(w) == NULL);
  REQUIRE(run_until(&loop, &ctx.changes, 20000));
  CHECK(ctx.last_ready == 2);
  CHECK(ctx.saw_both_pods);
  CHECK(ctx.pod_names_ok);
  CHECK(ctx.synced);
  char* reason = NULL;
  CHECK(kup_watcher_phase(w, &reason) == KUP_WATCH_SYNCED);
  CHECK(reason != NULL && reason[0] == '\0');
  kup_string_free(reason);
  kup_snapshot* now = kup_watcher_snapshot(w);
  REQUIRE(now != NULL);
  CHECK(kup_snapshot_count(now, KUP_ENDPOINTS_READY) == 2);
  CHECK(kup_snapshot_count(now, KUP_ENDPOINTS_DRAINING) == 0);
  CHECK(kup_snapshot_resource_version(now)[0] != '\0');
  kup_snapshot_destroy(now);

  /* The runner scales down to one Pod: the next change arrives, and the watcher is destroyed
   * inside that callback; no callback follows. */
  char cmd[128];
  snprintf(cmd, sizeof cmd, "drop %s", pod_names[1]);
  tell_runner(cmd);
  REQUIRE(run_until(&loop, &ctx.destroyed, 20000));
  CHECK(ctx.last_ready == 1);
  snprintf(cmd, sizeof cmd, "add %s", pod_names[1]);
  tell_runner(cmd);
  run_for(&loop, 300);
  CHECK(ctx.changes == 2);
  /* The copy taken in the first callback outlives the watcher, unchanged. */
  REQUIRE(ctx.kept != NULL);
  CHECK(kup_snapshot_count(ctx.kept, KUP_ENDPOINTS_READY) == 2);
  kup_snapshot_destroy(ctx.kept);
}

/* ---- pick from another thread ---- */

typedef struct {
  const kup_upstream* upstream;
  int picks[2], failures, bad_service;
} pick_ctx;

static void pick_thread(void* arg) {
  pick_ctx* p = (pick_ctx*)arg;
  for (int i = 0; i < 2000; ++i) {
    kup_pick_result r;
    if (kup_upstream_pick(p->upstream, 0, &r, NULL) != KUP_OK) {
      ++p->failures;
      continue;
    }
    if (strcmp(r.service, "tke-a/default/httpbin:http") != 0 || r.port != 8080) ++p->bad_service;
    for (int k = 0; k < 2; ++k)
      if (strcmp(r.address, pod_addrs[k]) == 0 && strcmp(r.pod_name, pod_names[k]) == 0) ++p->picks[k];
  }
}

static void test_pick(kup_upstream* u) {
  pick_ctx p;
  memset(&p, 0, sizeof p);
  p.upstream = u;
  uv_thread_t t;
  REQUIRE(uv_thread_create(&t, pick_thread, &p) == 0);
  REQUIRE(uv_thread_join(&t) == 0);
  CHECK(p.failures == 0);
  CHECK(p.bad_service == 0);
  /* Round robin over two equal Pods. */
  CHECK(p.picks[0] == 1000);
  CHECK(p.picks[1] == 1000);

  kup_picker* picker = kup_upstream_picker(u);
  REQUIRE(picker != NULL);
  CHECK(kup_picker_count(picker) == 2);
  kup_endpoint e;
  uint32_t weight = 0;
  CHECK(kup_picker_endpoint(picker, 0, &e, &weight) == KUP_OK);
  CHECK(weight > 0 && e.port == 8080);
  kup_pick_result r;
  CHECK(kup_picker_pick(picker, 0, &r, NULL) == KUP_OK);
  kup_picker_destroy(picker);
}

/* ---- forward ---- */

typedef struct {
  int status, completed, code, heads, writable_waits, paused_once, bodies_after_destroy;
  int destroy_in; /* 0 none, 1 head, 2 body, 3 complete */
  int destroy_upstream_in_body;
  kup_upstream** upstream;
  size_t body_bytes;
  char pod_header[64];
  char body_start[1024];
  char reason[512];
  kup_forward* req;
  int destroyed;
  /* streamed POST */
  size_t to_send, sent;
  int ended;
  uv_timer_t resume_timer;
} fwd_ctx;

static void copy_header(const kup_response_head* h, const char* name, char* out, size_t cap) {
  for (size_t i = 0; i < h->header_count; ++i) {
    if (h->headers[i].name_len == strlen(name) && strncasecmp(h->headers[i].name, name, h->headers[i].name_len) == 0) {
      size_t n = h->headers[i].value_len < cap - 1 ? h->headers[i].value_len : cap - 1;
      memcpy(out, h->headers[i].value, n);
      out[n] = '\0';
    }
  }
}

static void fwd_head(kup_forward* r, const kup_response_head* h, void* data) {
  fwd_ctx* c = (fwd_ctx*)data;
  CHECK(!c->destroyed);
  ++c->heads;
  c->status = h->status;
  CHECK(h->pod != NULL && strchr(h->pod, ':') != NULL);
  copy_header(h, "X-Pod", c->pod_header, sizeof c->pod_header);
  if (c->destroy_in == 1) {
    kup_forward_destroy(r);
    c->destroyed = 1;
  }
}

static void on_resume(uv_timer_t* t) {
  fwd_ctx* c = (fwd_ctx*)t->data;
  if (!c->destroyed) kup_forward_resume(c->req);
}

static void fwd_body(kup_forward* r, const char* chunk, size_t len, void* data) {
  fwd_ctx* c = (fwd_ctx*)data;
  CHECK(!c->destroyed);
  if (c->body_bytes < sizeof c->body_start - 1) {
    size_t n = len < sizeof c->body_start - 1 - c->body_bytes ? len : sizeof c->body_start - 1 - c->body_bytes;
    memcpy(c->body_start + c->body_bytes, chunk, n);
  }
  c->body_bytes += len;
  if (c->destroy_upstream_in_body) {
    kup_upstream_destroy(*c->upstream);
    *c->upstream = NULL;
    c->destroy_upstream_in_body = 0;
    c->destroyed = 1; /* no callback of the request may follow */
    return;
  }
  if (c->destroy_in == 2) {
    kup_forward_destroy(r);
    c->destroyed = 1;
    return;
  }
  if (c->to_send > 0 && !c->paused_once) {
    /* Backpressure toward the Pod: hold the response for a while, then resume. */
    c->paused_once = 1;
    kup_forward_pause(r);
    uv_timer_start(&c->resume_timer, on_resume, 100, 0);
  }
}

static void fwd_complete(kup_forward* r, int code, const char* reason, void* data) {
  fwd_ctx* c = (fwd_ctx*)data;
  CHECK(!c->destroyed);
  c->code = code;
  snprintf(c->reason, sizeof c->reason, "%s", reason);
  if (c->destroy_in == 3) {
    kup_forward_destroy(r);
    c->destroyed = 1;
  }
  c->completed = 1;
}

static void write_more(fwd_ctx* c) {
  static char chunk[65536];
  memset(chunk, 'p', sizeof chunk);
  while (c->sent < c->to_send) {
    size_t n = c->to_send - c->sent < sizeof chunk ? c->to_send - c->sent : sizeof chunk;
    int writable = 1;
    kup_error err = KUP_ERROR_INIT;
    int rc = kup_forward_write(c->req, chunk, n, &writable, &err);
    if (rc != KUP_OK) fprintf(stderr, "kup_forward_write: %s\n", err.reason);
    kup_error_clear(&err);
    REQUIRE(rc == KUP_OK);
    c->sent += n;
    if (!writable) {
      ++c->writable_waits;
      return;
    }
  }
  if (!c->ended) {
    c->ended = 1;
    CHECK(kup_forward_end(c->req, NULL) == KUP_OK);
    CHECK(kup_forward_end(c->req, NULL) == KUP_INVALID_ARGUMENT);
  }
}

static void fwd_writable(kup_forward* r, void* data) {
  fwd_ctx* c = (fwd_ctx*)data;
  (void)r;
  write_more(c);
}

static kup_forward* start(kup_upstream* u, fwd_ctx* c, const kup_request* req) {
  kup_forward_callbacks cb = {fwd_head, fwd_body, fwd_writable, fwd_complete, c};
  kup_error err = KUP_ERROR_INIT;
  int rc = kup_upstream_forward(u, req, &cb, &c->req, &err);
  if (rc != KUP_OK) fprintf(stderr, "kup_upstream_forward: %s\n", err.reason);
  REQUIRE(rc == KUP_OK);
  kup_error_clear(&err);
  return c->req;
}

static void test_forward_get(kup_upstream* u) {
  fwd_ctx c;
  memset(&c, 0, sizeof c);
  kup_header hdr = {"X-Test", 6, "c-abi", 5};
  kup_request req;
  memset(&req, 0, sizeof req);
  req.target = "/hello";
  req.headers = &hdr;
  req.header_count = 1;
  req.client_address = "127.0.0.9";
  start(u, &c, &req);
  CHECK(c.heads == 0);
  REQUIRE(run_until(&loop, &c.completed, 20000));
  CHECK(c.code == KUP_OK);
  CHECK(c.status == 200);
  CHECK(strcmp(c.pod_header, pod_names[0]) == 0 || strcmp(c.pod_header, pod_names[1]) == 0);
  CHECK(strstr(c.body_start, "\"path\": \"/hello\"") != NULL);
  CHECK(strstr(c.body_start, "127.0.0.9") != NULL);
  kup_forward_destroy(c.req);

  /* A bad request is refused by the call; no callback runs. */
  fwd_ctx bad;
  memset(&bad, 0, sizeof bad);
  kup_forward_callbacks cb = {fwd_head, fwd_body, fwd_writable, fwd_complete, &bad};
  req.target = "/a\r\nb";
  kup_forward* f = (kup_forward*)&bad;
  kup_error err = KUP_ERROR_INIT;
  CHECK(kup_upstream_forward(u, &req, &cb, &f, &err) == KUP_INVALID_ARGUMENT);
  CHECK(f == NULL && err.reason != NULL);
  kup_error_clear(&err);
  run_for(&loop, 20);
  CHECK(bad.heads == 0 && bad.completed == 0);
}

static void test_forward_streamed_post(kup_upstream* u) {
  fwd_ctx c;
  memset(&c, 0, sizeof c);
  uv_timer_init(&loop, &c.resume_timer);
  c.resume_timer.data = &c;
  c.to_send = 2u << 20; /* 2 MiB: well past the 256 KiB high-water mark */
  kup_request req;
  memset(&req, 0, sizeof req);
  req.method = "POST";
  req.target = "/echo";
  req.streamed = 1;
  req.content_length = -1; /* chunked */
  start(u, &c, &req);
  write_more(&c);
  REQUIRE(run_until(&loop, &c.completed, 120000));
  if (c.code != KUP_OK) fprintf(stderr, "streamed POST: %s\n", c.reason);
  CHECK(c.code == KUP_OK);
  CHECK(c.status == 200);
  CHECK(c.ended);
  CHECK(c.writable_waits > 0); /* the writer did wait for on_writable */
  CHECK(c.paused_once);
  CHECK(c.body_bytes == c.to_send);
  /* Writing after the end is refused. */
  CHECK(kup_forward_write(c.req, "x", 1, NULL, NULL) == KUP_INVALID_ARGUMENT);
  kup_forward_destroy(c.req);
  uv_close((uv_handle_t*)&c.resume_timer, NULL);
  run_for(&loop, 1);
}

static void test_destroy_inside_callbacks(kup_upstream** u) {
  for (int where = 1; where <= 3; ++where) {
    fwd_ctx c;
    memset(&c, 0, sizeof c);
    c.destroy_in = where;
    kup_request req;
    memset(&req, 0, sizeof req);
    req.target = "/bytes/300000";
    start(*u, &c, &req);
    REQUIRE(run_until(&loop, &c.destroyed, 20000));
    run_for(&loop, 100);
    CHECK(c.completed == (where == 3));
  }
  /* Destroying the upstream inside a request's on_body: that request falls silent; its handle
   * outlives the upstream and is destroyed afterwards. */
  fwd_ctx c;
  memset(&c, 0, sizeof c);
  c.destroy_upstream_in_body = 1;
  c.upstream = u;
  kup_request req;
  memset(&req, 0, sizeof req);
  req.target = "/bytes/2000000";
  start(*u, &c, &req);
  REQUIRE(run_until(&loop, &c.destroyed, 20000));
  run_for(&loop, 200);
  CHECK(*u == NULL);
  CHECK(c.completed == 0);
  CHECK(kup_forward_write(c.req, "x", 1, NULL, NULL) != KUP_OK);
  kup_forward_destroy(c.req);
}

static void test_stats_and_metrics(kup_upstream* u) {
  kup_stats s;
  CHECK(kup_upstream_stats(u, &s) == KUP_OK);
  CHECK(s.requests >= 2);
  CHECK(s.pods == 2);
  CHECK(s.services == 1 && s.services_synced == 1);
  CHECK(s.ejected == 0);
  size_t len = 0;
  char* text = kup_upstream_metrics(u, &len);
  REQUIRE(text != NULL);
  CHECK(len == strlen(text));
  CHECK(strstr(text, "kupstream_") != NULL);
  CHECK(strstr(text, "upstream=\"web\"") != NULL);
  kup_string_free(text);
  CHECK(strcmp(kup_upstream_name(u), "web") == 0);
  CHECK(strcmp(kup_upstream_hash_header(u), "") == 0);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  read_test_pods(pod_names, pod_addrs);
  REQUIRE(uv_loop_init(&loop) == 0);

  test_versions_and_errors();
  kup_cluster* c = make_cluster();
  test_bad_config(c);
  printf("watch\n");
  test_watch(c);
  kup_upstream* u = make_upstream(c);
  wait_ready(u);
  printf("pick\n");
  test_pick(u);
  printf("forward GET\n");
  test_forward_get(u);
  printf("forward streamed POST\n");
  test_forward_streamed_post(u);
  test_stats_and_metrics(u);
  printf("destroy inside callbacks\n");
  test_destroy_inside_callbacks(&u);
  kup_upstream_destroy(u); /* NULL by now: ignored */
  kup_cluster_destroy(c);

  CHECK(close_loop_cleanly(&loop));
  return test_result("all C ABI checks passed");
}
