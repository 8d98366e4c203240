/* Tiny test helpers for the C ABI tests (C11, no framework): CHECK, running a uv loop until a
 * condition holds or a deadline passes, and the environment that run_c_test.py provides. */
#ifndef KUP_C_TEST_UTIL_H
#define KUP_C_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "kupstream/kupstream_c.h"

extern int kup_test_failures;

#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);       \
      ++kup_test_failures;                                                           \
    }                                                                                \
  } while (0)

#define REQUIRE(cond)                                                                \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond);     \
      exit(1);                                                                       \
    }                                                                                \
  } while (0)

/* Runs the loop until *flag is nonzero or timeout_ms passes; returns *flag != 0. */
int run_until(uv_loop_t* loop, const int* flag, unsigned timeout_ms);
/* Runs the loop for ms milliseconds. */
void run_for(uv_loop_t* loop, unsigned ms);
/* An environment variable the runner sets; exits when missing. */
const char* need_env(const char* name);
/* Asks the runner (run_c_test.py) to do something, through a line on stdout. */
void tell_runner(const char* command);
/* The two Pods the runner started (KUP_TEST_PODS "name=address,name=address"); exits when they
 * are missing. `addresses` may be NULL. */
void read_test_pods(char names[2][64], char addresses[2][64]);
/* Runs the loop dry, closes (and reports on stderr) any handle left open, and returns nonzero
 * when none was left and uv_loop_close() succeeded. */
int close_loop_cleanly(uv_loop_t* loop);
/* Cluster "tke-a" from the runner's kubeconfig (KUP_TEST_KUBECONFIG) on `loop`, with a short
 * backoff; exits when it cannot be made. */
kup_cluster* make_test_cluster(uv_loop_t* loop);
/* main()'s end: 1 (with the count on stderr) when a CHECK failed, else 0 after printing `passed`. */
int test_result(const char* passed);

#endif
