// HttpServer behaviours found in the request-path review: a client that half-closes after its
// request, and a response that ends while the request body is paused.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <memory>
#include <string>
#include <thread>

#include "http_server.h"

using namespace kupgw;

namespace {

// A blocking client on its own thread (the loop runs on the test's thread).
class RawClient {
 public:
  explicit RawClient(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{3, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~RawClient() { ::close(fd_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;
  bool connected() const { return connected_; }
  void send(const std::string& s) {
    std::size_t off = 0;
    while (off < s.size()) {
      auto n = ::send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;
      off += static_cast<std::size_t>(n);
    }
  }
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }
  // Reads until `needle` is in the buffer (true) or the stream ends / times out (false).
  bool read_until(const std::string& needle) {
    while (buf_.find(needle) == std::string::npos)
      if (!fill()) return false;
    return true;
  }
  // Reads until the server closes (or 3 s pass without a byte).
  void read_to_end() {
    while (fill()) {
    }
  }
  const std::string& received() const { return buf_; }

 private:
  bool fill() {
    char b[65536];
    auto n = ::recv(fd_, b, sizeof b, 0);
    if (n <= 0) return false;
    buf_.append(b, static_cast<std::size_t>(n));
    return true;
  }
  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

// "/big": answered at once by the factory with kBigBody bytes. "/early": the handler pauses
// the request body at its first piece and answers at once (as the gateway does when the
// Upstream's response ends while the client's body waits for on_writable); it never resumes.
// Anything else: 200 "ok:<target>" once the body has ended.
constexpr std::size_t kBigBody = 24 * 1024 * 1024;

class ReviewHandler : public RequestHandler {
 public:
  ReviewHandler(RequestHead& head, ResponseWriter& w) : target_(head.target), w_(w) {}
  void on_body(std::string_view) override {
    if (target_ != "/early" || answered_) return;
    answered_ = true;
    w_.pause_request_body();
    w_.simple(200, "early\n");
  }
  void on_body_end() override {
    if (answered_) return;
    answered_ = true;
    w_.simple(200, "ok:" + target_);
  }

 private:
  std::string target_;
  ResponseWriter& w_;
  bool answered_ = false;
};

struct Harness {
  uv_loop_t loop;
  std::unique_ptr<HttpServer> server;
  std::uint16_t port = 0;
  uv_async_t done_async;
  bool drained = false;

  Harness() {
    uv_loop_init(&loop);
    server = std::make_unique<HttpServer>(loop, HttpServerOptions{},
                                          [](RequestHead& h, ResponseWriter& w) -> std::unique_ptr<RequestHandler> {
                                            if (h.target == "/big") {
                                              w.simple(200, std::string(kBigBody, 'z'));
                                              return nullptr;
                                            }
                                            return std::make_unique<ReviewHandler>(h, w);
                                          });
    auto p = server->listen("127.0.0.1", 0);
    REQUIRE(p.ok());
    port = *p;
  }
  template <class F>
  void run(F client) {
    uv_async_init(&loop, &done_async, [](uv_async_t* a) {
      auto* self = static_cast<Harness*>(a->data);
      self->server->drain(1000, [self] { self->drained = true; });
      uv_close(reinterpret_cast<uv_handle_t*>(a), nullptr);
    });
    done_async.data = this;
    std::thread t([&] {
      client();
      uv_async_send(&done_async);
    });
    uv_run(&loop, UV_RUN_DEFAULT);
    t.join();
    CHECK(drained);
    server.reset();
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
  }
};

}  // namespace

TEST_SUITE("HttpServer") {
  TEST_CASE("a client that half-closes after its request still gets the whole response") {
    Harness h;
    std::size_t received = 0;
    bool has_head = false;
    h.run([&] {
      RawClient c(h.port);
      REQUIRE(c.connected());
      c.send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
      c.shutdown_write();  // e.g. `nc -N`: the request is whole, the client sends nothing more
      c.read_to_end();
      const auto& all = c.received();
      const auto end = all.find("\r\n\r\n");
      has_head = end != std::string::npos;
      if (has_head) received = all.size() - (end + 4);
    });
    CHECK(has_head);
    CHECK(received == kBigBody);
  }

  TEST_CASE("a response that ends while the request body is paused does not stall the connection") {
    Harness h;
    bool early = false, second = false;
    h.run([&] {
      RawClient c(h.port);
      REQUIRE(c.connected());
      c.send("POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234");
      early = c.read_until("early\n");
      // The rest of the body, then the next request on the same keep-alive connection.
      c.send("56789GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
      second = c.read_until("ok:/next");
    });
    CHECK(early);
    CHECK(second);
  }
}
