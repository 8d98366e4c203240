// Discovery benchmarks (docs/discovery.md, "Performance").
//
//  BM_EventToSnapshot      one MODIFIED EndpointSlice event (100 endpoints, one endpoint's
//                          readiness flips) of a 1,000-endpoint service (10 slices): the bytes go
//                          through the reflector's path (LineSplitter, Decoder::decode_event),
//                          the watcher's slice store, SnapshotBuilder::build (re-merge of that
//                          slice, kept order, pointer lists sharing the other slices' endpoints,
//                          no-op check) and the publish (pointer swap + subscriber call).
//  BM_RawSimdjsonParse     reference in the same run: simdjson DOM parse of the same bytes.
//  BM_EndpointSetMemory    bytes allocated per endpoint: an EndpointSet made whole, the stored
//                          slices (and decoded ones), the SnapshotBuilder's store, one more
//                          snapshot sharing it.
//  BM_FullSync20x1000      20 services × 1,000 endpoints: decode each service's LIST body and
//                          build its first snapshot.
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <simdjson.h>

#include <chrono>
#include <ctime>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <malloc.h>
#include <string>

#include "discovery/slice_merge.h"
#include "discovery/slice_store.h"
#include "kube/decoder.h"
#include "kube/line_splitter.h"

// Heap bytes in use (glibc): for the memory benchmark, without replacing operator new (which
// would slow every other benchmark down).
static long long heap_in_use() { return static_cast<long long>(mallinfo2().uordblks); }

namespace {

using namespace kupstream;

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

constexpr int kSlices = 10;
constexpr int kPerSlice = 100;

// One EndpointSlice as the API server sends it (fields and sizes as in the captures: targetRef
// with uid, nodeName, zone, conditions, managed metadata trimmed).
std::string slice_json(int service, int slice, int rv, int flipped = -1) {
  std::string eps;
  for (int i = 0; i < kPerSlice; ++i) {
    const int n = slice * kPerSlice + i;
    const bool ready = n != flipped;
    eps += fmt::format(
        R"({}{{"addresses":["10.{}.{}.{}"],"conditions":{{"ready":{},"serving":true,"terminating":false}},)"
        R"("nodeName":"node-{}","targetRef":{{"kind":"Pod","namespace":"prod","name":"svc{}-7d9f8c6b5-{:05d}",)"
        R"("uid":"6b1f2a3c-{:04x}-4e5f-8a9b-0c1d2e3f{:04x}"}},"zone":"zone-{}"}})",
        i ? "," : "", service, n / 250, n % 250 + 1, ready ? "true" : "false", n % 50, service, n, service, n,
        n % 3);
  }
  return fmt::format(
      R"({{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{{"name":"svc{}-{:05d}",)"
      R"("generateName":"svc{}-","namespace":"prod","uid":"1a2b3c4d-{:04x}-{:04x}-0000-000000000000",)"
      R"("resourceVersion":"{}","generation":3,"creationTimestamp":"2026-01-01T00:00:00Z",)"
      R"("labels":{{"endpointslice.kubernetes.io/managed-by":"endpointslice-controller.k8s.io",)"
      R"("kubernetes.io/service-name":"svc{}"}},"annotations":{{"endpoints.kubernetes.io/last-change-trigger-time":)"
      R"("2026-01-01T00:00:00Z"}}}},"addressType":"IPv4","endpoints":[{}],)"
      R"("ports":[{{"name":"http","protocol":"TCP","port":8080}}]}})",
      service, slice, service, service, slice, rv, service, eps);
}

std::string service_json(int service) {
  return fmt::format(
      R"({{"kind":"Service","apiVersion":"v1","metadata":{{"name":"svc{}","namespace":"prod","resourceVersion":"1"}},)"
      R"("spec":{{"ports":[{{"name":"http","protocol":"TCP","port":80,"targetPort":8080}}],"type":"ClusterIP"}}}})",
      service);
}

std::string list_json(int service) {
  std::string items;
  for (int s = 0; s < kSlices; ++s) items += (s ? "," : "") + slice_json(service, s, 100 + s);
  return fmt::format(R"({{"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1","metadata":{{"resourceVersion":"200"}},"items":[{}]}})",
                     items);
}

// The watcher's copy of one service: what ServiceCache holds.
struct ServiceCopy {
  detail::SliceStore slices;
  kube::Service service;
  EndpointSetPtr current;
  std::string rv;
};

kube::Service decode_service(kube::Decoder& d, int service) {
  auto ev = d.decode_event<kube::Service>(fmt::format(R"({{"type":"ADDED","object":{}}})", service_json(service)));
  if (!ev) std::abort();
  return std::move(ev->object);
}

void sync(ServiceCopy& copy, kube::Decoder& d, const std::string& list_body) {
  auto list = d.decode_list<kube::EndpointSlice>(list_body);
  if (!list) std::abort();
  copy.slices.replace(std::move(list->items));
  copy.rv = list->resource_version;
  detail::SliceMergeInput in;
  in.slices = &copy.slices;
  in.service = &copy.service;
  in.port = PortRef::parse("http");
  auto step = detail::build_snapshot(in, copy.current, copy.rv);
  copy.current = step.next;
}

void BM_EventToSnapshot(benchmark::State& state) {
  kube::Decoder decoder;
  ServiceCopy copy;
  copy.service = decode_service(decoder, 1);
  sync(copy, decoder, list_json(1));
  // Two events that flip endpoint 437 (slice 4) back and forth: every one is a real change.
  const std::string events[2] = {
      fmt::format(R"({{"type":"MODIFIED","object":{}}})", slice_json(1, 4, 300, 437)) + "\n",
      fmt::format(R"({{"type":"MODIFIED","object":{}}})", slice_json(1, 4, 301)) + "\n"};
  kube::LineSplitter lines;
  EndpointSetPtr published;
  std::uint64_t seen = 0;
  std::function<void(const EndpointSetPtr&)> subscriber = [&](const EndpointSetPtr& s) { seen += s->ready.size(); };
  detail::SliceMergeInput in;
  in.slices = &copy.slices;
  in.service = &copy.service;
  in.port = PortRef::parse("http");
  detail::SnapshotBuilder builder;  // the watcher's: keeps each slice's merged endpoints
  copy.current = builder.build(in, nullptr, copy.rv).next;
  std::size_t i = 0;
  for (auto _ : state) {
    // Manual time: this thread's CPU time (immune to preemption on a loaded machine) from the
    // event's bytes arriving to the subscriber having the snapshot; the previous snapshot is
    // released after that (as the watcher does), outside the measurement.
    const double t0 = thread_cpu_seconds();
    const std::string& bytes = events[i++ & 1];
    if (!lines.append(bytes)) std::abort();
    auto line = lines.next();
    auto ev = decoder.decode_event<kube::EndpointSlice>(*line);
    if (!ev) std::abort();
    copy.rv = ev->resource_version;
    copy.slices.put(ev->object);  // as the watcher: the decoded event is freed later
    auto step = builder.build(in, copy.current, copy.rv);
    if (!step.changed) std::abort();
    EndpointSetPtr previous = std::move(copy.current);
    copy.current = step.next;
    published = copy.current;  // the publish: a pointer swap...
    subscriber(published);     // ...and the subscriber's callback
    const double t1 = thread_cpu_seconds();
    previous.reset();  // (and `ev`, the decoded event, at the end of the iteration)
    state.SetIterationTime(t1 - t0);
  }
  benchmark::DoNotOptimize(seen);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * events[0].size()));
  state.counters["endpoints"] = static_cast<double>(copy.current->ready.size() + 1);
  state.counters["event_bytes"] = static_cast<double>(events[0].size());
}
BENCHMARK(BM_EventToSnapshot)->Unit(benchmark::kMicrosecond)->UseManualTime();

// Where the time of BM_EventToSnapshot goes: each stage alone.
void BM_Stage(benchmark::State& state) {
  kube::Decoder decoder;
  ServiceCopy copy;
  copy.service = decode_service(decoder, 1);
  sync(copy, decoder, list_json(1));
  const std::string event = fmt::format(R"({{"type":"MODIFIED","object":{}}})", slice_json(1, 4, 300, 437));
  detail::SliceMergeInput in;
  in.slices = &copy.slices;
  in.service = &copy.service;
  in.port = PortRef::parse("http");
  auto merged = detail::merge_slices(in);
  auto set = EndpointSet::make(1, "1", merged.endpoints);
  detail::SnapshotBuilder builder;
  const EndpointSetPtr built = builder.build(in, nullptr, "1").next;
  auto decoded = decoder.decode_event<kube::EndpointSlice>(event);
  if (!decoded) std::abort();
  for (auto _ : state) {
    switch (state.range(0)) {
      case 0: {
        auto ev = decoder.decode_event<kube::EndpointSlice>(event);
        benchmark::DoNotOptimize(ev);
        break;
      }
      case 1: {
        auto m = detail::merge_slices(in);
        benchmark::DoNotOptimize(m);
        break;
      }
      case 2: {
        auto copy_eps = merged.endpoints;
        benchmark::DoNotOptimize(copy_eps);
        break;
      }
      case 3: {
        auto s2 = EndpointSet::make(1, "1", merged.endpoints);
        benchmark::DoNotOptimize(s2);
        break;
      }
      case 4: {
        bool same = set->same_endpoints(*set);
        benchmark::DoNotOptimize(same);
        break;
      }
      case 5: {  // build_snapshot without memory: merge all + EndpointSet::make + compare
        auto st = detail::build_snapshot(in, set, "2");
        benchmark::DoNotOptimize(st);
        break;
      }
      case 6: {  // SnapshotBuilder with nothing to re-merge: order + pointer lists + compare
        auto st = builder.build(in, built, "2");
        benchmark::DoNotOptimize(st);
        break;
      }
      case 7: {  // the store's part of an event: one decoded slice of 100 into the compact form
        copy.slices.put(decoded->object);
        break;
      }
    }
  }
  static const char* names[] = {"decode_event", "merge_slices", "copy_1000_endpoints", "EndpointSet::make(+copy)",
                                "same_endpoints", "build_snapshot (no reuse)", "SnapshotBuilder, nothing re-merged (shared)",
                                "SliceStore::put (one slice of 100)"};
  state.SetLabel(names[state.range(0)]);
}
BENCHMARK(BM_Stage)->DenseRange(0, 7)->Unit(benchmark::kMicrosecond);

void BM_RawSimdjsonParse(benchmark::State& state) {
  const std::string event = fmt::format(R"({{"type":"MODIFIED","object":{}}})", slice_json(1, 4, 300, 437));
  simdjson::padded_string padded(event);
  simdjson::dom::parser parser;
  for (auto _ : state) {
    simdjson::dom::element doc;
    if (parser.parse(padded).get(doc)) std::abort();
    benchmark::DoNotOptimize(doc);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * event.size()));
}
BENCHMARK(BM_RawSimdjsonParse)->Unit(benchmark::kMicrosecond);

void BM_EndpointSetMemory(benchmark::State& state) {
  kube::Decoder decoder;
  ServiceCopy copy;
  copy.service = decode_service(decoder, 1);
  auto list = decoder.decode_list<kube::EndpointSlice>(list_json(1));
  copy.slices.replace(std::move(list->items));
  detail::SliceMergeInput in;
  in.slices = &copy.slices;
  in.service = &copy.service;
  in.port = PortRef::parse("http");
  double per_endpoint = 0, per_slice_endpoint = 0;
  for (auto _ : state) {
    const long long before = heap_in_use();
    auto set = EndpointSet::make(1, "200", detail::merge_slices(in).endpoints);
    const long long after = heap_in_use();
    per_endpoint = static_cast<double>(after - before) / static_cast<double>(set->ready.size());
    benchmark::DoNotOptimize(set);
  }
  // The watcher also keeps the slices (SliceStore, compact): their share per endpoint, measured
  // the same way once the decoded LIST is freed; and the decoded LIST itself, for reference.
  double decoded_per_endpoint = 0;
  {
    const std::string body = list_json(2);
    const long long before = heap_in_use();
    auto list2 = decoder.decode_list<kube::EndpointSlice>(body);
    decoded_per_endpoint = static_cast<double>(heap_in_use() - before) / (kSlices * kPerSlice);
    detail::SliceStore store;
    store.replace(std::move(list2->items));
    per_slice_endpoint = static_cast<double>(heap_in_use() - before) / (kSlices * kPerSlice);
  }
  // And the SnapshotBuilder: its per-slice merged endpoints and order (which its snapshots
  // share), and what one more snapshot of it costs on top (the pointer lists).
  double builder_per_endpoint = 0, shared_snapshot_per_endpoint = 0;
  {
    const long long before = heap_in_use();
    auto builder = std::make_unique<detail::SnapshotBuilder>();
    auto step = builder->build(in, nullptr, "200");
    const long long with_set = heap_in_use();
    auto again = builder->build(in, nullptr, "201");  // no current: a full new snapshot of the same slices
    const long long with_two = heap_in_use();
    shared_snapshot_per_endpoint = static_cast<double>(with_two - with_set) / (kSlices * kPerSlice);
    again.next.reset();
    step.next.reset();
    const long long after = heap_in_use();
    builder_per_endpoint = static_cast<double>(after - before) / (kSlices * kPerSlice);
  }
  state.counters["builder_bytes_per_endpoint"] = builder_per_endpoint;
  state.counters["shared_snapshot_bytes_per_endpoint"] = shared_snapshot_per_endpoint;
  state.counters["set_bytes_per_endpoint"] = per_endpoint;
  state.counters["slice_store_bytes_per_endpoint"] = per_slice_endpoint;
  state.counters["decoded_slice_bytes_per_endpoint"] = decoded_per_endpoint;
  state.counters["sizeof_Endpoint"] = sizeof(Endpoint);
}
BENCHMARK(BM_EndpointSetMemory)->Unit(benchmark::kMicrosecond)->Iterations(20);

void BM_FullSync20x1000(benchmark::State& state) {
  std::vector<std::string> bodies;
  for (int s = 0; s < 20; ++s) bodies.push_back(list_json(s));
  kube::Decoder decoder;
  std::vector<kube::Service> services;
  for (int s = 0; s < 20; ++s) services.push_back(decode_service(decoder, s));
  std::size_t total_bytes = 0;
  for (const auto& b : bodies) total_bytes += b.size();
  for (auto _ : state) {
    std::size_t endpoints = 0;
    for (int s = 0; s < 20; ++s) {
      ServiceCopy copy;
      copy.service = services[static_cast<std::size_t>(s)];
      sync(copy, decoder, bodies[static_cast<std::size_t>(s)]);
      endpoints += copy.current->ready.size();
    }
    if (endpoints != 20 * kSlices * kPerSlice) std::abort();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * total_bytes));
  state.counters["list_MB"] = static_cast<double>(total_bytes) / 1e6;
}
BENCHMARK(BM_FullSync20x1000)->Unit(benchmark::kMillisecond);

void BM_RawSimdjsonParseLists(benchmark::State& state) {
  std::vector<simdjson::padded_string> bodies;
  for (int s = 0; s < 20; ++s) bodies.emplace_back(list_json(s));
  simdjson::dom::parser parser;
  for (auto _ : state) {
    for (auto& b : bodies) {
      simdjson::dom::element doc;
      if (parser.parse(b).get(doc)) std::abort();
      benchmark::DoNotOptimize(doc);
    }
  }
}
BENCHMARK(BM_RawSimdjsonParseLists)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
