// Pick cost on worker threads while the control loop publishes new Pickers (issue 12's target:
// within 10% of the same readers without publishing). An Upstream of 20 services × 3,000 Pods
// (60,000 endpoints, weighted round robin) on a control loop; two reader threads, each with
// its own loop and UpstreamWorker, call UpstreamWorker::pick() in a tight loop and read the
// picked Endpoint's port (a pick is used to reach its Pod: the cost includes that read).
//
//   build/release/bench/upstream/kupstream_bench_upstream --benchmark_filter=WorkerPick
//
// Each iteration runs three phases of at least 500 ms (and 2^20 picks per reader) side by side:
//   quiet       readers pick, the control loop publishes nothing;
//   publishing  readers pick, the control loop publishes a new snapshot every 10 ms (one
//               service's Pod flips between ready and draining: with the two-level Picker,
//               a rebuild of that service's 3,000 endpoints; a whole 60,000 before);
//   shared_ptr  as publishing, but readers load the atomic shared_ptr on every pick (the way
//               Upstream::pick() worked before: the reference that shows why it changed).
// Counters: ns per pick (reader thread CPU time / picks, mean of both readers) per phase, the
// ratios publishing/quiet and shared_ptr/quiet, and the snapshots actually published per second
// in each publishing phase, and with no reader at all (publisher alone: at most 100, less when
// one publish takes longer than 10 ms).
// Addresses are 127.x.y.z literals; nothing connects anywhere.
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <time.h>
#include <uv.h>

#include <algorithm>
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
constexpr std::uint64_t kMinPicks = 1u << 20;  // per reader and phase, however loaded the machine

std::int64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

enum class Mode { quiet, publishing, shared_ptr_per_pick, publisher_alone };

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
    impl = Upstream::Impl::unwatched(loop, c, o);
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

  // Runs the control loop, publishing one changed snapshot every 10 ms when asked, until `ms`
  // have passed (then sets time_up) and both readers are done. The ticks keep to a fixed 10 ms
  // grid (a one-shot timer re-armed for the next grid point): a repeating uv timer restarts
  // from the time its callback ran, so its lateness (up to a millisecond a tick) would add up
  // and cap the rate near 90 per second however fast the publish is.
  struct Tick {
    Control* self;
    bool publish;
    std::atomic<bool>* time_up;
    const std::atomic<int>* done;
    int readers;
    std::chrono::steady_clock::time_point end;
    std::chrono::steady_clock::time_point due;
    std::uint64_t n = 0;
  };
  static void on_tick(uv_timer_t* t) {
    auto* k = static_cast<Tick*>(t->data);
    if (k->publish) {
      const std::size_t service = k->n % kServices;
      k->self->impl->on_snapshot(service, k->self->sets[(k->n / kServices + 1) % 2][service]);
      ++k->n;
      ++k->self->published;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= k->end) *k->time_up = true;
    if (k->done->load() == k->readers && *k->time_up) return uv_stop(t->loop);
    k->due += std::chrono::milliseconds(10);
    const auto wait = std::chrono::ceil<std::chrono::milliseconds>(k->due - now).count();
    uv_update_time(t->loop);
    uv_timer_start(t, on_tick, static_cast<std::uint64_t>(std::max<long long>(wait, 0)), 0);
  }
  void run(int ms, bool publish, std::atomic<bool>& time_up, const std::atomic<int>& done, int readers) {
    const auto now = std::chrono::steady_clock::now();
    Tick tick{this, publish, &time_up, &done, readers, now + std::chrono::milliseconds(ms), now + std::chrono::milliseconds(10)};
    uv_timer_t every;
    uv_timer_init(&loop, &every);
    every.data = &tick;
    uv_update_time(&loop);
    uv_timer_start(&every, on_tick, 10, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
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
  std::atomic<int> ready{0}, done{0};
  std::atomic<bool> go{false}, time_up{false};
  ReaderResult results[2];
  std::vector<std::thread> readers;
  const int n_readers = mode == Mode::publisher_alone ? 0 : 2;
  for (int t = 0; t < n_readers; ++t) {
    readers.emplace_back([&, t] {
      uv_loop_t loop;
      uv_loop_init(&loop);
      auto worker = control.upstream->worker(loop);
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      std::uint64_t n = 0, sink = 0;
      const std::int64_t start = thread_cpu_ns();
      if (mode == Mode::shared_ptr_per_pick) {
        while (!time_up.load(std::memory_order_relaxed) || n < kMinPicks) {
          for (int i = 0; i < 256; ++i) sink += control.impl->publication->load()->picker->pick(n + i).endpoint->port;
          n += 256;
        }
      } else {
        UpstreamWorker& w = **worker;
        while (!time_up.load(std::memory_order_relaxed) || n < kMinPicks) {
          for (int i = 0; i < 256; ++i) sink += w.pick(n + i).endpoint->port;
          n += 256;
        }
      }
      results[t] = {n, thread_cpu_ns() - start};
      done.fetch_add(1);
      benchmark::DoNotOptimize(sink);
      worker->reset();
      uv_run(&loop, UV_RUN_DEFAULT);
      uv_loop_close(&loop);
    });
  }
  while (ready.load() < n_readers) std::this_thread::yield();
  go = true;
  const std::uint64_t published_before = control.published;
  const auto started = std::chrono::steady_clock::now();
  control.run(kPhaseMs, mode != Mode::quiet, time_up, done, n_readers);
  const double elapsed_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  for (auto& r : readers) r.join();
  double ns = 0;
  for (int t = 0; t < n_readers; ++t) ns += static_cast<double>(results[t].cpu_ns) / static_cast<double>(results[t].picks) / n_readers;
  const double per_second = static_cast<double>(control.published - published_before) * 1000.0 / elapsed_ms;
  return {ns, per_second};
}

void BM_WorkerPickWhilePublishing(benchmark::State& state) {
  Control control;
  double quiet = 0, publishing = 0, shared = 0, rate = 0, shared_rate = 0, alone_rate = 0;
  int rounds = 0;
  for (auto _ : state) {
    quiet += phase(control, Mode::quiet).first;
    auto [p, r] = phase(control, Mode::publishing);
    publishing += p;
    rate += r;
    auto [s, sr] = phase(control, Mode::shared_ptr_per_pick);
    shared += s;
    shared_rate += sr;
    alone_rate += phase(control, Mode::publisher_alone).second;
    ++rounds;
  }
  state.counters["endpoints"] = static_cast<double>(control.impl->current_picker()->size());
  state.counters["quiet_ns"] = quiet / rounds;
  state.counters["publishing_ns"] = publishing / rounds;
  state.counters["ratio"] = publishing / quiet;
  state.counters["publishes_per_s"] = rate / rounds;
  state.counters["shared_ptr_ns"] = shared / rounds;
  state.counters["shared_ptr_ratio"] = shared / quiet;
  state.counters["shared_ptr_publishes_per_s"] = shared_rate / rounds;
  state.counters["alone_publishes_per_s"] = alone_rate / rounds;
}
BENCHMARK(BM_WorkerPickWhilePublishing)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();

}  // namespace
}  // namespace kupstream
