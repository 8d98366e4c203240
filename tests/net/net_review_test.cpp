// lib/net behaviours found in the review of the optimized request path.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <memory>
#include <string>

#include "net/connection_pool.h"
#include "net/support/net_certs.h"
#include "net/support/net_loop.h"
#include "net/support/net_process.h"
#include "net/support/net_script_server.h"
#include "net/support/net_tls_server.h"
#include "net/tls_context.h"

using namespace kupstream;
using namespace kupstream::net;
using namespace kupstream::test;
using namespace std::chrono_literals;

TEST_SUITE("ConnectionPool") {
  TEST_CASE("a TLS connection whose peer closed while the response was paused is not reused") {
    TempDir dir;
    TestPki pki(dir.path());
    TlsServerContext server_ctx(pki);

    // Connection 0 answers one request with keep-alive framing and closes at once (close_notify
    // in the same TCP segment as the response: a Pod shutting down). Later connections answer
    // every request.
    ScriptServer server([ctx = server_ctx.get()](int& fd, int n) {
      TlsServerConn conn(ctx, fd, 3);
      if (!conn.ok()) return;
      if (n == 0) {
        if (conn.read_request().empty()) return;
        int on = 1, off = 0;
        ::setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
        conn.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
        conn.close_notify();
        ::setsockopt(fd, IPPROTO_TCP, TCP_CORK, &off, sizeof off);
        while (!conn.read_request().empty()) {  // until the client closes
        }
        return;
      }
      while (!conn.read_request().empty())
        if (!conn.write("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")) return;
    });

    TestLoop t;
    {
      TlsConfig tc;
      tc.ca_file = pki.ca_cert;
      auto tls = TlsContext::create(tc);
      REQUIRE(tls.ok());
      PoolOptions po;
      po.connection.host = "127.0.0.1";
      po.connection.port = static_cast<std::uint16_t>(server.port());
      po.connection.tls = *tls;
      po.connection.connect_timeout = 3000ms;
      po.max_connections = 1;
      auto made = ConnectionPool::create(t.loop, std::move(po));
      REQUIRE(made.ok());
      auto pool = std::move(made).value();

      // The first response is paused at its head (the consumer is slow), long enough for the
      // peer's close_notify to arrive behind it.
      std::unique_ptr<HttpExchange> first;
      bool first_head = false, first_done = false;
      Status first_status;
      std::string first_body;
      HttpHandlers h1;
      h1.on_head = [&](const HttpResponseHead&) {
        first_head = true;
        first->pause_body();
      };
      h1.on_body = [&](std::string_view b) { first_body.append(b); };
      h1.on_complete = [&](Status s) {
        first_status = std::move(s);
        first_done = true;
      };
      HttpRequest get;
      get.target = "/first";
      auto ex1 = pool->send(std::move(get), std::move(h1));
      REQUIRE(ex1.ok());
      first = std::move(*ex1);
      REQUIRE(t.run_until([&] { return first_head; }, 5000));
      t.run_for(200);

      // A POST waits for the pool's only connection (not replayable: it must not be sent on a
      // connection the peer has closed).
      bool second_done = false;
      Status second_status;
      std::string second_body;
      HttpHandlers h2;
      h2.on_body = [&](std::string_view b) { second_body.append(b); };
      h2.on_complete = [&](Status s) {
        second_status = std::move(s);
        second_done = true;
      };
      HttpRequest post;
      post.method = "POST";
      post.target = "/second";
      post.body = "x";
      auto ex2 = pool->send(std::move(post), std::move(h2));
      REQUIRE(ex2.ok());

      first->resume_body();
      REQUIRE(t.run_until([&] { return first_done && second_done; }, 5000));
      CHECK(first_status.ok());
      CHECK(first_body == "first");
      CHECK(second_status.ok());
      if (!second_status.ok()) MESSAGE(second_status.error().reason);
      CHECK(second_body == "second");
      CHECK(pool->counters().opened == 2);
    }
    CHECK(t.close_loop() == 0);
  }
}
