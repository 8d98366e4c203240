// Picker rebuild on a snapshot change: an Upstream of 20 services × 1,000 Pods, where one
// service's snapshot changes (one Pod flips between ready and draining) per iteration.
//
//   build/release/bench/upstream/kupstream_bench_upstream
//
// BM_UpstreamSnapshotChange: Upstream::Impl::on_snapshot (merge the service's Pods, recompute
// weights, health and panic, build and publish the Picker) for one changed service.
// BM_BalancerBuildOnly: the reference, Balancer::build over the same 20,000 weighted endpoints
// (the part of a rebuild that a Balancer user pays anyway).
// BM_SnapshotChangeVsBuild times both alternately and reports ratio = rebuild time / build time.
// BM_PrometheusScrape60k: the size of one scrape at 60,000 endpoints (see below).
// Addresses are 127.x.y.z literals; nothing connects anywhere.
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <uv.h>

#include <chrono>
#include <memory>
#include <vector>

#include "upstream/upstream_impl.h"

namespace {

using namespace kupstream;

constexpr int kServices = 20;
constexpr int kPods = 1000;

std::vector<Endpoint> pods_of(int service) {
  std::vector<Endpoint> out;
  for (int j = 0; j < kPods; ++j) {
    Endpoint e;
    e.address = fmt::format("127.{}.{}.{}", service + 1, j / 250, j % 250 + 1);
    e.port = 8080;
    e.pod_name = fmt::format("s{}-{}", service, j);
    out.push_back(std::move(e));
  }
  return out;
}

struct World {
  uv_loop_t loop;
  std::shared_ptr<Upstream::Impl> impl;
  std::vector<EndpointSetPtr> sets[2];  // per service: as listed, and with Pod 0 draining
  std::uint64_t generation = 1;

  World(WeightMode mode, BalancerPolicy policy, std::size_t pod_metrics_limit = UpstreamOptions{}.pod_metrics_limit) {
    uv_loop_init(&loop);
    UpstreamConfig c;
    c.name = "bench";
    c.weight_mode = mode;
    c.policy = policy;
    for (int i = 0; i < kServices; ++i) {
      ServiceRef r;
      r.cluster = i % 2 ? "b" : "a";
      r.namespace_name = "default";
      r.service = fmt::format("s{}", i);
      r.port = PortRef::name("http");
      r.weight = static_cast<std::uint32_t>(1 + i % 4);
      c.services.push_back(r);
    }
    UpstreamOptions o;
    o.seed = 1;
    o.pod_metrics_limit = pod_metrics_limit;
    impl = Upstream::Impl::unwatched(loop, c, o);
    for (int i = 0; i < kServices; ++i) {
      auto eps = pods_of(i);
      sets[0].push_back(EndpointSet::make(generation++, "", eps));
      eps[0].conditions.ready = false;
      eps[0].conditions.terminating = true;
      sets[1].push_back(EndpointSet::make(generation++, "", eps));
      impl->on_snapshot(static_cast<std::size_t>(i), sets[0].back());
    }
  }
  ~World() {
    impl->shutdown();
    impl.reset();
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
  }
  std::vector<WeightedEndpoint> weighted() const {
    return impl->current_picker()->endpoints();
  }
};

void BM_UpstreamSnapshotChange(benchmark::State& state) {
  World w(state.range(0) ? WeightMode::per_service : WeightMode::per_pod, BalancerPolicy::weighted_round_robin);
  std::size_t n = 0;
  for (auto _ : state) {
    const std::size_t service = n % kServices;
    w.impl->on_snapshot(service, w.sets[(n / kServices + 1) % 2][service]);
    ++n;
    benchmark::DoNotOptimize(w.impl->current_picker().get());
  }
  state.counters["pods"] = static_cast<double>(w.impl->pod_count());
}
BENCHMARK(BM_UpstreamSnapshotChange)->Arg(0)->Arg(1)->ArgName("per_service")->Unit(benchmark::kMillisecond);

void BM_BalancerBuildOnly(benchmark::State& state) {
  World w(WeightMode::per_pod, BalancerPolicy::weighted_round_robin);
  const auto list = w.weighted();
  for (auto _ : state) benchmark::DoNotOptimize(w.impl->balancer.build(list).get());
  state.counters["endpoints"] = static_cast<double>(list.size());
}
BENCHMARK(BM_BalancerBuildOnly)->Unit(benchmark::kMillisecond);

void BM_SnapshotChangeVsBuild(benchmark::State& state) {
  const auto policy = static_cast<BalancerPolicy>(state.range(0));
  World w(WeightMode::per_pod, policy);
  const auto list = w.weighted();
  using Clock = std::chrono::steady_clock;
  Clock::duration rebuild{}, build{};
  std::size_t n = 0;
  for (auto _ : state) {
    const std::size_t service = n % kServices;
    auto t0 = Clock::now();
    w.impl->on_snapshot(service, w.sets[(n / kServices + 1) % 2][service]);
    auto t1 = Clock::now();
    benchmark::DoNotOptimize(w.impl->balancer.build(list).get());
    auto t2 = Clock::now();
    rebuild += t1 - t0;
    build += t2 - t1;
    ++n;
  }
  const double r = std::chrono::duration<double, std::milli>(rebuild).count() / static_cast<double>(n);
  const double b = std::chrono::duration<double, std::milli>(build).count() / static_cast<double>(n);
  state.counters["rebuild_ms"] = r;
  state.counters["build_ms"] = b;
  state.counters["ratio"] = r / b;
  state.SetLabel(to_string(policy));
}
BENCHMARK(BM_SnapshotChangeVsBuild)
    ->Arg(static_cast<int>(BalancerPolicy::weighted_round_robin))
    ->Arg(static_cast<int>(BalancerPolicy::least_request))
    ->Arg(static_cast<int>(BalancerPolicy::consistent_hash))
    ->Unit(benchmark::kMillisecond);

// One /metrics scrape of a gateway holding 60,000 endpoints: three such upstreams (60 services
// of 1,000 Pods), rendered by prometheus_text() with the default per-Pod series limit and, as
// the reference in the same run, with a series set for every Pod (the behaviour before the
// limit). Counters: bytes and series of one scrape, and the ratio default / every-Pod.
void BM_PrometheusScrape60k(benchmark::State& state) {
  auto render = [](std::vector<std::unique_ptr<World>>& worlds) {
    std::size_t bytes = 0, series = 0;
    for (auto& w : worlds) {
      const std::string text = w->impl->prometheus_text();
      bytes += text.size();
      for (std::size_t line = 0; line < text.size(); line = text.find('\n', line) + 1) series += text[line] != '#';
    }
    return std::pair{bytes, series};
  };
  std::vector<std::unique_ptr<World>> capped, every_pod;
  for (int i = 0; i < 3; ++i) {
    capped.push_back(std::make_unique<World>(WeightMode::per_pod, BalancerPolicy::weighted_round_robin));
    every_pod.push_back(
        std::make_unique<World>(WeightMode::per_pod, BalancerPolicy::weighted_round_robin, SIZE_MAX));
  }
  std::pair<std::size_t, std::size_t> c{}, e{};
  for (auto _ : state) c = render(capped);
  e = render(every_pod);
  state.counters["endpoints"] = static_cast<double>(3 * kServices * kPods);
  state.counters["bytes"] = static_cast<double>(c.first);
  state.counters["series"] = static_cast<double>(c.second);
  state.counters["bytes_every_pod"] = static_cast<double>(e.first);
  state.counters["series_every_pod"] = static_cast<double>(e.second);
  state.counters["ratio"] = static_cast<double>(c.first) / static_cast<double>(e.first);
}
BENCHMARK(BM_PrometheusScrape60k)->Unit(benchmark::kMillisecond)->Iterations(5);

}  // namespace

BENCHMARK_MAIN();
