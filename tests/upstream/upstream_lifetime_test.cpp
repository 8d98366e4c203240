// Lifetime of Upstream and UpstreamRequest with real Pods: dropping a request inside each of its
// handlers, dropping the Upstream with requests in flight or inside a handler, Pods removed
// while requests hold them. Every test ends with uv_loop_close == 0 (UpstreamEnv checks it);
// run under the asan preset to catch use-after-free.
#include <doctest/doctest.h>
#include <unistd.h>

#include <functional>

#include "net/support/net_script_server.h"
#include "upstream/support/pod_farm.h"
#include "upstream/support/published_farm.h"
#include "upstream/support/upstream_env.h"

using namespace kupstream;
using namespace kupstream::test;

namespace {

// Two Pods "lt-0", "lt-1" that also serve /files/big (2 MiB), published as Service `name`, and its
// Upstream started with `o`.
struct Farmed : PublishedFarm {
  explicit Farmed(const std::string& name, UpstreamOptions o = {}) : PublishedFarm(name, 2, "lt", 31) {
    farm.add_file("big", std::string(2 << 20, 'z'));
    start(std::move(o));
  }
};

// Sends one request whose handler `drop_in` drops its own handle; afterwards no handler runs.
void drop_inside(const std::string& which) {
  Farmed f("drop-" + which);
  std::unique_ptr<UpstreamRequest> handle;
  int after_drop = 0;
  bool dropped = false;
  // The handlers capture a shared string so that a destroyed std::function would show up in ASan
  // when the handler touches its captures after the drop.
  auto marker = std::make_shared<std::string>("alive");
  auto drop = [&, marker](const char* where) {
    if (which != where || dropped) return;
    handle.reset();
    dropped = true;
    CHECK(*marker == "alive");  // our captures survive our own drop
  };
  ForwardHandlers h;
  h.on_head = [&, drop, marker](const ForwardResponseHead& head) {
    if (dropped) ++after_drop;
    drop("head");
    CHECK(*marker == "alive");
    // The head's views stay valid until on_head returns, also after the drop (ASan reads them).
    std::size_t bytes = head.pod.size();
    for (const auto& [name, value] : head.headers) bytes += name.size() + value.size();
    CHECK(head.pod.rfind("127.", 0) == 0);  // "address:port" of a loopback Pod
    CHECK(bytes > head.pod.size());
  };
  h.on_body = [&, drop, marker](std::string_view) {
    if (dropped) ++after_drop;
    drop("body");
    CHECK(*marker == "alive");
  };
  h.on_writable = [&, drop, marker] {
    if (dropped) ++after_drop;
    drop("writable");
    CHECK(*marker == "alive");
  };
  h.on_complete = [&, drop, marker](Status) {
    if (dropped) ++after_drop;
    drop("complete");
    CHECK(*marker == "alive");
  };
  ForwardRequest req;
  if (which == "writable") {
    req.method = "PUT";
    req.target = "/upload/lifetime";
    req.streamed = true;
  } else {
    req.target = "/files/big";
  }
  // For on_writable the Pod must read slowly, so that backpressure is certain: it reads
  // nothing for 300 ms, then drains the connection.
  const ScriptServer* sink_self = nullptr;
  std::unique_ptr<ScriptServer> sink;
  if (which == "writable") {
    sink = std::make_unique<ScriptServer>([&sink_self](int& fd, int) {
      for (int waited = 0; waited < 300 && !sink_self->stopping(); waited += 10) sleep_ms(10);
      char buf[65536];
      while (!sink_self->stopping() && ::read(fd, buf, sizeof buf) > 0) {
      }
    });
    sink_self = sink.get();
    f.env.admin("tke-a", {apply_op(slice_object("drop-writable", "drop-writable-1", sink->port(), {{"127.0.0.1", "sink"}}))});
    REQUIRE(f.env.loop.run_until([&] {
      auto p = f.env.upstream->picker();
      return p->pickable() == 1 && p->endpoints()[0].endpoint->port == sink->port();
    }, 5000));
  }
  auto r = f.env.upstream->forward(std::move(req), std::move(h));
  REQUIRE(r.ok());
  handle = std::move(*r);
  if (which == "writable") {
    // Wait until the attempt holds a Pod (its exchange exists).
    REQUIRE(f.env.loop.run_until([&] {
      std::uint32_t n = 0;
      for (const auto& p : f.env.upstream->stats().pods) n += p.in_flight;
      return n == 1;
    }, 5000));
    bool more = true;
    for (int i = 0; i < 64 && more && handle; ++i) {
      auto w = handle->write_body(std::string(256 * 1024, 'w'));
      REQUIRE(w.ok());
      more = *w;
    }
    CHECK_FALSE(more);
  }
  CHECK(f.env.loop.run_until([&] { return dropped; }, 10000));
  f.env.loop.run_for(50);
  CHECK(after_drop == 0);
  CHECK(f.env.upstream->stats().in_flight == 0);
  // The Upstream still works afterwards.
  if (which != "writable") CHECK(f.env.get("/").code == 200);
}

// Starts n requests, the i-th to target(i), whose on_complete (and on_head when count_head)
// count their calls in `calls`.
std::vector<std::unique_ptr<UpstreamRequest>> start_counted(Upstream& upstream, int n, int& calls, bool count_head,
                                                            const std::function<std::string(int)>& target) {
  std::vector<std::unique_ptr<UpstreamRequest>> handles;
  for (int i = 0; i < n; ++i) {
    ForwardHandlers h;
    if (count_head) h.on_head = [&calls](const ForwardResponseHead&) { ++calls; };
    h.on_complete = [&calls](Status) { ++calls; };
    ForwardRequest req;
    req.target = target(i);
    auto r = upstream.forward(std::move(req), std::move(h));
    REQUIRE(r.ok());
    handles.push_back(std::move(*r));
  }
  return handles;
}

// Runs the loop for settle_ms, drops the Upstream, runs it for after_ms more: no handler runs
// after the drop (`calls` stays as it was).
void drop_upstream_quietly(UpstreamEnv& env, const int& calls, int settle_ms, int after_ms) {
  env.loop.run_for(settle_ms);
  const int before = calls;
  env.upstream.reset();
  env.loop.run_for(after_ms);
  CHECK(calls == before);
}

}  // namespace

TEST_SUITE("UpstreamRequest") {
  TEST_CASE("dropping the request inside on_head is safe and silences it") { drop_inside("head"); }
  TEST_CASE("dropping the request inside on_body is safe and silences it") { drop_inside("body"); }
  TEST_CASE("dropping the request inside on_writable is safe and silences it") { drop_inside("writable"); }
  TEST_CASE("dropping the request inside on_complete is safe") { drop_inside("complete"); }

  TEST_CASE("a canceled request counts neither as a success nor as a failure of its Pod") {
    // One Pod: /fail answers 503 at once, /slow answers after a while (or when the server stops).
    const ScriptServer* self = nullptr;
    ScriptServer pod([&self](int& fd, int) {
      for (;;) {
        const std::string req = read_request(fd, 3000);
        if (req.empty()) return;
        if (req.rfind("GET /slow", 0) == 0)
          for (int waited = 0; waited < 2000 && !self->stopping(); waited += 10) sleep_ms(10);
        if (!write_all(fd, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")) return;
      }
    });
    self = &pod;
    UpstreamEnv env;
    env.publish("tke-a", "cancel", pod.port(), {{"127.0.0.1", "only"}});
    UpstreamOptions o;
    o.retries.max_retries = 0;
    o.outlier.consecutive_failures = 2;
    o.outlier.max_ejected_percent = 100;
    env.start(UpstreamEnv::config_for("tke-a", "cancel"), o);
    CHECK(env.get("/fail").code == 503);  // failure 1
    ForwardRequest req;
    req.target = "/slow";
    auto slow = env.upstream->forward(std::move(req), {});
    REQUIRE(slow.ok());
    env.loop.run_for(100);
    slow->reset();  // canceled while the Pod works on it: says nothing about the Pod
    CHECK(env.get("/fail").code == 503);  // failure 2 in a row: ejected
    const auto s = env.upstream->stats();
    REQUIRE(s.pods.size() == 1);
    CHECK(s.pods[0].ejected);
    CHECK(s.pods[0].failures == 2);
  }

}

TEST_SUITE("Upstream") {
  TEST_CASE("dropping the Upstream with requests in flight runs no handler and the loop drains") {
    Farmed f("drop-upstream");
    int calls = 0;
    auto handles = start_counted(*f.env.upstream, 10, calls, true, [](int i) { return i % 2 ? "/files/big" : "/"; });
    // After 1 ms: attempts started, nothing answered yet (or a few).
    drop_upstream_quietly(f.env, calls, 1, 100);
    CHECK(handles[0]->write_body("x").error().code == Errc::invalid_argument);
    handles.clear();  // handles outlive their Upstream safely
  }

  TEST_CASE("dropping the Upstream while health probes, an ejection timer and requests are pending is clean") {
    UpstreamOptions o;
    o.health_check.enabled = true;
    o.health_check.interval = std::chrono::milliseconds{10};
    o.health_check.timeout = std::chrono::milliseconds{500};
    o.outlier.consecutive_failures = 1;
    o.outlier.base_ejection = std::chrono::milliseconds{5000};
    o.outlier.max_ejected_percent = 100;
    o.timeouts.total = std::chrono::milliseconds{5000};
    Farmed f("drop-timers", o);
    // A failing Pod gets ejected (its timer runs), probes run every 10 ms, requests are in flight.
    f.farm.set_failing(1, true);
    f.env.traffic(4, 2);
    int calls = 0;
    auto handles = start_counted(*f.env.upstream, 6, calls, false, [](int) { return "/files/big"; });
    drop_upstream_quietly(f.env, calls, 15, 50);
    f.farm.set_failing(1, false);
  }

  TEST_CASE("dropping the Upstream inside a request's on_body is safe") {
    Farmed f("drop-in-body");
    int bodies = 0, completes = 0;
    ForwardHandlers h;
    h.on_body = [&](std::string_view) {
      ++bodies;
      f.env.upstream.reset();
    };
    h.on_complete = [&](Status) { ++completes; };
    ForwardRequest req;
    req.target = "/files/big";
    auto r = f.env.upstream->forward(std::move(req), std::move(h));
    REQUIRE(r.ok());
    REQUIRE(f.env.loop.run_until([&] { return !f.env.upstream; }, 10000));
    f.env.loop.run_for(100);
    CHECK(bodies == 1);
    CHECK(completes == 0);
  }

  TEST_CASE("a Pod removed from the slice while a request holds it finishes that request") {
    Farmed f("removed");
    PausedDownload big(*f.env.upstream, "/files/big");
    REQUIRE(f.env.loop.run_until([&] { return !big.body.empty(); }, 5000));
    f.env.admin("tke-a", {delete_slice_op("removed-1")});
    REQUIRE(f.env.loop.run_until([&] { return f.env.upstream->picker()->empty(); }, 5000));
    CHECK(f.env.upstream->stats().pods.size() == 1);  // kept for its request
    REQUIRE(f.env.loop.run_until([&] {
      big.handle->resume_body();
      return big.done;
    }, 10000));
    CHECK(big.status.ok());
    CHECK(big.body.size() == (2u << 20));
    CHECK(f.env.upstream->stats().pods.empty());  // released with its last request
  }
}
