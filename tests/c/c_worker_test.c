/* The C ABI's worker loops (kup_worker) and zone-aware routing state (kup_upstream_locality),
 * driven from C against kubesim and two real HTTP Pods that tests/c/run_c_test.py starts.
 *
 * The main thread runs the control loop: the cluster, the upstream and its discovery. A second
 * thread runs a worker loop with a kup_worker of that upstream, and checks:
 *   - the worker becomes ready from the upstream's discovery and forwards 20 requests over both
 *     Pods, on its own loop (handlers run on the worker's thread);
 *   - kup_worker_pick and kup_worker_picker from the worker's thread;
 *   - destroying the worker inside the last request's callback, then its loop closes cleanly;
 *   - the upstream counts the worker's requests (stats and the locality counters);
 *   - once the upstream is destroyed, a second worker refuses requests with
 *     KUP_OPERATION_CANCELED naming the upstream, is not ready, picks nothing, and still closes. */
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "c_test_util.h"
#include "kupstream/kupstream_c.h"

enum { kRequests = 20 };

static uv_loop_t control;
static char pod_names[2][64];

static const char* kDocument =
    "name: web\n"
    "services:\n"
    "  - {cluster: tke-a, namespace: default, service: httpbin, port: http}\n"
    "locality: {zone: zone-a, min_endpoints: 1}\n"
    "timeouts: {connect_ms: 5000, response_header_ms: 60000, total_ms: 120000}\n";

/* What the worker thread saw; written by it, read by the main thread after a handshake. */
typedef struct {
  kup_upstream* upstream; /* used by the worker thread only to create its workers */
  atomic_int first_done;    /* the first worker is destroyed and its loop closed */
  atomic_int upstream_gone; /* the main thread destroyed the upstream */
  atomic_int all_done;      /* the worker thread has finished */
  /* results */
  int ready, completed, ok, by_pod[2], other_pod, picked, picker_count, loop_closed[2];
  int after_gone_code, after_gone_names_upstream, after_gone_ready, after_gone_pick;
  int wrong_thread;
  uv_thread_t self;
  kup_worker* worker;
  kup_forward* requests[kRequests];
} worker_ctx;

static void copy_header(const kup_response_head* h, const char* name, char* out, size_t cap) {
  out[0] = '\0';
  for (size_t i = 0; i < h->header_count; ++i) {
    const kup_header* f = &h->headers[i];
    if (f->name_len == strlen(name) && strncasecmp(f->name, name, f->name_len) == 0) {
      size_t n = f->value_len < cap - 1 ? f->value_len : cap - 1;
      memcpy(out, f->value, n);
      out[n] = '\0';
    }
  }
}

typedef struct {
  worker_ctx* ctx;
  int index;
} request_slot;

static request_slot slots[kRequests];

static void on_head(kup_forward* r, const kup_response_head* h, void* data) {
  (void)r;
  request_slot* s = (request_slot*)data;
  uv_thread_t now = uv_thread_self();
  if (!uv_thread_equal(&now, &s->ctx->self)) ++s->ctx->wrong_thread;
  char pod[64];
  copy_header(h, "X-Pod", pod, sizeof pod);
  if (h->status != 200) return;
  if (strcmp(pod, pod_names[0]) == 0)
    ++s->ctx->by_pod[0];
  else if (strcmp(pod, pod_names[1]) == 0)
    ++s->ctx->by_pod[1];
  else
    ++s->ctx->other_pod;
}

static void on_complete(kup_forward* r, int code, const char* reason, void* data) {
  request_slot* s = (request_slot*)data;
  worker_ctx* c = s->ctx;
  if (code != KUP_OK) fprintf(stderr, "worker request %d: %s: %s\n", s->index, kup_errc_name(code), reason);
  c->ok += code == KUP_OK;
  kup_forward_destroy(r); /* allowed inside its own callback */
  c->requests[s->index] = NULL;
  if (++c->completed == kRequests) {
    kup_worker_destroy(c->worker); /* inside a callback of one of its requests */
    c->worker = NULL;
  }
}

/* Polls kup_worker_ready on the worker's loop. */
static int worker_ready_flag;
static void poll_worker_ready(uv_timer_t* t) {
  if (kup_worker_ready((const kup_worker*)t->data)) worker_ready_flag = 1;
}

static void close_loop(uv_loop_t* loop, int* closed) { *closed = close_loop_cleanly(loop); }

static void worker_thread(void* arg) {
  worker_ctx* c = (worker_ctx*)arg;
  c->self = uv_thread_self();
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  kup_error err = KUP_ERROR_INIT;
  int rc = kup_upstream_worker(c->upstream, &loop, &c->worker, &err);
  if (rc != KUP_OK) fprintf(stderr, "kup_upstream_worker: %s\n", err.reason);
  REQUIRE(rc == KUP_OK && c->worker != NULL);
  kup_error_clear(&err);

  uv_timer_t poll;
  uv_timer_init(&loop, &poll);
  poll.data = c->worker;
  uv_timer_start(&poll, poll_worker_ready, 5, 5);
  c->ready = run_until(&loop, &worker_ready_flag, 30000);
  uv_close((uv_handle_t*)&poll, NULL);
  if (c->ready) {
    kup_pick_result pr;
    c->picked = kup_worker_pick(c->worker, 0, &pr, NULL) == KUP_OK && strcmp(pr.service, "tke-a/default/httpbin:http") == 0;
    kup_picker* p = kup_worker_picker(c->worker);
    c->picker_count = p != NULL ? (int)kup_picker_count(p) : -1;
    kup_picker_destroy(p);
    for (int i = 0; i < kRequests; ++i) {
      slots[i].ctx = c;
      slots[i].index = i;
      kup_request req;
      memset(&req, 0, sizeof req);
      req.target = "/worker";
      kup_forward_callbacks cb = {on_head, NULL, NULL, on_complete, &slots[i]};
      rc = kup_worker_forward(c->worker, &req, &cb, &c->requests[i], &err);
      if (rc != KUP_OK) fprintf(stderr, "kup_worker_forward: %s\n", err.reason);
      REQUIRE(rc == KUP_OK);
      kup_error_clear(&err);
    }
    /* The last completion destroys the worker; the loop then runs dry. */
    close_loop(&loop, &c->loop_closed[0]);
  } else {
    kup_worker_destroy(c->worker);
    close_loop(&loop, &c->loop_closed[0]);
  }

  /* A second worker, made before the main thread may destroy the upstream, outlives it. */
  REQUIRE(uv_loop_init(&loop) == 0);
  kup_worker* w = NULL;
  REQUIRE(kup_upstream_worker(c->upstream, &loop, &w, NULL) == KUP_OK);
  atomic_store(&c->first_done, 1);
  while (!atomic_load(&c->upstream_gone)) uv_sleep(5);
  kup_request req;
  memset(&req, 0, sizeof req);
  kup_forward_callbacks cb = {on_head, NULL, NULL, on_complete, &slots[0]};
  kup_forward* f = (kup_forward*)&req;
  c->after_gone_code = kup_worker_forward(w, &req, &cb, &f, &err);
  c->after_gone_names_upstream = f == NULL && err.reason != NULL && strstr(err.reason, "\"web\"") != NULL;
  if (!c->after_gone_names_upstream) fprintf(stderr, "after the upstream: %s\n", err.reason ? err.reason : "(null)");
  kup_error_clear(&err);
  c->after_gone_ready = kup_worker_ready(w);
  kup_pick_result pr;
  c->after_gone_pick = kup_worker_pick(w, 0, &pr, NULL);
  kup_worker_destroy(w);
  close_loop(&loop, &c->loop_closed[1]);
  atomic_store(&c->all_done, 1);
}

/* The control loop runs until the worker thread raises `flag`. */
static atomic_int* watched;
static int raised;
static void poll_flag(uv_timer_t* t) {
  (void)t;
  if (atomic_load(watched)) raised = 1;
}
static int run_control_until(atomic_int* flag, unsigned timeout_ms) {
  watched = flag;
  raised = 0;
  uv_timer_t t;
  uv_timer_init(&control, &t);
  uv_timer_start(&t, poll_flag, 5, 5);
  int ok = run_until(&control, &raised, timeout_ms);
  uv_close((uv_handle_t*)&t, NULL);
  uv_run(&control, UV_RUN_NOWAIT);
  return ok;
}

/* Until the upstream has counted `n` requests (the worker's counts arrive by uv_async). */
static kup_upstream* counted_upstream;
static uint64_t counted_target;
static int counted;
static void poll_counted(uv_timer_t* t) {
  (void)t;
  kup_stats s;
  if (kup_upstream_stats(counted_upstream, &s) == KUP_OK && s.requests >= counted_target) counted = 1;
}

static void test_locality_sizes(kup_upstream* u) {
  kup_locality_stats l;
  memset(&l, 0, sizeof l);
  l.size = 1; /* smaller than its first fields */
  CHECK(kup_upstream_locality(u, &l) == KUP_INVALID_ARGUMENT);
  CHECK(kup_upstream_locality(NULL, &l) == KUP_INVALID_ARGUMENT);
  /* An older caller's struct that ends after `mode`: the library writes nothing past it. */
  memset(&l, 0x5a, sizeof l);
  l.size = offsetof(kup_locality_stats, hints);
  CHECK(kup_upstream_locality(u, &l) == KUP_OK);
  CHECK(l.enabled == 1 && l.mode == KUP_LOCALITY_EVERYWHERE);
  CHECK(((unsigned char*)&l)[offsetof(kup_locality_stats, hints)] == 0x5a);
  CHECK((unsigned char)l.zone[0] == 0x5a);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  read_test_pods(pod_names, NULL);
  REQUIRE(uv_loop_init(&control) == 0);

  kup_cluster* cluster = make_test_cluster(&control);
  kup_error err = KUP_ERROR_INIT;
  kup_upstream* u = NULL;
  int rc = kup_upstream_create(&control, kDocument, (size_t)-1, &cluster, 1, NULL, NULL, &u, &err);
  if (rc != KUP_OK) fprintf(stderr, "kup_upstream_create: %s\n", err.reason);
  REQUIRE(rc == KUP_OK);
  kup_error_clear(&err);

  kup_worker* none = (kup_worker*)&err;
  CHECK(kup_upstream_worker(u, NULL, &none, &err) == KUP_INVALID_ARGUMENT && none == NULL);
  CHECK(err.reason != NULL && strstr(err.reason, "kup_upstream_worker") != NULL);
  kup_error_clear(&err);

  printf("worker forwards\n");
  static worker_ctx ctx;
  ctx.upstream = u;
  uv_thread_t thread;
  REQUIRE(uv_thread_create(&thread, worker_thread, &ctx) == 0);
  REQUIRE(run_control_until(&ctx.first_done, 90000));
  CHECK(ctx.ready);
  CHECK(ctx.picked);
  CHECK(ctx.picker_count == 2);
  CHECK(ctx.completed == kRequests && ctx.ok == kRequests);
  CHECK(ctx.wrong_thread == 0);
  CHECK(ctx.other_pod == 0);
  CHECK(ctx.by_pod[0] > 0 && ctx.by_pod[1] > 0); /* round robin over both Pods */
  CHECK(ctx.by_pod[0] + ctx.by_pod[1] == kRequests);
  CHECK(ctx.loop_closed[0]);

  /* The worker handed its counts to the upstream when it was dropped. */
  counted_upstream = u;
  counted_target = kRequests;
  uv_timer_t t;
  uv_timer_init(&control, &t);
  uv_timer_start(&t, poll_counted, 5, 5);
  CHECK(run_until(&control, &counted, 20000));
  uv_close((uv_handle_t*)&t, NULL);
  kup_stats s;
  CHECK(kup_upstream_stats(u, &s) == KUP_OK && s.requests == kRequests && s.failures == 0 && s.in_flight == 0);

  printf("locality\n");
  kup_locality_stats l;
  memset(&l, 0, sizeof l);
  l.size = sizeof l;
  CHECK(kup_upstream_locality(u, &l) == KUP_OK);
  CHECK(l.size == sizeof l);
  CHECK(l.enabled == 1);
  CHECK(strcmp(l.zone, "zone-a") == 0);
  /* The Pods carry no zone: nothing is local, so there is no zone preference, and every
   * attempt (the worker's too) counts as cross-zone. */
  CHECK(l.mode == KUP_LOCALITY_EVERYWHERE);
  CHECK(strstr(l.reason, "min_local_endpoints") != NULL);
  CHECK(l.local_share == 0.0);
  CHECK(l.local_requests == 0 && l.cross_zone_requests == kRequests);
  CHECK(l.zones >= 1);
  test_locality_sizes(u);

  printf("worker outlives its upstream\n");
  kup_upstream_destroy(u);
  atomic_store(&ctx.upstream_gone, 1);
  REQUIRE(run_control_until(&ctx.all_done, 30000));
  REQUIRE(uv_thread_join(&thread) == 0);
  CHECK(ctx.after_gone_code == KUP_OPERATION_CANCELED);
  CHECK(ctx.after_gone_names_upstream);
  CHECK(ctx.after_gone_ready == 0);
  CHECK(ctx.after_gone_pick == KUP_NO_ENDPOINT);
  CHECK(ctx.loop_closed[1]);

  kup_cluster_destroy(cluster);
  CHECK(close_loop_cleanly(&control));
  return test_result("all C worker checks passed");
}
