// Watch fan-in (SliceWatchMode::per_namespace) against kubesim: one EndpointSlice watch per
// namespace shared by its Services, counted in kubesim's request log; Services joining and
// leaving restart it with the new selector without disturbing the others' snapshots; churn on
// one Service, a 410 and an API-server restart. Addresses are loopback only.
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

constexpr const char* kSlicesPath = "/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices";

std::string slice_op(const std::string& service, const std::string& slice, const std::vector<std::string>& addresses) {
  return demo_slice_op(service, slice, std::vector<DemoEndpoint>(addresses.begin(), addresses.end()));
}

// One logged API request on the demo namespace's EndpointSlices.
struct SliceRequest {
  bool watch = false;
  std::string selector;
  int code = 0;
};

struct Fixture {
  TestLoop loop;
  KubesimProcess sim;
  std::unique_ptr<ClusterClient> cluster;

  explicit Fixture(SliceWatchMode mode, const std::vector<std::string>& services) : sim(options()) {
    std::vector<std::string> ops;
    for (std::size_t i = 0; i < services.size(); ++i) {
      ops.push_back(demo_service_op(services[i]));
      ops.push_back(slice_op(services[i], services[i] + "-1", {"127.0.1." + std::to_string(10 + i)}));
    }
    REQUIRE(sim.admin("POST", "/objects", demo_batch(ops)).exit_code == 0);
    ClusterClientOptions co;
    co.slice_watch = mode;
    cluster = demo_admin_client(loop.loop, sim, co);
  }

  static KubesimProcess::Options options() {
    KubesimProcess::Options o;
    o.cluster = "kube-a";
    o.extra_args = {"--bookmark-interval", "0.3"};
    return o;
  }

  void scale(const std::string& service, const std::vector<std::string>& addresses) {
    REQUIRE(sim.admin("POST", "/objects", slice_op(service, service + "-1", addresses)).exit_code == 0);
  }

  // The requests on demo's EndpointSlices since `since` (a seq), in order.
  std::vector<SliceRequest> slice_requests(double since = 0) {
    auto r = sim.admin("GET", "/requests?since=" + std::to_string(static_cast<long long>(since)));
    REQUIRE(r.exit_code == 0);
    std::vector<SliceRequest> out;
    const Json answer = r.json();
    for (const auto& e : answer["requests"].array()) {
      if (e["path"].str() != kSlicesPath) continue;
      SliceRequest s;
      const auto& q = e["query"];
      s.watch = q.has("watch");
      s.selector = q.has("labelSelector") ? q["labelSelector"].str() : "";
      s.code = static_cast<int>(e["code"].number());
      out.push_back(std::move(s));
    }
    return out;
  }

  // The EndpointSlice watches open now: id -> labelSelector.
  std::map<int, std::string> open_watches() {
    auto r = sim.admin("GET", "/watches?resource=endpointslices");
    REQUIRE(r.exit_code == 0);
    const Json answer = r.json();
    std::map<int, std::string> out;
    for (const auto& w : answer["watches"].array())
      if (w["namespace"].str() == "demo") out[static_cast<int>(w["id"].number())] = w["labelSelector"].str();
    return out;
  }

  // Waits until exactly these selectors are open (one watch each), and returns the watches.
  // Each look is a blocking admin call (a process), so the loop runs 100 ms between looks.
  std::map<int, std::string> wait_open(const std::multiset<std::string>& want, int timeout_ms = 15000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    std::map<int, std::string> now;
    std::multiset<std::string> got;
    for (;;) {
      now = open_watches();
      got.clear();
      for (const auto& [id, sel] : now) got.insert(sel);
      if (got == want || std::chrono::steady_clock::now() >= deadline) break;
      loop.run_for(100);
    }
    CHECK(got == want);
    return now;
  }

  double last_seq() {
    auto r = sim.admin("GET", "/requests");
    REQUIRE(r.exit_code == 0);
    const Json answer = r.json();
    const auto& reqs = answer["requests"].array();
    return reqs.empty() ? 0 : reqs.back()["seq"].number();
  }

  ServiceRef ref(const std::string& service) const {
    ServiceRef r;
    r.cluster = "kube-a";
    r.namespace_name = "demo";
    r.service = service;
    r.port = PortRef::parse("http");
    return r;
  }

  int finish() {
    cluster.reset();
    return loop.close_loop();
  }
};

// What one watcher has seen.
struct Seen {
  std::vector<EndpointSetPtr> updates;
  std::vector<WatchState> states;
  std::size_t ready() const { return updates.empty() ? 0 : updates.back()->ready.size(); }
  bool any_empty() const {
    for (const auto& u : updates)
      if (u->ready.empty() && u->draining.empty()) return true;
    return false;
  }
};

std::unique_ptr<EndpointWatcher> watch(Fixture& f, const std::string& service, Seen& seen) {
  EndpointWatcherCallbacks cb;
  cb.on_update = [&seen](const EndpointSetPtr& s) { seen.updates.push_back(s); };
  cb.on_state = [&seen](const WatchState& s) { seen.states.push_back(s); };
  return demo_watch(*f.cluster, f.ref(service), std::move(cb));
}

// The selectors of the LISTs among `reqs` (a LIST is logged once answered; a watch when it ends).
std::multiset<std::string> lists(const std::vector<SliceRequest>& reqs) {
  std::multiset<std::string> out;
  for (const auto& r : reqs)
    if (!r.watch) out.insert(r.selector);
  return out;
}

const std::string kABC = "kubernetes.io/service-name in (a,b,c)";

}  // namespace

TEST_SUITE("NamespaceSliceWatch") {
  TEST_CASE("the services of one namespace share one EndpointSlice list and watch naming them all") {
    Fixture f(SliceWatchMode::per_namespace, {"a", "b", "c"});
    Seen sa, sb, sc;
    auto wa = watch(f, "a", sa);
    auto wb = watch(f, "b", sb);
    auto wc = watch(f, "c", sc);
    REQUIRE(f.loop.run_until([&] { return sa.updates.size() == 1 && sb.updates.size() == 1 && sc.updates.size() == 1; },
                             10000));
    CHECK(sa.updates[0]->ready[0].address == "127.0.1.10");
    CHECK(sb.updates[0]->ready[0].address == "127.0.1.11");
    CHECK(sc.updates[0]->ready[0].address == "127.0.1.12");
    auto open = f.wait_open({kABC});
    CHECK(lists(f.slice_requests()) == std::multiset<std::string>{kABC});

    // Churn on b reaches b only, through the same watch.
    std::vector<std::string> churn;
    for (int i = 0; i < 4; ++i) {
      std::vector<std::string> addrs = {"127.0.1.11"};
      for (int j = 0; j <= i; ++j) addrs.push_back("127.0.2." + std::to_string(j + 1));
      churn.push_back(slice_op("b", "b-1", addrs));
    }
    REQUIRE(f.sim.admin("POST", "/objects", demo_batch(churn)).exit_code == 0);
    REQUIRE(f.loop.run_until([&] { return sb.ready() == 5; }, 10000));
    f.loop.run_for(300);
    CHECK(sa.updates.size() == 1);
    CHECK(sc.updates.size() == 1);
    CHECK(f.open_watches() == open);  // still the one watch
    CHECK(lists(f.slice_requests()).size() == 1);
    wa.reset();
    wb.reset();
    wc.reset();
    CHECK(f.finish() == 0);
  }

  TEST_CASE("per_service mode opens one list and watch per service") {
    Fixture f(SliceWatchMode::per_service, {"a", "b", "c"});
    Seen sa, sb, sc;
    auto wa = watch(f, "a", sa);
    auto wb = watch(f, "b", sb);
    auto wc = watch(f, "c", sc);
    REQUIRE(f.loop.run_until([&] { return sa.updates.size() == 1 && sb.updates.size() == 1 && sc.updates.size() == 1; },
                             10000));
    const std::multiset<std::string> each = {"kubernetes.io/service-name=a", "kubernetes.io/service-name=b",
                                             "kubernetes.io/service-name=c"};
    f.wait_open(each);
    CHECK(lists(f.slice_requests()) == each);
    wa.reset();
    wb.reset();
    wc.reset();
    CHECK(f.finish() == 0);
  }

  TEST_CASE("a service joining or leaving restarts the shared watch with the new selector; the others keep "
            "their snapshots and publish nothing") {
    Fixture f(SliceWatchMode::per_namespace, {"a", "b", "c"});
    Seen sa, sb;
    auto wa = watch(f, "a", sa);
    auto wb = watch(f, "b", sb);
    REQUIRE(f.loop.run_until([&] { return sa.updates.size() == 1 && sb.updates.size() == 1; }, 10000));
    f.wait_open({"kubernetes.io/service-name in (a,b)"});
    const double before_join = f.last_seq();

    Seen sc;
    auto wc = watch(f, "c", sc);
    REQUIRE(f.loop.run_until([&] { return sc.updates.size() == 1; }, 10000));
    CHECK(sc.updates[0]->ready[0].address == "127.0.1.12");
    f.wait_open({kABC});
    CHECK(lists(f.slice_requests(before_join)) == std::multiset<std::string>{kABC});
    f.loop.run_for(200);
    // a and b were relisted with the same slices: no update, and never a state other than synced.
    CHECK(sa.updates.size() == 1);
    CHECK(sb.updates.size() == 1);
    for (const auto& s : sa.states) CHECK(s.phase == WatchPhase::synced);
    for (const auto& s : sb.states) CHECK(s.phase == WatchPhase::synced);

    // A change on a after the restart flows through the new watch.
    f.scale("a", {"127.0.1.10", "127.0.1.20"});
    REQUIRE(f.loop.run_until([&] { return sa.ready() == 2; }, 10000));

    // b leaves: the watch restarts without it; a and c go on.
    const double before_leave = f.last_seq();
    wb.reset();
    f.wait_open({"kubernetes.io/service-name in (a,c)"});
    CHECK(lists(f.slice_requests(before_leave)) == std::multiset<std::string>{"kubernetes.io/service-name in (a,c)"});
    f.scale("c", {"127.0.1.12", "127.0.1.22"});
    REQUIRE(f.loop.run_until([&] { return sc.ready() == 2; }, 10000));
    CHECK(sa.updates.size() == 2);
    CHECK(!sa.any_empty());
    CHECK(!sc.any_empty());

    // A leave and a join in one turn make one restart.
    const double before_batch = f.last_seq();
    Seen sb2;
    wc.reset();
    auto wb2 = watch(f, "b", sb2);
    REQUIRE(f.loop.run_until([&] { return sb2.updates.size() == 1; }, 10000));
    f.wait_open({"kubernetes.io/service-name in (a,b)"});
    f.loop.run_for(200);
    CHECK(lists(f.slice_requests(before_batch)) == std::multiset<std::string>{"kubernetes.io/service-name in (a,b)"});
    CHECK(sa.updates.size() == 2);
    wa.reset();
    wb2.reset();
    CHECK(f.finish() == 0);
  }

  TEST_CASE("a slice relabelled from one service to another moves between them in one step each") {
    Fixture f(SliceWatchMode::per_namespace, {"a", "b"});
    Seen sa, sb;
    auto wa = watch(f, "a", sa);
    auto wb = watch(f, "b", sb);
    REQUIRE(f.loop.run_until([&] { return sa.updates.size() == 1 && sb.updates.size() == 1; }, 10000));
    REQUIRE(f.sim.admin("POST", "/objects", slice_op("a", "a-2", {"127.0.1.30"})).exit_code == 0);
    REQUIRE(f.loop.run_until([&] { return sa.ready() == 2; }, 10000));
    REQUIRE(f.sim.admin("POST", "/objects", slice_op("b", "a-2", {"127.0.1.30"})).exit_code == 0);  // relabelled
    REQUIRE(f.loop.run_until([&] { return sa.ready() == 1 && sb.ready() == 2; }, 10000));
    CHECK(sa.updates.size() == 3);
    CHECK(sb.updates.size() == 2);
    // Relabelled out of the selection (service d is not watched): a loses it.
    REQUIRE(f.sim.admin("POST", "/objects", slice_op("d", "a-1", {"127.0.1.10"})).exit_code == 0);
    REQUIRE(f.loop.run_until([&] { return sa.updates.size() == 4; }, 10000));
    CHECK(sa.updates.back()->ready.empty());  // real API content: a has no slice left
    CHECK(sb.updates.size() == 2);
    wa.reset();
    wb.reset();
    CHECK(f.finish() == 0);
  }

  TEST_CASE("a 410 relists once for every service; an API-server restart keeps every snapshot until it is back") {
    Fixture f(SliceWatchMode::per_namespace, {"a", "b"});
    Seen sa, sb;
    auto wa = watch(f, "a", sa);
    auto wb = watch(f, "b", sb);
    REQUIRE(f.loop.run_until([&] { return sa.updates.size() == 1 && sb.updates.size() == 1; }, 10000));
    f.wait_open({"kubernetes.io/service-name in (a,b)"});

    // 410 with a change on a during the gap: one LIST, one update for a, none for b.
    const double before_gone = f.last_seq();
    REQUIRE(f.sim.admin("POST", "/compact", "{}").exit_code == 0);
    REQUIRE(f.sim.admin("POST", "/watches/error", R"({"resource":"endpointslices","code":410})").exit_code == 0);
    f.scale("a", {"127.0.1.10", "127.0.1.40"});
    REQUIRE(f.loop.run_until([&] { return sa.ready() == 2; }, 10000));
    f.wait_open({"kubernetes.io/service-name in (a,b)"});
    f.loop.run_for(200);
    CHECK(lists(f.slice_requests(before_gone)) == std::multiset<std::string>{"kubernetes.io/service-name in (a,b)"});
    CHECK(sb.updates.size() == 1);
    CHECK(sa.updates.size() == 2);

    // Restart with a new history: both go stale (the snapshot stays), then synced again.
    REQUIRE(f.sim.admin("POST", "/restart", R"({"history":"new","down_seconds":0.5})").exit_code == 0);
    REQUIRE(f.loop.run_until([&] {
      return wa->state().phase == WatchPhase::stale && wb->state().phase == WatchPhase::stale;
    }, 10000));
    CHECK(wa->current()->ready.size() == 2);
    CHECK(wb->current()->ready.size() == 1);
    CHECK(wa->state().reason.find("cluster \"kube-a\"") != std::string::npos);
    REQUIRE(f.loop.run_until([&] {
      return wa->state().phase == WatchPhase::synced && wb->state().phase == WatchPhase::synced;
    }, 15000));
    f.scale("b", {"127.0.1.11", "127.0.1.41"});
    REQUIRE(f.loop.run_until([&] { return sb.ready() == 2; }, 10000));
    CHECK(!sa.any_empty());
    CHECK(!sb.any_empty());
    wa.reset();
    wb.reset();
    CHECK(f.finish() == 0);
  }

  TEST_CASE("dropping every handle inside an update of the shared watch stops it and the loop drains") {
    Fixture f(SliceWatchMode::per_namespace, {"a", "b"});
    std::unique_ptr<EndpointWatcher> wa, wb;
    int calls = 0;
    EndpointWatcherCallbacks cb;
    cb.on_update = [&](const EndpointSetPtr&) {
      ++calls;
      wa.reset();
      wb.reset();
    };
    auto ra = f.cluster->watch(f.ref("a"), cb);
    auto rb = f.cluster->watch(f.ref("b"), cb);
    REQUIRE(ra.ok());
    REQUIRE(rb.ok());
    wa = std::move(*ra);
    wb = std::move(*rb);
    REQUIRE(f.loop.run_until([&] { return calls == 1; }, 10000));
    f.scale("a", {"127.0.1.50"});
    f.loop.run_for(300);
    CHECK(calls == 1);
    CHECK(f.finish() == 0);
  }
}
