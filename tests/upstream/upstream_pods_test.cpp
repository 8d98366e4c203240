// The Upstream's Pod bookkeeping (Upstream::Impl::on_snapshot): each service's Pods in one array
// in snapshot order, merged with every new snapshot; Pickers that point into the snapshots.
#include <doctest/doctest.h>
#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "upstream/support/unwatched_world.h"
#include "upstream/upstream_impl.h"

namespace kupstream {
namespace {

Endpoint pod(const std::string& address, const std::string& name, bool ready = true) {
  Endpoint e;
  e.address = address;
  e.port = 8080;
  e.pod_name = name;
  e.conditions.ready = ready;
  e.conditions.terminating = !ready;
  return e;
}

struct World : test::UnwatchedWorld {
  World() : UnwatchedWorld("pods", {{"a", 1}, {"b", 1}}) {}
  // "address pod_name listed/unlisted ready/draining" per Pod of `service`, in array order.
  std::vector<std::string> pods(std::size_t service) const {
    std::vector<std::string> out;
    for (const auto& p : impl->services[service].pods)
      out.push_back(std::string(p->name()) + " " + p->endpoint->pod_name.str() + (p->listed ? (p->ready ? " ready" : " draining") : " gone"));
    return out;
  }
  std::uint64_t id_of(std::size_t service, const std::string& host_port) const {
    for (const auto& p : impl->services[service].pods)
      if (p->name() == host_port) return p->id;
    return 0;
  }
};

}  // namespace

TEST_SUITE("Upstream pods") {
  TEST_CASE("a snapshot change keeps each remaining Pod (same id, same counts), adds new ones and drops gone idle ones") {
    World w;
    w.publish(0, {pod("127.0.1.4", "p4"), pod("127.0.1.1", "p1"), pod("127.0.1.10", "p10"), pod("127.0.1.9", "p9")});
    w.publish(1, {pod("127.0.2.1", "q1")});
    // Numeric address order, as the snapshot lists them (127.0.1.9 before 127.0.1.10).
    CHECK(w.pods(0) == std::vector<std::string>{"127.0.1.1:8080 p1 ready", "127.0.1.4:8080 p4 ready",
                                                "127.0.1.9:8080 p9 ready", "127.0.1.10:8080 p10 ready"});
    const auto id4 = w.id_of(0, "127.0.1.4:8080"), id9 = w.id_of(0, "127.0.1.9:8080");
    w.impl->pod_by_id(id9)->requests = 7;

    w.publish(0, {pod("127.0.1.9", "p9"), pod("127.0.1.4", "p4-terminating", false), pod("127.0.1.20", "p20")});
    CHECK(w.pods(0) == std::vector<std::string>{"127.0.1.4:8080 p4-terminating draining", "127.0.1.9:8080 p9 ready",
                                                "127.0.1.20:8080 p20 ready"});
    CHECK(w.id_of(0, "127.0.1.4:8080") == id4);
    CHECK(w.id_of(0, "127.0.1.9:8080") == id9);
    CHECK(w.impl->pod_by_id(id9)->requests == 7);
    CHECK(w.id_of(0, "127.0.1.20:8080") > id9);  // ids are never reused
    CHECK(w.impl->pod_count() == 4);
    CHECK(w.impl->services[1].pods.size() == 1);  // the other service is untouched
    CHECK(w.pods(1) == std::vector<std::string>{"127.0.2.1:8080 q1 ready"});
  }

  TEST_CASE("a forgotten Pod's slot goes to a later Pod under a new id: the old id finds nothing") {
    World w;
    w.publish(0, {pod("127.0.1.1", "p1"), pod("127.0.1.2", "p2")});
    const auto id1 = w.id_of(0, "127.0.1.1:8080"), id2 = w.id_of(0, "127.0.1.2:8080");
    w.publish(0, {pod("127.0.1.2", "p2")});  // p1 is idle: forgotten
    CHECK(w.impl->pod_by_id(id1) == nullptr);
    CHECK(w.impl->pod_slots.size() == 2);
    w.publish(0, {pod("127.0.1.2", "p2"), pod("127.0.1.3", "p3")});
    const auto id3 = w.id_of(0, "127.0.1.3:8080");
    CHECK(w.impl->pod_slots.size() == 2);  // p3 took p1's slot
    CHECK(id3 > id2);
    CHECK(id3 != id1);
    CHECK(w.impl->pod_by_id(id1) == nullptr);
    REQUIRE(w.impl->pod_by_id(id3) != nullptr);
    CHECK(w.impl->pod_by_id(id3)->name() == "127.0.1.3:8080");
    CHECK(w.impl->pod_by_id(id2)->name() == "127.0.1.2:8080");
    CHECK(w.impl->pod_by_id(0) == nullptr);
    CHECK(w.impl->pod_by_id(id3 + 1) == nullptr);  // a slot past the end
  }

  TEST_CASE("a thread that picked from a dropped Upstream lets go of its Picker, snapshots and Pods") {
    std::weak_ptr<const EndpointSet> snapshot;
    {
      World w;
      auto set = w.publish(0, {pod("127.0.1.1", "p1")});
      snapshot = set;
      CHECK(detail::thread_routing(w.impl->publication).picker->pick());  // this thread caches it
    }
    // Dropped: only this thread's cache still holds the last Routing, and through it the snapshot.
    CHECK_FALSE(snapshot.expired());
    World other;
    other.publish(0, {pod("127.0.2.1", "q1")});
    CHECK(detail::thread_routing(other.impl->publication).picker->pick());  // a miss: gone ones are let go
    CHECK(snapshot.expired());
  }

  TEST_CASE("the Picker points into the snapshots instead of copying their Endpoints") {
    World w;
    auto a = w.publish(0, {pod("127.0.1.1", "p1"), pod("127.0.1.2", "p2")});
    auto b = w.publish(1, {pod("127.0.2.1", "q1")});
    auto picker = w.impl->current_picker();
    REQUIRE(picker->endpoints().size() == 3);
    std::vector<const Endpoint*> expected{&a->ready[0], &a->ready[1], &b->ready[0]};
    for (std::size_t i = 0; i < 3; ++i) {
      CHECK(picker->endpoints()[i].endpoint.get() == expected[i]);
      CHECK(picker->endpoints()[i].group == (i < 2 ? 0u : 1u));
    }
    // The load counter is the Pod's (shared with every loop's request path).
    UpstreamPod& p2 = *w.impl->services[0].pods[1];
    CHECK(picker->endpoints()[1].load.get() == &p2.load());
    CHECK(&detail::target_of(picker->at(1)) == &p2);
    CHECK(picker->at(1).endpoint == expected[1]);
    // The Picker keeps its snapshot alive after the Upstream moved on.
    std::weak_ptr<const EndpointSet> old = a;
    a.reset();
    w.publish(0, {pod("127.0.1.3", "p3")});
    CHECK_FALSE(old.expired());
    CHECK(picker->endpoints()[0].endpoint->pod_name == "p1");
    picker.reset();
    CHECK(old.expired());
  }

  TEST_CASE("a Pod is counted in its own 64-byte record: a Picker keeps its Pods through their array, a loop by reference") {
    if (sizeof(void*) == 8) {
      CHECK(sizeof(UpstreamPod) == 64);
      CHECK(sizeof(UpstreamPodRef) == 8);
    }
    World w;
    w.publish(0, {pod("127.0.1.1", "p1"), pod("127.0.1.2", "p2")});
    auto picker = w.impl->current_picker();
    REQUIRE(picker->size() == 2);
    const detail::PodTarget& p1 = detail::target_of(picker->at(0));
    const std::uint64_t id1 = p1.id;
    // Held once, by the service's array; the Picker keeps the array, not each Pod.
    CHECK(p1.refs.load() == 1);
    detail::TargetRef loop_ref(&p1);  // what a loop's LoopPod holds
    CHECK(p1.refs.load() == 2);
    // Both Pods leave, with no request in flight: the Upstream forgets them at once.
    w.publish(0, {pod("127.0.1.3", "p3")});
    CHECK(w.impl->pod_by_id(id1) == nullptr);
    CHECK(w.impl->services[0].pods.size() == 1);
    // The old Picker still reads them (under AddressSanitizer a freed Pod would be reported).
    CHECK(picker->at(0).endpoint->pod_name == "p1");
    CHECK(detail::target_of(picker->at(1)).id != id1);
    CHECK(p1.id == id1);
    CHECK(p1.refs.load() == 2);  // the old array and the loop's reference
    picker.reset();
    CHECK(loop_ref->refs.load() == 1);  // the loop's reference alone
    CHECK(loop_ref->id == id1);
    loop_ref = detail::TargetRef();  // the last one: the Pod is released (LeakSanitizer checks it)
  }

  TEST_CASE("a Pod that left with a request in flight stays, readable, until its last request ends") {
    World w;
    std::weak_ptr<const EndpointSet> first = w.publish(0, {pod("127.0.1.1", "p1"), pod("127.0.1.2", "p2")});
    const auto id2 = w.id_of(0, "127.0.1.2:8080");
    w.impl->pod_by_id(id2)->load().start();
    w.publish(0, {pod("127.0.1.1", "p1")});
    w.publish(0, {pod("127.0.1.1", "p1"), pod("127.0.1.3", "p3")});
    // Still known (stats() lists it, by the snapshot it was last listed in), not in the Picker.
    CHECK(w.pods(0) == std::vector<std::string>{"127.0.1.1:8080 p1 ready", "127.0.1.2:8080 p2 gone",
                                                "127.0.1.3:8080 p3 ready"});
    CHECK_FALSE(first.expired());
    CHECK(w.impl->current_picker()->endpoints().size() == 2);
    const auto stats = w.impl->stats();
    REQUIRE(stats.pods.size() == 3);
    CHECK(stats.pods[1].pod_name == "p2");
    CHECK(stats.pods[1].in_flight == 1);

    // It comes back while its request still runs: the same Pod again.
    w.publish(0, {pod("127.0.1.2", "p2-again")});
    CHECK(w.id_of(0, "127.0.1.2:8080") == id2);
    // The idle ones that left are dropped at once.
    CHECK(w.pods(0) == std::vector<std::string>{"127.0.1.2:8080 p2-again ready"});
    CHECK(first.expired());  // no Pod points into the first snapshot any more
    // Only the one with a request stays when it leaves again.
    w.publish(0, {pod("127.0.1.4", "p4")});
    CHECK(w.pods(0) == std::vector<std::string>{"127.0.1.2:8080 p2-again gone", "127.0.1.4:8080 p4 ready"});
    UpstreamPod* p2 = w.impl->pod_by_id(id2);
    REQUIRE(p2 != nullptr);
    p2->load().finish();
    w.impl->release_pod_if_gone(*p2);
    CHECK(w.pods(0) == std::vector<std::string>{"127.0.1.4:8080 p4 ready"});
    CHECK(w.impl->pod_by_id(id2) == nullptr);
    CHECK(w.impl->services[0].retired.empty());
  }

  TEST_CASE("IPv4 and IPv6 Pods merge in snapshot order across changes") {
    World w;
    w.publish(0, {pod("::1", "v6"), pod("127.0.1.2", "v4")});
    const auto id6 = w.id_of(0, "[::1]:8080");
    CHECK(w.pods(0) == std::vector<std::string>{"127.0.1.2:8080 v4 ready", "[::1]:8080 v6 ready"});
    w.publish(0, {pod("::1", "v6"), pod("127.0.1.3", "v4b"), pod("::2", "v6b")});
    CHECK(w.pods(0) == std::vector<std::string>{"127.0.1.3:8080 v4b ready", "[::1]:8080 v6 ready",
                                                "[::2]:8080 v6b ready"});
    CHECK(w.id_of(0, "[::1]:8080") == id6);
    CHECK(w.impl->pod_by_id(id6)->name() == "[::1]:8080");
  }
}

}  // namespace kupstream
