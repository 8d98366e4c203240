#include "c_test_util.h"

int kup_test_failures = 0;

typedef struct {
  int fired;
} deadline_t;

static void on_deadline(uv_timer_t* t) {
  deadline_t* d = (deadline_t*)t->data;
  d->fired = 1;
}

static void on_closed(uv_handle_t* h) { (void)h; }

int run_until(uv_loop_t* loop, const int* flag, unsigned timeout_ms) {
  deadline_t d = {0};
  uv_timer_t timer;
  uv_timer_init(loop, &timer);
  timer.data = &d;
  uv_timer_start(&timer, on_deadline, timeout_ms, 0);
  while (!*flag && !d.fired) uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t*)&timer, on_closed);
  uv_run(loop, UV_RUN_NOWAIT);
  return *flag != 0;
}

void run_for(uv_loop_t* loop, unsigned ms) {
  int never = 0;
  (void)run_until(loop, &never, ms);
}

const char* need_env(const char* name) {
  const char* v = getenv(name);
  if (v == NULL || *v == '\0') {
    fprintf(stderr, "%s is not set: run this test through tests/c/run_c_test.py\n", name);
    exit(2);
  }
  return v;
}

void tell_runner(const char* command) {
  printf("RUNNER %s\n", command);
  fflush(stdout);
}

void read_test_pods(char names[2][64], char addresses[2][64]) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s", need_env("KUP_TEST_PODS"));
  int i = 0;
  for (char* item = strtok(buf, ","); item != NULL && i < 2; item = strtok(NULL, ","), ++i) {
    char* eq = strchr(item, '=');
    REQUIRE(eq != NULL);
    *eq = '\0';
    snprintf(names[i], 64, "%s", item);
    if (addresses != NULL) snprintf(addresses[i], 64, "%s", eq + 1);
  }
  REQUIRE(i == 2);
}

static void close_left_open(uv_handle_t* h, void* arg) {
  ++*(int*)arg;
  if (!uv_is_closing(h)) {
    fprintf(stderr, "handle left open: type %d\n", (int)h->type);
    uv_close(h, NULL);
  }
}

int close_loop_cleanly(uv_loop_t* loop) {
  uv_run(loop, UV_RUN_DEFAULT);
  int open_handles = 0;
  uv_walk(loop, close_left_open, &open_handles);
  uv_run(loop, UV_RUN_DEFAULT);
  return uv_loop_close(loop) == 0 && open_handles == 0;
}

kup_cluster* make_test_cluster(uv_loop_t* loop) {
  kup_cluster_options o;
  kup_cluster_options_init(&o);
  o.name = "tke-a";
  o.kubeconfig = need_env("KUP_TEST_KUBECONFIG");
  o.backoff_initial_ms = 100;
  kup_cluster* c = NULL;
  kup_error err = KUP_ERROR_INIT;
  int rc = kup_cluster_create(loop, &o, &c, &err);
  if (rc != KUP_OK) fprintf(stderr, "kup_cluster_create: %s: %s\n", kup_errc_name(rc), err.reason);
  REQUIRE(rc == KUP_OK && c != NULL);
  kup_error_clear(&err);
  return c;
}

int test_result(const char* passed) {
  if (kup_test_failures != 0) {
    fprintf(stderr, "%d check(s) failed\n", kup_test_failures);
    return 1;
  }
  printf("%s\n", passed);
  return 0;
}
