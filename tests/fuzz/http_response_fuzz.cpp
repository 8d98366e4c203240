// libFuzzer target: the HTTP/1.1 response path of lib/net. A real HttpConnection sends a request
// to a loopback Responder, which answers with the input's bytes and closes: the status line and
// headers (limits, duplicates, Content-Length vs Transfer-Encoding), chunked bodies, bodies
// shorter or longer than Content-Length, 1xx responses, bytes after the response, EOF anywhere.
//
// Input: byte 0 holds flags, the rest is the response.
//   bit 0: HEAD instead of GET          bit 1: pause on the first body bytes, resume a turn later
//   bit 2: small head limits (512 bytes, 8 headers)
//   bit 3: when the first exchange leaves the connection reusable, send a second request on it
// Checked: on_complete runs exactly once per exchange; on_head at most once and before any body;
// a successful response with a Content-Length delivered exactly that many body bytes (none for
// HEAD, 1xx, 204, 304); an error has a reason; no hang, no handle left open, nothing leaked.
#include <uv.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "fuzz/support/fuzz_loop.h"
#include "net/http_connection.h"

namespace {

using namespace kupstream;

[[noreturn]] void finding(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "http_response_fuzz: %s %s\n", what, detail.c_str());
  std::abort();
}

struct Flags {
  bool head = false, pause = false, small_limits = false, second = false;
};

// One exchange and what it saw.
struct Observed {
  int heads = 0, completes = 0;
  std::uint64_t body = 0;
  bool body_before_head = false;
  net::HttpResponseHead head;
  Status status;
};

struct Run {
  Flags flags;
  std::unique_ptr<net::HttpConnection> conn;
  std::unique_ptr<net::HttpExchange> exchange;
  Observed obs[2];
  int sent = 0;
  bool finished = false;
  uv_timer_t resume;  // pause → resume on a later turn
  bool resume_open = false;

  void send(int i) {
    net::HttpRequest req;
    req.method = flags.head ? "HEAD" : "GET";
    req.target = i == 0 ? "/first" : "/second";
    net::HttpHandlers h;
    Observed& o = obs[i];
    h.on_head = [&o](const net::HttpResponseHead& head) {
      ++o.heads;
      o.head = head;
    };
    h.on_body = [this, &o](std::string_view bytes) {
      if (o.heads == 0) o.body_before_head = true;
      o.body += bytes.size();
      if (flags.pause && !resume_open) {
        exchange->pause_body();
        resume_open = true;
        uv_timer_init(&kupfuzz::loop(), &resume);
        resume.data = this;
        uv_timer_start(&resume, [](uv_timer_t* t) {
          auto* r = static_cast<Run*>(t->data);
          if (r->exchange) r->exchange->resume_body();
          uv_close(reinterpret_cast<uv_handle_t*>(t), nullptr);
        }, 0, 0);
      }
    };
    h.on_complete = [this, i](Status s) {
      ++obs[i].completes;
      obs[i].status = std::move(s);
      if (i == 0 && flags.second && obs[0].status && conn->reusable()) {
        exchange.reset();
        return send(1);
      }
      exchange.reset();
      conn.reset();  // allowed inside a handler of its own exchange
      finished = true;
    };
    auto ex = conn->send(std::move(req), std::move(h));
    if (!ex) finding("send failed:", ex.error().reason);
    exchange = std::move(*ex);
    ++sent;
  }
};

void check(const Observed& o, bool head_request) {
  if (o.completes != 1) finding("on_complete did not run exactly once");
  if (o.heads > 1) finding("on_head ran twice");
  if (o.body_before_head) finding("body bytes before the head");
  if (!o.status) {
    if (o.status.error().reason.empty()) finding("error without a reason");
    return;
  }
  if (o.heads != 1) finding("success without a head");
  const int s = o.head.status;
  const bool bodiless = head_request || (s >= 100 && s < 200) || s == 204 || s == 304;
  if (bodiless && o.body != 0) finding("body bytes on a bodiless response");
  if (!bodiless && o.head.content_length && *o.head.content_length != o.body)
    finding("body length differs from Content-Length:", std::to_string(o.body) + " vs " + std::to_string(*o.head.content_length));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static kupfuzz::Responder responder;
  Run run;
  run.flags = {(data[0] & 1) != 0, (data[0] & 2) != 0, (data[0] & 4) != 0, (data[0] & 8) != 0};
  const std::string response(reinterpret_cast<const char*>(data) + 1, size - 1);
  responder.set_answer([&](std::string_view) { return response; });
  responder.set_on_closed({});

  net::HttpConnectionOptions options;
  options.host = "127.0.0.1";
  options.port = responder.port();
  if (run.flags.small_limits) options.limits = {512, 8};
  auto conn = net::HttpConnection::create(kupfuzz::loop(), options);
  if (!conn) finding("create failed:", conn.error().reason);
  run.conn = std::move(*conn);
  run.send(0);
  kupfuzz::run_until_quiet([&] { return run.finished; }, "http_response_fuzz");
  for (int i = 0; i < run.sent; ++i) {
    if (kupfuzz::tracing())
      std::fprintf(stderr, "http_response_fuzz: exchange %d: status %d, %llu body bytes, %s\n", i, run.obs[i].head.status,
                   static_cast<unsigned long long>(run.obs[i].body),
                   run.obs[i].status ? "ok" : run.obs[i].status.error().reason.c_str());
    check(run.obs[i], run.flags.head);
  }
  return 0;
}
