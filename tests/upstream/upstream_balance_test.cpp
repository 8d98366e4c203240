// Upstream membership and weights against kubesim (two clusters) and PodFarm Pods: weight
// modes, zero weights, slow start, terminating Pods, the draining fallback and a rolling update.
#include <doctest/doctest.h>

#include <cmath>

#include "upstream/support/pod_farm.h"
#include "upstream/support/upstream_env.h"

using namespace kupstream;
using namespace kupstream::test;

namespace {

UpstreamConfig config_of(std::string name, std::vector<ServiceRef> refs, WeightMode mode = WeightMode::per_pod) {
  UpstreamConfig c;
  c.name = std::move(name);
  c.services = std::move(refs);
  c.weight_mode = mode;
  return c;
}

double share(const TrafficResult& r, const std::string& pod) {
  auto it = r.by_body.find(pod);
  return it == r.by_body.end() ? 0.0 : static_cast<double>(it->second) / r.ok;
}

std::uint32_t pod_weight(const Upstream& u, const std::string& pod_name) {
  for (const auto& p : u.stats().pods)
    if (p.pod_name == pod_name) return p.weight;
  return 0;
}

}  // namespace

TEST_SUITE("Upstream") {
  TEST_CASE("weights across two clusters are honoured within 1% over 10,000 requests in both weight modes") {
    TempDir dir_a, dir_b;
    PodFarm a(dir_a.path(), 3, "a", 1);
    PodFarm b(dir_b.path(), 2, "b", 2);
    UpstreamEnv env({"tke-a", "tke-b"});
    env.publish("tke-a", "wa", a.port(), pods_of(a));
    env.publish("tke-b", "wb", b.port(), pods_of(b));
    for (WeightMode mode : {WeightMode::per_pod, WeightMode::per_service}) {
      CAPTURE(to_string(mode));
      env.start(config_of("mix", {UpstreamEnv::ref("tke-a", "wa", 3), UpstreamEnv::ref("tke-b", "wb", 1)}, mode));
      REQUIRE(env.loop.run_until([&] { return env.upstream->picker()->pickable() == 5; }, 10000));
      auto r = env.traffic(10000, 32);
      CHECK(r.failed == 0);
      CHECK(r.ok == 10000);
      // per_pod: every Pod weighs its service's weight (3,3,3 | 1,1 of 11);
      // per_service: the services split 3:1, each evenly among its Pods.
      const double pa = mode == WeightMode::per_pod ? 3.0 / 11 : 0.75 / 3;
      const double pb = mode == WeightMode::per_pod ? 1.0 / 11 : 0.25 / 2;
      for (int i = 0; i < 3; ++i) CHECK(std::abs(share(r, a.name(i)) - pa) < 0.01);
      for (int i = 0; i < 2; ++i) CHECK(std::abs(share(r, b.name(i)) - pb) < 0.01);
      const double service_a = share(r, a.name(0)) + share(r, a.name(1)) + share(r, a.name(2));
      CHECK(std::abs(service_a - 3 * pa) < 0.01);
      env.upstream.reset();
    }
  }

  TEST_CASE("a service with weight 0 gets no new traffic while the others share it") {
    TempDir dir_a, dir_b;
    PodFarm a(dir_a.path(), 2, "za", 1);
    PodFarm b(dir_b.path(), 2, "zb", 2);
    UpstreamEnv env({"tke-a", "tke-b"});
    env.publish("tke-a", "za", a.port(), pods_of(a));
    env.publish("tke-b", "zb", b.port(), pods_of(b));
    env.start(config_of("zero", {UpstreamEnv::ref("tke-a", "za", 1), UpstreamEnv::ref("tke-b", "zb", 0)}));
    auto r = env.traffic(400, 8);
    CHECK(r.failed == 0);
    CHECK(r.by_body.count(b.name(0)) == 0);
    CHECK(r.by_body.count(b.name(1)) == 0);
    CHECK(r.by_body[a.name(0)] + r.by_body[a.name(1)] == 400);
    CHECK(env.upstream->stats().services[1].ready == 2);  // still watched
  }

  TEST_CASE("a Pod added later ramps up with slow start, measured in windows") {
    TempDir dir;
    PodFarm farm(dir.path(), 2, "ss", 4);
    UpstreamEnv env;
    env.publish("tke-a", "ss", farm.port(), {{farm.address(0), farm.name(0)}});
    UpstreamOptions o;
    o.slow_start = std::chrono::milliseconds{1500};
    env.start(config_of("slow", {UpstreamEnv::ref("tke-a", "ss")}), o);
    env.publish("tke-a", "ss", farm.port(), pods_of(farm));
    REQUIRE(env.loop.run_until([&] { return env.upstream->picker()->pickable() == 2; }, 10000));
    // Shares of the new Pod in successive 250 ms windows while the ramp runs (traffic flows
    // throughout), then after it.
    std::vector<double> shares;
    {
      TrafficLoop traffic(*env.upstream, 4);
      int seen_new = 0, seen_all = 0;
      for (int w = 0; w < 6; ++w) {
        env.loop.run_for(250);
        TrafficResult r = traffic.result();
        const int now_new = r.by_body[farm.name(1)], now_all = r.ok;
        if (now_all > seen_all) shares.push_back(static_cast<double>(now_new - seen_new) / (now_all - seen_all));
        seen_new = now_new;
        seen_all = now_all;
      }
      traffic.stop();
      CHECK(traffic.result().failed == 0);
    }
    env.loop.run_for(100);
    auto after = env.traffic(1000, 8);
    CAPTURE(shares.size());
    REQUIRE(shares.size() >= 3);
    CHECK(shares.front() < 0.30);              // starts near 10% of its weight: ~9% of traffic
    CHECK(shares.back() > shares.front());     // grows
    CHECK(std::abs(share(after, farm.name(1)) - 0.5) < 0.02);  // full weight afterwards
    CHECK(pod_weight(*env.upstream, farm.name(1)) == pod_weight(*env.upstream, farm.name(0)));
  }

  TEST_CASE("a Pod that turns terminating gets no new requests while its in-flight request finishes") {
    TempDir dir;
    PodFarm farm(dir.path(), 2, "tp", 5);
    farm.add_file("big", std::string(1 << 20, 'x'));
    UpstreamEnv env;
    env.publish("tke-a", "tp", farm.port(), pods_of(farm));
    UpstreamOptions o;
    o.seed = 7;
    env.start(config_of("term", {UpstreamEnv::ref("tke-a", "tp")}), o);

    // A long download, paused after its first bytes so that it stays in flight.
    PausedDownload slow(*env.upstream, "/files/big");
    REQUIRE(env.loop.run_until([&] { return !slow.body.empty(); }, 10000));
    const int busy = slow.pod == farm.host_port(0) ? 0 : 1;
    auto specs = pods_of(farm);
    specs[busy].ready = false;
    specs[busy].terminating = true;
    env.publish("tke-a", "tp", farm.port(), specs);
    REQUIRE(env.loop.run_until([&] { return env.upstream->stats().services[0].draining == 1; }, 10000));
    auto r = env.traffic(200, 8);
    CHECK(r.failed == 0);
    CHECK(r.by_body.count(farm.name(busy)) == 0);
    CHECK(r.by_body[farm.name(1 - busy)] == 200);
    bool draining_in_flight = false;
    for (const auto& p : env.upstream->stats().pods)
      if (p.pod_name == farm.name(busy)) draining_in_flight = p.draining && p.in_flight == 1 && p.weight == 0;
    CHECK(draining_in_flight);
    REQUIRE(env.loop.run_until([&] {
      if (!slow.done) slow.handle->resume_body();
      return slow.done;
    }, 10000));
    CHECK(slow.status.ok());
    CHECK(slow.body.size() == (1u << 20));
    CHECK_FALSE(env.upstream->stats().using_draining);
  }

  TEST_CASE("when no Pod is ready anywhere the serving-but-terminating Pods are used") {
    TempDir dir;
    PodFarm farm(dir.path(), 2, "dr", 6);
    UpstreamEnv env;
    env.publish("tke-a", "dr", farm.port(), pods_of(farm));
    env.start(config_of("drain", {UpstreamEnv::ref("tke-a", "dr")}));
    auto specs = pods_of(farm);
    for (auto& p : specs) {
      p.ready = false;
      p.terminating = true;
    }
    env.publish("tke-a", "dr", farm.port(), specs);
    REQUIRE(env.loop.run_until([&] { return env.upstream->stats().using_draining; }, 10000));
    auto r = env.traffic(100, 4);
    CHECK(r.failed == 0);
    CHECK(r.by_body[farm.name(0)] + r.by_body[farm.name(1)] == 100);
    // A ready Pod again: the draining ones stop getting new requests.
    specs[0].ready = true;
    specs[0].terminating = false;
    env.publish("tke-a", "dr", farm.port(), specs);
    REQUIRE(env.loop.run_until([&] { return !env.upstream->stats().using_draining; }, 10000));
    auto r2 = env.traffic(100, 4);
    CHECK(r2.by_body[farm.name(0)] == 100);
  }

  TEST_CASE("a rolling update with readiness transitions while requests flow fails no request") {
    TempDir dir;
    PodFarm farm(dir.path(), 6, "ru", 7);  // Pods 0-2: v1, Pods 3-5: v2
    UpstreamEnv env;
    std::vector<PodSpec> v1 = {{farm.address(0), farm.name(0)}, {farm.address(1), farm.name(1)}, {farm.address(2), farm.name(2)}};
    env.publish("tke-a", "ru", farm.port(), v1);
    env.start(config_of("roll", {UpstreamEnv::ref("tke-a", "ru")}));
    for (int i = 0; i < 3; ++i) farm.set_failing(3 + i, true);  // not started yet: answers 503
    TrafficLoop traffic(*env.upstream, 8);
    std::vector<PodSpec> specs = v1;
    for (int step = 0; step < 3; ++step) {
      // New Pod appears not ready, starts, turns ready.
      specs.push_back({farm.address(3 + step), farm.name(3 + step), false, false, false});
      env.admin("tke-a", {apply_op(slice_object("ru", "ru-1", farm.port(), specs))});
      env.loop.run_for(50);
      farm.set_failing(3 + step, false);
      specs.back().ready = specs.back().serving = true;
      env.admin("tke-a", {apply_op(slice_object("ru", "ru-1", farm.port(), specs))});
      env.loop.run_for(50);
      // An old Pod terminates (serving, then gone), and only then stops answering.
      specs[step].ready = false;
      specs[step].terminating = true;
      env.admin("tke-a", {apply_op(slice_object("ru", "ru-1", farm.port(), specs))});
      env.loop.run_for(50);
      specs[step].serving = false;
      env.admin("tke-a", {apply_op(slice_object("ru", "ru-1", farm.port(), specs))});
      const std::string old = farm.host_port(step);
      REQUIRE(env.loop.run_until([&] {
        for (const auto& p : env.upstream->stats().pods)
          if (p.pod == old && p.in_flight > 0) return false;
        return env.upstream->picker()->pickable() == 3;
      }, 10000));
      farm.set_failing(step, true);
      env.loop.run_for(50);
    }
    traffic.stop();
    auto r = traffic.result();
    CAPTURE(r.errors.size());
    CHECK(r.ok > 100);
    CHECK(r.failed == 0);
    CHECK(r.non_2xx == 0);
    for (int i = 0; i < 3; ++i) CHECK(r.by_body.count(farm.name(3 + i)) == 1);
    auto after = env.traffic(60, 4);
    CHECK(after.by_body[farm.name(3)] + after.by_body[farm.name(4)] + after.by_body[farm.name(5)] == 60);
  }
}
