// The zone plan (lib/upstream/zone_locality.h) on hand-made endpoints: kube-proxy's hint rules,
// Envoy's proportional spill, the thresholds, and health counting toward capacity.
// Addresses are data only: nothing connects anywhere.
#include <doctest/doctest.h>

#include <numeric>
#include <string>
#include <vector>

#include "upstream/zone_locality.h"

using namespace kupstream;
using detail::plan_zones;
using detail::ZoneCandidate;

namespace {

struct Pods {
  std::vector<Endpoint> endpoints;
  std::vector<bool> healthy;
  std::vector<std::uint32_t> weights;

  // `count` endpoints in `zone`, hinted for `hints` (none when empty).
  Pods& add(const std::string& zone, int count, std::vector<std::string> hints = {}, std::uint32_t weight = 1000) {
    for (int i = 0; i < count; ++i) {
      Endpoint e;
      e.address = "127.0.9." + std::to_string(endpoints.size() + 1);
      e.port = 80;
      e.zone = zone;
      e.hint_zones.assign(hints.begin(), hints.end());
      endpoints.push_back(e);
      healthy.push_back(true);
      weights.push_back(weight);
    }
    return *this;
  }
  std::vector<ZoneCandidate> candidates() const {
    std::vector<ZoneCandidate> c;
    for (std::size_t i = 0; i < endpoints.size(); ++i) c.push_back({&endpoints[i], weights[i], healthy[i]});
    return c;
  }
};

ZoneAwareRouting in_zone(const std::string& zone) {
  ZoneAwareRouting o;
  o.enabled = true;
  o.zone = zone;
  o.min_endpoints = 1;
  return o;
}

// Share of the plan's weight on endpoints [first, first+count).
double share(const detail::ZonePlan& p, std::size_t first, std::size_t count) {
  const double total = std::accumulate(p.weights.begin(), p.weights.end(), 0.0);
  const double part = std::accumulate(p.weights.begin() + static_cast<std::ptrdiff_t>(first),
                                      p.weights.begin() + static_cast<std::ptrdiff_t>(first + count), 0.0);
  return part / total;
}

const ZoneStats& zone(const detail::ZonePlan& p, const std::string& name) {
  for (const auto& z : p.zones)
    if (z.zone == name) return z;
  FAIL("no zone " << name);
  return p.zones.front();
}

}  // namespace

TEST_SUITE("plan_zones") {
  TEST_CASE("off: the healthy weights, untouched") {
    Pods pods;
    pods.add("a", 2).add("b", 2);
    pods.healthy[1] = false;
    ZoneAwareRouting o;
    const auto p = plan_zones(o, pods.candidates(), false);
    CHECK(p.mode == LocalityMode::off);
    CHECK(p.weights == std::vector<std::uint32_t>{1000, 0, 1000, 1000});
  }

  TEST_CASE("zones without hints: the local zone keeps everything when it has its share of capacity") {
    Pods pods;
    pods.add("a", 3).add("b", 3).add("c", 3);
    const auto p = plan_zones(in_zone("b"), pods.candidates(), false);
    CHECK(p.mode == LocalityMode::local);
    CHECK_FALSE(p.hints);
    CHECK(p.weights == std::vector<std::uint32_t>{0, 0, 0, 1000, 1000, 1000, 0, 0, 0});
    CHECK(p.local_share == doctest::Approx(1.0));
    REQUIRE(p.zones.size() == 3);
    CHECK(p.zones[0].zone == "b");  // local first, then by name
    CHECK(p.zones[1].zone == "a");
    CHECK(p.zones[0].healthy == 3);
    CHECK(p.zones[0].traffic_start == doctest::Approx(1.0 / 3));
    CHECK(p.reason.find("zone \"b\" has 33.3% of the healthy capacity for 33.3% of the traffic") != std::string::npos);
  }

  TEST_CASE("a short local zone spills over in proportion to the other zones' spare capacity (Envoy)") {
    // 2 zones' traffic split evenly (default); zone a holds 1 of 10 healthy Pods: it keeps
    // 10% / 50% = 20% of its traffic; the other 80% goes to zone b, the only zone with spare capacity.
    Pods pods;
    pods.add("a", 1).add("b", 9);
    const auto p = plan_zones(in_zone("a"), pods.candidates(), false);
    CHECK(p.mode == LocalityMode::spill);
    CHECK(share(p, 0, 1) == doctest::Approx(0.2).epsilon(0.001));
    CHECK(share(p, 1, 9) == doctest::Approx(0.8).epsilon(0.001));
    for (std::size_t i = 2; i < 10; ++i) CHECK(p.weights[i] == p.weights[1]);  // even inside zone b
    CHECK(p.local_share == doctest::Approx(0.2).epsilon(0.001));
    CHECK(p.reason.find("keeps 20.0% of its traffic") != std::string::npos);
  }

  TEST_CASE("three zones: residual capacity decides who takes the spill") {
    // Traffic evenly from a, b, c (1/3 each). Capacity: a 1/12, b 3/12, c 8/12. Zone a keeps
    // (1/12)/(1/3) = 25%; residuals: b 3/12 - 4/12 < 0 → 0, c 8/12 - 4/12 = 1/3: c takes all 75%.
    Pods pods;
    pods.add("a", 1).add("b", 3).add("c", 8);
    const auto p = plan_zones(in_zone("a"), pods.candidates(), false);
    CHECK(p.mode == LocalityMode::spill);
    CHECK(share(p, 0, 1) == doctest::Approx(0.25).epsilon(0.001));
    CHECK(share(p, 1, 3) == doctest::Approx(0.0));
    CHECK(share(p, 4, 8) == doctest::Approx(0.75).epsilon(0.001));
    CHECK(zone(p, "c").routed == doctest::Approx(0.75).epsilon(0.001));

    // Configured traffic shares (gateways per zone) instead of the even split: a 1, b 1, c 2.
    // a: start 1/4, capacity 1/12 → keeps 1/3. Residuals: b 3/12-3/12 = 0, c 8/12-6/12 = 1/6.
    auto o = in_zone("a");
    o.zone_traffic = {{"a", 1}, {"b", 1}, {"c", 2}};
    const auto q = plan_zones(o, pods.candidates(), false);
    CHECK(q.mode == LocalityMode::spill);
    CHECK(share(q, 0, 1) == doctest::Approx(1.0 / 3).epsilon(0.001));
    CHECK(share(q, 4, 8) == doctest::Approx(2.0 / 3).epsilon(0.001));
  }

  TEST_CASE("weights keep their proportions inside each zone") {
    Pods pods;
    pods.add("a", 1, {}, 3000).add("a", 1, {}, 1000).add("b", 6);
    // Local: 4000 of 10000 healthy weight (40%) for 50% of the traffic: keeps 80%, split 3:1.
    const auto p = plan_zones(in_zone("a"), pods.candidates(), false);
    CHECK(p.mode == LocalityMode::spill);
    CHECK(share(p, 0, 1) == doctest::Approx(0.6).epsilon(0.001));
    CHECK(share(p, 1, 1) == doctest::Approx(0.2).epsilon(0.001));
    CHECK(share(p, 2, 6) == doctest::Approx(0.2).epsilon(0.001));
  }

  TEST_CASE("ejected local Pods count as lost capacity: spill, then local again when they are back") {
    Pods pods;
    pods.add("a", 4).add("b", 4);
    CHECK(plan_zones(in_zone("a"), pods.candidates(), false).mode == LocalityMode::local);
    pods.healthy[0] = pods.healthy[1] = false;  // 2 of 4 local Pods ejected
    auto p = plan_zones(in_zone("a"), pods.candidates(), false);
    CHECK(p.mode == LocalityMode::spill);
    CHECK(p.weights[0] == 0);
    CHECK(p.weights[1] == 0);
    // capacity a = 2/6, start 1/2 → keeps 2/3
    CHECK(share(p, 2, 2) == doctest::Approx(2.0 / 3).epsilon(0.001));
    CHECK(zone(p, "a").endpoints == 4);
    CHECK(zone(p, "a").healthy == 2);
    pods.healthy[0] = pods.healthy[1] = true;
    CHECK(plan_zones(in_zone("a"), pods.candidates(), false).mode == LocalityMode::local);
  }

  TEST_CASE("the local zone losing its Pods: everywhere, by the healthy weights") {
    Pods pods;
    pods.add("b", 3).add("c", 3);
    const auto p = plan_zones(in_zone("a"), pods.candidates(), false);
    CHECK(p.mode == LocalityMode::everywhere);
    CHECK(p.reason.find("0 healthy endpoints in zone \"a\" < min_local_endpoints 1") != std::string::npos);
    CHECK(p.weights == std::vector<std::uint32_t>(6, 1000));
    CHECK(p.local_share == 0);
    CHECK(p.zones[0].zone == "a");  // the local zone is reported even when empty
    CHECK(p.zones[0].endpoints == 0);
  }

  TEST_CASE("thresholds: min_endpoints, min_local_endpoints, min_local_percent, panic") {
    Pods pods;
    pods.add("a", 2).add("b", 8);
    auto o = in_zone("a");
    CHECK(plan_zones(o, pods.candidates(), false).mode == LocalityMode::spill);  // keeps 40%
    o.min_local_percent = 41;
    auto p = plan_zones(o, pods.candidates(), false);
    CHECK(p.mode == LocalityMode::everywhere);
    CHECK(p.reason.find("could keep 40.0% of its traffic < min_local_percent 41") != std::string::npos);
    CHECK(share(p, 0, 2) == doctest::Approx(0.2));
    o.min_local_percent = 40;
    CHECK(plan_zones(o, pods.candidates(), false).mode == LocalityMode::spill);
    o.min_local_endpoints = 3;
    p = plan_zones(o, pods.candidates(), false);
    CHECK(p.mode == LocalityMode::everywhere);
    CHECK(p.reason.find("2 healthy endpoints in zone \"a\" < min_local_endpoints 3") != std::string::npos);
    o.min_local_endpoints = 1;
    o.min_endpoints = 11;
    p = plan_zones(o, pods.candidates(), false);
    CHECK(p.mode == LocalityMode::everywhere);
    CHECK(p.reason.find("10 healthy endpoints < min_endpoints 11") != std::string::npos);
    o.min_endpoints = 1;
    p = plan_zones(o, pods.candidates(), true);
    CHECK(p.mode == LocalityMode::everywhere);
    CHECK(p.reason.find("panic") != std::string::npos);
  }

  TEST_CASE("hints present: endpoints hinted for this zone are local, wherever they run (kube-proxy)") {
    // The controller hinted one zone-b Pod for zone a to even out capacity.
    Pods pods;
    pods.add("a", 2, {"a"}).add("b", 1, {"a"}).add("b", 3, {"b"});
    const auto p = plan_zones(in_zone("a"), pods.candidates(), false);
    CHECK(p.hints);
    CHECK(p.mode == LocalityMode::local);
    CHECK(p.weights == std::vector<std::uint32_t>{1000, 1000, 1000, 0, 0, 0});
    CHECK(zone(p, "a").endpoints == 3);
    CHECK(zone(p, "b").endpoints == 3);
    CHECK(zone(p, "a").traffic_start == doctest::Approx(0.5));  // the hinted set's share
  }

  TEST_CASE("hints present and a hinted Pod ejected: the hinted set spills what it lacks") {
    Pods pods;
    pods.add("a", 2, {"a"}).add("b", 2, {"b"});
    pods.healthy[0] = false;
    const auto p = plan_zones(in_zone("a"), pods.candidates(), false);
    CHECK(p.hints);
    CHECK(p.mode == LocalityMode::spill);
    // capacity a = 1/3, start 1/2: keeps 2/3 on its one healthy Pod
    CHECK(share(p, 1, 1) == doctest::Approx(2.0 / 3).epsilon(0.001));
  }

  TEST_CASE("hints partly present are ignored: zones come from the endpoints") {
    Pods pods;
    pods.add("a", 2, {"b"}).add("b", 2);  // two endpoints without hints
    const auto p = plan_zones(in_zone("a"), pods.candidates(), false);
    CHECK_FALSE(p.hints);
    CHECK(p.mode == LocalityMode::local);
    CHECK(p.weights == std::vector<std::uint32_t>{1000, 1000, 0, 0});
    CHECK(p.reason.find("hints ignored: 2 endpoints without hints") != std::string::npos);
  }

  TEST_CASE("hints that name no endpoint for this zone are ignored") {
    Pods pods;
    pods.add("a", 2, {"b"}).add("b", 2, {"b"});
    const auto p = plan_zones(in_zone("a"), pods.candidates(), false);
    CHECK_FALSE(p.hints);
    CHECK(p.mode == LocalityMode::local);
    CHECK(p.weights == std::vector<std::uint32_t>{1000, 1000, 0, 0});
    CHECK(p.reason.find("hints ignored: none for zone \"a\"") != std::string::npos);

    auto o = in_zone("a");
    o.use_hints = false;  // hints turned off: no note, zones from the endpoints
    Pods hinted;
    hinted.add("a", 2, {"b"}).add("b", 2, {"b"});
    CHECK(plan_zones(o, hinted.candidates(), false).reason.find("hints") == std::string::npos);
  }

  TEST_CASE("endpoints of unknown zone are never local but take spill by their spare capacity") {
    Pods pods;
    pods.add("a", 1).add("", 3);
    const auto p = plan_zones(in_zone("a"), pods.candidates(), false);
    // Traffic starts only in known zones (a: 100%): capacity 1/4 → keeps 25%.
    CHECK(p.mode == LocalityMode::spill);
    CHECK(share(p, 0, 1) == doctest::Approx(0.25).epsilon(0.001));
    CHECK(share(p, 1, 3) == doctest::Approx(0.75).epsilon(0.001));
  }

  TEST_CASE("tiny spill shares keep their proportions (weights sized to the smallest share)") {
    Pods pods;
    pods.add("a", 1).add("b", 1000, {}, 1);  // zone b: 1,000 Pods of weight 1
    auto o = in_zone("a");
    o.zone_traffic = {{"a", 1000}, {"b", 1}};
    // capacity a = 1000/2000, start 1000/1001: keeps ~50.05%; each b Pod ~0.05%.
    const auto p = plan_zones(o, pods.candidates(), false);
    CHECK(p.mode == LocalityMode::spill);
    CHECK(share(p, 0, 1) == doctest::Approx(0.5 * 1001 / 1000).epsilon(0.001));
    for (std::size_t i = 1; i < p.weights.size(); ++i) REQUIRE(p.weights[i] >= 100);
  }
}

TEST_SUITE("validate_zone_aware_routing") {
  TEST_CASE("errors name the field and the value") {
    ZoneAwareRouting o;
    CHECK(validate_zone_aware_routing(o).ok());  // off, nothing set
    o.enabled = true;
    CHECK(validate_zone_aware_routing(o).error().reason == "locality.zone: is required when zone-aware routing is enabled");
    o.zone = "eu west";
    CHECK(validate_zone_aware_routing(o).error().reason.find("locality.zone: \"eu west\" is not a Kubernetes label value") == 0);
    o.zone = "eu-west-1a";
    CHECK(validate_zone_aware_routing(o).ok());
    o.zone_traffic = {{"eu-west-1b", 1}};
    CHECK(validate_zone_aware_routing(o).error().reason == "locality.zone_traffic: the local zone \"eu-west-1a\" needs a share > 0");
    o.zone_traffic = {{"eu-west-1a", 1}, {"eu-west-1a", 2}};
    CHECK(validate_zone_aware_routing(o).error().reason == "locality.zone_traffic[1]: zone \"eu-west-1a\" is listed twice");
    o.zone_traffic = {{"eu-west-1a", -1}};
    CHECK(validate_zone_aware_routing(o).error().reason.find("locality.zone_traffic[0]: zone \"eu-west-1a\": share -1") == 0);
    o.zone_traffic.clear();
    o.min_local_percent = 101;
    CHECK(validate_zone_aware_routing(o).error().reason == "locality.min_local_percent: 101 is over 100");
  }
}
