#include <doctest/doctest.h>

#include <fmt/format.h>

#include "discovery/slice_merge.h"
#include "kupstream/endpoint.h"

using namespace kupstream;
using namespace kupstream::detail;
using kupstream::kube::AddressType;

namespace {

// The watcher's store, filled from decoded slices as the ServiceCache fills it.
using Slices = SliceStore;

kube::SliceEndpoint sep(std::string address, std::string node = "node-a", std::optional<bool> ready = std::nullopt,
                        std::optional<bool> serving = std::nullopt, std::optional<bool> terminating = std::nullopt) {
  kube::SliceEndpoint e;
  e.addresses = {std::move(address)};
  e.node_name = std::move(node);
  e.conditions = {ready, serving, terminating};
  e.target_ref = kube::ObjectRef{"Pod", "pod-" + e.addresses[0], "default"};
  return e;
}

kube::EndpointSlice slice(std::string name, std::vector<kube::SliceEndpoint> eps,
                          std::vector<std::pair<std::string, int>> ports = {{"http", 8080}},
                          AddressType type = AddressType::ipv4) {
  kube::EndpointSlice s;
  s.metadata.name = std::move(name);
  s.metadata.namespace_ = "default";
  s.address_type = type;
  s.endpoints = std::move(eps);
  for (auto& [n, p] : ports) s.ports.push_back({n, p, "TCP", ""});
  return s;
}

kube::EndpointSlice with_rv(kube::EndpointSlice s, std::string rv) {
  s.metadata.resource_version = std::move(rv);
  return s;
}

kube::Service service(std::vector<std::pair<std::string, int>> ports) {
  kube::Service s;
  s.metadata.name = "httpbin";
  s.metadata.namespace_ = "default";
  for (auto& [n, p] : ports) s.ports.push_back({n, p, {}, "TCP", ""});
  return s;
}

std::vector<std::string> backends(const SliceMergeResult& r) {
  auto set = EndpointSet::make(1, "", r.endpoints);
  std::vector<std::string> out;
  for (const auto& e : set->ready) out.push_back(e.host_port());
  return out;
}

}  // namespace

TEST_SUITE("merge_slices") {
  TEST_CASE("all slices of a service are merged and a backend in two slices counts once") {
    Slices slices;
    slices.put(slice("a", {sep("127.0.1.1"), sep("127.0.1.2")}));
    slices.put(slice("b", {sep("127.0.1.2"), sep("127.0.1.3")}));
    auto svc = service({{"http", 8000}});
    auto r = merge_slices({&slices, &svc, PortRef::number(8000), nullptr});
    CHECK(r.problem == PortProblem::none);
    CHECK(r.port_name == "http");
    CHECK(backends(r) == std::vector<std::string>{"127.0.1.1:8080", "127.0.1.2:8080", "127.0.1.3:8080"});
  }

  TEST_CASE("endpoints on one node, in one zone, share one buffer for each name") {
    Slices slices;
    auto a1 = sep("127.0.1.1", "node-pool1-with-a-long-name");
    auto a2 = sep("127.0.1.2", "node-pool1-with-a-long-name");
    auto b1 = sep("127.0.1.3", "node-pool2-with-a-long-name");
    for (auto* e : {&a1, &a2, &b1}) {
      e->zone = "zone-1a";
      e->hint_zones = {"zone-1a"};
    }
    slices.put(slice("a", {a1, b1}));
    slices.put(slice("b", {a2}));
    auto svc = service({{"http", 8000}});
    auto r = merge_slices({&slices, &svc, PortRef::number(8000), nullptr});
    REQUIRE(r.endpoints.size() == 3);
    const Endpoint* on[3] = {};
    for (const auto& e : r.endpoints) on[e.address.back() - '1'] = &e;
    REQUIRE((on[0] && on[1] && on[2]));
    CHECK(on[0]->node_name == "node-pool1-with-a-long-name");
    CHECK(on[0]->node_name.shares_buffer_with(on[1]->node_name));  // across two slices
    CHECK_FALSE(on[0]->node_name.shares_buffer_with(on[2]->node_name));
    CHECK(on[2]->node_name == "node-pool2-with-a-long-name");
    CHECK(on[0]->zone.shares_buffer_with(on[2]->zone));
    REQUIRE(on[2]->hint_zones.size() == 1);
    CHECK(on[2]->hint_zones[0] == "zone-1a");
    CHECK(on[2]->hint_zones[0].shares_buffer_with(on[0]->zone));  // a hint and a zone of the same text
    CHECK(on[2]->hint_zones.shares_buffer_with(on[0]->hint_zones));  // one list for the same hints
  }

  TEST_CASE("a Pod's name is one buffer for the store, the merged endpoints and the slice's next versions") {
    Slices slices;
    slices.put(slice("a", {sep("127.0.1.1"), sep("127.0.1.2")}));
    auto svc = service({{"http", 8000}});
    const auto first = merge_slices({&slices, &svc, PortRef::number(8000), nullptr});
    REQUIRE(first.endpoints.size() == 2);
    const SharedName& stored = slices.by_name().at("a").pod_name(0);
    CHECK(stored == "pod-127.0.1.1");
    CHECK(first.endpoints[0].pod_name.shares_buffer_with(stored));

    // The next version moves .2 out and .3 in: .1 keeps its buffer, .3 gets its own.
    slices.put(slice("a", {sep("127.0.1.1"), sep("127.0.1.3")}));
    const auto& v2 = slices.by_name().at("a");
    CHECK(v2.pod_name(0).shares_buffer_with(first.endpoints[0].pod_name));
    CHECK(v2.pod_name(1) == "pod-127.0.1.3");
    CHECK_FALSE(v2.pod_name(1).shares_buffer_with(first.endpoints[1].pod_name));

    // A relist (replace) keeps them as well, so snapshots of unchanged slices and the store do
    // not each hold a copy; a name in another place is a new buffer with the same text.
    const SharedName kept = v2.pod_name(0);
    slices.replace({slice("a", {sep("127.0.1.1"), sep("127.0.1.3")}), slice("b", {sep("127.0.1.1")})});
    CHECK(slices.by_name().at("a").pod_name(0).shares_buffer_with(kept));
    CHECK(slices.by_name().at("b").pod_name(0) == kept);
    CHECK_FALSE(slices.by_name().at("b").pod_name(0).shares_buffer_with(kept));
  }

  TEST_CASE("missing conditions mean ready and serving, not terminating") {
    Slices slices;
    slices.put(slice("a", {sep("127.0.1.1")}));
    auto svc = service({{"http", 8000}});
    auto r = merge_slices({&slices, &svc, PortRef::name("http"), nullptr});
    REQUIRE(r.endpoints.size() == 1);
    CHECK(r.endpoints[0].conditions == EndpointConditions{true, true, false});
    CHECK(r.endpoints[0].pod_name == "pod-127.0.1.1");
  }

  TEST_CASE("terminating endpoints that still serve are kept apart for draining; not-ready ones are dropped") {
    Slices slices;
    slices.put(slice("a", {sep("127.0.1.1"), sep("127.0.1.2", "node-a", false, true, true),
                                  sep("127.0.1.3", "node-a", false, false, true), sep("127.0.1.4", "node-a", false)}));
    auto svc = service({{"http", 8000}});
    auto set = EndpointSet::make(1, "", merge_slices({&slices, &svc, PortRef::name("http"), nullptr}).endpoints);
    REQUIRE(set->ready.size() == 1);
    CHECK(set->ready[0].address == "127.0.1.1");
    REQUIRE(set->draining.size() == 1);
    CHECK(set->draining[0].address == "127.0.1.2");
  }

  TEST_CASE("the port name comes from the Service and each slice gives its own number") {
    Slices slices;
    slices.put(slice("old", {sep("127.0.1.1")}, {{"http", 8080}}));
    slices.put(slice("new", {sep("127.0.1.2")}, {{"http", 9090}, {"metrics", 9100}}));
    auto svc = service({{"http", 80}, {"metrics", 9100}});
    auto r = merge_slices({&slices, &svc, PortRef::number(80), nullptr});
    CHECK(backends(r) == std::vector<std::string>{"127.0.1.1:8080", "127.0.1.2:9090"});
    auto metrics = merge_slices({&slices, &svc, PortRef::name("metrics"), nullptr});
    CHECK(backends(metrics) == std::vector<std::string>{"127.0.1.2:9100"});
    CHECK(metrics.notes == std::vector<std::string>{"1 slice without port \"metrics\" ignored"});
  }

  TEST_CASE("an unnamed single port is the empty name") {
    Slices slices;
    slices.put(slice("a", {sep("127.0.1.1")}, {{"", 8080}}));
    auto svc = service({{"", 80}});
    CHECK(backends(merge_slices({&slices, &svc, PortRef::number(80), nullptr})) ==
          std::vector<std::string>{"127.0.1.1:8080"});
  }

  TEST_CASE("a missing Service or port is reported, not guessed") {
    Slices slices;
    slices.put(slice("a", {sep("127.0.1.1")}));
    CHECK(merge_slices({&slices, nullptr, PortRef::name("http"), nullptr}).problem == PortProblem::service_not_found);
    auto svc = service({{"http", 80}});
    CHECK(merge_slices({&slices, &svc, PortRef::name("grpc"), nullptr}).problem == PortProblem::port_not_found);
    CHECK(merge_slices({&slices, &svc, PortRef::number(81), nullptr}).problem == PortProblem::port_not_found);
  }

  TEST_CASE("IPv4 and IPv6 slices both count; FQDN slices are ignored with a note") {
    Slices slices;
    slices.put(slice("v4", {sep("127.0.1.1")}));
    slices.put(slice("v6", {sep("::1")}, {{"http", 8080}}, AddressType::ipv6));
    slices.put(slice("dns", {sep("pod.example.com")}, {{"http", 8080}}, AddressType::fqdn));
    auto svc = service({{"http", 80}});
    auto r = merge_slices({&slices, &svc, PortRef::name("http"), nullptr});
    CHECK(backends(r) == std::vector<std::string>{"127.0.1.1:8080", "[::1]:8080"});
    CHECK(r.notes == std::vector<std::string>{"1 FQDN slice ignored"});
  }

  TEST_CASE("an address that does not match the slice's address type is skipped with a note") {
    Slices slices;
    slices.put(slice("v4", {sep("::1"), sep("127.0.1.1")}));
    auto svc = service({{"http", 80}});
    auto r = merge_slices({&slices, &svc, PortRef::name("http"), nullptr});
    CHECK(backends(r) == std::vector<std::string>{"127.0.1.1:8080"});
    CHECK(r.notes == std::vector<std::string>{"1 endpoint with an invalid address ignored"});
  }

  TEST_CASE("the node filter keeps only endpoints on allowed nodes") {
    Slices slices;
    slices.put(slice("a", {sep("127.0.1.1", "node-a"), sep("127.0.1.2", "node-b"), sep("127.0.1.3", "")}));
    auto svc = service({{"http", 80}});
    std::set<std::string, std::less<>> allowed{"node-b"};
    auto r = merge_slices({&slices, &svc, PortRef::name("http"), &allowed});
    CHECK(backends(r) == std::vector<std::string>{"127.0.1.2:8080"});
    CHECK(r.notes == std::vector<std::string>{"1 endpoint without nodeName left out by the node filter"});
    std::set<std::string, std::less<>> none;
    CHECK(merge_slices({&slices, &svc, PortRef::name("http"), &none}).endpoints.empty());
  }
}

TEST_SUITE("SnapshotBuilder") {
  TEST_CASE("gives the same snapshots as build_snapshot while slices, nodes and the Service change") {
    std::uint64_t seed = 12345;
    auto rnd = [&](std::uint64_t n) {
      seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
      return (seed >> 33) % n;
    };
    Slices slices;
    auto svc = service({{"http", 80}, {"admin", 81}});
    std::set<std::string, std::less<>> nodes = {"node-a", "node-b"};
    SnapshotBuilder builder;
    EndpointSetPtr inc, full;
    std::uint64_t epoch = 0;
    // Every published snapshot with a deep copy taken when it was built: later builds must not
    // change or free what earlier snapshots share.
    std::vector<std::pair<EndpointSetPtr, std::vector<Endpoint>>> published;
    for (int round = 0; round < 400; ++round) {
      const auto what = rnd(10);
      if (what < 6) {  // rewrite a slice with random endpoints (duplicates across slices likely)
        std::vector<kube::SliceEndpoint> eps;
        // Some slices are IPv6 (IPv4-mapped loopback literals); an address of the other family
        // is now and then put in a slice (skipped as invalid by both paths).
        const bool v6 = rnd(4) == 0;
        for (std::uint64_t i = 0, n = rnd(6); i < n; ++i) {
          std::optional<bool> ready, serving, terminating;
          if (rnd(3) == 0) ready = rnd(2) == 0;
          if (rnd(3) == 0) serving = rnd(2) == 0;
          if (rnd(3) == 0) terminating = rnd(2) == 0;
          // 127.0.1.2 < 127.0.1.10 by number, not by text: both paths must use the numeric order.
          const bool as_v6 = rnd(10) == 0 ? !v6 : v6;
          eps.push_back(sep(fmt::format("{}127.0.1.{}", as_v6 ? "::ffff:" : "", rnd(12)), rnd(2) ? "node-a" : "node-c",
                            ready, serving, terminating));
        }
        const std::string name = fmt::format("s{}", rnd(4));
        // A second port first, now and then: the store keeps the first one's number, so the
        // merge of "http" copies those slices instead of sharing the store's endpoints.
        std::vector<std::pair<std::string, int>> ports = {{rnd(4) ? "http" : "other", static_cast<int>(8080 + rnd(2))}};
        if (rnd(4) == 0) ports.insert(ports.begin(), {"admin", 9090});
        auto s = slice(name, std::move(eps), ports, v6 ? AddressType::ipv6 : AddressType::ipv4);
        s.metadata.resource_version = std::to_string(round);
        slices.put(s);
      } else if (what == 6) {
        slices.erase(fmt::format("s{}", rnd(4)));
      } else if (what == 7) {
        if (nodes.contains("node-c")) nodes.erase("node-c"); else nodes.insert("node-c");
        ++epoch;
      } else if (what == 8) {
        svc = rnd(2) ? service({{"http", 80}}) : service({{"web", 80}, {"http", 82}});
      }
      const bool filter = round % 3 == 0;
      SliceMergeInput in{&slices, &svc, PortRef::parse("http"), filter ? &nodes : nullptr, epoch};
      auto a = builder.build(in, inc, std::to_string(round));
      auto b = build_snapshot(in, full, std::to_string(round));
      REQUIRE(a.changed == b.changed);
      CHECK(a.problem == b.problem);
      CHECK(a.notes == b.notes);
      REQUIRE(a.next->generation == b.next->generation);
      CHECK(a.next->ready == b.next->ready);
      CHECK(a.next->draining == b.next->draining);
      if (a.changed) published.emplace_back(a.next, a.next->ready.to_vector());
      inc = a.next;
      full = b.next;
    }
    for (const auto& [set, copy] : published) CHECK(set->ready.to_vector() == copy);
  }

  TEST_CASE("a new snapshot shares the unchanged slices' endpoints with the previous one") {
    Slices slices;
    slices.put(with_rv(slice("a", {sep("127.0.1.1"), sep("127.0.1.3")}), "1"));
    slices.put(with_rv(slice("b", {sep("127.0.1.2"), sep("127.0.1.4")}), "2"));
    auto svc = service({{"http", 80}});
    SliceMergeInput in{&slices, &svc, PortRef::parse("http"), nullptr, 0};
    SnapshotBuilder builder;
    auto first = builder.build(in, nullptr, "2").next;
    REQUIRE(first->ready.size() == 4);
    // Slice b changes: 127.0.1.4 stops being ready.
    slices.put(with_rv(slice("b", {sep("127.0.1.2"), sep("127.0.1.4", "node-a", false)}), "3"));
    auto step = builder.build(in, first, "3");
    REQUIRE(step.changed);
    const auto& next = step.next->ready;
    REQUIRE(next.size() == 3);
    CHECK(next[0].address == "127.0.1.1");
    CHECK(next[1].address == "127.0.1.2");
    CHECK(next[2].address == "127.0.1.3");
    // Slice a's endpoints are the very objects the first snapshot holds; b's were re-merged.
    CHECK(&next[0] == &first->ready[0]);
    CHECK(&next[2] == &first->ready[2]);
    CHECK(&next[1] != &first->ready[1]);
    // The first snapshot is untouched and still complete.
    CHECK(first->ready[3].address == "127.0.1.4");
    CHECK(first->ready[3].conditions.ready);
  }

  TEST_CASE("a snapshot of the port a slice is stored with shares the store's endpoints unless it leaves some out") {
    Slices slices;
    slices.put(with_rv(slice("a", {sep("127.0.1.1", "node-a"), sep("127.0.1.2", "node-b")}, {{"http", 8080}, {"admin", 9090}}), "1"));
    const auto& stored = *slices.by_name().at("a").endpoints;
    REQUIRE(stored.size() == 2);
    const auto in_store = [&](const Endpoint& e) { return &e >= stored.data() && &e < stored.data() + stored.size(); };
    auto svc = service({{"http", 80}, {"admin", 81}});

    // Port "http" (8080, the slice's first), no filter: the store's own Endpoints.
    SnapshotBuilder plain;
    auto all = plain.build({&slices, &svc, PortRef::parse("http"), nullptr, 0}, nullptr, "1").next;
    REQUIRE(all->ready.size() == 2);
    CHECK(in_store(all->ready[0]));
    CHECK(in_store(all->ready[1]));
    CHECK(all->ready[0].port == 8080);

    // A node filter that leaves one out: a copy of the other.
    std::set<std::string, std::less<>> nodes = {"node-b"};
    SnapshotBuilder filtered;
    auto some = filtered.build({&slices, &svc, PortRef::parse("http"), &nodes, 1}, nullptr, "1").next;
    REQUIRE(some->ready.size() == 1);
    CHECK(some->ready[0].address == "127.0.1.2");
    CHECK_FALSE(in_store(some->ready[0]));
    CHECK(some->ready[0].pod_name.shares_buffer_with(stored[1].pod_name));

    // A node filter that keeps all: shared again.
    nodes.insert("node-a");
    auto again = filtered.build({&slices, &svc, PortRef::parse("http"), &nodes, 2}, some, "1").next;
    REQUIRE(again->ready.size() == 2);
    CHECK(in_store(again->ready[0]));

    // Port "admin" (9090, not the stored one): a copy with that number; the store is unchanged.
    SnapshotBuilder admin;
    auto other = admin.build({&slices, &svc, PortRef::parse("admin"), nullptr, 0}, nullptr, "1").next;
    REQUIRE(other->ready.size() == 2);
    CHECK_FALSE(in_store(other->ready[0]));
    CHECK(other->ready[0].port == 9090);
    CHECK(stored[0].port == 8080);
    CHECK(all->ready[1].port == 8080);
  }

  TEST_CASE("a slice over the API server's 1,000 endpoints keeps its first 1,000, with a note, in both merges") {
    // A server that does not validate sends 1,030 endpoints in one slice (127.0.1.1 ... 127.0.5.30).
    std::vector<kube::SliceEndpoint> many;
    for (int i = 0; i < 1030; ++i) many.push_back(sep(fmt::format("127.0.{}.{}", 1 + i / 250, 1 + i % 250)));
    Slices slices;
    slices.put(with_rv(slice("big", many), "1"));
    slices.put(with_rv(slice("small", {sep("127.0.9.1")}), "1"));
    auto svc = service({{"http", 80}});
    const SliceMergeInput in{&slices, &svc, PortRef::parse("http"), nullptr, 0};
    const std::vector<std::string> note{"30 endpoints beyond the 1000 an EndpointSlice may hold ignored"};
    auto merged = merge_slices(in);
    CHECK(merged.endpoints.size() == 1001);
    CHECK(merged.notes == note);
    SnapshotBuilder builder;
    auto step = builder.build(in, nullptr, "1");
    CHECK(step.notes == note);
    REQUIRE(step.next->ready.size() == 1001);
    CHECK(step.next->ready[999].address == "127.0.4.250");   // the 1,000th of "big"
    CHECK(step.next->ready[1000].address == "127.0.9.1");
    CHECK(step.next->same_endpoints(*build_snapshot(in, nullptr, "1").next));
    // Within the limit again: every endpoint, no note.
    many.resize(1000);
    slices.put(with_rv(slice("big", many), "2"));
    auto next = builder.build(in, step.next, "2");
    CHECK(next.notes.empty());
    CHECK(next.next->ready.size() == 1001);
  }

  TEST_CASE("a snapshot stays valid after the builder and every later snapshot are gone") {
    Slices slices;
    slices.put(with_rv(slice("a", {sep("127.0.1.1"), sep("127.0.1.2", "node-a", false, true, true)}), "1"));
    auto svc = service({{"http", 80}});
    EndpointList ready, draining;
    {
      auto builder = std::make_unique<SnapshotBuilder>();
      SliceMergeInput in{&slices, &svc, PortRef::parse("http"), nullptr, 0};
      auto set = builder->build(in, nullptr, "1").next;
      ready = set->ready;
      draining = set->draining;
      slices.replace({});
      builder->build(in, set, "2");  // drops slice a from the builder's cache
    }
    REQUIRE(ready.size() == 1);
    CHECK(ready[0].pod_name == "pod-127.0.1.1");
    REQUIRE(draining.size() == 1);
    CHECK(draining.front().pod_name == "pod-127.0.1.2");
  }
}
