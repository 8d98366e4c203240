// Zone-aware routing end to end: kubesim EndpointSlices with `zone` and `hints.forZones`, Pods
// that answer their name (PodFarm), traffic through Upstream::forward(), and what stats() and
// prometheus_text() say about it.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <cmath>

#include "upstream/support/pod_farm.h"
#include "upstream/support/upstream_env.h"

using namespace kupstream;
using namespace kupstream::test;

namespace {

// Pods first..first+count-1 of the farm in `zone`, hinted for `hints`.
std::vector<PodSpec> zoned(const PodFarm& farm, int first, int count, const std::string& zone,
                           std::vector<std::string> hints = {}) {
  auto pods = pods_of(farm, first, count);
  for (auto& p : pods) {
    p.zone = zone;
    p.hints = hints;
  }
  return pods;
}

std::vector<PodSpec> operator+(std::vector<PodSpec> a, const std::vector<PodSpec>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

UpstreamOptions in_zone(const std::string& zone) {
  UpstreamOptions o;
  o.seed = 7;
  o.locality.enabled = true;
  o.locality.zone = zone;
  o.locality.min_endpoints = 1;
  return o;
}

// Requests answered by Pods first..first+count-1, as a share of the answered ones.
double share(const TrafficResult& r, const PodFarm& farm, int first, int count) {
  int n = 0;
  for (int i = first; i < first + count; ++i) {
    auto it = r.by_body.find(farm.name(i));
    n += it == r.by_body.end() ? 0 : it->second;
  }
  return r.ok ? static_cast<double>(n) / r.ok : 0;
}

// The value of the sample whose name and labels are `series`; -1 when absent.
double sample(const std::string& text, const std::string& series) {
  const auto at = text.find("\n" + series + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + series.size() + 2));
}

bool wait_mode(UpstreamEnv& env, LocalityMode mode) {
  return env.loop.run_until([&] { return env.upstream->stats().locality.mode == mode; }, 10000);
}

}  // namespace

TEST_SUITE("Upstream") {
  TEST_CASE("zones from the slices: local while the zone has capacity, proportional spill, everywhere, back") {
    TempDir dir;
    PodFarm farm(dir.path(), 6, "zn", 21);  // 0-2 in zone-a, 3-5 in zone-b
    UpstreamEnv env;
    env.publish("tke-a", "zn", farm.port(), zoned(farm, 0, 3, "zone-a") + zoned(farm, 3, 3, "zone-b"));
    env.start(UpstreamEnv::config_for("tke-a", "zn"), in_zone("zone-a"));
    REQUIRE(wait_mode(env, LocalityMode::local));

    auto r = env.traffic(150, 8);
    CHECK(r.ok == 150);
    CHECK(share(r, farm, 0, 3) == 1.0);  // zone-b got nothing
    auto s = env.upstream->stats();
    CHECK(s.locality.enabled);
    CHECK(s.locality.zone == "zone-a");
    CHECK(s.locality.local_requests == 150);
    CHECK(s.locality.cross_zone_requests == 0);
    CHECK(s.locality.local_share == doctest::Approx(1.0));
    REQUIRE(s.locality.zones.size() == 2);
    CHECK(s.locality.zones[0].zone == "zone-a");
    CHECK(s.locality.zones[0].healthy == 3);
    CHECK(s.locality.zones[1].zone == "zone-b");
    CHECK(s.locality.zones[1].routed == 0);
    for (const auto& p : s.pods) CHECK(p.zone == (p.pod_name < farm.name(3) ? "zone-a" : "zone-b"));

    // Zone-a shrinks to one Pod: 1 of 4 healthy Pods for half the traffic. It keeps
    // 25% / 50% = 50% of this gateway's requests; the other half goes to zone-b.
    env.publish("tke-a", "zn", farm.port(), zoned(farm, 0, 1, "zone-a") + zoned(farm, 3, 3, "zone-b"));
    REQUIRE(wait_mode(env, LocalityMode::spill));
    r = env.traffic(600, 8);
    CHECK(r.ok == 600);
    CHECK(std::abs(share(r, farm, 0, 1) - 0.5) < 0.02);
    for (int i = 3; i < 6; ++i) CHECK(std::abs(share(r, farm, i, 1) - 0.5 / 3) < 0.02);
    s = env.upstream->stats();
    CHECK(s.locality.local_share == doctest::Approx(0.5).epsilon(0.01));
    CHECK(s.locality.reason.find("keeps 50.0% of its traffic") != std::string::npos);
    CHECK(s.locality.local_requests == 150 + static_cast<std::uint64_t>(r.by_body[farm.name(0)]));
    CHECK(s.locality.cross_zone_requests == 600 - static_cast<std::uint64_t>(r.by_body[farm.name(0)]));
    const std::string metrics = env.upstream->prometheus_text();
    CHECK(metrics.find("kupstream_locality_mode{upstream=\"zn\",zone=\"zone-a\",mode=\"spill\"} 1\n") != std::string::npos);
    CHECK(metrics.find("kupstream_locality_mode{upstream=\"zn\",zone=\"zone-a\",mode=\"local\"} 0\n") != std::string::npos);
    CHECK(sample(metrics, "kupstream_locality_local_share{upstream=\"zn\",zone=\"zone-a\"}") == doctest::Approx(0.5).epsilon(0.01));
    CHECK(sample(metrics, "kupstream_zone_routed_share{upstream=\"zn\",zone=\"zone-b\"}") == doctest::Approx(0.5).epsilon(0.01));
    CHECK(metrics.find("kupstream_zone_endpoints{upstream=\"zn\",zone=\"zone-b\",state=\"healthy\"} 3\n") != std::string::npos);
    CHECK(metrics.find(fmt::format("kupstream_locality_requests_total{{upstream=\"zn\",target=\"cross_zone\"}} {}\n",
                                   s.locality.cross_zone_requests)) != std::string::npos);

    // Zone-a loses its last Pod: no local endpoint, every request goes to zone-b.
    env.publish("tke-a", "zn", farm.port(), zoned(farm, 3, 3, "zone-b"));
    REQUIRE(wait_mode(env, LocalityMode::everywhere));
    r = env.traffic(150, 8);
    CHECK(r.ok == 150);
    CHECK(share(r, farm, 3, 3) == 1.0);
    CHECK(env.upstream->stats().locality.reason.find("0 healthy endpoints in zone \"zone-a\" < min_local_endpoints 1") !=
          std::string::npos);
    CHECK(env.upstream->prometheus_text().find(
              "kupstream_locality_mode{upstream=\"zn\",zone=\"zone-a\",mode=\"everywhere\"} 1\n") != std::string::npos);

    // Its Pods come back: local again.
    env.publish("tke-a", "zn", farm.port(), zoned(farm, 0, 3, "zone-a") + zoned(farm, 3, 3, "zone-b"));
    REQUIRE(wait_mode(env, LocalityMode::local));
    r = env.traffic(150, 8);
    CHECK(share(r, farm, 0, 3) == 1.0);
  }

  TEST_CASE("hints are followed when every endpoint has one, and ignored when some lack them") {
    TempDir dir;
    PodFarm farm(dir.path(), 6, "zh", 22);
    UpstreamEnv env;
    // The controller hinted zone-b's Pod 2 for zone-a (to even out capacity): zone-a's clients
    // use Pods 0, 1 and 2.
    env.publish("tke-a", "zh", farm.port(),
                zoned(farm, 0, 2, "zone-a", {"zone-a"}) + zoned(farm, 2, 1, "zone-b", {"zone-a"}) +
                    zoned(farm, 3, 3, "zone-b", {"zone-b"}));
    env.start(UpstreamEnv::config_for("tke-a", "zh"), in_zone("zone-a"));
    REQUIRE(env.loop.run_until([&] { return env.upstream->stats().locality.hints; }, 10000));
    auto r = env.traffic(300, 8);
    CHECK(r.ok == 300);
    CHECK(share(r, farm, 0, 3) == 1.0);
    for (int i = 0; i < 3; ++i) CHECK(r.by_body[farm.name(i)] == 100);
    auto s = env.upstream->stats();
    CHECK(s.locality.mode == LocalityMode::local);
    CHECK(s.locality.local_requests == 300);  // Pod 2 runs in zone-b but is hinted here: local

    // Pod 5 loses its hint: kube-proxy then ignores every hint, and so do we. Zones come from
    // the endpoints: zone-a has 2 of 6 Pods for half the traffic and keeps 2/3 of it.
    env.publish("tke-a", "zh", farm.port(),
                zoned(farm, 0, 2, "zone-a", {"zone-a"}) + zoned(farm, 2, 1, "zone-b", {"zone-a"}) +
                    zoned(farm, 3, 2, "zone-b", {"zone-b"}) + zoned(farm, 5, 1, "zone-b"));
    REQUIRE(env.loop.run_until([&] { return !env.upstream->stats().locality.hints; }, 10000));
    s = env.upstream->stats();
    CHECK(s.locality.mode == LocalityMode::spill);
    CHECK(s.locality.reason.find("hints ignored: 1 endpoint without hints") != std::string::npos);
    r = env.traffic(600, 8);
    CHECK(r.ok == 600);
    CHECK(std::abs(share(r, farm, 0, 2) - 2.0 / 3) < 0.02);
    CHECK(std::abs(share(r, farm, 2, 4) - 1.0 / 3) < 0.02);
  }

  TEST_CASE("an ejected local Pod is lost capacity: the zone spills what it lacks, and stops when it is back") {
    TempDir dir;
    PodFarm farm(dir.path(), 4, "ze", 23);  // 0-1 in zone-a, 2-3 in zone-b
    UpstreamEnv env;
    env.publish("tke-a", "ze", farm.port(), zoned(farm, 0, 2, "zone-a") + zoned(farm, 2, 2, "zone-b"));
    auto o = in_zone("zone-a");
    o.outlier.consecutive_failures = 2;
    o.outlier.base_ejection = std::chrono::milliseconds{3000};
    env.start(UpstreamEnv::config_for("tke-a", "ze"), o);
    REQUIRE(wait_mode(env, LocalityMode::local));

    farm.set_failing(0, true);
    // 503s are retried on the other local Pod; two in a row eject Pod 0.
    auto r = env.traffic(20, 1);
    CHECK(r.non_2xx == 0);
    REQUIRE(wait_mode(env, LocalityMode::spill));
    auto s = env.upstream->stats();
    CHECK(s.locality.zones[0].endpoints == 2);
    CHECK(s.locality.zones[0].healthy == 1);
    // 1 of 3 healthy Pods for half the traffic: keeps 2/3 on Pod 1, 1/3 to zone-b.
    CHECK(s.locality.local_share == doctest::Approx(2.0 / 3).epsilon(0.01));
    r = env.traffic(600, 8);
    CHECK(r.ok == 600);
    CHECK(r.by_body.count(farm.name(0)) == 0);
    CHECK(std::abs(share(r, farm, 1, 1) - 2.0 / 3) < 0.02);
    CHECK(std::abs(share(r, farm, 2, 2) - 1.0 / 3) < 0.02);

    farm.set_failing(0, false);
    // The ejection ends by itself (3 s): the zone is whole again.
    REQUIRE(wait_mode(env, LocalityMode::local));
    r = env.traffic(100, 8);
    CHECK(share(r, farm, 0, 2) == 1.0);
  }
}
