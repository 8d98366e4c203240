// ConnectionPool: reuse, limits, idle expiry, retry-once on stale connections, lifetime.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "net/connection_pool.h"
#include "net/support/net_loop.h"
#include "net/support/net_nginx.h"
#include "net/support/net_script_server.h"

using namespace kupstream;
using namespace kupstream::net;
using namespace kupstream::test;
using namespace std::chrono_literals;

namespace {

struct Outcome {
  bool done = false;
  Status status;
  int http_status = 0;
  std::string body;
};

HttpHandlers collect(Outcome& o) {
  HttpHandlers h;
  h.on_head = [&o](const HttpResponseHead& r) { o.http_status = r.status; };
  h.on_body = [&o](std::string_view b) { o.body.append(b); };
  h.on_complete = [&o](Status s) {
    o.status = std::move(s);
    o.done = true;
  };
  return h;
}

PoolOptions pool_to(int port) {
  PoolOptions p;
  p.connection.host = "127.0.0.1";
  p.connection.port = static_cast<std::uint16_t>(port);
  p.connection.connect_timeout = 3000ms;
  return p;
}

std::unique_ptr<ConnectionPool> make(TestLoop& t, PoolOptions o) {
  auto p = ConnectionPool::create(t.loop, std::move(o));
  REQUIRE(p.ok());
  return std::move(p).value();
}

HttpRequest get(const std::string& target) {
  HttpRequest r;
  r.target = target;
  return r;
}

Outcome fetch(TestLoop& t, ConnectionPool& pool, HttpRequest req) {
  Outcome o;
  auto ex = pool.send(std::move(req), collect(o));
  REQUIRE(ex.ok());
  REQUIRE(t.run_until([&] { return o.done; }));
  return o;
}

// Connection 0 answers one request, then reads the next one and closes without answering
// (the server timed the idle connection out just as the request arrived). Later connections
// answer normally, or close at once when `later_fail`.
ScriptServer stale_server(bool later_fail = false) {
  return ScriptServer([later_fail](int& fd, int n) {
    if (n == 0) {
      if (read_request(fd).empty()) return;
      write_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none");
      read_request(fd, 2000);
      return;  // close without a response
    }
    if (later_fail) {
      read_request(fd, 2000);
      return;
    }
    while (!read_request(fd, 1000).empty()) write_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo");
  });
}

}  // namespace

TEST_SUITE("ConnectionPool") {
  TEST_CASE("sequential requests reuse one keep-alive connection") {
    TempDir dir;
    NginxServer nginx(dir.path());
    TestLoop t;
    {
      auto pool = make(t, pool_to(nginx.plain_port));
      for (int i = 0; i < 10; ++i) {
        Outcome o = fetch(t, *pool, get("/hello"));
        CHECK(o.status.ok());
        CHECK(o.body == "hello\n");
      }
      PoolCounters c = pool->counters();
      CHECK(c.opened == 1);
      CHECK(c.reused == 9);
      CHECK(c.failed == 0);
      CHECK(c.in_use == 0);
      CHECK(c.idle == 1);
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("concurrent requests open at most max_connections and queue the rest") {
    TempDir dir;
    NginxServer nginx(dir.path());
    TestLoop t;
    {
      PoolOptions po = pool_to(nginx.plain_port);
      po.max_connections = 4;
      po.max_idle = 8;
      auto pool = make(t, po);
      std::vector<Outcome> outcomes(32);
      std::vector<std::unique_ptr<HttpExchange>> exchanges;
      for (auto& o : outcomes) {
        auto ex = pool->send(get("/hello"), collect(o));
        REQUIRE(ex.ok());
        exchanges.push_back(std::move(ex).value());
      }
      CHECK(pool->counters().pending == 28);
      CHECK(pool->counters().in_use == 4);
      REQUIRE(t.run_until([&] {
        for (auto& o : outcomes)
          if (!o.done) return false;
        return true;
      }));
      for (auto& o : outcomes) CHECK(o.body == "hello\n");
      PoolCounters c = pool->counters();
      CHECK(c.opened == 4);
      CHECK(c.reused == 28);
      CHECK(c.idle == 4);
      CHECK(c.pending == 0);
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("idle connections close after idle_timeout and max_idle caps the idle set") {
    TempDir dir;
    NginxServer nginx(dir.path());
    TestLoop t;
    {
      PoolOptions po = pool_to(nginx.plain_port);
      po.max_idle = 2;
      po.idle_timeout = 400ms;
      auto pool = make(t, po);
      std::vector<Outcome> outcomes(5);
      std::vector<std::unique_ptr<HttpExchange>> exchanges;
      for (auto& o : outcomes) exchanges.push_back(std::move(pool->send(get("/hello"), collect(o))).value());
      REQUIRE(t.run_until([&] {
        for (auto& o : outcomes)
          if (!o.done) return false;
        return true;
      }));
      CHECK(pool->counters().opened == 5);
      CHECK(pool->counters().idle == 2);
      REQUIRE(t.run_until([&] { return pool->counters().idle == 0; }, 2000));
      Outcome again = fetch(t, *pool, get("/hello"));
      CHECK(again.status.ok());
      CHECK(pool->counters().opened == 6);
      CHECK(pool->counters().failed == 0);
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("a connection the server closed while idle is dropped, not reused") {
    TempDir dir;
    NginxOptions no;
    no.keepalive_timeout_s = 1;
    NginxServer nginx(dir.path(), nullptr, no);
    TestLoop t;
    {
      auto pool = make(t, pool_to(nginx.plain_port));
      CHECK(fetch(t, *pool, get("/hello")).status.ok());
      REQUIRE(t.run_until([&] { return pool->counters().idle == 0; }, 3000));
      Outcome o = fetch(t, *pool, get("/hello"));
      CHECK(o.status.ok());
      CHECK(pool->counters().opened == 2);
      CHECK(pool->counters().retried == 0);
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("a request lost on a stale reused connection is retried once on a fresh one") {
    ScriptServer server = stale_server();
    TestLoop t;
    {
      auto pool = make(t, pool_to(server.port()));
      Outcome first = fetch(t, *pool, get("/"));
      CHECK(first.body == "one");
      Outcome second = fetch(t, *pool, get("/"));
      CHECK_MESSAGE(second.status.ok(), second.status.error().reason);
      CHECK(second.body == "two");
      PoolCounters c = pool->counters();
      CHECK(c.retried == 1);
      CHECK(c.opened == 2);
      CHECK(server.accepted() == 2);
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("the retry happens only once: a second loss is reported") {
    ScriptServer server = stale_server(true);
    TestLoop t;
    {
      auto pool = make(t, pool_to(server.port()));
      CHECK(fetch(t, *pool, get("/")).status.ok());
      Outcome second = fetch(t, *pool, get("/"));
      REQUIRE_FALSE(second.status.ok());
      CHECK(second.status.error().code == make_error_code(Errc::connection_closed));
      CHECK(pool->counters().retried == 1);
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("a streamed request body is never replayed") {
    ScriptServer server = stale_server();
    TestLoop t;
    {
      auto pool = make(t, pool_to(server.port()));
      CHECK(fetch(t, *pool, get("/")).status.ok());
      HttpRequest post = get("/");
      post.method = "POST";
      post.body_mode = BodyMode::streamed_length;
      post.content_length = 4;
      Outcome o;
      auto ex = pool->send(post, collect(o));
      REQUIRE(ex.ok());
      CHECK((*ex)->write_body("data").ok());
      CHECK((*ex)->end_body().ok());
      REQUIRE(t.run_until([&] { return o.done; }));
      REQUIRE_FALSE(o.status.ok());
      CHECK(o.status.error().code == make_error_code(Errc::connection_closed));
      CHECK(pool->counters().retried == 0);
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("a POST is retried only when retry_non_idempotent allows it") {
    for (bool allow : {false, true}) {
      CAPTURE(allow);
      ScriptServer server = stale_server();
      TestLoop t;
      {
        PoolOptions po = pool_to(server.port());
        po.retry_non_idempotent = allow;
        auto pool = make(t, po);
        CHECK(fetch(t, *pool, get("/")).status.ok());
        HttpRequest post = get("/");
        post.method = "POST";
        post.body = "x=1";
        Outcome o = fetch(t, *pool, post);
        CHECK(o.status.ok() == allow);
        if (!allow) CHECK(o.status.error().code == make_error_code(Errc::connection_closed));
        CHECK(pool->counters().retried == (allow ? 1u : 0u));
      }
      CHECK(t.close_loop() == 0);
    }
  }

  TEST_CASE("a connection the server closed behind its last response is not reused before the loop sees the close") {
    // The server answers once per connection and closes at once (FIN, without "Connection:
    // close"). The client sends the next request from inside on_complete, after the FIN has
    // arrived but before the loop has read it: a POST, which the retry-once may not replay.
    ScriptServer server([](int& fd, int) {
      if (read_request(fd).empty()) return;
      write_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes");
    });
    TestLoop t;
    {
      auto pool = make(t, pool_to(server.port()));
      Outcome second;
      std::unique_ptr<HttpExchange> next;
      Outcome first;
      HttpHandlers h = collect(first);
      h.on_complete = [&](Status s) {
        first.status = std::move(s);
        first.done = true;
        sleep_ms(100);  // the server has closed by now; its FIN waits in the socket
        HttpRequest post = get("/");
        post.method = "POST";
        post.body = "x=1";
        auto ex = pool->send(post, collect(second));
        REQUIRE(ex.ok());
        next = std::move(*ex);
      };
      auto ex = pool->send(get("/"), std::move(h));
      REQUIRE(ex.ok());
      REQUIRE(t.run_until([&] { return second.done; }));
      CHECK(first.status.ok());
      CHECK_MESSAGE(second.status.ok(), second.status.error().reason);
      CHECK(second.body == "yes");
      CHECK(pool->counters().opened == 2);
      CHECK(pool->counters().retried == 0);
      CHECK(server.accepted() == 2);
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("a refused connection fails the request and counts as failed") {
    TestLoop t;
    {
      auto pool = make(t, pool_to(free_port()));
      Outcome o = fetch(t, *pool, get("/"));
      REQUIRE_FALSE(o.status.ok());
      CHECK(o.status.error().code == make_error_code(Errc::connect_failed));
      CHECK(pool->counters().failed == 1);
      CHECK(pool->counters().in_use == 0);
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("max_pending bounds the queue with pool_exhausted") {
    TempDir dir;
    NginxServer nginx(dir.path());
    TestLoop t;
    {
      PoolOptions po = pool_to(nginx.plain_port);
      po.max_connections = 1;
      po.max_pending = 2;
      auto pool = make(t, po);
      std::vector<Outcome> outcomes(4);
      std::vector<std::unique_ptr<HttpExchange>> exchanges;
      for (int i = 0; i < 3; ++i) exchanges.push_back(std::move(pool->send(get("/hello"), collect(outcomes[i]))).value());
      auto refused = pool->send(get("/hello"), collect(outcomes[3]));
      REQUIRE_FALSE(refused.ok());
      CHECK(refused.error().code == make_error_code(Errc::pool_exhausted));
      REQUIRE(t.run_until([&] { return outcomes[0].done && outcomes[1].done && outcomes[2].done; }));
      CHECK_FALSE(outcomes[3].done);
    }
    CHECK(t.close_loop() == 0);
  }
}

TEST_SUITE("ConnectionPool lifetime") {
  TEST_CASE("dropping a queued exchange removes it from the queue") {
    TempDir dir;
    NginxServer nginx(dir.path());
    TestLoop t;
    {
      PoolOptions po = pool_to(nginx.plain_port);
      po.max_connections = 1;
      auto pool = make(t, po);
      Outcome a, b, c;
      auto ea = pool->send(get("/hello"), collect(a));
      auto eb = pool->send(get("/hello"), collect(b));
      auto ec = pool->send(get("/hello"), collect(c));
      REQUIRE((ea.ok() && eb.ok() && ec.ok()));
      CHECK(pool->counters().pending == 2);
      eb->reset();
      CHECK(pool->counters().pending == 1);
      REQUIRE(t.run_until([&] { return a.done && c.done; }));
      t.run_for(20);
      CHECK_FALSE(b.done);
      CHECK(pool->counters().opened == 1);
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("an exchange dropped mid-body discards its connection and the pool carries on") {
    TempDir dir;
    NginxServer nginx(dir.path());
    nginx.add_file("big.bin", std::string(1 << 20, 'z'));
    TestLoop t;
    {
      auto pool = make(t, pool_to(nginx.plain_port));
      CHECK(fetch(t, *pool, get("/hello")).status.ok());
      std::unique_ptr<HttpExchange> ex;
      int calls = 0;
      HttpHandlers h;
      h.on_body = [&](std::string_view) {
        ++calls;
        ex.reset();
      };
      h.on_complete = [&](Status) { ++calls; };
      ex = std::move(pool->send(get("/files/big.bin"), h)).value();
      REQUIRE(t.run_until([&] { return !ex; }));
      t.run_for(20);
      CHECK(calls == 1);
      CHECK(pool->counters().in_use == 0);
      CHECK(pool->counters().idle == 0);  // the half-read connection was not kept
      Outcome after = fetch(t, *pool, get("/hello"));
      CHECK(after.status.ok());
      CHECK(pool->counters().opened == 2);
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("dropping the pool inside a handler stops every other exchange's callbacks") {
    TempDir dir;
    NginxServer nginx(dir.path());
    TestLoop t;
    {
      PoolOptions po = pool_to(nginx.plain_port);
      po.max_connections = 3;
      std::unique_ptr<ConnectionPool> pool = make(t, po);
      int completions = 0;
      std::vector<std::unique_ptr<HttpExchange>> exchanges;
      for (int i = 0; i < 8; ++i) {
        HttpHandlers h;
        h.on_complete = [&](Status) {
          ++completions;
          pool.reset();
        };
        exchanges.push_back(std::move(pool->send(get("/hello"), h)).value());
      }
      REQUIRE(t.run_until([&] { return !pool; }));
      t.run_for(50);
      CHECK(completions == 1);
      for (auto& ex : exchanges) CHECK_FALSE(ex->write_body("x").ok());
      exchanges.clear();
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("dropping the pool while connections are still connecting is safe") {
    TempDir dir;
    NginxServer nginx(dir.path());
    TestLoop t;
    {
      int calls = 0;
      std::vector<std::unique_ptr<HttpExchange>> exchanges;
      {
        auto pool = make(t, pool_to(nginx.plain_port));
        for (int i = 0; i < 4; ++i) {
          HttpHandlers h;
          h.on_complete = [&](Status) { ++calls; };
          exchanges.push_back(std::move(pool->send(get("/hello"), h)).value());
        }
      }
      t.run_for(50);
      CHECK(calls == 0);
    }
    CHECK(t.close_loop() == 0);
  }
}
