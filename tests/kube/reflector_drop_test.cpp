// Dropping a Reflector at each stage of its list+watch closes every connection it opened, as the
// server sees it: the LIST waiting for its answer, the LIST answered (dropped inside on_replace,
// before the WATCH goes out), the WATCH request waiting for its response head (a slow server),
// and the WATCH streaming. The server is the test's own loopback peer (a thread per connection):
// it records each request line, answers or holds it as the case says, and records when the client
// closes (EOF or reset). No callback may run after the drop, and the loop closes.
#include <doctest/doctest.h>
#include <poll.h>
#include <sys/socket.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "kube/api_client.h"
#include "kube/reflector.h"
#include "net/support/net_loop.h"
#include "net/support/net_script_server.h"

using namespace kupstream;
using namespace kupstream::test;

namespace {

// What the server answers to a request line: the bytes to write, or "" to hold it unanswered.
using Answer = std::string (*)(const std::string& request_line);

// Records, per accepted connection, its request lines and whether the client closed it.
class HoldingServer {
 public:
  explicit HoldingServer(Answer answer) : answer_(answer) {}

  struct Conn {
    std::vector<std::string> requests;
    bool closed = false;
    std::string how;  // "eof" or "reset"
  };

  std::vector<Conn> conns() {
    std::lock_guard<std::mutex> lock(mu_);
    return conns_;
  }
  // The connection whose first request line contains `needle`.
  std::optional<std::size_t> conn_with(const std::string& needle) {
    std::lock_guard<std::mutex> lock(mu_);
    for (std::size_t i = 0; i < conns_.size(); ++i)
      if (!conns_[i].requests.empty() && conns_[i].requests.front().find(needle) != std::string::npos) return i;
    return std::nullopt;
  }
  bool closed(std::size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    return i < conns_.size() && conns_[i].closed;
  }
  bool all_closed() {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& c : conns_)
      if (!c.closed) return false;
    return true;
  }
  // For failure messages: every connection, its requests and its state.
  std::string describe() {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out;
    for (std::size_t i = 0; i < conns_.size(); ++i) {
      out += "[conn " + std::to_string(i) + (conns_[i].closed ? " closed (" + conns_[i].how + ")" : " open");
      for (const auto& r : conns_[i].requests) out += " | " + r;
      out += "]";
    }
    return out;
  }
  int port() const { return script_.port(); }

 private:
  // Serves the n-th connection: reads request heads (GETs, no body), answers or holds each, and
  // learns when the client closes.
  void serve(int& fd, int n) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (conns_.size() <= static_cast<std::size_t>(n)) conns_.resize(static_cast<std::size_t>(n) + 1);
    }
    std::string in;
    char buf[16384];
    for (;;) {
      std::size_t end;
      while ((end = in.find("\r\n\r\n")) != std::string::npos) {
        const std::string line = in.substr(0, in.find("\r\n"));
        in.erase(0, end + 4);
        {
          std::lock_guard<std::mutex> lock(mu_);
          conns_[static_cast<std::size_t>(n)].requests.push_back(line);
        }
        const std::string reply = answer_(line);
        if (!reply.empty()) write_all(fd, reply);
      }
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) {
        if (script_.stopping()) return;
        continue;
      }
      const ssize_t got = recv(fd, buf, sizeof buf, 0);
      if (got <= 0) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!script_.stopping()) {
          conns_[static_cast<std::size_t>(n)].closed = true;
          conns_[static_cast<std::size_t>(n)].how = got == 0 ? "eof" : "reset";
        }
        return;
      }
      in.append(buf, static_cast<std::size_t>(got));
    }
  }

  Answer answer_;
  std::mutex mu_;
  std::vector<Conn> conns_;
  ScriptServer script_{[this](int& fd, int n) { serve(fd, n); }};  // last: its threads stop first
};

bool is_watch(const std::string& line) { return line.find("watch=1") != std::string::npos; }

std::string list_reply() {
  const std::string body =
      R"({"kind":"NodeList","apiVersion":"v1","metadata":{"resourceVersion":"10"},)"
      R"("items":[{"metadata":{"name":"node-a","resourceVersion":"9","labels":{"pool":"gpu"}}}]})";
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

std::string watch_head_and_event() {
  const std::string event =
      R"({"type":"ADDED","object":{"kind":"Node","apiVersion":"v1","metadata":{"name":"node-b","resourceVersion":"11","labels":{"pool":"gpu"}}}})"
      "\n";
  char size[16];
  std::snprintf(size, sizeof size, "%zx", event.size());
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + std::string(size) +
         "\r\n" + event + "\r\n";
}

std::string hold_everything(const std::string&) { return {}; }
std::string answer_list_hold_watch(const std::string& line) { return is_watch(line) ? std::string() : list_reply(); }
std::string answer_list_stream_watch(const std::string& line) {
  return is_watch(line) ? watch_head_and_event() : list_reply();
}

struct Fixture {
  TestLoop loop;
  HoldingServer server;
  std::unique_ptr<kube::ApiClient> client;
  std::unique_ptr<kube::Reflector<kube::Node>> reflector;
  int replaces = 0, events = 0;
  bool drop_in_replace = false;
  bool dropped = false;
  int after_drop = 0;  // callbacks that ran after the drop (must stay 0)

  explicit Fixture(Answer answer) : server(answer) {
    kube::ApiClientOptions o;
    o.cluster_name = "drop";
    auto url = parse_server_url("http://127.0.0.1:" + std::to_string(server.port()));
    REQUIRE(url.ok());
    o.server = *url;
    client = std::make_unique<kube::ApiClient>(loop.loop, std::move(o));

    kube::ReflectorOptions ro;
    ro.path = "/api/v1/nodes";
    ro.label_selector = "pool=gpu";
    ro.what = "nodes with labels pool=gpu";
    ro.seed = 1;
    kube::ReflectorCallbacks<kube::Node> cb;
    cb.on_replace = [this](std::vector<kube::Node>, const std::string&) {
      if (dropped) ++after_drop;
      ++replaces;
      if (drop_in_replace) drop();
    };
    cb.on_event = [this](kube::EventType, kube::Node, const std::string&) {
      if (dropped) ++after_drop;
      ++events;
    };
    cb.on_health = [this](const Status&) {
      if (dropped) ++after_drop;
    };
    cb.on_waiting = [this](const std::string&) {
      if (dropped) ++after_drop;
    };
    cb.on_note = [this](const std::string&) {
      if (dropped) ++after_drop;
    };
    reflector = std::make_unique<kube::Reflector<kube::Node>>(*client, std::move(ro), std::move(cb));
    reflector->start();
  }

  void drop() {
    dropped = true;
    reflector.reset();
  }

  // The WATCH's connection is open; the drop closes it as the server sees it.
  void drop_and_expect_watch_closed() {
    const auto watch = *server.conn_with("watch=1");
    CHECK_FALSE(server.closed(watch));
    drop();
    const bool closed = loop.run_until([&] { return server.closed(watch); }, 5000);
    INFO("server saw: " << server.describe());
    CHECK(closed);
  }

  // The request waits at the server (received, not answered) or streams.
  bool wait_for_request(bool watch) {
    return loop.run_until([&] { return server.conn_with(watch ? "watch=1" : "limit=").has_value(); }, 10000);
  }

  // Every connection the Reflector opened is closed, as the server sees it; then the client
  // goes and the loop must close.
  void check_all_closed_and_finish() {
    const bool all = loop.run_until([&] { return server.all_closed(); }, 5000);
    INFO("server saw: " << server.describe());
    CHECK(all);
    CHECK(after_drop == 0);
    client.reset();
    CHECK(loop.close_loop() == 0);
    CHECK(after_drop == 0);
  }
};

}  // namespace

TEST_SUITE("Reflector") {
  TEST_CASE("dropped while its LIST waits for an answer, it closes the LIST's connection") {
    Fixture f(hold_everything);
    REQUIRE(f.wait_for_request(false));
    const auto list = *f.server.conn_with("limit=");
    CHECK_FALSE(f.server.closed(list));
    f.drop();
    CHECK(f.loop.run_until([&] { return f.server.closed(list); }, 5000));
    CHECK(f.replaces == 0);
    CHECK_FALSE(f.server.conn_with("watch=1"));
    f.check_all_closed_and_finish();
  }

  TEST_CASE("dropped inside on_replace, it sends no WATCH and the LIST's kept connection closes") {
    Fixture f(answer_list_hold_watch);
    f.drop_in_replace = true;
    REQUIRE(f.loop.run_until([&] { return f.replaces == 1; }, 10000));
    f.check_all_closed_and_finish();
    CHECK_FALSE(f.server.conn_with("watch=1"));
    CHECK(f.server.conns().size() == 1);
  }

  TEST_CASE("dropped while its WATCH request waits for the response head, it closes the watch's connection") {
    Fixture f(answer_list_hold_watch);
    REQUIRE(f.wait_for_request(true));
    CHECK(f.replaces == 1);
    f.drop_and_expect_watch_closed();
    f.check_all_closed_and_finish();
  }

  TEST_CASE("dropped while its WATCH streams, it closes the watch's connection") {
    Fixture f(answer_list_stream_watch);
    REQUIRE(f.loop.run_until([&] { return f.events == 1; }, 10000));
    f.drop_and_expect_watch_closed();
    f.check_all_closed_and_finish();
  }
}
