// Upstream health and retries against kubesim and PodFarm Pods: retries on another Pod (by
// status, by method, after refused connections) and their budget, outlier ejection and
// recovery, the ejection cap, panic mode, and active health checks.
#include <doctest/doctest.h>

#include <functional>

#include "net/support/net_script_server.h"
#include "upstream/support/pod_farm.h"
#include "upstream/support/published_farm.h"
#include "upstream/support/upstream_env.h"

using namespace kupstream;
using namespace kupstream::test;

namespace {

using std::chrono::milliseconds;

UpstreamConfig config_of(const std::string& service) { return UpstreamEnv::config_for("tke-a", service); }

const PodStats* find_pod(const UpstreamStats& s, const std::string& name) {
  for (const auto& p : s.pods)
    if (p.pod_name == name) return &p;
  return nullptr;
}

int ejected_count(const UpstreamStats& s) {
  int ejected = 0;
  for (const auto& p : s.pods) ejected += p.ejected ? 1 : 0;
  return ejected;
}

// Runs the loop until the Pod `name` is listed and `pred` holds for it (false on timeout).
bool wait_for_pod(UpstreamEnv& env, const std::string& name, const std::function<bool(const PodStats&)>& pred,
                  int timeout_ms) {
  return env.loop.run_until([&] {
    const auto stats = env.upstream->stats();
    const auto* p = find_pod(stats, name);
    return p != nullptr && pred(*p);
  }, timeout_ms);
}

// Back in service: its ejection has ended (stats() judges that by the clock) and the Picker has
// been rebuilt with it (the timer that does so may run a little later on a loaded machine).
bool back_in_picker(const PodStats& p) { return !p.ejected && p.weight > 0; }
bool zero_weight(const PodStats& p) { return p.weight == 0; }

Outcome post(UpstreamEnv& env) {
  ForwardRequest req;
  req.method = "POST";
  req.target = "/";
  req.body = "payload";
  return env.send(std::move(req));
}

// Options that keep failing Pods in rotation (no outlier ejection).
UpstreamOptions never_ejecting() {
  UpstreamOptions o;
  o.outlier.consecutive_failures = 0;
  return o;
}

// Options without retries: `failures` in a row eject a Pod for `ejection`, at most `max_percent`
// of the Pods at once.
UpstreamOptions ejecting(std::uint32_t failures, milliseconds ejection, std::uint32_t max_percent) {
  UpstreamOptions o;
  o.retries.max_retries = 0;
  o.outlier.consecutive_failures = failures;
  o.outlier.base_ejection = ejection;
  o.outlier.max_ejected_percent = max_percent;
  return o;
}

// Options with active health checks every `interval`.
UpstreamOptions probing(milliseconds interval) {
  UpstreamOptions o;
  o.health_check.enabled = true;
  o.health_check.interval = interval;
  return o;
}

}  // namespace

TEST_SUITE("Upstream") {
  TEST_CASE("a Pod answering 503 is retried on another Pod for GET but not for POST") {
    PublishedFarm f("rt", 2, 11);
    f.farm.set_failing(0, true);
    f.start(never_ejecting());  // keep the failing Pod in rotation
    int retried = 0;
    for (int i = 0; i < 10; ++i) {
      auto r = f.env.get("/");
      CHECK(r.status.ok());
      CHECK(r.code == 200);
      CHECK(r.body == f.farm.name(1) + "\n");
      if (r.attempts == 2) ++retried;
    }
    CHECK(retried >= 4);  // round robin over two Pods: every other request starts on the bad one
    int posted_503 = 0;
    for (int i = 0; i < 10; ++i) {
      auto r = post(f.env);
      CHECK(r.status.ok());
      CHECK(r.attempts == 1);
      if (r.code == 503) {
        ++posted_503;
        CHECK(r.pod == f.farm.host_port(0));
      }
    }
    CHECK(posted_503 >= 4);
    CHECK(f.env.upstream->stats().retries == static_cast<std::uint64_t>(retried));
  }

  TEST_CASE("a retry reaches the one untried Pod even when the policy keeps drawing the tried one") {
    TempDir dir;
    PodFarm farm(dir.path(), 2, "far", 27);  // Pod 0: service "far-heavy" (weight 100), Pod 1: "far-light" (1)
    farm.set_failing(0, true);
    UpstreamEnv env;
    env.publish("tke-a", "far-heavy", farm.port(), pods_of(farm, 0, 1));
    env.publish("tke-a", "far-light", farm.port(), pods_of(farm, 1, 1));
    UpstreamConfig c;
    c.name = "far";
    c.policy = BalancerPolicy::random;  // draws Pod 0 with probability 100/101: eight draws in a row often
    c.services = {UpstreamEnv::ref("tke-a", "far-heavy", 100), UpstreamEnv::ref("tke-a", "far-light", 1)};
    env.start(c, never_ejecting());  // keep the failing Pod in rotation
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
    auto pods = pods_of(farm);
    pods.push_back({farm.dead_address(), "dead"});
    env.publish("tke-a", "rf", farm.port(), pods);
    UpstreamOptions o = never_ejecting();
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
    PublishedFarm f("sl", 2, 17);
    UpstreamOptions o;
    o.max_idle_per_pod = 0;  // a fresh connection per request: a stopped listener shows at once
    o.outlier.consecutive_failures = 2;
    o.outlier.base_ejection = milliseconds{300};
    f.start(o);
    auto r = f.env.traffic(20, 2);
    CHECK(r.by_body[f.farm.name(0)] == 10);
    REQUIRE(f.farm.set_listening(0, false));
    int retried = 0;
    for (int i = 0; i < 10; ++i) {
      auto p = post(f.env);
      CHECK(p.status.ok());
      CHECK(p.body == f.farm.name(1) + "\n");
      if (p.attempts == 2) ++retried;
    }
    CHECK(retried == 2);  // two refusals eject it
    {
      const auto stats = f.env.upstream->stats();
      REQUIRE(find_pod(stats, f.farm.name(0)));
      CHECK(find_pod(stats, f.farm.name(0))->ejected);
    }
    REQUIRE(f.farm.set_listening(0, true));
    REQUIRE(wait_for_pod(f.env, f.farm.name(0), back_in_picker, 3000));
    r = f.env.traffic(20, 1);
    CAPTURE(r.errors.empty() ? std::string() : r.errors.front());
    CHECK(r.failed == 0);
    CHECK(r.by_body[f.farm.name(0)] == 10);
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
    env.publish("tke-a", "bud", s1.port(), {{"127.0.0.1", "p1"}});
    env.admin("tke-a", {apply_op(slice_object("bud", "bud-2", s2.port(), {{"127.0.0.1", "p2"}}))});
    UpstreamOptions o = never_ejecting();
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
    PublishedFarm f("ej", 4, 13);
    f.start(ejecting(3, milliseconds{400}, 50));

    f.farm.set_failing(0, true);
    auto r = f.env.traffic(40, 1);
    CHECK(r.non_2xx == 3);  // three 503s, then the Pod is out
    auto stats = f.env.upstream->stats();
    REQUIRE(find_pod(stats, f.farm.name(0)));
    CHECK(find_pod(stats, f.farm.name(0))->ejected);
    CHECK(find_pod(stats, f.farm.name(0))->weight == 0);
    CHECK(find_pod(stats, f.farm.name(0))->ejections == 1);
    f.farm.set_failing(0, false);
    r = f.env.traffic(40, 1);
    CHECK(r.by_body.count(f.farm.name(0)) == 0);
    // After the ejection time it is back without any event from the API server.
    REQUIRE(wait_for_pod(f.env, f.farm.name(0), back_in_picker, 3000));
    r = f.env.traffic(40, 1);
    CHECK(r.by_body[f.farm.name(0)] == 10);

    // Three of four Pods fail: at most 50% may be ejected, so only two are.
    for (int i = 0; i < 3; ++i) f.farm.set_failing(i, true);
    f.env.traffic(60, 1);
    stats = f.env.upstream->stats();
    CHECK(ejected_count(stats) == 2);
    CHECK_FALSE(stats.panic);
    for (int i = 0; i < 3; ++i) f.farm.set_failing(i, false);
  }

  TEST_CASE("the ejection cap counts only Pods that take traffic, not a zero-weight service's") {
    TempDir dir;
    PodFarm farm(dir.path(), 6, "cap", 18);  // Pods 0-1: service "cap", Pods 2-5: "cap-idle" (weight 0)
    UpstreamEnv env;
    env.publish("tke-a", "cap", farm.port(), pods_of(farm, 0, 2));
    env.publish("tke-a", "cap-idle", farm.port(), pods_of(farm, 2, 4));
    UpstreamConfig c;
    c.name = "cap";
    c.services = {UpstreamEnv::ref("tke-a", "cap", 1), UpstreamEnv::ref("tke-a", "cap-idle", 0)};
    env.start(c, ejecting(2, milliseconds{5000}, 50));
    farm.set_failing(0, true);
    farm.set_failing(1, true);
    env.traffic(20, 1);
    CHECK(ejected_count(env.upstream->stats()) == 1);  // 50% of the 2 Pods that take traffic, not of 6
  }

  TEST_CASE("when most Pods are ejected the upstream panics and uses them all") {
    PublishedFarm f("pa", 4, 14);
    UpstreamOptions o = ejecting(2, milliseconds{5000}, 100);
    o.panic_threshold_percent = 50;
    f.start(o);
    for (int i = 0; i < 3; ++i) f.farm.set_failing(i, true);
    f.env.traffic(40, 1);
    auto stats = f.env.upstream->stats();
    CHECK(stats.panic);
    CHECK(ejected_count(stats) == 3);
    for (int i = 0; i < 3; ++i) f.farm.set_failing(i, false);
    auto r = f.env.traffic(80, 1);
    for (int i = 0; i < 4; ++i) CHECK(r.by_body[f.farm.name(i)] == 20);  // all Pods, ejected or not
  }

  TEST_CASE("active health checks take a Pod out and bring it back") {
    PublishedFarm f("hc", 2, 15);
    UpstreamOptions o = probing(milliseconds{50});
    o.health_check.timeout = milliseconds{200};
    o.health_check.unhealthy_threshold = 2;
    o.health_check.healthy_threshold = 2;
    o.panic_threshold_percent = 0;
    f.start(o);
    f.farm.set_unhealthy(1, true);
    REQUIRE(wait_for_pod(f.env, f.farm.name(1), zero_weight, 5000));
    auto r = f.env.traffic(50, 4);
    CHECK(r.by_body[f.farm.name(0)] == 50);
    f.farm.set_unhealthy(1, false);
    REQUIRE(wait_for_pod(f.env, f.farm.name(1), [](const PodStats& p) { return p.weight > 0; }, 5000));
    r = f.env.traffic(50, 1);
    CHECK(r.by_body[f.farm.name(1)] == 25);
  }

  TEST_CASE("frequent health-check ticks do not skew round-robin shares") {
    // Each rebuild restarts the round-robin cycle; ticks that change nothing must not rebuild.
    PublishedFarm f("tk", 3, 19);
    f.start(probing(milliseconds{5}));
    auto r = f.env.traffic(300, 1);
    CHECK(r.failed == 0);
    for (int i = 0; i < 3; ++i) CHECK(r.by_body[f.farm.name(i)] == 100);
  }

  TEST_CASE("an active health check that hangs past its timeout counts as a failure") {
    // The Pod accepts health checks but never answers them.
    auto hang = [](int& fd, int) {
      if (read_request(fd, 3000).empty()) return;
      sleep_ms(1500);
    };
    ScriptServer hung(hang);
    PublishedFarm f("hh", 1, 16);
    f.env.admin("tke-a", {apply_op(slice_object("hh", "hh-2", hung.port(), {{"127.0.0.1", "hung"}}))});
    UpstreamOptions o = probing(milliseconds{2000});
    o.health_check.timeout = milliseconds{100};
    o.health_check.unhealthy_threshold = 1;
    o.panic_threshold_percent = 0;
    f.start(o);
    REQUIRE(f.env.loop.run_until([&] { return f.env.upstream->picker()->pickable() >= 1 && find_pod(f.env.upstream->stats(), "hung"); }, 5000));
    // Within the first interval: the hung probe times out after 100 ms.
    CHECK(wait_for_pod(f.env, "hung", zero_weight, 1500));
  }
}
