// ClusterClient / EndpointWatcher lifetime against kubesim: drops inside callbacks, late
// subscribers, and the loop draining afterwards.
#include <doctest/doctest.h>

#include "kupstream/cluster_client.h"
#include "net/support/net_loop.h"
#include "kubesim/kubesim_process.h"
#include "support/demo_objects.h"

using namespace kupstream;
using namespace kupstream::test;

namespace {

KubesimProcess::Options kube_a(std::vector<std::string> args = {}) {
  KubesimProcess::Options o;
  o.cluster = "kube-a";
  o.extra_args = std::move(args);
  return o;
}

std::string slice_json(const std::vector<std::string>& addresses, const std::string& service = "web") {
  return demo_slice_op(service, service + "-1", std::vector<DemoEndpoint>(addresses.begin(), addresses.end()));
}

struct Fixture {
  TestLoop loop;
  KubesimProcess sim;
  std::unique_ptr<ClusterClient> cluster;

  explicit Fixture(std::vector<std::string> sim_args = {}, ClusterClientOptions co = {}) : sim(kube_a(std::move(sim_args))) {
    REQUIRE(sim.admin("POST", "/objects", demo_service_op("web")).exit_code == 0);
    scale({"127.0.1.1", "127.0.1.2"});
    cluster = demo_admin_client(loop.loop, sim, co);
  }

  ServiceRef ref(const char* port = "http", const char* service = "web") const {
    ServiceRef r;
    r.cluster = "kube-a";
    r.namespace_name = "demo";
    r.service = service;
    r.port = PortRef::parse(port);
    return r;
  }

  // Blocking (kubesimctl.py): called between loop runs.
  void scale(const std::vector<std::string>& addresses) {
    REQUIRE(sim.admin("POST", "/objects", slice_json(addresses)).exit_code == 0);
  }

  std::unique_ptr<EndpointWatcher> watch(const ServiceRef& r, EndpointWatcherCallbacks cb) {
    return demo_watch(*cluster, r, std::move(cb));
  }

  int finish() {
    cluster.reset();
    return loop.close_loop();
  }
};

}  // namespace

TEST_SUITE("EndpointWatcher") {
  TEST_CASE("a handle dropped inside its own update hears nothing more while a sharing handle goes on") {
    Fixture f;
    std::unique_ptr<EndpointWatcher> a, b;
    int a_updates = 0, b_updates = 0;
    std::size_t b_last = 0;
    EndpointWatcherCallbacks ca;
    ca.on_update = [&](const EndpointSetPtr&) {
      ++a_updates;
      a.reset();  // inside its own callback
    };
    ca.on_state = [&](const WatchState&) { CHECK(a != nullptr); };
    EndpointWatcherCallbacks cb;
    cb.on_update = [&](const EndpointSetPtr& s) {
      ++b_updates;
      b_last = s->ready.size();
    };
    auto ra = f.cluster->watch(f.ref(), ca);
    auto rb = f.cluster->watch(f.ref(), cb);
    REQUIRE(ra.ok());
    REQUIRE(rb.ok());
    a = std::move(*ra);
    b = std::move(*rb);
    CHECK(a_updates == 0);  // never inside watch()
    REQUIRE(f.loop.run_until([&] { return b_updates == 1 && !a; }, 10000));
    f.scale({"127.0.1.1", "127.0.1.2", "127.0.1.3"});
    REQUIRE(f.loop.run_until([&] { return b_updates == 2; }, 10000));
    CHECK(b_last == 3);
    CHECK(a_updates == 1);
    b.reset();
    CHECK(f.finish() == 0);
  }

  TEST_CASE("dropping the last handle inside its update stops the watches and the loop drains") {
    Fixture f;
    std::unique_ptr<EndpointWatcher> w;
    int updates = 0;
    EndpointWatcherCallbacks c;
    c.on_update = [&](const EndpointSetPtr& s) {
      ++updates;
      CHECK(s->ready.size() == 2);
      w.reset();
    };
    auto r = f.cluster->watch(f.ref(), c);
    REQUIRE(r.ok());
    w = std::move(*r);
    REQUIRE(f.loop.run_until([&] { return updates == 1; }, 10000));
    f.scale({"127.0.1.9"});
    f.loop.run_for(300);
    CHECK(updates == 1);
    CHECK(f.finish() == 0);
  }

  TEST_CASE("a handle dropping another sharing handle inside a callback silences it") {
    Fixture f;
    std::unique_ptr<EndpointWatcher> a, b;
    int a_updates = 0, b_updates = 0;
    EndpointWatcherCallbacks ca;
    ca.on_update = [&](const EndpointSetPtr&) {
      ++a_updates;
      b.reset();
    };
    EndpointWatcherCallbacks cb;
    cb.on_update = [&](const EndpointSetPtr&) { ++b_updates; };
    a = f.watch(f.ref(), ca);
    b = f.watch(f.ref(), cb);
    REQUIRE(f.loop.run_until([&] { return a_updates == 1; }, 10000));
    f.scale({"127.0.1.5"});
    REQUIRE(f.loop.run_until([&] { return a_updates == 2; }, 10000));
    CHECK(b_updates == 0);  // a was called first and dropped b before its turn
    a.reset();
    CHECK(f.finish() == 0);
  }

  TEST_CASE("a late subscriber gets the current state and snapshot on a later turn") {
    Fixture f;
    int first = 0;
    EndpointWatcherCallbacks c1;
    c1.on_update = [&](const EndpointSetPtr&) { ++first; };
    auto w1 = f.watch(f.ref(), c1);
    REQUIRE(f.loop.run_until([&] { return first == 1; }, 10000));
    std::vector<std::string> seen;
    EndpointWatcherCallbacks c2;
    c2.on_state = [&](const WatchState& s) { seen.push_back(std::string("state:") + to_string(s.phase)); };
    c2.on_update = [&](const EndpointSetPtr& s) { seen.push_back("update:" + std::to_string(s->generation)); };
    auto w2 = f.watch(f.ref(), c2);
    CHECK(seen.empty());
    CHECK(w2->current() != nullptr);  // shared view: already synced
    REQUIRE(f.loop.run_until([&] { return seen.size() == 2; }, 5000));
    CHECK(seen == std::vector<std::string>{"state:synced", "update:1"});
    w1.reset();
    w2.reset();
    CHECK(f.finish() == 0);
  }

  TEST_CASE("a missing port is not_found with an empty set; another port of the same service works") {
    Fixture f;
    EndpointSetPtr bad_set;
    WatchState bad_state;
    EndpointWatcherCallbacks cb;
    cb.on_update = [&](const EndpointSetPtr& s) { bad_set = s; };
    cb.on_state = [&](const WatchState& s) { bad_state = s; };
    auto bad = f.watch(f.ref("metrics"), cb);
    int good_updates = 0;
    EndpointWatcherCallbacks cg;
    cg.on_update = [&](const EndpointSetPtr&) { ++good_updates; };
    auto good = f.watch(f.ref("80"), cg);
    REQUIRE(f.loop.run_until([&] { return bad_set && good_updates == 1; }, 10000));
    CHECK(bad_state.phase == WatchPhase::not_found);
    CHECK(bad_state.reason.find("has no port \"metrics\"") != std::string::npos);
    CHECK(bad_set->ready.empty());
    CHECK(good->current()->ready.size() == 2);
    bad.reset();
    good.reset();
    CHECK(f.finish() == 0);
  }

  TEST_CASE("watch-list on a server that holds the bookmark back: syncing while waiting, LIST after the bound, "
            "and the next service of the cluster lists at once") {
    ClusterClientOptions co;
    co.watch_list = true;
    co.watch_list_bookmark_timeout = std::chrono::milliseconds{500};
    Fixture f({"--watch-list", "support"}, co);
    REQUIRE(f.sim.admin("POST", "/objects", demo_service_op("api")).exit_code == 0);
    REQUIRE(f.sim.admin("POST", "/objects", slice_json({"127.0.1.7"}, "api")).exit_code == 0);
    std::vector<WatchState> states;
    int updates = 0;
    EndpointWatcherCallbacks c;
    c.on_state = [&](const WatchState& s) { states.push_back(s); };
    c.on_update = [&](const EndpointSetPtr&) { ++updates; };
    const auto t0 = std::chrono::steady_clock::now();
    auto w = f.watch(f.ref(), c);
    REQUIRE(f.loop.run_until([&] { return updates == 1; }, 10000));
    const auto first = std::chrono::steady_clock::now() - t0;
    CHECK(first >= std::chrono::milliseconds{450});  // the bound, not a bookmark
    CHECK(first < std::chrono::milliseconds{500 + 5000});
    REQUIRE(!states.empty());
    CHECK(states.front().phase == WatchPhase::syncing);
    CHECK(states.front().reason.find("waiting for the initial-events-end bookmark") != std::string::npos);
    CHECK(w->state().phase == WatchPhase::synced);
    CHECK(w->current()->ready.size() == 2);
    int fell_back = 0;
    for (const auto& n : w->state().notes) fell_back += n.find("fell back to LIST + watch") != std::string::npos;
    CHECK(fell_back == 2);  // endpointslices and services

    // Another Service of the same cluster: its resources are known to be slow, so it lists at
    // once (well within the bound) and says why.
    int api_updates = 0;
    EndpointWatcherCallbacks ca;
    ca.on_update = [&](const EndpointSetPtr&) { ++api_updates; };
    const auto t1 = std::chrono::steady_clock::now();
    auto api = f.watch(f.ref("http", "api"), ca);
    REQUIRE(f.loop.run_until([&] { return api_updates == 1; }, 10000));
    CHECK(std::chrono::steady_clock::now() - t1 < std::chrono::milliseconds{450});
    CHECK(api->current()->ready.size() == 1);
    int skipped = 0;
    for (const auto& n : api->state().notes) skipped += n.find("watch-list skipped for") != std::string::npos;
    CHECK(skipped == 2);

    f.scale({"127.0.1.1", "127.0.1.2", "127.0.1.3"});
    REQUIRE(f.loop.run_until([&] { return updates == 2; }, 10000));
    CHECK(w->current()->ready.size() == 3);
    w.reset();
    api.reset();
    CHECK(f.finish() == 0);
  }

  TEST_CASE("dropping the handle while its watch-list waits for the bookmark stops everything") {
    ClusterClientOptions co;
    co.watch_list = true;
    co.watch_list_bookmark_timeout = std::chrono::milliseconds{60'000};
    Fixture f({"--watch-list", "support"}, co);
    int calls_after_drop = 0;
    bool dropped = false;
    std::unique_ptr<EndpointWatcher> w;
    EndpointWatcherCallbacks c;
    c.on_state = [&](const WatchState& s) {
      if (dropped) ++calls_after_drop;
      if (s.reason.find("waiting for the initial-events-end bookmark") != std::string::npos) {
        dropped = true;
        w.reset();  // inside its own callback, with the bookmark timers armed
      }
    };
    c.on_update = [&](const EndpointSetPtr&) { ++calls_after_drop; };
    w = f.watch(f.ref(), c);
    REQUIRE(f.loop.run_until([&] { return dropped; }, 10000));
    f.loop.run_for(300);
    CHECK(calls_after_drop == 0);
    CHECK(f.finish() == 0);
  }
}
