// libFuzzer target: the watch stream as the library reads it. A real Reflector<EndpointSlice>
// and ApiClient talk HTTP/1.1 to a loopback Responder; the LIST gets a fixed one-slice answer and
// the (first) WATCH gets the input's bytes as the whole response: status line, headers, chunked
// framing (llhttp in lib/net), the line splitter and the event decoder, then the reflector's
// handling of events, bookmarks, 410 ERROR events and early ends.
//
// Input: byte 0 selects the mode ('1' or any odd byte: watch-list, i.e. the WATCH comes first
// with sendInitialEvents), the rest is the WATCH response. Seeds: tests/fuzz/fixtures/seeds/watch_stream
// (the raw HTTP/1.1 watch captures of a real kube-apiserver, and the watch fixtures of
// tests/kube/fixtures framed as chunked responses).
//
// Checked: every health error carries a non-empty reason naming the cluster; the input ends
// with no handle left open and nothing leaked; no hang (bounded run).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz/support/fuzz_loop.h"
#include "kube/api_client.h"
#include "kube/reflector.h"

namespace {

using namespace kupstream;

constexpr std::string_view kList =
    R"({"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1","metadata":{"resourceVersion":"100"},)"
    R"("items":[{"metadata":{"name":"web-1","namespace":"default","resourceVersion":"99",)"
    R"("labels":{"kubernetes.io/service-name":"web"}},"addressType":"IPv4",)"
    R"("endpoints":[{"addresses":["127.0.1.5"],"conditions":{"ready":true}}],)"
    R"("ports":[{"name":"http","port":80,"protocol":"TCP"}]}]})";

std::string list_response() {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(kList.size()) +
         "\r\n\r\n" + std::string(kList);
}

[[noreturn]] void finding(const char* what, const std::string& detail) {
  std::fprintf(stderr, "watch_stream_fuzz: %s: %s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static kupfuzz::Responder responder;
  const bool watch_list = (data[0] & 1) != 0;
  const std::string watch_bytes(reinterpret_cast<const char*>(data) + 1, size - 1);

  bool watch_served = false, finished = false;
  responder.set_answer([&](std::string_view head) -> std::string {
    const bool is_watch = head.substr(0, head.find("\r\n")).find("watch=1") != std::string_view::npos;
    if (!is_watch) return list_response();
    if (!watch_served) {
      watch_served = true;
      return watch_bytes;
    }
    finished = true;  // the reflector resumed: it has consumed the whole input
    return {};
  });
  responder.set_on_closed([&] {
    if (watch_served) finished = true;
  });

  ClusterConfig cluster;
  cluster.name = "fuzz";
  cluster.server = "http://127.0.0.1:" + std::to_string(responder.port());
  auto client = kube::make_api_client(kupfuzz::loop(), cluster, nullptr, {});
  if (!client) finding("make_api_client", client.error().reason);

  kube::ReflectorOptions options;
  options.path = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";
  options.label_selector = "kubernetes.io/service-name=web";
  options.what = "endpointslices in \"default\"";
  options.watch_list = watch_list;
  options.seed = 1;
  kube::ReflectorCallbacks<kube::EndpointSlice> callbacks;
  std::size_t objects = 0;
  callbacks.on_replace = [&](std::vector<kube::EndpointSlice> items, const std::string&) { objects = items.size(); };
  callbacks.on_event = [&](kube::EventType type, kube::EndpointSlice, const std::string&) {
    if (type == kube::EventType::added) ++objects;
  };
  callbacks.on_health = [&](const Status& health) {
    if (health) return;
    const auto& reason = health.error().reason;
    if (!health.error().code || reason.find("cluster \"fuzz\"") == std::string::npos)
      finding("health error without a reason naming the cluster", reason);
    if (kupfuzz::tracing()) std::fprintf(stderr, "watch_stream_fuzz: health: %s\n", reason.c_str());
    if (watch_served) finished = true;
  };
  auto reflector = std::make_unique<kube::Reflector<kube::EndpointSlice>>(**client, options, callbacks);
  reflector->start();
  std::string last_health;
  kupfuzz::run_until_quiet([&] {
    if (finished && reflector) {
      if (kupfuzz::tracing()) {
        const auto c = reflector->counters();
        std::fprintf(stderr, "watch_stream_fuzz: lists %llu watches %llu events %llu bookmarks %llu relists %llu, %zu objects\n",
                     static_cast<unsigned long long>(c.lists), static_cast<unsigned long long>(c.watches),
                     static_cast<unsigned long long>(c.events), static_cast<unsigned long long>(c.bookmarks),
                     static_cast<unsigned long long>(c.relists_after_gone), objects);
      }
      reflector.reset();  // drops every connection it holds
    }
    return finished;
  }, "watch_stream_fuzz");
  return 0;
}
