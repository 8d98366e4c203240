// An EndpointWatcher view with node labels dropped while its Node request is still in flight,
// against kubesim (TLS, the whole stack: EndpointWatcher -> SharedNodeWatch -> Reflector ->
// ApiClient): kubesim holds the Node LIST or WATCH (a delay fault), the view is dropped once
// kubesim has the request, and once kubesim is done with that request no Node watch may be open.
// Before kubesim forgot watchers whose 200 head failed to go out, a client that reset the
// connection while its watch waited left a watch listed forever (the CI timeout of
// shared_node_watch_test). Addresses are loopback only.
#include <doctest/doctest.h>

#include <chrono>
#include <functional>

#include "kubesim/kubesim_process.h"
#include "kupstream/cluster_client.h"
#include "net/support/net_loop.h"
#include "support/demo_objects.h"

using namespace kupstream;
using namespace kupstream::test;

namespace {

struct Fixture {
  TestLoop loop;
  KubesimProcess sim;
  std::unique_ptr<ClusterClient> cluster;
  bool dropped = false;
  int after_drop = 0;  // view callbacks that ran after the drop (must stay 0)

  Fixture() : sim(options()) {
    const std::vector<std::string> ops = {
        R"({"op":"apply","object":{"apiVersion":"v1","kind":"Node","metadata":{"name":"node-gpu","labels":{"pool":"gpu"}}}})",
        demo_service_op("a"),
        demo_slice_op("a", "a-1", {{"127.0.1.1", "node-gpu"}}),
    };
    REQUIRE(sim.admin("POST", "/objects", demo_batch(ops)).exit_code == 0);
    cluster = demo_admin_client(loop.loop, sim);
  }

  static KubesimProcess::Options options() {
    KubesimProcess::Options o;
    o.cluster = "kube-drop";
    return o;
  }

  // kubesim holds every Node request of this verb for `seconds` before it answers.
  void hold_nodes(const std::string& verb, double seconds) {
    REQUIRE(sim.admin("POST", "/faults",
                      R"({"type":"delay","seconds":)" + std::to_string(seconds) + R"(,"count":-1,"match":{"verb":")" + verb +
                          R"(","resource":"nodes"}})")
                .exit_code == 0);
  }

  // kubesim has received a Node request of this verb (the delay fault was hit).
  bool held(const std::string& verb) {
    auto r = sim.admin("GET", "/state");
    REQUIRE(r.exit_code == 0);
    const Json state = r.json();
    for (const auto& f : state["faults"].array())
      if (f["match"]["verb"].str() == verb && f.has("hits") && f["hits"].number() >= 1) return true;
    return false;
  }

  // The Node requests kubesim is done with (logged when their handler returns): watches or LISTs.
  int finished(bool watch) {
    auto r = sim.admin("GET", "/requests");
    REQUIRE(r.exit_code == 0);
    const Json answer = r.json();
    int n = 0;
    for (const auto& e : answer["requests"].array())
      if (e["path"].str() == "/api/v1/nodes" && e["query"].has("watch") == watch) ++n;
    return n;
  }

  int node_watches() {
    auto r = sim.admin("GET", "/watches?resource=nodes");
    REQUIRE(r.exit_code == 0);
    return static_cast<int>(r.json()["watches"].array().size());
  }

  // Polls `done` (a blocking admin call each time) with the loop running 50 ms between looks.
  bool wait(const std::function<bool()>& done, int timeout_ms = 15000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      if (done()) return true;
      if (std::chrono::steady_clock::now() >= deadline) return false;
      loop.run_for(50);
    }
  }

  std::unique_ptr<EndpointWatcher> watch_gpu() {
    ServiceRef r;
    r.cluster = "kube-drop";
    r.namespace_name = "demo";
    r.service = "a";
    r.port = PortRef::parse("http");
    r.node_labels = {{"pool", "gpu"}};
    EndpointWatcherCallbacks cb;
    cb.on_update = [this](const EndpointSetPtr&) {
      if (dropped) ++after_drop;
    };
    cb.on_state = [this](const WatchState&) {
      if (dropped) ++after_drop;
    };
    return demo_watch(*cluster, r, std::move(cb));
  }

  int finish() {
    cluster.reset();
    return loop.close_loop();
  }
};

}  // namespace

TEST_SUITE("EndpointWatcher drop") {
  TEST_CASE("a view dropped while its Node WATCH request waits for the answer leaves no Node watch open") {
    Fixture f;
    f.hold_nodes("watch", 1.0);
    auto view = f.watch_gpu();
    REQUIRE(f.wait([&] { return f.held("watch"); }));
    CHECK(f.finished(false) == 1);  // the Node LIST is done: the watch is what is in flight
    f.dropped = true;
    view.reset();
    // kubesim answers after its delay, to a client that is gone; the request then ends.
    REQUIRE(f.wait([&] { return f.finished(true) >= 1; }));
    CHECK(f.node_watches() == 0);
    CHECK(f.after_drop == 0);
    CHECK(f.finish() == 0);
    CHECK(f.after_drop == 0);
  }

  TEST_CASE("a view dropped while its Node LIST waits for the answer opens no Node watch") {
    Fixture f;
    f.hold_nodes("list", 1.0);
    auto view = f.watch_gpu();
    REQUIRE(f.wait([&] { return f.held("list"); }));
    f.dropped = true;
    view.reset();
    REQUIRE(f.wait([&] { return f.finished(false) >= 1; }));
    CHECK(f.finished(true) == 0);
    CHECK(f.node_watches() == 0);
    CHECK(f.after_drop == 0);
    CHECK(f.finish() == 0);
    CHECK(f.after_drop == 0);
  }
}
