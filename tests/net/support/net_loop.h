// TestLoop: a uv_loop_t for one test, with bounded runs and a close that reports
// uv_loop_close's result (every loop test asserts it is 0).
#pragma once

#include <uv.h>

#include <chrono>
#include <functional>
#include <thread>

#include "net/support/net_process.h"

namespace kupstream::test {

class TestLoop {
 public:
  TestLoop() {
    (void)sigpipe_is_ignored();
    uv_loop_init(&loop);
  }
  ~TestLoop() {
    if (!closed_) close_loop();
  }
  TestLoop(const TestLoop&) = delete;
  TestLoop& operator=(const TestLoop&) = delete;

  // Runs the loop until pred() holds or timeout_ms passes. Returns pred().
  bool run_until(const std::function<bool()>& pred, int timeout_ms = 5000) {
    struct Ctx {
      const std::function<bool()>* pred;
      std::chrono::steady_clock::time_point deadline;
    } ctx{&pred, std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms)};
    if (pred()) return true;
    uv_timer_t check;
    uv_timer_init(&loop, &check);
    check.data = &ctx;
    uv_timer_start(&check, [](uv_timer_t* t) {
      auto* c = static_cast<Ctx*>(t->data);
      if ((*c->pred)() || std::chrono::steady_clock::now() >= c->deadline) uv_stop(t->loop);
    }, 1, 1);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close(reinterpret_cast<uv_handle_t*>(&check), nullptr);
    uv_run(&loop, UV_RUN_NOWAIT);
    return pred();
  }

  void run_for(int ms) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    run_until([&] { return std::chrono::steady_clock::now() >= end; }, ms + 1000);
  }

  // Lets pending closes finish (bounded), then uv_loop_close. Returns its result.
  int close_loop(int timeout_ms = 5000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (uv_loop_alive(&loop) && std::chrono::steady_clock::now() < deadline) {
      uv_run(&loop, UV_RUN_NOWAIT);
      if (uv_loop_alive(&loop)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    int rc = uv_loop_close(&loop);
    if (rc == 0) closed_ = true;
    return rc;
  }

  uv_loop_t loop;

 private:
  bool closed_ = false;
};

}  // namespace kupstream::test
