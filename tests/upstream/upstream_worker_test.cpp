// UpstreamWorker: worker threads, each with its own loop, forwarding for an Upstream whose
// control loop (the test's main thread) keeps discovery and health. Real Pods (PodFarm), kubesim.
// Endpoint churn and health ejection under traffic with zero failed requests, in-flight counts
// shared between workers (least_request), dropping a worker (from a timer, inside its own
// handler) and dropping the Upstream while workers have requests in flight. Every loop, the
// workers' too, ends with uv_loop_close == 0. Run by the tsan preset (scripts/test, tsan_tests).
#include <doctest/doctest.h>
#include <uv.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "kupstream/upstream_worker.h"
#include "upstream/support/published_farm.h"

using namespace kupstream;
using namespace kupstream::test;

namespace {

// One worker thread: its own loop and UpstreamWorker, topping up to `concurrency` requests in
// flight every 3 ms until told to stop; then it drops the worker and drains its loop. The atomics are the test's
// controls and progress; the plain fields are read after join().
class WorkerThread {
 public:
  int concurrency = 4;
  std::string target = "/";
  int drop_inside_after = -1;  // drops the worker inside the on_complete of this completion
  // A first request that stays in flight (its body paused) before the traffic starts.
  std::string hold_target;

  std::atomic<bool> stop{false};      // finish what is in flight, drop the worker, drain
  std::atomic<bool> drop_now{false};  // drop the worker at once, requests in flight
  std::atomic<bool> go{true};         // launch the traffic (after the held request, if any)
  std::atomic<int> completed{0};
  std::atomic<bool> finished{false};
  std::atomic<bool> held{false};  // the held request has its head
  std::atomic<bool> refused{false};  // a forward() failed (then no more are launched)

  int ok = 0, failed = 0, non_2xx = 0, after_drop = 0, launched = 0, forward_errors = 0, loop_close = -1;
  bool dropped_with_requests = false;
  std::string create_error, held_pod;
  std::vector<std::string> errors;
  std::map<std::string, int> by_pod;

  void start(Upstream& upstream) {
    thread_ = std::thread([this, &upstream] { run(upstream); });
  }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  ~WorkerThread() {
    stop = true;
    join();
  }

 private:
  void run(Upstream& upstream) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    auto created = upstream.worker(loop);
    if (!created) {
      create_error = created.error().reason;
    } else {
      worker_ = std::move(*created);
      drive(loop);
    }
    // Drain: every handle of the worker and its pools closes.
    for (int i = 0; i < 5000 && uv_loop_alive(&loop); ++i) {
      uv_run(&loop, UV_RUN_NOWAIT);
      if (uv_loop_alive(&loop)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    loop_close = uv_loop_close(&loop);
    finished = true;
  }

  void drop() {
    dropped_with_requests = !live_.empty();
    dropped_ = true;
    worker_.reset();
    live_.clear();
    held_handle_.reset();
  }

  void launch() {
    if (dropped_ || stop || refused_ || !go) return;
    const std::uint64_t id = next_id_++;
    auto code = std::make_shared<int>(0);
    auto pod = std::make_shared<std::string>();
    ForwardRequest req;
    req.target = target;
    ForwardHandlers h;
    h.on_head = [this, code, pod](const ForwardResponseHead& head) {
      if (dropped_) ++after_drop;
      *code = head.status;
      *pod = std::string(head.pod);
    };
    h.on_body = [this](std::string_view) {
      if (dropped_) ++after_drop;
    };
    h.on_complete = [this, id, code, pod](Status s) {
      if (dropped_) {
        ++after_drop;
        return;
      }
      if (!s.ok()) {
        ++failed;
        if (errors.size() < 10) errors.push_back(s.error().reason);
      } else {
        ++ok;
        if (*code < 200 || *code > 299) ++non_2xx;
        ++by_pod[*pod];
      }
      const int n = completed.fetch_add(1) + 1;
      live_.erase(id);  // drops this request's handle inside its own handler
      // Dropped inside this handler once the count is reached and other requests are in flight
      // (a loop turn may complete the last few together; the next completion then does it).
      if (drop_inside_after > 0 && n >= drop_inside_after && !live_.empty()) drop();
      // The next one is launched by the timer: a paced load leaves the 2-core machine's other
      // processes (kubesim, nginx, the control loop) their share.
    };
    auto r = worker_->forward(std::move(req), std::move(h));
    if (!r) {
      ++forward_errors;
      refused_ = true;
      if (errors.size() < 10) errors.push_back(r.error().reason);
      refused = true;
      return;
    }
    ++launched;
    live_[id] = std::move(*r);
  }

  void start_held() {
    ForwardRequest req;
    req.target = hold_target;
    ForwardHandlers h;
    h.on_head = [this](const ForwardResponseHead& head) {
      held_pod = std::string(head.pod);
      held = true;
    };
    h.on_body = [this](std::string_view) { held_handle_->pause_body(); };
    h.on_complete = [](Status) {};
    auto r = worker_->forward(std::move(req), std::move(h));
    if (r) held_handle_ = std::move(*r);
  }

  void drive(uv_loop_t& loop) {
    if (!hold_target.empty()) start_held();
    uv_timer_t timer;
    uv_timer_init(&loop, &timer);
    timer.data = this;
    uv_timer_start(&timer, [](uv_timer_t* t) {
      auto* self = static_cast<WorkerThread*>(t->data);
      if (self->go)
        while (!self->dropped_ && !self->stop && !self->refused_ && self->live_.size() < static_cast<std::size_t>(self->concurrency))
          self->launch();
      if (self->drop_now && !self->dropped_) self->drop();
      const bool quiet = self->live_.empty() && (self->stop || self->refused_ || self->dropped_);
      if (quiet && self->stop) {
        if (!self->dropped_) self->drop();
        uv_close(reinterpret_cast<uv_handle_t*>(t), nullptr);
      }
    }, 1, 3);
    uv_run(&loop, UV_RUN_DEFAULT);
  }

  std::thread thread_;
  std::unique_ptr<UpstreamWorker> worker_;
  std::map<std::uint64_t, std::unique_ptr<UpstreamRequest>> live_;
  std::unique_ptr<UpstreamRequest> held_handle_;
  std::uint64_t next_id_ = 0;
  bool dropped_ = false, refused_ = false;
};

int total_completed(const std::vector<std::unique_ptr<WorkerThread>>& workers) {
  int n = 0;
  for (const auto& w : workers) n += w->completed.load();
  return n;
}

const PodStats* pod_stats(const UpstreamStats& s, const std::string& host_port) {
  for (const auto& p : s.pods)
    if (p.pod == host_port) return &p;
  return nullptr;
}

}  // namespace

TEST_SUITE("UpstreamWorker") {
  TEST_CASE("2 and 4 worker loops forward under endpoint churn with zero failed requests; stats count their requests") {
    for (int n_workers : {2, 4}) {
      CAPTURE(n_workers);
      PublishedFarm f("wk-churn-" + std::to_string(n_workers), 6, "wkc", 71);
      f.start();
      std::vector<std::unique_ptr<WorkerThread>> workers;
      for (int i = 0; i < n_workers; ++i) {
        workers.push_back(std::make_unique<WorkerThread>());
        workers.back()->start(*f.env.upstream);
      }
      REQUIRE(f.env.loop.run_until([&] { return total_completed(workers) >= 20 * n_workers; }, 15000));
      // Pods leave and come back while the workers send: each change is a new Picker for them
      // and, for a Pod that left, its pools closed on every worker loop.
      const std::vector<std::pair<int, int>> rounds{{0, 3}, {2, 4}, {3, 3}, {0, 6}, {1, 2}, {0, 6}};
      for (auto [first, count] : rounds) {
        const int before = total_completed(workers);
        f.env.publish("tke-a", f.service, f.farm.port(), pods_of(f.farm, first, count));
        REQUIRE(f.env.loop.run_until([&] { return total_completed(workers) >= before + 10 * n_workers; }, 15000));
      }
      for (auto& w : workers) w->stop = true;
      REQUIRE(f.env.loop.run_until([&] {
        for (auto& w : workers)
          if (!w->finished) return false;
        return true;
      }, 20000));
      int ok = 0;
      for (auto& w : workers) {
        w->join();
        CHECK(w->create_error == "");
        CHECK(w->failed == 0);
        CHECK(w->non_2xx == 0);
        CHECK(w->after_drop == 0);
        CHECK(w->loop_close == 0);
        CHECK(w->ok > 0);
        for (const auto& e : w->errors) MESSAGE(e);
        ok += w->ok;
        for (const auto& [pod, count] : w->by_pod) CHECK(pod.rfind("127.0.71.", 0) == 0);
      }
      // Every worker request, its latency included, reaches the Upstream's counters (a request
      // is counted when it starts, its latency and in-flight change when it ends: wait for both).
      REQUIRE(f.env.loop.run_until([&] {
        const UpstreamStats st = f.env.upstream->stats();
        return st.requests == static_cast<std::uint64_t>(ok) && st.in_flight == 0 &&
               st.latency_counts.back() == static_cast<std::uint64_t>(ok);
      }, 5000));
      const UpstreamStats s = f.env.upstream->stats();
      CHECK(s.failures == 0);
      CHECK(s.in_flight == 0);
      CHECK(s.latency_counts.back() == static_cast<std::uint64_t>(ok));
      // Per service, attempts survive the Pods that came and went (one attempt per request here).
      REQUIRE(s.services.size() == 1);
      CHECK(s.services[0].requests == static_cast<std::uint64_t>(ok));
      const std::string text = f.env.upstream->prometheus_text();
      CHECK(text.find("kupstream_requests_total{upstream=\"" + f.service + "\"} " + std::to_string(ok) + "\n") !=
            std::string::npos);
    }
  }

  TEST_CASE("a running worker's counts reach stats() while it sends, when it pauses and after a quiet spell") {
    // The worker hands its counts over every few ms and the control loop drains them on a timer
    // that stops when they stop coming: counts must still arrive without dropping the worker.
    PublishedFarm f("wk-handover", 2, "wkh", 77);
    f.start();
    WorkerThread w;
    w.concurrency = 2;
    w.start(*f.env.upstream);
    REQUIRE(f.env.loop.run_until([&] { return w.completed.load() >= 30; }, 15000));
    // While it sends: the counts follow.
    REQUIRE(f.env.loop.run_until([&] { return f.env.upstream->stats().requests >= 30; }, 20000));
    // It pauses: once what was in flight has ended, every request it made is counted and none
    // is left in flight. (The bound covers the requests in flight finishing too, which under
    // ThreadSanitizer and a loaded machine took more than 5 s once.)
    w.go = false;
    const bool settled = f.env.loop.run_until([&] {
      const auto s = f.env.upstream->stats();
      return s.in_flight == 0 && s.requests == static_cast<std::uint64_t>(w.completed.load());
    }, 20000);
    if (!settled) {
      const auto s = f.env.upstream->stats();
      MESSAGE("stats: requests " << s.requests << ", in flight " << s.in_flight << "; the worker completed "
                                 << w.completed.load());
    }
    REQUIRE(settled);
    f.env.loop.run_for(50);  // quiet: the drain timer finds nothing and stops
    const int paused_at = w.completed.load();
    CHECK(f.env.upstream->stats().requests == static_cast<std::uint64_t>(paused_at));
    // After the quiet spell: the first new counts wake the control loop again.
    w.go = true;
    REQUIRE(f.env.loop.run_until([&] { return w.completed.load() >= paused_at + 30; }, 15000));
    REQUIRE(f.env.loop.run_until([&] { return f.env.upstream->stats().requests >= static_cast<std::uint64_t>(paused_at + 30); }, 20000));
    w.stop = true;
    REQUIRE(f.env.loop.run_until([&] { return w.finished.load(); }, 15000));
    w.join();
    CHECK(w.failed == 0);
    CHECK(w.loop_close == 0);
    CHECK(f.env.loop.run_until([&] { return f.env.upstream->stats().requests == static_cast<std::uint64_t>(w.ok); }, 20000));
  }

  TEST_CASE("a failing Pod is ejected once, by the control loop, and no worker sends to it afterwards") {
    PublishedFarm f("wk-eject", 4, "wke", 72);
    UpstreamOptions o;
    o.outlier.consecutive_failures = 3;
    o.outlier.base_ejection = std::chrono::seconds(60);  // outlasts the test
    o.retries.min_concurrent = 64;  // every 503 may be retried on another Pod: zero failed requests
    f.start(o);
    f.farm.set_failing(0, true);
    const std::string bad = f.farm.host_port(0);
    std::vector<std::unique_ptr<WorkerThread>> workers;
    for (int i = 0; i < 2; ++i) {
      workers.push_back(std::make_unique<WorkerThread>());
      workers.back()->start(*f.env.upstream);
    }
    REQUIRE(f.env.loop.run_until([&] {
      const auto s = f.env.upstream->stats();
      const PodStats* p = pod_stats(s, bad);
      return p != nullptr && p->ejected;
    }, 15000));
    // Attempts already sent to the Pod when it was ejected still report; then nothing more.
    f.env.loop.run_for(300);
    const std::uint64_t at_ejection = pod_stats(f.env.upstream->stats(), bad)->requests;
    const int before = total_completed(workers);
    REQUIRE(f.env.loop.run_until([&] { return total_completed(workers) >= before + 200; }, 15000));
    f.env.loop.run_for(100);
    const UpstreamStats s = f.env.upstream->stats();
    const PodStats* p = pod_stats(s, bad);
    REQUIRE(p != nullptr);
    CHECK(p->ejected);
    CHECK(p->ejections == 1);
    CHECK(p->weight == 0);
    CHECK(p->requests == at_ejection);
    CHECK(p->failures >= 3);
    for (auto& w : workers) w->stop = true;
    for (auto& w : workers) {
      REQUIRE(f.env.loop.run_until([&] { return w->finished.load(); }, 20000));
      w->join();
      CHECK(w->failed == 0);
      CHECK(w->non_2xx == 0);
      CHECK(w->by_pod.count(bad) == 0);  // 503s were retried elsewhere: no answer from it
      CHECK(w->loop_close == 0);
      for (const auto& e : w->errors) MESSAGE(e);
    }
    CHECK(s.retries >= 3);
  }

  TEST_CASE("least_request sees the requests in flight on other workers") {
    PublishedFarm f("wk-least", 2, "wkl", 73);
    f.farm.add_file("big", std::string(4 << 20, 'z'));
    UpstreamConfig config = UpstreamEnv::config_for("tke-a", f.service);
    config.policy = BalancerPolicy::least_request;
    f.env.start(config);
    // Worker A holds one download in flight (its body paused) on one Pod.
    WorkerThread a;
    a.hold_target = "/files/big";
    a.go = false;
    a.start(*f.env.upstream);
    REQUIRE(f.env.loop.run_until([&] { return a.held.load(); }, 15000));
    const std::string loaded = a.held_pod;
    // The control loop sees the load of A's attempt (one EndpointLoad per Pod for all loops).
    const auto s = f.env.upstream->stats();
    REQUIRE(pod_stats(s, loaded) != nullptr);
    CHECK(pod_stats(s, loaded)->in_flight == 1);
    // Worker B sends one request at a time: power of two choices between the two Pods sees A's
    // request and goes to the other Pod (a pick draws the same Pod twice now and then: 1 in 32).
    WorkerThread b;
    b.concurrency = 1;
    b.start(*f.env.upstream);
    REQUIRE(f.env.loop.run_until([&] { return b.completed.load() >= 40; }, 15000));
    b.stop = true;
    REQUIRE(f.env.loop.run_until([&] { return b.finished.load(); }, 15000));
    b.join();
    CHECK(b.failed == 0);
    CHECK(b.loop_close == 0);
    const int on_loaded = b.by_pod.count(loaded) ? b.by_pod.at(loaded) : 0;
    CHECK(on_loaded <= 10);  // unshared counts would give about half
    CHECK(b.ok - on_loaded >= 30);
    a.stop = true;
    REQUIRE(f.env.loop.run_until([&] { return a.finished.load(); }, 15000));
    a.join();
    CHECK(a.loop_close == 0);
    CHECK(a.after_drop == 0);
    // A dropped its held request with its worker: the Pod's count is back to 0.
    REQUIRE(f.env.loop.run_until([&] {
      const auto st = f.env.upstream->stats();
      return pod_stats(st, loaded)->in_flight == 0 && st.in_flight == 0;
    }, 5000));
  }

  TEST_CASE("a Pod that leaves its slice while a worker holds a request on it is forgotten once the worker lets go") {
    PublishedFarm f("wk-leave", 2, "wkv", 76);
    f.farm.add_file("big", std::string(4 << 20, 'z'));
    f.start();
    WorkerThread a;
    a.hold_target = "/files/big";
    a.go = false;
    a.start(*f.env.upstream);
    REQUIRE(f.env.loop.run_until([&] { return a.held.load(); }, 15000));
    const std::string held = a.held_pod;
    const int leaving = held == f.farm.host_port(0) ? 0 : 1;
    f.env.publish("tke-a", f.service, f.farm.port(), pods_of(f.farm, 1 - leaving, 1));
    // Unlisted, but still known: the worker's attempt on it is in flight.
    f.env.loop.run_for(200);
    {
      const auto s = f.env.upstream->stats();
      const PodStats* p = pod_stats(s, held);
      REQUIRE(p != nullptr);
      CHECK(p->in_flight == 1);
      CHECK(p->weight == 0);
    }
    // The worker drops its request with itself: the canceled attempt reaches the control loop,
    // which forgets the Pod.
    a.stop = true;
    REQUIRE(f.env.loop.run_until([&] { return a.finished.load(); }, 15000));
    a.join();
    CHECK(a.loop_close == 0);
    CHECK(f.env.loop.run_until([&] { return pod_stats(f.env.upstream->stats(), held) == nullptr; }, 5000));
    CHECK(f.env.upstream->stats().in_flight == 0);
  }

  TEST_CASE("a worker dropped mid-traffic, from a timer or inside its own handler, runs no handler afterwards; the others go on") {
    PublishedFarm f("wk-drop", 3, "wkd", 74);
    f.start();
    std::vector<std::unique_ptr<WorkerThread>> workers;
    for (int i = 0; i < 3; ++i) workers.push_back(std::make_unique<WorkerThread>());
    workers[0]->drop_inside_after = 30;  // inside on_complete, 3 other requests in flight
    workers[0]->concurrency = 4;
    workers[1]->concurrency = 8;
    for (auto& w : workers) w->start(*f.env.upstream);
    REQUIRE(f.env.loop.run_until([&] { return workers[1]->completed.load() >= 30; }, 15000));
    workers[1]->drop_now = true;
    REQUIRE(f.env.loop.run_until([&] { return workers[0]->completed.load() >= 30; }, 15000));
    const int third_before = workers[2]->completed.load();
    REQUIRE(f.env.loop.run_until([&] { return workers[2]->completed.load() >= third_before + 50; }, 15000));
    for (auto& w : workers) w->stop = true;
    for (auto& w : workers) {
      REQUIRE(f.env.loop.run_until([&] { return w->finished.load(); }, 20000));
      w->join();
      CHECK(w->failed == 0);
      CHECK(w->after_drop == 0);
      CHECK(w->loop_close == 0);
      for (const auto& e : w->errors) MESSAGE(e);
    }
    CHECK(workers[0]->completed.load() >= 30);
    CHECK(workers[0]->dropped_with_requests);
    CHECK(workers[1]->dropped_with_requests);
    // The canceled requests leave no count behind.
    REQUIRE(f.env.loop.run_until([&] {
      const auto s = f.env.upstream->stats();
      if (s.in_flight != 0) return false;
      for (const auto& p : s.pods)
        if (p.in_flight != 0) return false;
      return true;
    }, 5000));
  }

  TEST_CASE("dropping the Upstream while workers send: their requests end once each, new ones fail naming it") {
    PublishedFarm f("wk-upgone", 3, "wku", 75);
    f.farm.add_file("slow", std::string(256 << 10, 's'));
    f.start();
    std::vector<std::unique_ptr<WorkerThread>> workers;
    for (int i = 0; i < 2; ++i) {
      workers.push_back(std::make_unique<WorkerThread>());
      workers.back()->target = i == 0 ? "/" : "/files/slow";
      workers.back()->concurrency = 6;
      workers.back()->start(*f.env.upstream);
    }
    REQUIRE(f.env.loop.run_until([&] { return total_completed(workers) >= 60; }, 15000));
    f.env.upstream.reset();  // requests in flight on both workers
    for (auto& w : workers) {
      // Each worker notices at its next forward(), which fails; what was in flight completes.
      REQUIRE(f.env.loop.run_until([&] { return w->refused.load() || w->finished.load(); }, 15000));
    }
    for (auto& w : workers) w->stop = true;
    for (auto& w : workers) {
      REQUIRE(f.env.loop.run_until([&] { return w->finished.load(); }, 20000));
      w->join();
      CHECK(w->forward_errors == 1);
      CHECK(w->after_drop == 0);
      CHECK(w->loop_close == 0);
      // Every accepted request completed exactly once (ok, or an error naming the upstream, such
      // as a retry after the drop: operation_canceled, "is closed").
      CHECK(w->completed.load() == w->launched);
      for (const auto& e : w->errors) CHECK(e.find("upstream \"" + f.service + "\"") != std::string::npos);
      const std::string closed = "upstream \"" + f.service + "\" is closed";
      CHECK(std::find(w->errors.begin(), w->errors.end(), closed) != w->errors.end());
    }
  }
}
