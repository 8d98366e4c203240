// Node filters against kubesim: the views of a cluster that filter on the same node labels share
// one Node list+watch (counted in kubesim's open watches), other labels get their own, a Node
// relabelled reaches every view that shares the watch, and dropping the last view closes it.
// Addresses are loopback only.
#include <doctest/doctest.h>

#include <map>
#include <set>

#include "kubesim/kubesim_process.h"
#include "kupstream/cluster_client.h"
#include "net/support/net_loop.h"
#include "support/demo_objects.h"

using namespace kupstream;
using namespace kupstream::test;

namespace {

std::string node_op(const std::string& name, const std::string& pool) {
  return R"({"op":"apply","object":{"apiVersion":"v1","kind":"Node","metadata":{"name":")" + name +
         R"(","labels":{"pool":")" + pool + R"("}}}})";
}

struct Fixture {
  TestLoop loop;
  KubesimProcess sim;
  std::unique_ptr<ClusterClient> cluster;

  Fixture() : sim(options()) {
    // Services a and b each have one Pod on node-gpu and one on node-cpu.
    const std::vector<std::string> ops = {
        node_op("node-gpu", "gpu"),
        node_op("node-cpu", "cpu"),
        demo_service_op("a"),
        demo_service_op("b"),
        demo_slice_op("a", "a-1", {{"127.0.1.1", "node-gpu"}, {"127.0.1.2", "node-cpu"}}),
        demo_slice_op("b", "b-1", {{"127.0.2.1", "node-gpu"}, {"127.0.2.2", "node-cpu"}}),
    };
    REQUIRE(sim.admin("POST", "/objects", demo_batch(ops)).exit_code == 0);
    cluster = demo_admin_client(loop.loop, sim);
  }

  static KubesimProcess::Options options() {
    KubesimProcess::Options o;
    o.cluster = "kube-a";
    o.extra_args = {"--bookmark-interval", "0.3"};
    return o;
  }

  // The Node watches open now: their label selectors (one entry per watch).
  std::multiset<std::string> node_watches() {
    auto r = sim.admin("GET", "/watches?resource=nodes");
    REQUIRE(r.exit_code == 0);
    const Json answer = r.json();
    std::multiset<std::string> out;
    for (const auto& w : answer["watches"].array()) out.insert(w["labelSelector"].str());
    return out;
  }

  // Waits until exactly these Node watches are open. Each look is a blocking admin call (a
  // process), so the loop runs 100 ms between looks.
  void wait_node_watches(const std::multiset<std::string>& want, int timeout_ms = 15000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    std::multiset<std::string> got;
    for (;;) {
      got = node_watches();
      if (got == want || std::chrono::steady_clock::now() >= deadline) break;
      loop.run_for(100);
    }
    // As text, so that a failure shows both sides.
    auto text = [](const std::multiset<std::string>& m) {
      std::string out;
      for (const auto& x : m) out += "[" + x + "]";
      return out;
    };
    CHECK(text(got) == text(want));
  }

  ServiceRef ref(const std::string& service, const std::string& pool) const {
    ServiceRef r;
    r.cluster = "kube-a";
    r.namespace_name = "demo";
    r.service = service;
    r.port = PortRef::parse("http");
    r.node_labels = {{"pool", pool}};
    return r;
  }

  int finish() {
    cluster.reset();
    return loop.close_loop();
  }
};

// The ready addresses of one watcher's latest snapshot.
struct Seen {
  EndpointSetPtr last;
  std::set<std::string> ready() const {
    std::set<std::string> out;
    if (last)
      for (const auto& e : last->ready) out.insert(e.address);
    return out;
  }
};

std::unique_ptr<EndpointWatcher> watch(Fixture& f, const std::string& service, const std::string& pool, Seen& seen) {
  EndpointWatcherCallbacks cb;
  cb.on_update = [&seen](const EndpointSetPtr& s) { seen.last = s; };
  auto w = f.cluster->watch(f.ref(service, pool), std::move(cb));
  REQUIRE(w.ok());
  return std::move(*w);
}

using Addrs = std::set<std::string>;

}  // namespace

TEST_SUITE("SharedNodeWatch") {
  TEST_CASE("views with the same node labels share one Node watch; a relabelled Node reaches them all") {
    Fixture f;
    Seen a_gpu, b_gpu, a_cpu;
    auto wa = watch(f, "a", "gpu", a_gpu);
    REQUIRE(f.loop.run_until([&] { return a_gpu.ready() == Addrs{"127.0.1.1"}; }, 10000));
    // A second service with the same labels joins the synced watch: its filtered snapshot
    // comes without a second Node watch.
    auto wb = watch(f, "b", "gpu", b_gpu);
    REQUIRE(f.loop.run_until([&] { return b_gpu.ready() == Addrs{"127.0.2.1"}; }, 10000));
    f.wait_node_watches({"pool=gpu"});
    // Other labels: a watch of their own.
    auto wc = watch(f, "a", "cpu", a_cpu);
    REQUIRE(f.loop.run_until([&] { return a_cpu.ready() == Addrs{"127.0.1.2"}; }, 10000));
    f.wait_node_watches({"pool=gpu", "pool=cpu"});

    // node-cpu becomes a gpu node: both gpu views take its Pods, the cpu view loses them (the
    // last good snapshot was not emptied first: it goes straight to no endpoint).
    REQUIRE(f.sim.admin("POST", "/objects", demo_batch({node_op("node-cpu", "gpu")})).exit_code == 0);
    REQUIRE(f.loop.run_until([&] {
      return a_gpu.ready() == Addrs{"127.0.1.1", "127.0.1.2"} && b_gpu.ready() == Addrs{"127.0.2.1", "127.0.2.2"} &&
             a_cpu.ready().empty();
    }, 10000));

    // The gpu watch stays while one of its views does, and closes with the last.
    wa.reset();
    f.loop.run_for(300);
    f.wait_node_watches({"pool=gpu", "pool=cpu"});
    wb.reset();
    f.wait_node_watches({"pool=cpu"});
    wc.reset();
    f.wait_node_watches({});
    CHECK(f.finish() == 0);
  }

  TEST_CASE("a view made after the shared watch went away starts a new one") {
    Fixture f;
    Seen first, second;
    auto w1 = watch(f, "a", "gpu", first);
    REQUIRE(f.loop.run_until([&] { return first.ready() == Addrs{"127.0.1.1"}; }, 10000));
    // Dropped once its watch is open: a drop while the watch request is still in flight is not
    // what this case is about (watch_drop_test.cpp covers it). One CI run under load saw the
    // count not settle then: kubesim kept a watch whose client reset the connection before its
    // 200 head went out (fixed in kubesim; test_faults.py reproduces it).
    f.wait_node_watches({"pool=gpu"});
    w1.reset();
    f.wait_node_watches({});
    auto w2 = watch(f, "b", "gpu", second);
    REQUIRE(f.loop.run_until([&] { return second.ready() == Addrs{"127.0.2.1"}; }, 10000));
    f.wait_node_watches({"pool=gpu"});
    w2.reset();
    CHECK(f.finish() == 0);
  }
}
