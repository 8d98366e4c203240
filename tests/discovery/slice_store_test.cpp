#include <doctest/doctest.h>

#include <fmt/format.h>

#include <map>

#include "discovery/slice_store.h"

using namespace kupstream;
using namespace kupstream::detail;

namespace {

struct Rng {
  std::uint64_t seed;
  std::uint64_t operator()(std::uint64_t n) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return (seed >> 33) % n;
  }
};

// A slice with every field the store keeps (and some it drops), drawn at random. Node names
// come from `node_pool` distinct values; `fresh_node` adds one never seen before.
kube::EndpointSlice random_slice(Rng& rnd, const std::string& name, int round, std::uint64_t node_pool, bool fresh_node) {
  kube::EndpointSlice s;
  s.metadata.name = name;
  s.metadata.namespace_ = "default";
  s.metadata.resource_version = std::to_string(round);
  s.metadata.labels.emplace("kubernetes.io/service-name", "web");
  s.address_type = rnd(8) ? kube::AddressType::ipv4 : kube::AddressType::ipv6;
  for (std::uint64_t p = 0, n = rnd(3); p < n; ++p) {
    kube::SlicePort port;
    port.name = rnd(2) ? "http" : "";
    if (rnd(5)) port.port = static_cast<std::int32_t>(8000 + rnd(3));
    s.ports.push_back(port);
  }
  for (std::uint64_t i = 0, n = rnd(7); i < n; ++i) {
    kube::SliceEndpoint e;
    for (std::uint64_t a = 0, na = rnd(6) ? 1 : rnd(3); a < na; ++a)
      e.addresses.push_back(fmt::format("127.0.{}.{}", rnd(3), rnd(250)));
    if (rnd(3) == 0) e.conditions.ready = rnd(2) == 0;
    if (rnd(3) == 0) e.conditions.serving = rnd(2) == 0;
    if (rnd(3) == 0) e.conditions.terminating = rnd(2) == 0;
    e.hostname = rnd(4) ? "" : "host";
    if (fresh_node && i == 0)
      e.node_name = fmt::format("node-new-{}-with-a-name-too-long-for-short-strings", round);
    else if (rnd(5))
      e.node_name = fmt::format("node-pool-{:03d}", rnd(node_pool));
    if (rnd(4)) e.zone = fmt::format("zone-{}", "abc"[rnd(3)]);
    for (std::uint64_t h = 0, nh = rnd(3); h < nh; ++h) e.hint_zones.push_back(fmt::format("zone-{}", "abc"[rnd(3)]));
    if (rnd(4)) e.target_ref = kube::ObjectRef{rnd(5) ? "Pod" : "Node", fmt::format("web-7d9f8c6b5d-{:05d}", rnd(100000)), "default"};
    s.endpoints.push_back(std::move(e));
  }
  return s;
}

// Every stored slice holds exactly what the merge reads of its decoded original.
void check_same(const SliceStore& store, const std::map<std::string, kube::EndpointSlice>& decoded) {
  REQUIRE(store.by_name().size() == decoded.size());
  std::size_t endpoints = 0;
  for (const auto& [name, d] : decoded) {
    auto it = store.by_name().find(name);
    REQUIRE(it != store.by_name().end());
    const StoredSlice& s = it->second;
    CHECK(s.resource_version == d.metadata.resource_version);
    CHECK(s.address_type == d.address_type);
    REQUIRE(s.ports.size() == d.ports.size());
    for (std::size_t p = 0; p < d.ports.size(); ++p) {
      CHECK(s.ports[p].name == d.ports[p].name);
      CHECK(s.ports[p].port == d.ports[p].port);
    }
    std::optional<std::uint16_t> first_port;
    for (const auto& p : d.ports)
      if (!first_port && p.port && *p.port > 0 && *p.port <= 65535) first_port = static_cast<std::uint16_t>(*p.port);
    CHECK(s.port == first_port.value_or(0));
    // Endpoints without an address are counted, not stored; the others keep their order.
    REQUIRE(s.endpoints != nullptr);
    std::size_t j = 0, without = 0;
    for (std::size_t i = 0; i < d.endpoints.size(); ++i) {
      const kube::SliceEndpoint& de = d.endpoints[i];
      if (de.addresses.empty()) {
        ++without;
        continue;
      }
      REQUIRE(j < s.endpoints->size());
      const Endpoint& se = (*s.endpoints)[j];
      CHECK(s.address(j) == de.addresses[0]);
      CHECK(se.port == s.port);
      CHECK(s.pod_name(j) == (de.target_ref && de.target_ref->kind == "Pod" ? de.target_ref->name : ""));
      CHECK(se.node_name == de.node_name);
      CHECK(se.zone == de.zone);
      CHECK(se.hint_zones == de.hint_zones);
      CHECK(se.conditions == de.conditions.defaulted());
      ++j;
    }
    CHECK(s.endpoints->size() == j);
    CHECK(s.without_address == without);
    endpoints += j;
  }
  CHECK(store.endpoint_count() == endpoints);
}

}  // namespace

TEST_SUITE("SliceStore") {
  TEST_CASE("keeps what the merge reads of each slice through puts, erases and replaces") {
    Rng rnd{777};
    SliceStore store;
    std::map<std::string, kube::EndpointSlice> decoded;
    for (int round = 0; round < 600; ++round) {
      const auto what = rnd(20);
      const std::string name = fmt::format("web-{}", rnd(6));
      if (what < 16) {
        auto s = random_slice(rnd, name, round, 40, rnd(3) == 0);
        store.put(s);
        decoded[name] = std::move(s);
      } else if (what < 19) {
        store.erase(name);
        decoded.erase(name);
      } else {
        std::vector<kube::EndpointSlice> items;
        decoded.clear();
        for (std::uint64_t i = 0, n = rnd(5); i < n; ++i) {
          auto s = random_slice(rnd, fmt::format("web-{}", rnd(6)), round, 40, false);
          decoded[s.metadata.name] = s;  // a name twice in a LIST: the last one counts
          items.push_back(std::move(s));
        }
        store.replace(std::move(items));
      }
      check_same(store, decoded);
    }
  }

  TEST_CASE("repeated node names, zones and hint lists are kept once") {
    SliceStore store;
    std::vector<kube::EndpointSlice> items;
    for (int k = 0; k < 10; ++k) {
      kube::EndpointSlice s;
      s.metadata.name = fmt::format("web-{}", k);
      s.address_type = kube::AddressType::ipv4;
      for (int j = 0; j < 100; ++j) {
        kube::SliceEndpoint e;
        e.addresses.push_back(fmt::format("127.0.{}.{}", k, j + 1));
        e.node_name = fmt::format("node-pool-{:03d}", (k * 100 + j) % 50);
        e.zone = fmt::format("zone-{}", "abc"[j % 3]);
        e.hint_zones = {e.zone};
        s.endpoints.push_back(std::move(e));
      }
      items.push_back(std::move(s));
    }
    store.replace(std::move(items));
    // 50 nodes + 3 zones + "" and 3 hint lists + the empty list.
    CHECK(store.names().size() == 50 + 3 + 1 + 3 + 1);
    const Endpoint& a = store.by_name().at("web-0").endpoints->at(0);
    const Endpoint& b = store.by_name().at("web-1").endpoints->at(0);  // node-pool-000 as well (100 % 50)
    CHECK(a.node_name.shares_buffer_with(b.node_name));
    CHECK(a.zone.shares_buffer_with(b.zone));
    CHECK(a.hint_zones.shares_buffer_with(b.hint_zones));
    CHECK(a.hint_zones.front().shares_buffer_with(a.zone));
  }

  TEST_CASE("the table of names does not grow without bound while events bring new node names") {
    Rng rnd{99};
    SliceStore store;
    std::map<std::string, kube::EndpointSlice> decoded;
    std::size_t largest = 0;
    // Every event brings a node name never seen before (nodes replaced one by one, forever).
    for (int round = 0; round < 5000; ++round) {
      const std::string name = fmt::format("web-{}", rnd(4));
      auto s = random_slice(rnd, name, round, 20, true);
      store.put(s);
      decoded[name] = std::move(s);
      largest = std::max(largest, store.names().size());
      if (round % 500 == 499) check_same(store, decoded);  // ids translated correctly on every rebuild
    }
    check_same(store, decoded);
    // Live values: at most 4 fresh nodes + 20 pooled + 3 zones + hint lists of up to 2 of 3 zones.
    CHECK(largest <= 2 * (4 + 20 + 3 + 1 + 13) + 256 + 1);
  }

  TEST_CASE("a rebuilt table keeps the buffers the stored endpoints hold, so later slices share them") {
    // "keep" lists node-keep on every put; slice "churn" brings a new node name each time, so
    // the table outgrows its live values and is rebuilt.
    auto slice = [](const std::string& name, const std::string& node, int round) {
      kube::EndpointSlice s;
      s.metadata.name = name;
      s.metadata.resource_version = std::to_string(round);
      s.address_type = kube::AddressType::ipv4;
      kube::SliceEndpoint e;
      e.addresses.push_back("127.0.1.5");
      e.node_name = node;
      e.zone = "zone-a";
      e.hint_zones = {"zone-a", "zone-b"};
      s.endpoints.push_back(std::move(e));
      return s;
    };
    SliceStore store;
    store.put(slice("keep", "node-keep-with-a-name-too-long-for-short-strings", 0));
    const Endpoint kept = store.by_name().at("keep").endpoints->at(0);
    std::size_t rebuilds = 0, last_size = store.names().size();
    for (int round = 1; round < 2000 && rebuilds < 2; ++round) {
      store.put(slice("churn", fmt::format("node-{}", round), round));
      if (store.names().size() < last_size) ++rebuilds;
      last_size = store.names().size();
    }
    REQUIRE(rebuilds == 2);
    CHECK(store.names().size() < 16);  // what is live, not every node seen
    store.put(slice("later", "node-keep-with-a-name-too-long-for-short-strings", 1));
    const Endpoint& later = store.by_name().at("later").endpoints->at(0);
    CHECK(later.node_name.shares_buffer_with(kept.node_name));
    CHECK(later.zone.shares_buffer_with(kept.zone));
    CHECK(later.hint_zones.shares_buffer_with(kept.hint_zones));
  }
}
