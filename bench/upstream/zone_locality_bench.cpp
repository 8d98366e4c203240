// Zone-aware routing: what it costs, side by side with the same Upstream without it.
//
//   build/release/bench/upstream/kupstream_bench_zone_locality
//
// Three Upstreams over the same Pods (one service, three zones), built alike except for
// UpstreamOptions::locality: off (the reference); on, in the local mode (the zones are even,
// the local one keeps its traffic); on, in the spill mode (the local zone holds a tenth of the
// Pods, so its Picker carries the proportional spill weights, a longer WRR cycle).
// BM_ZonePick: ns per Picker::pick() on each, measured alternately in the same loop, and the
// ratios zoned / off (the target: 1.0 within noise, since the zone plan is made at rebuild).
// Spill weights are unequal, so a policy with a fast path for equal weights (random) is also
// compared with an Upstream without locality whose weights are unequal too (two services
// weighted 1 and 3): spill_vs_unequal. Times are this thread's CPU time.
// BM_ZoneRebuild: on_snapshot (one Pod flips between ready and draining) with 20,000 Pods,
// locality off vs on (spill), alternately; the ratio is what the zone plan adds to a rebuild.
// Addresses are 127.x.y.z literals; nothing connects anywhere.
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <uv.h>

#include <chrono>
#include <ctime>
#include <memory>
#include <vector>

#include "upstream/upstream_impl.h"

namespace {

using namespace kupstream;
// This thread's CPU time: the machine is shared, and wall time would count other processes' turns.
struct Clock {
  using duration = std::chrono::nanoseconds;
  static std::chrono::nanoseconds now() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return std::chrono::seconds{ts.tv_sec} + std::chrono::nanoseconds{ts.tv_nsec};
  }
};

// off_unequal: locality off, two services weighted 1 and 3 (unequal weights, as spill has).
enum class Variant { off, off_unequal, local, spill };

struct ZoneWorld {
  uv_loop_t loop;
  std::shared_ptr<Upstream::Impl> impl;
  EndpointSetPtr sets[2];  // as listed, and with Pod 0 draining

  ZoneWorld(int pods, Variant variant, BalancerPolicy policy) {
    uv_loop_init(&loop);
    UpstreamConfig c;
    c.name = "zones";
    c.policy = policy;
    c.services = {ServiceRef{"a", "default", "web", PortRef::name("http"), 1, {}}};
    if (variant == Variant::off_unequal) c.services.push_back(ServiceRef{"a", "default", "api", PortRef::name("http"), 3, {}});
    UpstreamOptions o;
    o.seed = 1;
    if (variant != Variant::off) {
      o.locality.enabled = true;
      o.locality.zone = "zone-a";
    }
    impl = Upstream::Impl::unwatched(loop, c, o);
    std::vector<Endpoint> eps;
    // spill: zone-a holds 1 Pod in 10 (keeps 30% of its third of the traffic); else even thirds.
    for (int j = 0; j < pods; ++j) {
      Endpoint e;
      e.address = fmt::format("127.{}.{}.{}", 1 + j / 62500, (j / 250) % 250, j % 250 + 1);
      e.port = 8080;
      const int bucket = variant == Variant::spill ? (j % 10 == 0 ? 0 : 1 + j % 2) : j % 3;
      e.zone = fmt::format("zone-{}", static_cast<char>('a' + bucket));
      eps.push_back(std::move(e));
    }
    if (variant == Variant::off_unequal) {  // the second half of the Pods in service "api"
      std::vector<Endpoint> api(eps.begin() + pods / 2, eps.end());
      eps.resize(static_cast<std::size_t>(pods / 2));
      impl->on_snapshot(1, EndpointSet::make(1, "", api));
    }
    sets[0] = EndpointSet::make(1, "", eps);
    eps[0].conditions.ready = false;
    eps[0].conditions.terminating = true;
    sets[1] = EndpointSet::make(2, "", eps);
    impl->on_snapshot(0, sets[0]);
  }
  ~ZoneWorld() {
    impl->shutdown();
    impl.reset();
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
  }
  PickerPtr picker() const { return impl->current_picker(); }
};

void BM_ZonePick(benchmark::State& state) {
  const auto policy = static_cast<BalancerPolicy>(state.range(0));
  const int pods = static_cast<int>(state.range(1));
  ZoneWorld off(pods, Variant::off, policy), unequal(pods, Variant::off_unequal, policy), local(pods, Variant::local, policy),
      spill(pods, Variant::spill, policy);
  if (local.impl->zone_plan.mode != LocalityMode::local || spill.impl->zone_plan.mode != LocalityMode::spill) {
    state.SkipWithError("the zoned Upstreams are not in the local / spill modes");
    return;
  }
  const PickerPtr pickers[4] = {off.picker(), local.picker(), spill.picker(), unequal.picker()};
  constexpr int kBatch = 1 << 14;
  Clock::duration spent[4]{};
  std::uint64_t hash = 0;
  for (auto _ : state) {
    for (int v = 0; v < 4; ++v) {
      const Picker& p = *pickers[v];
      const auto t0 = Clock::now();
      for (int i = 0; i < kBatch; ++i) benchmark::DoNotOptimize(p.pick(++hash).endpoint);
      spent[v] += Clock::now() - t0;
    }
  }
  const double picks = static_cast<double>(state.iterations()) * kBatch;
  auto ns = [&](int v) { return std::chrono::duration<double, std::nano>(spent[v]).count() / picks; };
  state.counters["off_ns"] = ns(0);
  state.counters["local_ns"] = ns(1);
  state.counters["spill_ns"] = ns(2);
  state.counters["local_ratio"] = ns(1) / ns(0);
  state.counters["spill_ratio"] = ns(2) / ns(0);
  state.counters["unequal_ns"] = ns(3);
  state.counters["spill_vs_unequal"] = ns(2) / ns(3);
  state.counters["spill_local_share"] = spill.impl->zone_plan.local_share;
  state.SetLabel(fmt::format("{}, {} Pods", to_string(policy), pods));
}
BENCHMARK(BM_ZonePick)
    ->Args({static_cast<int>(BalancerPolicy::weighted_round_robin), 300})
    ->Args({static_cast<int>(BalancerPolicy::weighted_round_robin), 20000})
    ->Args({static_cast<int>(BalancerPolicy::least_request), 20000})
    ->Args({static_cast<int>(BalancerPolicy::random), 20000})
    ->Unit(benchmark::kMillisecond);

void BM_ZoneRebuild(benchmark::State& state) {
  constexpr int kPods = 20000;
  ZoneWorld off(kPods, Variant::off, BalancerPolicy::weighted_round_robin);
  ZoneWorld spill(kPods, Variant::spill, BalancerPolicy::weighted_round_robin);
  Clock::duration spent[2]{};
  std::size_t n = 0;
  for (auto _ : state) {
    ZoneWorld* worlds[2] = {&off, &spill};
    for (int v = 0; v < 2; ++v) {
      const auto t0 = Clock::now();
      worlds[v]->impl->on_snapshot(0, worlds[v]->sets[(n + 1) % 2]);
      spent[v] += Clock::now() - t0;
      benchmark::DoNotOptimize(worlds[v]->impl->current_picker().get());
    }
    ++n;
  }
  auto ms = [&](int v) { return std::chrono::duration<double, std::milli>(spent[v]).count() / static_cast<double>(n); };
  state.counters["off_ms"] = ms(0);
  state.counters["spill_ms"] = ms(1);
  state.counters["ratio"] = ms(1) / ms(0);
}
BENCHMARK(BM_ZoneRebuild)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
