// Transport write batching (lib/net/transport.h, write()): what one loop phase writes leaves in
// one send() at the end of the phase; nothing waits across a poll; order and backpressure hold.
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "net/http_connection.h"
#include "net/support/net_loop.h"
#include "net/support/net_script_server.h"
#include "support/tcp_segments.h"

using namespace kupstream;
using namespace kupstream::net;
using namespace kupstream::test;
using namespace std::chrono_literals;

namespace {

constexpr std::string_view kOk = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

struct Done {
  bool done = false;
  Status status;
  std::string body;
};

HttpHandlers collect(Done& d) {
  HttpHandlers h;
  h.on_body = [&d](std::string_view b) { d.body.append(b); };
  h.on_complete = [&d](Status s) {
    d.status = std::move(s);
    d.done = true;
  };
  return h;
}

// Reads from fd until the bytes read end with `tail`; returns them ("" on EOF or error).
std::string read_until_tail(int fd, std::string_view tail) {
  std::string got;
  char buf[65536];
  while (got.size() < tail.size() || std::string_view(got).substr(got.size() - tail.size()) != tail) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return {};
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got;
}

// A connection to 127.0.0.1:port that has carried one GET, so that it is connected and idle.
std::unique_ptr<HttpConnection> warm_connection(TestLoop& t, int port, std::chrono::milliseconds response_timeout = 0ms) {
  HttpConnectionOptions o;
  o.host = "127.0.0.1";
  o.port = static_cast<std::uint16_t>(port);
  o.response_header_timeout = response_timeout;
  auto created = HttpConnection::create(t.loop, o);
  REQUIRE(created.ok());
  auto conn = std::move(created).value();
  Done first;
  HttpRequest r;
  r.target = "/warm";
  auto ex = conn->send(std::move(r), collect(first));
  REQUIRE(ex.ok());
  REQUIRE(t.run_until([&] { return first.done; }));
  REQUIRE(first.status.ok());
  return conn;
}

// Runs `fn` from a timer callback on t's loop (0 ms: in the next turn's timer phase). The timer
// handle stays open until this object goes (a handle closing in that turn would make the loop
// skip the wait in its poll, which the first test depends on).
class TimerCall {
 public:
  TimerCall(TestLoop& t, std::function<void()> fn) : call_(new Call{{}, std::move(fn)}) {
    uv_timer_init(&t.loop, &call_->timer);
    call_->timer.data = call_;
    uv_timer_start(&call_->timer, [](uv_timer_t* h) { static_cast<Call*>(h->data)->fn(); }, 0, 0);
  }
  ~TimerCall() {
    uv_close(reinterpret_cast<uv_handle_t*>(&call_->timer), [](uv_handle_t* h) { delete static_cast<Call*>(h->data); });
  }
  TimerCall(const TimerCall&) = delete;
  TimerCall& operator=(const TimerCall&) = delete;

 private:
  struct Call {
    uv_timer_t timer;
    std::function<void()> fn;
  };
  Call* call_;
};

}  // namespace

TEST_SUITE("Transport write batching") {
  // The uv_prepare half of the batch: a write made in a timer callback leaves before the loop
  // polls. The loop is run turn by turn with no other timer (TestLoop::run_until's 1 ms timer
  // would wake the poll and hide a batch left waiting), so a request still in the batch during
  // the poll would stay unsent until the response timeout fired, and fail the exchange.
  TEST_CASE("a request sent from a timer callback leaves before the loop polls") {
    ScriptServer server([](int& fd, int) {
      for (int i = 0; i < 2; ++i) {
        if (read_request(fd).empty()) return;
        write_all(fd, kOk);
      }
      sleep_ms(200);
    });
    TestLoop t;
    {
      auto conn = warm_connection(t, server.port(), 1500ms);

      Done second;
      std::unique_ptr<HttpExchange> ex2;
      TimerCall call(t, [&] {
        HttpRequest r2;
        r2.target = "/second";
        auto ex = conn->send(std::move(r2), collect(second));
        REQUIRE(ex.ok());
        ex2 = std::move(*ex);
      });
      const auto start = std::chrono::steady_clock::now();
      for (int turn = 0; turn < 100 && !second.done; ++turn) uv_run(&t.loop, UV_RUN_ONCE);
      const auto took = std::chrono::steady_clock::now() - start;
      REQUIRE(second.done);
      CHECK(second.status.ok());
      CHECK(second.body == "ok");
      CHECK(took < 1500ms);  // not a performance bound: the response timeout is the alternative
    }
    CHECK(t.close_loop() == 0);
  }

  // The uv_check half, and the point of batching: a streamed request whose head and three body
  // pieces are written in one callback reaches the Pod in one TCP segment (four without it:
  // TCP_NODELAY sends every send() at once).
  TEST_CASE("a head and body pieces written in one callback leave in one segment") {
    std::atomic<std::int64_t> segments{-2};
    std::atomic<bool> whole{false};
    const std::string piece(1000, 'p');
    ScriptServer server([&](int& fd, int) {
      if (read_request(fd).empty()) return;
      const std::int64_t before = tcp_data_segments_in(fd);
      write_all(fd, kOk);
      const std::string got = read_until_tail(fd, "END");
      whole = got.find("\r\n\r\n" + piece + piece + piece + "END") != std::string::npos;
      segments = before < 0 ? -1 : tcp_data_segments_in(fd) - before;
      write_all(fd, kOk);
      sleep_ms(200);
    });
    TestLoop t;
    {
      auto conn = warm_connection(t, server.port());

      Done second;
      std::unique_ptr<HttpExchange> ex2;
      // From a timer callback, on the connected, idle connection: one loop phase.
      TimerCall call(t, [&] {
        HttpRequest r2;
        r2.method = "PUT";
        r2.target = "/second";
        r2.body_mode = BodyMode::streamed_length;
        r2.content_length = 3 * piece.size() + 3;
        auto ex = conn->send(std::move(r2), collect(second));
        REQUIRE(ex.ok());
        ex2 = std::move(*ex);
        for (int i = 0; i < 3; ++i) CHECK(ex2->write_body(piece).ok());
        CHECK(ex2->write_body("END").ok());
        CHECK(ex2->end_body().ok());
      });
      REQUIRE(t.run_until([&] { return second.done; }));
      CHECK(second.status.ok());
      CHECK(whole.load());
      CHECK(segments.load() == 1);
    }
    CHECK(t.close_loop() == 0);
  }

  // A write that would take the batch over Transport::kBatchBytes sends the batch and itself at
  // once; bytes keep their order across batched, immediate and socket-queued writes.
  TEST_CASE("small and large body writes in one callback arrive whole and in order") {
    std::string expected;
    for (std::size_t size : {10u, 200u, 70000u, 5u, 20000u, 3u, 300000u, 7u}) {
      for (std::size_t i = 0; i < size; ++i) expected += static_cast<char>('a' + (expected.size() * 7 + size) % 26);
      expected += '|';
    }
    expected += "END";
    std::atomic<bool> same{false};
    ScriptServer server([&](int& fd, int) {
      const std::string got = read_until_tail(fd, "END");
      const auto head_end = got.find("\r\n\r\n");
      same = head_end != std::string::npos && got.substr(head_end + 4) == expected;
      write_all(fd, kOk);
      sleep_ms(200);
    });
    TestLoop t;
    {
      HttpConnectionOptions o;
      o.host = "127.0.0.1";
      o.port = static_cast<std::uint16_t>(server.port());
      auto created = HttpConnection::create(t.loop, o);
      REQUIRE(created.ok());
      auto conn = std::move(created).value();
      HttpRequest r;
      r.method = "PUT";
      r.target = "/upload";
      r.body_mode = BodyMode::streamed_length;
      r.content_length = expected.size();
      Done d;
      auto ex = conn->send(std::move(r), collect(d));
      REQUIRE(ex.ok());
      REQUIRE(t.run_until([&] { return (*ex)->connected(); }));
      TimerCall call(t, [&] {
        std::size_t from = 0;
        while (from < expected.size()) {
          std::size_t bar = expected.find('|', from);
          std::size_t to = bar == std::string::npos ? expected.size() : bar + 1;
          CHECK((*ex)->write_body(std::string_view(expected).substr(from, to - from)).ok());
          from = to;
        }
        CHECK((*ex)->end_body().ok());
      });
      REQUIRE(t.run_until([&] { return d.done; }));
      CHECK(d.status.ok());
      CHECK(same.load());
    }
    CHECK(t.close_loop() == 0);
  }
  // The bound on the wait: batches of one thread leave together once eight Transports have one
  // waiting (kBatchTransports in transport.cpp), inside the write that made the eighth; fewer
  // wait for the end of the phase. The timer callback blocks the loop for a while after its
  // sends and counts what the server received meanwhile.
  TEST_CASE("batches leave at the end of the phase, or at once when eight connections have one") {
    std::atomic<int> received{0};
    ScriptServer server([&received](int& fd, int) {
      while (true) {
        if (read_request(fd).empty()) return;
        ++received;
        write_all(fd, kOk);
      }
    });
    TestLoop t;
    {
      std::vector<std::unique_ptr<HttpConnection>> conns;
      std::vector<std::unique_ptr<HttpExchange>> exchanges;
      for (int i = 0; i < 9; ++i) conns.push_back(warm_connection(t, server.port()));
      REQUIRE(received.load() == 9);

      std::vector<Done> done(9);
      int seen_after_seven = -1, seen_after_eight = -1;
      auto send_on = [&](std::size_t i) {
        HttpRequest r;
        r.target = "/batched";
        auto ex = conns[i]->send(std::move(r), collect(done[i]));
        REQUIRE(ex.ok());
        exchanges.push_back(std::move(*ex));
      };
      TimerCall call(t, [&] {
        for (std::size_t i = 0; i < 7; ++i) send_on(i);
        sleep_ms(150);
        seen_after_seven = received.load() - 9;
        send_on(7);  // the eighth waiting batch: all eight leave now
        sleep_ms(150);
        seen_after_eight = received.load() - 9;
        send_on(8);  // a new batch, sent at the end of this phase
      });
      REQUIRE(t.run_until([&] {
        for (auto& d : done)
          if (!d.done) return false;
        return true;
      }));
      CHECK(seen_after_seven == 0);
      CHECK(seen_after_eight == 8);
      for (auto& d : done) CHECK(d.status.ok());
    }
    CHECK(t.close_loop() == 0);
  }
}
