// Upstream::pick() and picker() from several threads while the loop thread publishes new
// Pickers as fast as endpoints can churn. Run under ThreadSanitizer by the tsan preset, where a
// race between the publication (an atomic shared_ptr swap) and the readers would be reported;
// in every other build it checks that readers only ever see whole, consistent Pickers.
#include <doctest/doctest.h>
#include <uv.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "kupstream/upstream.h"
#include "upstream/upstream_impl.h"

namespace kupstream {

// The Upstream handle over an Impl whose snapshots the test publishes itself (no cluster).
struct UpstreamTestPeer {
  static std::unique_ptr<Upstream> wrap(std::shared_ptr<Upstream::Impl> impl) {
    return std::unique_ptr<Upstream>(new Upstream(std::move(impl)));
  }
};

namespace {

// Generation g: 2 to 9 Pods out of 127.0.1.1-40, shifting by one each time.
EndpointSetPtr snapshot(std::uint64_t g) {
  std::vector<Endpoint> pods;
  const std::size_t n = 2 + g % 8;
  for (std::size_t i = 0; i < n; ++i) {
    Endpoint e;
    e.address = "127.0.1." + std::to_string(1 + (g + i) % 40);
    e.port = 8080;
    e.pod_name = "web-" + std::to_string((g + i) % 40);
    pods.push_back(std::move(e));
  }
  return EndpointSet::make(g, std::to_string(g), std::move(pods));
}

// Per policy: 300 snapshots, one per millisecond, or 3 s (a loaded machine, TSan), whichever comes first.
constexpr std::uint64_t kSnapshots = 300;

struct Churn {
  std::shared_ptr<Upstream::Impl> impl;
  std::uint64_t snapshots;
  std::uint64_t generation = 0;
  std::chrono::steady_clock::time_point end;
  uv_timer_t timer;
};

bool valid(const PickResult& r, const Picker& picker) {
  return r.index < picker.endpoints().size() && picker.endpoints()[r.index].endpoint.get() == r.endpoint &&
         picker.at(r.index) == r &&
         r.endpoint->address.rfind("127.0.1.", 0) == 0 && r.endpoint->port == 8080 && r.weight > 0;
}

}  // namespace

TEST_SUITE("Upstream") {
  TEST_CASE("four threads pick() and picker() while the loop publishes a new snapshot every millisecond") {
    // The first round is a warm-up whose count is not checked: under TSan it includes the
    // one-time symbolization of the suppressed libstdc++ report (tests/tsan.supp), seconds long.
    bool warm_up = true;
    for (auto policy : {BalancerPolicy::weighted_round_robin, BalancerPolicy::weighted_round_robin,
                        BalancerPolicy::least_request, BalancerPolicy::consistent_hash, BalancerPolicy::random}) {
      const std::string name = std::string(warm_up ? "warm-up, " : "") + to_string(policy);
      CAPTURE(name);
      uv_loop_t loop;
      REQUIRE(uv_loop_init(&loop) == 0);
      UpstreamConfig config;
      config.name = "churn";
      config.policy = policy;
      config.services = {ServiceRef{"tke-a", "default", "web", PortRef::name("http"), 1, {}}};
      auto impl = std::make_shared<Upstream::Impl>(loop, config, UpstreamOptions{});
      Upstream::Impl::Service service;
      service.ref = config.services[0];
      impl->services.push_back(std::move(service));
      auto upstream = UpstreamTestPeer::wrap(impl);
      impl->on_snapshot(0, snapshot(0));

      std::atomic<bool> stop{false};
      std::atomic<int> bad{0};
      std::vector<std::uint64_t> picks(4, 0);
      std::vector<std::thread> readers;
      for (int t = 0; t < 4; ++t) {
        readers.emplace_back([&, t] {
          std::uint64_t n = 0, hash = static_cast<std::uint64_t>(t) << 32;
          while (!stop.load(std::memory_order_relaxed)) {
            // pick(): the Picker of the moment, held by this thread until its next pick().
            const PickResult a = upstream->pick(++hash);
            if (!a || a.endpoint->address.rfind("127.0.1.", 0) != 0) bad.fetch_add(1);
            // picker(): a Picker kept alive by the caller, consistent across calls.
            const PickerPtr p = upstream->picker();
            const PickResult b = p->pick(hash);
            if (!b || !valid(b, *p)) bad.fetch_add(1);
            if (policy == BalancerPolicy::least_request) {
              b.load->start();
              b.load->finish();
            }
            n += 2;
            // Leave the loop thread a core now and then: with more spinning readers than cores
            // it would otherwise wait whole scheduler slices for each timer tick (and, under
            // TSan, for a preempted reader to release the shared_ptr's internal spin lock).
            if (n % 8 == 0) std::this_thread::sleep_for(std::chrono::microseconds(20));
          }
          picks[static_cast<std::size_t>(t)] = n;
        });
      }

      Churn churn{impl, warm_up ? 20 : kSnapshots, 0,
                  std::chrono::steady_clock::now() + std::chrono::milliseconds(warm_up ? 30'000 : 3000), {}};
      uv_timer_init(&loop, &churn.timer);
      churn.timer.data = &churn;
      uv_timer_start(&churn.timer, [](uv_timer_t* t) {
        auto* c = static_cast<Churn*>(t->data);
        c->impl->on_snapshot(0, snapshot(++c->generation));
        if (c->generation >= c->snapshots || std::chrono::steady_clock::now() >= c->end) uv_timer_stop(t);
      }, 1, 1);
      uv_run(&loop, UV_RUN_DEFAULT);
      stop = true;
      for (auto& r : readers) r.join();

      CHECK(bad.load() == 0);
      // Bounded time, not a rate target: a loaded machine publishes fewer.
      if (!warm_up) CHECK(churn.generation >= 20);
      for (auto n : picks) CHECK(n > 0);
      MESSAGE(name, ": ", churn.generation, " snapshots published, ",
              picks[0] + picks[1] + picks[2] + picks[3], " picks");

      uv_close(reinterpret_cast<uv_handle_t*>(&churn.timer), nullptr);
      upstream.reset();
      impl.reset();
      uv_run(&loop, UV_RUN_DEFAULT);
      CHECK(uv_loop_close(&loop) == 0);
      warm_up = false;
    }
  }
}

}  // namespace kupstream
