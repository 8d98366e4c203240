// Pick cost on worker threads while the control loop publishes new Pickers (issue 12's target:
// within 10% of the same readers without publishing). An Upstream of 20 services × 3,000 Pods
// (60,000 endpoints, weighted round robin) on a control loop; two reader threads, each with
// its own loop and UpstreamWorker, call UpstreamWorker::pick() in a tight loop.
//
//   build/release/bench/upstream/kupstream_bench_upstream --benchmark_filter=WorkerPick
//
// Each iteration runs three phases of `phase_ms` side by side in one run:
//   quiet       readers pick, the control loop publishes nothing;
//   publishing  readers pick, the control loop publishes a new snapshot every 10 ms (one
//               service's Pod flips between ready and draining: a whole 60,000-endpoint rebuild);
//   shared_ptr  as publishing, but readers load the atomic shared_ptr on every pick (the way
//               Upstream::pick() worked before: the reference that shows why it changed).
// Counters: ns per pick (reader thread CPU time / picks, mean of both readers) per phase, the
// ratios publishing/quiet and shared_ptr/quiet, and the snapshots actually published per second
// in each publishing phase (100 if the publisher never waits for the readers).
// Addresses are 127.x.y.z literals; nothing connects anywhere.
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <time.h>
#include <uv.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "kupstream/upstream_worker.h"
#include "upstream/upstream_impl.h"

namespace kupstream {

// The Upstream handle over an Impl whose snapshots the benchmark publishes itself (no cluster).
struct UpstreamTestPeer {
  static std::unique_ptr<Upstream> wrap(std::shared_ptr<Upstream::Impl> impl) {
    return std::unique_ptr<Upstream>(new Upstream(std::move(impl)));
  }
};

namespace {

constexpr int kServices = 20;
constexpr int kPods = 3000;
constexpr int kPhaseMs = 500;

std::int64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

enum class Mode { quiet, publishing, shared_ptr_per_pick };

struct Control {
  uv_loop_t loop;
  std::shared_ptr<Upstream::Impl> impl;
  std::unique_ptr<Upstream> upstream;
  std::vector<EndpointSetPtr> sets[2];  // per service: as listed, and with Pod 0 draining
  std::uint64_t published = 0;

  Control() {
    uv_loop_init(&loop);
    UpstreamConfig c;
    c.name = "bench";
    for (int i = 0; i < kServices; ++i)
      c.services.push_back(ServiceRef{i % 2 ? "b" : "a", "default", fmt::format("s{}", i), PortRef::name("http"), 1, {}});
    UpstreamOptions o;
    o.seed = 1;
    impl = std::make_shared<Upstream::Impl>(loop, c, o);
    for (int i = 0; i < kServices; ++i) {
      Upstream::Impl::Service s;
      s.ref = c.services[static_cast<std::size_t>(i)];
      impl->services.push_back(std::move(s));
    }
    std::uint64_t generation = 1;
    for (int i = 0; i < kServices; ++i) {
      std::vector<Endpoint> eps;
      for (int j = 0; j < kPods; ++j) {
        Endpoint e;
        e.address = fmt::format("127.{}.{}.{}", i + 1, j / 250, j % 250 + 1);
        e.port = 8080;
        eps.push_back(std::move(e));
      }
      sets[0].push_back(EndpointSet::make(generation++, "", eps));
      eps[0].conditions.ready = false;
      eps[0].conditions.terminating = true;
      sets[1].push_back(EndpointSet::make(generation++, "", eps));
      impl->on_snapshot(static_cast<std::size_t>(i), sets[0].back());
    }
    upstream = UpstreamTestPeer::wrap(impl);
  }
  ~Control() {
    upstream.reset();
    impl.reset();
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
  }

  // Runs the control loop for `ms`, publishing one changed snapshot every 10 ms when asked.
  void run(int ms, bool publish) {
    struct Tick {
      Control* self;
      std::uint64_t n = 0;
    } tick{this};
    uv_timer_t stop, every;
    uv_timer_init(&loop, &stop);
    uv_timer_init(&loop, &every);
    every.data = &tick;
    uv_timer_start(&stop, [](uv_timer_t* t) { uv_stop(t->loop); }, static_cast<std::uint64_t>(ms), 0);
    if (publish) {
      uv_timer_start(&every, [](uv_timer_t* t) {
        auto* k = static_cast<Tick*>(t->data);
        const std::size_t service = k->n % kServices;
        k->self->impl->on_snapshot(service, k->self->sets[(k->n / kServices + 1) % 2][service]);
        ++k->n;
        ++k->self->published;
      }, 10, 10);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close(reinterpret_cast<uv_handle_t*>(&stop), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&every), nullptr);
    uv_run(&loop, UV_RUN_NOWAIT);
  }
};

struct ReaderResult {
  std::uint64_t picks = 0;
  std::int64_t cpu_ns = 0;
};

// Two readers for one phase: ns per pick (mean of both), and publishes per second.
std::pair<double, double> phase(Control& control, Mode mode) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false}, stop{false};
  ReaderResult results[2];
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&, t] {
      uv_loop_t loop;
      uv_loop_init(&loop);
      auto worker = control.upstream->worker(loop);
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      std::uint64_t n = 0, sink = 0;
      const std::int64_t start = thread_cpu_ns();
      if (mode == Mode::shared_ptr_per_pick) {
        while (!stop.load(std::memory_order_relaxed)) {
          for (int i = 0; i < 256; ++i) sink += control.impl->publication->load()->picker->pick(n + i).index;
          n += 256;
        }
      } else {
        UpstreamWorker& w = **worker;
        while (!stop.load(std::memory_order_relaxed)) {
          for (int i = 0; i < 256; ++i) sink += w.pick(n + i).index;
          n += 256;
        }
      }
      results[t] = {n, thread_cpu_ns() - start};
      benchmark::DoNotOptimize(sink);
      worker->reset();
      uv_run(&loop, UV_RUN_DEFAULT);
      uv_loop_close(&loop);
    });
  }
  while (ready.load() < 2) std::this_thread::yield();
  go = true;
  const std::uint64_t published_before = control.published;
  control.run(kPhaseMs, mode != Mode::quiet);
  stop = true;
  for (auto& r : readers) r.join();
  double ns = 0;
  for (const auto& r : results) ns += static_cast<double>(r.cpu_ns) / static_cast<double>(r.picks) / 2;
  const double per_second = static_cast<double>(control.published - published_before) * 1000.0 / kPhaseMs;
  return {ns, per_second};
}

void BM_WorkerPickWhilePublishing(benchmark::State& state) {
  Control control;
  double quiet = 0, publishing = 0, shared = 0, rate = 0, shared_rate = 0;
  int rounds = 0;
  for (auto _ : state) {
    quiet += phase(control, Mode::quiet).first;
    auto [p, r] = phase(control, Mode::publishing);
    publishing += p;
    rate += r;
    auto [s, sr] = phase(control, Mode::shared_ptr_per_pick);
    shared += s;
    shared_rate += sr;
    ++rounds;
  }
  state.counters["endpoints"] = static_cast<double>(control.impl->current_picker()->endpoints().size());
  state.counters["quiet_ns"] = quiet / rounds;
  state.counters["publishing_ns"] = publishing / rounds;
  state.counters["ratio"] = publishing / quiet;
  state.counters["publishes_per_s"] = rate / rounds;
  state.counters["shared_ptr_ns"] = shared / rounds;
  state.counters["shared_ptr_ratio"] = shared / quiet;
  state.counters["shared_ptr_publishes_per_s"] = shared_rate / rounds;
}
BENCHMARK(BM_WorkerPickWhilePublishing)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();

}  // namespace
}  // namespace kupstream
