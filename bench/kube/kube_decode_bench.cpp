// Decode throughput of EndpointSlice watch events beside raw simdjson on the same bytes.
//
//   build/release/bench/kube/kupstream_bench_kube
//
// The corpus is generated here: watch event lines in the real kube-apiserver format
// (metadata with managedFields, labels, annotations; endpoints with conditions, nodeName,
// zone, targetRef; one named port), `kEndpointsPerSlice` endpoints per slice.
// References, measured in the same binary on the same bytes:
//   raw_ondemand  simdjson On-Demand visiting every field and value (strings unescaped,
//                 numbers parsed) without building anything: the floor for any decoder
//                 built on On-Demand;
//   raw_dom       simdjson DOM parse (full validation into a tape) plus a walk of it.
// BM_DecodeVsRawOnDemand times both alternately per iteration and reports ratio =
// decode throughput / raw On-Demand throughput (target >= 0.5).
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <simdjson.h>

#include <time.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "kube/decoder.h"

namespace {

using namespace kupstream::kube;

constexpr int kEndpointsPerSlice = 100;
constexpr int kEvents = 200;

std::string make_event(int n, int endpoints) {
  std::string s = fmt::format(
      R"({{"type":"MODIFIED","object":{{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{{"name":"web-{0:05x}","generateName":"web-","namespace":"prod","uid":"5eb8257a-455d-4bcb-98f8-{0:012x}","resourceVersion":"{1}","generation":{2},"creationTimestamp":"2026-11-27T05:38:15Z","labels":{{"endpointslice.kubernetes.io/managed-by":"endpointslice-controller.k8s.io","kubernetes.io/service-name":"web","app":"web"}},"annotations":{{"endpoints.kubernetes.io/last-change-trigger-time":"2026-11-27T05:38:16Z"}},"ownerReferences":[{{"apiVersion":"v1","kind":"Service","name":"web","uid":"0f8a1c2e-1111-4a2b-9c3d-000000000001","controller":true,"blockOwnerDeletion":true}}],"managedFields":[{{"manager":"kube-controller-manager","operation":"Update","apiVersion":"discovery.k8s.io/v1","time":"2026-11-27T05:38:16Z","fieldsType":"FieldsV1","fieldsV1":{{"f:addressType":{{}},"f:endpoints":{{}},"f:metadata":{{"f:annotations":{{".":{{}},"f:endpoints.kubernetes.io/last-change-trigger-time":{{}}}},"f:generateName":{{}},"f:labels":{{".":{{}},"f:endpointslice.kubernetes.io/managed-by":{{}},"f:kubernetes.io/service-name":{{}}}},"f:ownerReferences":{{".":{{}},"k:{{\"uid\":\"0f8a1c2e-1111-4a2b-9c3d-000000000001\"}}":{{}}}}}},"f:ports":{{}}}}}}]}},"addressType":"IPv4","endpoints":[)",
      n, 100000 + n, 1 + n % 7);
  for (int i = 0; i < endpoints; ++i) {
    int pod = n * endpoints + i;
    bool ready = (pod % 17) != 0;
    if (i) s += ',';
    s += fmt::format(
        R"({{"addresses":["10.{0}.{1}.{2}"],"conditions":{{"ready":{3},"serving":{3},"terminating":{4}}},"nodeName":"node-{5:03}","targetRef":{{"kind":"Pod","namespace":"prod","name":"web-7d9c8b6f5-{6:05x}","uid":"a7a1a9ac-eee0-4f73-9eb1-{6:012x}"}},"zone":"zone-{7}"}})",
        1 + (pod >> 16) % 250, (pod >> 8) & 255, pod & 255, ready ? "true" : "false", ready ? "false" : "true", pod % 40,
        pod, static_cast<char>('a' + pod % 3));
  }
  s += R"(],"ports":[{"name":"http","protocol":"TCP","port":8080}]}})";
  s += '\n';
  return s;
}

struct Corpus {
  std::vector<std::string> lines;
  std::vector<simdjson::padded_string> padded;
  std::size_t bytes = 0;
  Corpus() {
    for (int n = 0; n < kEvents; ++n) {
      lines.push_back(make_event(n, kEndpointsPerSlice));
      padded.emplace_back(lines.back());
      bytes += lines.back().size();
    }
  }
};

const Corpus& corpus() {
  static const Corpus c;
  return c;
}

// ---- references --------------------------------------------------------------------------

namespace od = simdjson::ondemand;

// Visits every value; returns a checksum so that nothing is optimised away.
std::uint64_t visit(od::value v) {
  od::json_type t;
  if (v.type().get(t)) return 1;
  switch (t) {
    case od::json_type::object: {
      std::uint64_t sum = 0;
      od::object o;
      if (v.get_object().get(o)) return 1;
      for (auto f : o) {
        std::string_view key;
        if (f.unescaped_key().get(key)) return 1;
        sum += key.size();
        od::value fv;
        if (f.value().get(fv)) return 1;
        sum += visit(fv);
      }
      return sum;
    }
    case od::json_type::array: {
      std::uint64_t sum = 0;
      od::array a;
      if (v.get_array().get(a)) return 1;
      for (auto e : a) {
        od::value ev;
        if (e.get(ev)) return 1;
        sum += visit(ev);
      }
      return sum;
    }
    case od::json_type::string: {
      std::string_view s;
      if (v.get_string().get(s)) return 1;
      return s.size();
    }
    case od::json_type::number: {
      double d = 0;
      if (v.get_double().get(d)) return 1;
      return static_cast<std::uint64_t>(d) & 0xff;
    }
    case od::json_type::boolean: {
      bool b = false;
      if (v.get_bool().get(b)) return 1;
      return b ? 1 : 0;
    }
    case od::json_type::null:
      return 0;
  }
  return 0;
}

std::uint64_t raw_ondemand_pass(od::parser& parser) {
  std::uint64_t sum = 0;
  for (const auto& p : corpus().padded) {
    od::document doc;
    if (parser.iterate(p).get(doc)) std::abort();
    od::value root;
    if (doc.get_value().get(root)) std::abort();
    sum += visit(root);
  }
  return sum;
}

std::uint64_t walk(simdjson::dom::element e) {
  switch (e.type()) {
    case simdjson::dom::element_type::OBJECT: {
      std::uint64_t sum = 0;
      for (auto [k, v] : simdjson::dom::object(e)) sum += k.size() + walk(v);
      return sum;
    }
    case simdjson::dom::element_type::ARRAY: {
      std::uint64_t sum = 0;
      for (auto v : simdjson::dom::array(e)) sum += walk(v);
      return sum;
    }
    case simdjson::dom::element_type::STRING: return std::string_view(e).size();
    case simdjson::dom::element_type::BOOL: return bool(e) ? 1 : 0;
    default: return 1;
  }
}

std::uint64_t decode_pass(Decoder& d, std::size_t& endpoints) {
  std::uint64_t sum = 0;
  for (const auto& line : corpus().lines) {
    auto r = d.decode_event<EndpointSlice>(line);
    if (!r.ok()) std::abort();
    endpoints += r->object.endpoints.size();
    sum += r->object.endpoints.size();
  }
  return sum;
}

void set_throughput(benchmark::State& state, std::size_t endpoints) {
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * corpus().bytes));
  state.counters["events/s"] = benchmark::Counter(static_cast<double>(state.iterations() * corpus().lines.size()),
                                                  benchmark::Counter::kIsRate);
  state.counters["endpoints/s"] = benchmark::Counter(static_cast<double>(endpoints), benchmark::Counter::kIsRate);
}

void BM_DecodeEndpointSliceEvents(benchmark::State& state) {
  Decoder d;
  std::size_t endpoints = 0;
  for (auto _ : state) benchmark::DoNotOptimize(decode_pass(d, endpoints));
  set_throughput(state, endpoints);
}
BENCHMARK(BM_DecodeEndpointSliceEvents);

void BM_RawSimdjsonOnDemandVisitAll(benchmark::State& state) {
  od::parser parser;
  for (auto _ : state) benchmark::DoNotOptimize(raw_ondemand_pass(parser));
  set_throughput(state, state.iterations() * corpus().lines.size() * kEndpointsPerSlice);
}
BENCHMARK(BM_RawSimdjsonOnDemandVisitAll);

void BM_RawSimdjsonDomParseAndWalk(benchmark::State& state) {
  simdjson::dom::parser parser;
  for (auto _ : state) {
    std::uint64_t sum = 0;
    for (const auto& p : corpus().padded) {
      simdjson::dom::element root;
      if (parser.parse(p).get(root)) std::abort();
      sum += walk(root);
    }
    benchmark::DoNotOptimize(sum);
  }
  set_throughput(state, state.iterations() * corpus().lines.size() * kEndpointsPerSlice);
}
BENCHMARK(BM_RawSimdjsonDomParseAndWalk);

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Both sides timed alternately within each iteration (thread CPU time, so that other load
// on the machine does not count), so that both see the same machine state; reports each
// throughput and their ratio.
void BM_DecodeVsRawOnDemand(benchmark::State& state) {
  Decoder d;
  od::parser parser;
  std::size_t endpoints = 0;
  double dec_s = 0, raw_s = 0;
  for (auto _ : state) {
    double t0 = thread_cpu_seconds();
    benchmark::DoNotOptimize(decode_pass(d, endpoints));
    double t1 = thread_cpu_seconds();
    benchmark::DoNotOptimize(raw_ondemand_pass(parser));
    double t2 = thread_cpu_seconds();
    dec_s += t1 - t0;
    raw_s += t2 - t1;
  }
  double mb = static_cast<double>(state.iterations() * corpus().bytes) / 1e6;
  state.counters["decode_MB/s"] = mb / dec_s;
  state.counters["raw_MB/s"] = mb / raw_s;
  state.counters["decode_events/s"] = static_cast<double>(state.iterations() * corpus().lines.size()) / dec_s;
  state.counters["ratio"] = raw_s / dec_s;
}
BENCHMARK(BM_DecodeVsRawOnDemand)->Unit(benchmark::kMillisecond);

// ---- memory --------------------------------------------------------------------------------

std::size_t heap_of(const std::string& s) {
  // libstdc++ keeps up to 15 chars inline (SSO); longer strings own capacity()+1 bytes.
  return s.capacity() > 15 ? s.capacity() + 1 : 0;
}

std::size_t heap_of(const std::vector<std::string>& v) {
  std::size_t n = v.capacity() * sizeof(std::string);
  for (const auto& s : v) n += heap_of(s);
  return n;
}

std::size_t heap_of(const AddressList& a) {
  std::size_t n = heap_of(a.front()) + a.rest_capacity() * sizeof(std::string);
  for (const auto& s : a.rest()) n += heap_of(s);
  return n;
}

std::size_t heap_of(const SliceEndpoint& e) {
  std::size_t n = heap_of(e.addresses) + heap_of(e.hostname) + heap_of(e.node_name) + heap_of(e.zone) + heap_of(e.hint_zones);
  if (e.target_ref) n += heap_of(e.target_ref->kind) + heap_of(e.target_ref->name) + heap_of(e.target_ref->namespace_);
  return n;
}

// Not a timing benchmark: reports bytes per decoded endpoint (sizeof + owned heap, estimated
// from string and vector capacities; allocator headers not counted).
void BM_MemoryPerEndpoint(benchmark::State& state) {
  Decoder d;
  // Steady state: the second slice of a watch (the decoder reserves the previous size).
  if (!d.decode_event<EndpointSlice>(corpus().lines[0]).ok()) std::abort();
  auto r = d.decode_event<EndpointSlice>(corpus().lines[1]);
  if (!r.ok()) std::abort();
  const auto& eps = r->object.endpoints;
  std::size_t heap = 0;
  for (const auto& e : eps) heap += heap_of(e);
  for (auto _ : state) benchmark::DoNotOptimize(heap);
  double n = static_cast<double>(eps.size());
  state.counters["sizeof_SliceEndpoint"] = sizeof(SliceEndpoint);
  state.counters["heap_per_endpoint"] = static_cast<double>(heap) / n;
  state.counters["vector_slot"] = static_cast<double>(eps.capacity() * sizeof(SliceEndpoint)) / n;
  state.counters["total_per_endpoint"] = (static_cast<double>(eps.capacity() * sizeof(SliceEndpoint)) + static_cast<double>(heap)) / n;
  state.counters["json_bytes_per_endpoint"] = static_cast<double>(corpus().bytes) / kEvents / kEndpointsPerSlice;
}
BENCHMARK(BM_MemoryPerEndpoint)->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
