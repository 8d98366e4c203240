// libFuzzer target: kup-gateway's request side. A real HttpServer (examples/gateway) listens on
// loopback; a client sends the input's bytes (in 1 to 4 writes), half-closes and reads until the
// server closes. Each request head goes through the Router, and a routed one through
// forward_headers (both the header-lines fast path and the header vector) and the net
// serializer, as kup-gateway's ProxyExchange does before it forwards to a Pod; its body is read
// to the end and answered with 200.
//
// Input: byte 0 (mod 4, plus 1) is the number of writes; the rest is what the client sends.
// Seeds: tests/fuzz/fixtures/seeds/gateway_request.
// Checked: the server closes every connection once the client has half-closed (no hang); the
// head sent on to a Pod is one well-formed head with one Host and no client framing headers,
// the same from both paths; every request routed to an upstream is answered at most once; no
// handle left open, nothing leaked.
#include <strings.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "config.h"
#include "fuzz/support/fuzz_loop.h"
#include "http_server.h"
#include "kupstream/balancer.h"
#include "net/exchange_core.h"
#include "net/http_types.h"
#include "router.h"
#include "upstream/forward_headers.h"

namespace {

using namespace kupstream;
using namespace kupgw;

[[noreturn]] void finding(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "gateway_request_fuzz: %s %s\n", what, detail.c_str());
  std::abort();
}

// What the gateway would send to a Pod, checked.
void check_forwarded_head(const RequestHead& head, const std::string* host_override) {
  ForwardRequest request;
  request.method = head.method;
  request.target = head.target;
  request.client_address = head.client_address;
  request.client_host = std::string(head.header("host"));
  for (const auto& h : head.headers)
    if (strcasecmp(h.first.c_str(), "expect") != 0) request.headers.emplace_back(h.first, h.second);
  request.hash = hash_key(head.header("x-user"));

  net::HttpRequest from_vector;
  from_vector.method = request.method;
  from_vector.target = request.target;
  detail::append_upstream_request_headers(request, host_override, from_vector.headers);
  std::string vector_head;
  const Status vs = net::serialize_request_head(from_vector, "pod.invalid", vector_head);

  net::HttpRequest from_lines;
  from_lines.method = request.method;
  from_lines.target = request.target;
  const bool lines_ok =
      detail::append_upstream_header_lines(request, host_override, from_lines.header_lines, from_lines.header_lines_have_host);
  if (!vs) {
    if (vs.error().reason.empty()) finding("serializer error without a reason");
    return;  // the request path answers this request with an error; nothing is sent
  }
  for (const auto& h : from_vector.headers)
    if (detail::iequals(h.name, "content-length") || detail::iequals(h.name, "transfer-encoding") ||
        detail::iequals(h.name, "connection"))
      finding("a client framing or hop-by-hop header is forwarded:", h.name);
  std::size_t hosts = 0;
  for (std::size_t at = vector_head.find("\r\n"); at != std::string::npos; at = vector_head.find("\r\n", at + 2))
    if (at + 7 <= vector_head.size() && detail::iequals(std::string_view(vector_head).substr(at + 2, 5), "host:")) ++hosts;
  if (hosts != 1) finding("forwarded head does not have exactly one Host:", vector_head);
  if (vector_head.find("\r\n\r\n") != vector_head.size() - 4) finding("forwarded head is not one head:", vector_head);
  for (std::size_t i = 0; i < vector_head.size(); ++i) {
    const char c = vector_head[i];
    if (c == '\0' || (c == '\n' && (i == 0 || vector_head[i - 1] != '\r')) ||
        (c == '\r' && (i + 1 >= vector_head.size() || vector_head[i + 1] != '\n')))
      finding("forwarded head holds a bare CR, LF or NUL:", vector_head);
  }
  if (lines_ok) {
    std::string lines_head;
    if (!net::serialize_request_head(from_lines, "pod.invalid", lines_head))
      finding("header lines path fails where the vector path succeeds");
    if (lines_head != vector_head) finding("the two forwarding paths differ:", lines_head + "|" + vector_head);
  }
}

class Handler final : public RequestHandler {
 public:
  explicit Handler(ResponseWriter& writer) : writer_(writer) {}
  void on_body(std::string_view data) override { body_ += data.size(); }
  void on_body_end() override {
    if (ended_) finding("on_body_end ran twice");
    ended_ = true;
    if (writer_.started()) finding("response started before the body ended");
    writer_.simple(200, "ok " + std::to_string(body_) + "\n");
  }

 private:
  ResponseWriter& writer_;
  std::uint64_t body_ = 0;
  bool ended_ = false;
};

struct Gateway {
  Router router{{{"*", "/", "web"}, {"api.example.com", "/v1", "api"}, {"*", "/admin", "admin"}}};
  std::string api_host = "api.internal";
  std::unique_ptr<HttpServer> server;
  std::uint16_t port = 0;

  Gateway() {
    HttpServerOptions options;
    options.max_header_bytes = 8 * 1024;
    options.header_timeout_ms = 2000;
    options.idle_timeout_ms = 2000;
    server = std::make_unique<HttpServer>(kupfuzz::loop(), options, [this](RequestHead& head, ResponseWriter& writer) {
      return route(head, writer);
    });
    auto p = server->listen("127.0.0.1", 0);
    if (!p) finding("listen:", p.error().reason);
    port = *p;
    kupfuzz::keep_current_handles();
  }

  std::unique_ptr<RequestHandler> route(RequestHead& head, ResponseWriter& writer) {
    const auto name = router.match(head.header("host"), head.target);
    if (name.empty()) {
      writer.simple(404, "no route\n");
      return nullptr;
    }
    check_forwarded_head(head, name == "api" ? &api_host : nullptr);
    return std::make_unique<Handler>(writer);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static Gateway gateway;
  kupfuzz::RawClient client(gateway.port, std::string(reinterpret_cast<const char*>(data) + 1, size - 1), data[0] % 4 + 1u);
  kupfuzz::run_until_quiet([&] { return client.done() && gateway.server->stats().connections_active == 0; },
                           "gateway_request_fuzz", 5000, [&] {
                             return "client " + std::string(client.done() ? "closed" : "open") + ", received \"" +
                                    client.received() + "\", server connections active " +
                                    std::to_string(gateway.server->stats().connections_active);
                           });
  return 0;
}
