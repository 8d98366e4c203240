// Upstream::Impl::rebuild() with the default policy: a two-level Picker (one Picker per service,
// grouped by Balancer::build_grouped) of which a change rebuilds only the service that changed,
// with the same shares, health, slow start, panic and draining fallback as one flat Picker.
#include <doctest/doctest.h>
#include <uv.h>

#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "balance/grouped_wrr_picker.h"
#include "upstream/support/unwatched_world.h"
#include "upstream/upstream_impl.h"

namespace kupstream {
namespace {

Endpoint pod(const std::string& address, bool ready = true) {
  Endpoint e;
  e.address = address;
  e.port = 8080;
  e.pod_name = "pod-" + address;
  e.conditions.ready = ready;
  e.conditions.terminating = !ready;
  return e;
}

// `n` Pods 127.0.<service + 1>.<first + i>.
std::vector<Endpoint> pods(std::size_t service, int n, int first = 1, bool ready = true) {
  std::vector<Endpoint> out;
  for (int i = 0; i < n; ++i) out.push_back(pod("127.0." + std::to_string(service + 1) + "." + std::to_string(first + i), ready));
  return out;
}

// Services s0, s1, ... with these weights.
std::vector<std::pair<std::string, std::uint32_t>> named(const std::vector<std::uint32_t>& weights) {
  std::vector<std::pair<std::string, std::uint32_t>> out;
  for (std::size_t i = 0; i < weights.size(); ++i) out.emplace_back("s" + std::to_string(i), weights[i]);
  return out;
}

struct World : test::UnwatchedWorld {
  explicit World(const std::vector<std::uint32_t>& weights, UpstreamOptions o = {}, WeightMode mode = WeightMode::per_pod)
      : UnwatchedWorld("rebuild", named(weights), std::move(o), mode) {}
  PickerPtr picker() const { return impl->current_picker(); }
  const detail::GroupedWrrPicker& grouped() const {
    const auto* g = dynamic_cast<const detail::GroupedWrrPicker*>(impl->current_picker().get());
    REQUIRE(g != nullptr);
    return *g;
  }
  UpstreamPod& find(const std::string& address) {
    for (auto& s : impl->services)
      for (auto& p : s.pods)
        if (p->endpoint->address == address) return *p;
    FAIL("no Pod " << address);
    throw 0;
  }
  // Picks per Pod address over `picks` picks, checking each pick's bookkeeping on the way.
  std::map<std::string, std::uint64_t> count(std::uint64_t picks) const {
    std::map<std::string, std::uint64_t> out;
    const auto p = picker();
    for (std::uint64_t i = 0; i < picks; ++i) {
      const auto r = p->pick();
      REQUIRE(r);
      REQUIRE(r.index < p->size());
      REQUIRE(p->at(r.index) == r);
      const auto& target = detail::target_of(r);
      REQUIRE(target.port == r.endpoint->port);
      REQUIRE(target.service == r.group);
      ++out[r.endpoint->address];
    }
    return out;
  }
  // The cycle of the current Picker: the sum of its weights over their gcd.
  std::uint64_t cycle() const {
    std::uint64_t g = 0, total = 0;
    for (const auto& e : picker()->endpoints()) g = std::gcd<std::uint64_t>(g, e.weight);
    for (const auto& e : picker()->endpoints()) total += e.weight / g;
    return total;
  }
  // Over one full cycle, every endpoint of the Picker is picked exactly weight / gcd times.
  void check_exact_cycle() const {
    std::uint64_t g = 0;
    for (const auto& e : picker()->endpoints()) g = std::gcd<std::uint64_t>(g, e.weight);
    const auto counts = count(cycle());
    for (const auto& e : picker()->endpoints()) {
      CAPTURE(e.endpoint->address);
      CHECK(counts.count(e.endpoint->address) == 1);
      if (counts.count(e.endpoint->address)) CHECK(counts.at(e.endpoint->address) == e.weight / g);
    }
  }
  // Runs the loop until `done` or 5 s (the Upstream's own timer ends ejections, ramps weights).
  template <class F>
  bool run_until(F done) {
    struct Wait {
      F* done;
      std::chrono::steady_clock::time_point end;
      bool met = false;
    } wait{&done, std::chrono::steady_clock::now() + std::chrono::seconds(5)};
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = &wait;
    uv_timer_start(&t, [](uv_timer_t* h) {
      auto* w = static_cast<Wait*>(h->data);
      w->met = (*w->done)();
      if (w->met || std::chrono::steady_clock::now() >= w->end) uv_timer_stop(h);
    }, 5, 5);
    while (uv_is_active(reinterpret_cast<uv_handle_t*>(&t))) uv_run(&loop, UV_RUN_ONCE);
    uv_close(reinterpret_cast<uv_handle_t*>(&t), nullptr);
    uv_run(&loop, UV_RUN_NOWAIT);
    return wait.met;
  }
};

UpstreamOptions no_panic_ejection(std::chrono::milliseconds ejection) {
  UpstreamOptions o;
  o.outlier.consecutive_failures = 1;
  o.outlier.base_ejection = ejection;
  o.outlier.max_ejection = ejection;
  o.outlier.max_ejected_percent = 100;
  o.panic_threshold_percent = 0;
  return o;
}

}  // namespace

TEST_SUITE("Upstream rebuild") {
  TEST_CASE("a snapshot of one service rebuilds that service's Picker only: the others are the same objects") {
    World w({1, 1, 1});
    for (std::size_t s = 0; s < 3; ++s) w.publish(s, pods(s, 4));
    const auto before = w.picker();
    const auto& old_groups = w.grouped().groups();
    REQUIRE(old_groups.size() == 3);
    w.publish(1, pods(1, 3));  // 127.0.2.4 leaves
    const auto& groups = w.grouped().groups();
    CHECK(groups[0].get() == old_groups[0].get());
    CHECK(groups[2].get() == old_groups[2].get());
    CHECK(groups[1].get() != old_groups[1].get());
    CHECK(groups[1]->size() == 3);
    CHECK(w.picker()->size() == 11);
    // The Pods of the other services keep their place in endpoints(), their weight and their Pod.
    for (std::size_t i = 0; i < 4; ++i) CHECK(w.picker()->at(i).load == before->at(i).load);
    for (std::size_t i = 0; i < 4; ++i) CHECK(w.picker()->at(7 + i).load == before->at(8 + i).load);
    w.check_exact_cycle();
  }

  TEST_CASE("shares over a full cycle are service weight times Pod share, in both weight modes") {
    for (auto mode : {WeightMode::per_pod, WeightMode::per_service}) {
      CAPTURE(static_cast<int>(mode));
      World w({1, 2, 3}, {}, mode);
      w.publish(0, pods(0, 2));
      w.publish(1, pods(1, 3));
      w.publish(2, pods(2, 5));
      const auto counts = w.count(w.cycle() * 2);
      if (mode == WeightMode::per_pod) {
        // Cycle 2 + 6 + 15 = 23: a Pod of s0 once, of s1 twice, of s2 three times.
        CHECK(w.cycle() == 23);
        for (const auto& [address, n] : counts) CHECK(n == 2 * (address[6] - '0'));
      } else {
        // Each service's total is its weight: 1000 / 2, 2000 / 3 (666), 3000 / 5 per Pod.
        CHECK(counts.at("127.0.1.1") * 666 == counts.at("127.0.2.1") * 500);
        CHECK(counts.at("127.0.1.1") * 600 == counts.at("127.0.3.1") * 500);
      }
      w.check_exact_cycle();
    }
  }

  TEST_CASE("a dropped Pod is never picked once the next Picker is published") {
    World w({1, 1});
    w.publish(0, pods(0, 3));
    w.publish(1, pods(1, 2));
    CHECK(w.count(w.cycle()).count("127.0.1.2") == 1);
    std::vector<Endpoint> without = pods(0, 3);
    without.erase(without.begin() + 1);
    w.publish(0, without);
    const auto counts = w.count(5 * w.cycle());
    CHECK(counts.count("127.0.1.2") == 0);
    CHECK(counts.size() == 4);
    for (std::size_t i = 0; i < w.picker()->size(); ++i) CHECK(w.picker()->at(i).endpoint->address != "127.0.1.2");
  }

  TEST_CASE("an ejection takes the Pod out of its service's Picker only, and its end brings it back") {
    World w({1, 1}, no_panic_ejection(std::chrono::milliseconds(60)));
    w.publish(0, pods(0, 3));
    w.publish(1, pods(1, 3));
    const auto other = w.grouped().groups()[1];
    UpstreamPod& victim = w.find("127.0.1.2");
    w.impl->record_result(victim, true);
    REQUIRE(victim.health.ejected(SteadyClock::now()));
    CHECK(victim.weight == 0);
    CHECK(w.grouped().groups()[1].get() == other.get());
    CHECK(w.count(3 * w.cycle()).count("127.0.1.2") == 0);
    // The Upstream's timer ends the ejection and rebuilds service 0 only.
    CHECK(w.run_until([&] { return victim.weight > 0; }));
    CHECK(w.grouped().groups()[1].get() == other.get());
    CHECK(w.count(w.cycle()).at("127.0.1.2") == 1);
    w.check_exact_cycle();
  }

  TEST_CASE("the ejection cap counts every service's Pods, and counts again once an ejection has ended") {
    UpstreamOptions o = no_panic_ejection(std::chrono::milliseconds(60));
    o.outlier.max_ejected_percent = 50;  // 2 of the 4 Pods
    World w({1, 1, 0}, o);
    w.publish(0, pods(0, 2));
    w.publish(1, pods(1, 2));
    w.publish(2, pods(2, 4));  // weight 0: its Pods do not count
    const auto now = [] { return SteadyClock::now(); };
    w.impl->record_result(w.find("127.0.1.1"), true);
    w.impl->record_result(w.find("127.0.2.1"), true);
    REQUIRE(w.find("127.0.1.1").health.ejected(now()));
    REQUIRE(w.find("127.0.2.1").health.ejected(now()));
    // A third ejection would be 3 of 4: refused, in either service.
    w.impl->record_result(w.find("127.0.2.2"), true);
    CHECK_FALSE(w.find("127.0.2.2").health.ejected(now()));
    w.impl->record_result(w.find("127.0.1.2"), true);
    CHECK_FALSE(w.find("127.0.1.2").health.ejected(now()));
    // Both ejections end while the loop does not run (no rebuild has counted again yet): the
    // cap must see that, not the counts of the last rebuild.
    std::this_thread::sleep_for(std::chrono::milliseconds(80));
    REQUIRE_FALSE(w.find("127.0.1.1").health.ejected(now()));
    w.impl->record_result(w.find("127.0.2.2"), true);
    CHECK(w.find("127.0.2.2").health.ejected(now()));
  }

  TEST_CASE("slow start: a Pod that joins later ramps up in its service's Picker; the other service's is kept") {
    UpstreamOptions o;
    o.slow_start = std::chrono::milliseconds(400);
    World w({1, 1}, o);
    w.publish(0, pods(0, 2));
    w.publish(1, pods(1, 2));
    const auto other = w.grouped().groups()[1];
    w.publish(0, pods(0, 3));  // 127.0.1.3 is new
    UpstreamPod& fresh = w.find("127.0.1.3");
    CHECK(fresh.weight < 500);
    CHECK_FALSE(bool(fresh.ramped));
    CHECK(w.find("127.0.1.1").weight == 1000);
    CHECK(bool(w.find("127.0.1.1").ramped));  // came with the first snapshot
    CHECK(w.grouped().groups()[1].get() == other.get());
    w.check_exact_cycle();
    const auto first = fresh.weight;
    // The timer raises it step by step, rebuilding service 0 (ramping), not service 1.
    CHECK(w.run_until([&] { return fresh.weight > first; }));
    CHECK(w.grouped().groups()[1].get() == other.get());
    w.check_exact_cycle();
    CHECK(w.run_until([&] { return fresh.weight == 1000; }));
    CHECK_FALSE(w.impl->services[0].ramping);
    // Its ramp is over: the 4-byte stamp of its first listing is no longer read.
    CHECK(bool(fresh.ramped));
    CHECK(fresh.age(SteadyClock::now()) == std::chrono::milliseconds::max());
  }

  TEST_CASE("panic: with most Pods ejected, every Pod of every service takes traffic again") {
    UpstreamOptions o = no_panic_ejection(std::chrono::milliseconds(60'000));
    o.panic_threshold_percent = 50;
    World w({1, 1}, o);
    w.publish(0, pods(0, 2));
    w.publish(1, pods(1, 2));
    w.impl->record_result(w.find("127.0.1.1"), true);
    CHECK_FALSE(w.impl->panic);
    CHECK(w.count(w.cycle()).count("127.0.1.1") == 0);
    w.impl->record_result(w.find("127.0.2.1"), true);
    w.impl->record_result(w.find("127.0.2.2"), true);
    CHECK(w.impl->panic);  // 1 healthy of 4
    const auto counts = w.count(w.cycle());
    CHECK(counts.size() == 4);
    w.check_exact_cycle();
  }

  TEST_CASE("draining fallback: with no ready Pod anywhere, draining Pods of every service take traffic") {
    World w({1, 1});
    w.publish(0, pods(0, 2, 1, false));
    w.publish(1, pods(1, 1, 1, false));
    CHECK(w.impl->using_draining);
    CHECK(w.count(w.cycle()).size() == 3);
    // One ready Pod in service 1: the fallback ends, in service 0 too.
    std::vector<Endpoint> mixed = pods(1, 1, 1, false);
    mixed.push_back(pod("127.0.2.9"));
    w.publish(1, mixed);
    CHECK_FALSE(w.impl->using_draining);
    const auto counts = w.count(10);
    CHECK(counts.size() == 1);
    CHECK(counts.at("127.0.2.9") == 10);
    CHECK(w.picker().get() == w.impl->services[1].picker.get());  // one group: published as it is
  }

  TEST_CASE("a service weight of 0 keeps its Pods out; other policies and zone-aware routing keep the flat Picker") {
    World w({0, 1});
    w.publish(0, pods(0, 2));
    w.publish(1, pods(1, 2));
    const auto counts = w.count(10);
    CHECK(counts.size() == 2);
    CHECK(counts.count("127.0.1.1") == 0);
    CHECK(w.picker()->size() == 2);

    UpstreamOptions zoned;
    zoned.locality.enabled = true;
    zoned.locality.zone = "z1";
    World z({1, 1}, zoned);
    z.publish(0, pods(0, 2));
    z.publish(1, pods(1, 2));
    CHECK(dynamic_cast<const detail::GroupedWrrPicker*>(z.picker().get()) == nullptr);
    CHECK(z.picker()->size() == 4);
  }
}

}  // namespace kupstream
