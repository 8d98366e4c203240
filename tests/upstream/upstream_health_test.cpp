// Upstream health and retries against kubesim and PodFarm Pods: retries on another Pod (by
// status, by method, after refused connections) and their budget, outlier ejection and
// recovery, the ejection cap, panic mode, and active health checks.
#include <doctest/doctest.h>

#include "net/support/net_script_server.h"
#include "upstream/support/pod_farm.h"
#include "upstream/support/upstream_env.h"

using namespace kupstream;
using namespace kupstream::test;

namespace {

UpstreamConfig config_of(const std::string& service) {
  UpstreamConfig c;
  c.name = service;
  c.services = {UpstreamEnv::ref("tke-a", service)};
  return c;
}

const PodStats* find_pod(const UpstreamStats& s, const std::string& name) {
  for (const auto& p : s.pods)
    if (p.pod_name == name) return &p;
  return nullptr;
}

Outcome post(UpstreamEnv& env) {
  ForwardRequest req;
  req.method = "POST";
  req.target = "/";
  req.body = "payload";
  return env.send(std::move(req));
}

}  // namespace

TEST_SUITE("Upstream") {
  TEST_CASE("a Pod answering 503 is retried on another Pod for GET but not for POST") {
    TempDir dir;
    PodFarm farm(dir.path(), 2, "rt", 11);
    farm.set_failing(0, true);
    UpstreamEnv env;
    env.publish("tke-a", "rt", farm.port(), pods_of(farm));
    UpstreamOptions o;
    o.outlier.consecutive_failures = 0;  // keep the failing Pod in rotation
    env.start(config_of("rt"), o);
    int retried = 0;
    for (int i = 0; i < 10; ++i) {
      auto r = env.get("/");
      CHECK(r.status.ok());
      CHECK(r.code == 200);
      CHECK(r.body == farm.name(1) + "\n");
      if (r.attempts == 2) ++retried;
    }
    CHECK(retried >= 4);  // round robin over two Pods: every other request starts on the bad one
    int posted_503 = 0;
    for (int i = 0; i < 10; ++i) {
      auto r = post(env);
      CHECK(r.status.ok());
      CHECK(r.attempts == 1);
      if (r.code == 503) {
        ++posted_503;
        CHECK(r.pod == farm.host_port(0));
      }
    }
    CHECK(posted_503 >= 4);
    CHECK(env.upstream->stats().retries == static_cast<std::uint64_t>(retried));
  }

  TEST_CASE("a retry reaches the one untried Pod even when the policy keeps drawing the tried one") {
    TempDir dir;
    PodFarm farm(dir.path(), 2, "far", 27);  // Pod 0: service "far-heavy" (weight 100), Pod 1: "far-light" (1)
    farm.set_failing(0, true);
    UpstreamEnv env;
    env.publish("tke-a", "far-heavy", farm.port(), {{farm.address(0), farm.name(0)}});
    env.publish("tke-a", "far-light", farm.port(), {{farm.address(1), farm.name(1)}});
    UpstreamConfig c;
    c.name = "far";
    c.policy = BalancerPolicy::random;  // draws Pod 0 with probability 100/101: eight draws in a row often
    c.services = {UpstreamEnv::ref("tke-a", "far-heavy", 100), UpstreamEnv::ref("tke-a", "far-light", 1)};
    UpstreamOptions o;
    o.outlier.consecutive_failures = 0;  // keep the failing Pod in rotation
    env.start(c, o);
    for (int i = 0; i < 20; ++i) {
      auto r = env.get("/");
      REQUIRE(r.status.ok());
      CHECK(r.code == 200);
      CHECK(r.body == farm.name(1) + "\n");
    }
  }

  TEST_CASE("a refused connection is retried on another Pod for any method") {
    TempDir dir;
    PodFarm farm(dir.path(), 1, "rf", 12);
    UpstreamEnv env;
    env.publish("tke-a", "rf", farm.port(), {{farm.address(0), farm.name(0)}, {farm.dead_address(), "dead"}});
    UpstreamOptions o;
    o.outlier.consecutive_failures = 0;
    env.start(config_of("rf"), o);
    int retried = 0;
    for (int i = 0; i < 8; ++i) {
      auto r = post(env);
      CHECK(r.status.ok());
      CHECK(r.code == 200);
      CHECK(r.body == farm.name(0) + "\n");
      if (r.attempts == 2) ++retried;
    }
    CHECK(retried >= 3);
    const auto stats = env.upstream->stats();
    const auto* dead = find_pod(stats, "dead");
    REQUIRE(dead);
    CHECK(dead->failures == static_cast<std::uint64_t>(retried));

    // retries.on_connect_failure = false: the refusal is the answer, naming the Pod.
    env.upstream.reset();
    o.retries.on_connect_failure = false;
    env.start(config_of("rf"), o);
    int refused = 0;
    for (int i = 0; i < 4; ++i) {
      auto r = env.get("/");
      if (r.status.ok()) continue;
      ++refused;
      CHECK(r.status.error().code == Errc::connect_failed);
      CHECK(r.status.error().reason.find("upstream \"rf\": Pod " + farm.dead_address()) == 0);
    }
    CHECK(refused == 2);
  }

  TEST_CASE("a Pod that stops listening is retried elsewhere for POST, ejected, and back once it listens again") {
    TempDir dir;
    PodFarm farm(dir.path(), 2, "sl", 17);
    UpstreamEnv env;
    env.publish("tke-a", "sl", farm.port(), pods_of(farm));
    UpstreamOptions o;
    o.max_idle_per_pod = 0;  // a fresh connection per request: a stopped listener shows at once
    o.outlier.consecutive_failures = 2;
    o.outlier.base_ejection = std::chrono::milliseconds{300};
    env.start(config_of("sl"), o);
    auto r = env.traffic(20, 2);
    CHECK(r.by_body[farm.name(0)] == 10);
    REQUIRE(farm.set_listening(0, false));
    int retried = 0;
    for (int i = 0; i < 10; ++i) {
      auto p = post(env);
      CHECK(p.status.ok());
      CHECK(p.body == farm.name(1) + "\n");
      if (p.attempts == 2) ++retried;
    }
    CHECK(retried == 2);  // two refusals eject it
    {
      const auto stats = env.upstream->stats();
      REQUIRE(find_pod(stats, farm.name(0)));
      CHECK(find_pod(stats, farm.name(0))->ejected);
    }
    REQUIRE(farm.set_listening(0, true));
    REQUIRE(env.loop.run_until([&] { return !find_pod(env.upstream->stats(), farm.name(0))->ejected; }, 3000));
    r = env.traffic(20, 1);
    CAPTURE(r.errors.empty() ? std::string() : r.errors.front());
    CHECK(r.failed == 0);
    CHECK(r.by_body[farm.name(0)] == 10);
  }

  TEST_CASE("the retry budget caps retries in flight") {
    // Two Pods that answer 503 after 300 ms: ten requests fail at once and want a retry; a
    // budget of 2 concurrent retries lets exactly two of them retry.
    auto slow_503 = [](int& fd, int) {
      for (;;) {
        if (read_request(fd, 3000).empty()) return;
        sleep_ms(300);
        if (!write_all(fd, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy")) return;
      }
    };
    ScriptServer s1(slow_503), s2(slow_503);
    UpstreamEnv env;
    env.admin("tke-a", {apply_op(service_object("bud", s1.port())),
                        apply_op(slice_object("bud", "bud-1", s1.port(), {{"127.0.0.1", "p1"}})),
                        apply_op(slice_object("bud", "bud-2", s2.port(), {{"127.0.0.1", "p2"}}))});
    UpstreamOptions o;
    o.outlier.consecutive_failures = 0;
    o.retries.max_retries = 1;
    o.retries.min_concurrent = 2;
    o.retries.budget_ratio = 0;
    env.start(config_of("bud"), o);
    REQUIRE(env.loop.run_until([&] { return env.upstream->picker()->pickable() == 2; }, 10000));
    auto r = env.traffic(10, 10);
    CHECK(r.failed == 0);
    CHECK(r.ok == 10);
    CHECK(env.upstream->stats().retries == 2);
  }

  TEST_CASE("a failing Pod is ejected, comes back after the ejection time, and the cap holds") {
    TempDir dir;
    PodFarm farm(dir.path(), 4, "ej", 13);
    UpstreamEnv env;
    env.publish("tke-a", "ej", farm.port(), pods_of(farm));
    UpstreamOptions o;
    o.retries.max_retries = 0;
    o.outlier.consecutive_failures = 3;
    o.outlier.base_ejection = std::chrono::milliseconds{400};
    o.outlier.max_ejected_percent = 50;
    env.start(config_of("ej"), o);

    farm.set_failing(0, true);
    auto r = env.traffic(40, 1);
    CHECK(r.non_2xx == 3);  // three 503s, then the Pod is out
    auto stats = env.upstream->stats();
    REQUIRE(find_pod(stats, farm.name(0)));
    CHECK(find_pod(stats, farm.name(0))->ejected);
    CHECK(find_pod(stats, farm.name(0))->weight == 0);
    CHECK(find_pod(stats, farm.name(0))->ejections == 1);
    farm.set_failing(0, false);
    r = env.traffic(40, 1);
    CHECK(r.by_body.count(farm.name(0)) == 0);
    // After the ejection time it is back without any event from the API server.
    REQUIRE(env.loop.run_until([&] { return !find_pod(env.upstream->stats(), farm.name(0))->ejected; }, 3000));
    r = env.traffic(40, 1);
    CHECK(r.by_body[farm.name(0)] == 10);

    // Three of four Pods fail: at most 50% may be ejected, so only two are.
    for (int i = 0; i < 3; ++i) farm.set_failing(i, true);
    env.traffic(60, 1);
    stats = env.upstream->stats();
    int ejected = 0;
    for (const auto& p : stats.pods) ejected += p.ejected ? 1 : 0;
    CHECK(ejected == 2);
    CHECK_FALSE(stats.panic);
    for (int i = 0; i < 3; ++i) farm.set_failing(i, false);
  }

  TEST_CASE("the ejection cap counts only Pods that take traffic, not a zero-weight service's") {
    TempDir dir;
    PodFarm farm(dir.path(), 6, "cap", 18);  // Pods 0-1: service "cap", Pods 2-5: "cap-idle" (weight 0)
    UpstreamEnv env;
    env.admin("tke-a", {apply_op(service_object("cap", farm.port())), apply_op(service_object("cap-idle", farm.port())),
                        apply_op(slice_object("cap", "cap-1", farm.port(), {{farm.address(0), farm.name(0)}, {farm.address(1), farm.name(1)}})),
                        apply_op(slice_object("cap-idle", "cap-idle-1", farm.port(),
                                              {{farm.address(2), farm.name(2)}, {farm.address(3), farm.name(3)},
                                               {farm.address(4), farm.name(4)}, {farm.address(5), farm.name(5)}}))});
    UpstreamConfig c;
    c.name = "cap";
    c.services = {UpstreamEnv::ref("tke-a", "cap", 1), UpstreamEnv::ref("tke-a", "cap-idle", 0)};
    UpstreamOptions o;
    o.retries.max_retries = 0;
    o.outlier.consecutive_failures = 2;
    o.outlier.base_ejection = std::chrono::milliseconds{5000};
    o.outlier.max_ejected_percent = 50;
    env.start(c, o);
    farm.set_failing(0, true);
    farm.set_failing(1, true);
    env.traffic(20, 1);
    int ejected = 0;
    for (const auto& p : env.upstream->stats().pods) ejected += p.ejected ? 1 : 0;
    CHECK(ejected == 1);  // 50% of the 2 Pods that take traffic, not of 6
  }

  TEST_CASE("when most Pods are ejected the upstream panics and uses them all") {
    TempDir dir;
    PodFarm farm(dir.path(), 4, "pa", 14);
    UpstreamEnv env;
    env.publish("tke-a", "pa", farm.port(), pods_of(farm));
    UpstreamOptions o;
    o.retries.max_retries = 0;
    o.outlier.consecutive_failures = 2;
    o.outlier.base_ejection = std::chrono::milliseconds{5000};
    o.outlier.max_ejected_percent = 100;
    o.panic_threshold_percent = 50;
    env.start(config_of("pa"), o);
    for (int i = 0; i < 3; ++i) farm.set_failing(i, true);
    env.traffic(40, 1);
    auto stats = env.upstream->stats();
    CHECK(stats.panic);
    int ejected = 0;
    for (const auto& p : stats.pods) ejected += p.ejected ? 1 : 0;
    CHECK(ejected == 3);
    for (int i = 0; i < 3; ++i) farm.set_failing(i, false);
    auto r = env.traffic(80, 1);
    for (int i = 0; i < 4; ++i) CHECK(r.by_body[farm.name(i)] == 20);  // all Pods, ejected or not
  }

  TEST_CASE("active health checks take a Pod out and bring it back") {
    TempDir dir;
    PodFarm farm(dir.path(), 2, "hc", 15);
    UpstreamEnv env;
    env.publish("tke-a", "hc", farm.port(), pods_of(farm));
    UpstreamOptions o;
    o.health_check.enabled = true;
    o.health_check.interval = std::chrono::milliseconds{50};
    o.health_check.timeout = std::chrono::milliseconds{200};
    o.health_check.unhealthy_threshold = 2;
    o.health_check.healthy_threshold = 2;
    o.panic_threshold_percent = 0;
    env.start(config_of("hc"), o);
    farm.set_unhealthy(1, true);
    REQUIRE(env.loop.run_until([&] { return find_pod(env.upstream->stats(), farm.name(1))->weight == 0; }, 5000));
    auto r = env.traffic(50, 4);
    CHECK(r.by_body[farm.name(0)] == 50);
    farm.set_unhealthy(1, false);
    REQUIRE(env.loop.run_until([&] { return find_pod(env.upstream->stats(), farm.name(1))->weight > 0; }, 5000));
    r = env.traffic(50, 1);
    CHECK(r.by_body[farm.name(1)] == 25);
  }

  TEST_CASE("frequent health-check ticks do not skew round-robin shares") {
    // Each rebuild restarts the round-robin cycle; ticks that change nothing must not rebuild.
    TempDir dir;
    PodFarm farm(dir.path(), 3, "tk", 19);
    UpstreamEnv env;
    env.publish("tke-a", "tk", farm.port(), pods_of(farm));
    UpstreamOptions o;
    o.health_check.enabled = true;
    o.health_check.interval = std::chrono::milliseconds{5};
    env.start(config_of("tk"), o);
    auto r = env.traffic(300, 1);
    CHECK(r.failed == 0);
    for (int i = 0; i < 3; ++i) CHECK(r.by_body[farm.name(i)] == 100);
  }

  TEST_CASE("an active health check that hangs past its timeout counts as a failure") {
    // The Pod accepts health checks but never answers them.
    auto hang = [](int& fd, int) {
      if (read_request(fd, 3000).empty()) return;
      sleep_ms(1500);
    };
    ScriptServer hung(hang);
    TempDir dir;
    PodFarm farm(dir.path(), 1, "hh", 16);
    UpstreamEnv env;
    env.admin("tke-a", {apply_op(service_object("hh", farm.port())),
                        apply_op(slice_object("hh", "hh-1", farm.port(), {{farm.address(0), farm.name(0)}})),
                        apply_op(slice_object("hh", "hh-2", hung.port(), {{"127.0.0.1", "hung"}}))});
    UpstreamOptions o;
    o.health_check.enabled = true;
    o.health_check.interval = std::chrono::milliseconds{2000};
    o.health_check.timeout = std::chrono::milliseconds{100};
    o.health_check.unhealthy_threshold = 1;
    o.panic_threshold_percent = 0;
    env.start(config_of("hh"), o);
    REQUIRE(env.loop.run_until([&] { return env.upstream->picker()->pickable() >= 1 && find_pod(env.upstream->stats(), "hung"); }, 5000));
    // Within the first interval: the hung probe times out after 100 ms.
    CHECK(env.loop.run_until([&] { return find_pod(env.upstream->stats(), "hung")->weight == 0; }, 1500));
  }
}
