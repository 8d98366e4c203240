// lib/net behaviours found in the review of the optimized request path.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <memory>
#include <string>

#include "net/connection_pool.h"
#include "net/support/net_certs.h"
#include "net/support/net_loop.h"
#include "net/support/net_process.h"
#include "net/support/net_script_server.h"
#include "net/tls_context.h"

using namespace kupstream;
using namespace kupstream::net;
using namespace kupstream::test;
using namespace std::chrono_literals;

namespace {

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};

// Reads one request (head, and a Content-Length body) over TLS. False on EOF/error/timeout.
bool tls_read_request(SSL* ssl) {
  std::string in;
  char buf[4096];
  std::size_t need = std::string::npos;
  for (;;) {
    const auto end = in.find("\r\n\r\n");
    if (end != std::string::npos && need == std::string::npos) {
      need = end + 4;
      const auto cl = in.find("Content-Length: ");
      if (cl != std::string::npos && cl < end) need += std::stoul(in.substr(cl + 16));
    }
    if (need != std::string::npos && in.size() >= need) return true;
    const int n = SSL_read(ssl, buf, sizeof buf);
    if (n <= 0) return false;
    in.append(buf, static_cast<std::size_t>(n));
  }
}

bool tls_write(SSL* ssl, const std::string& s) { return SSL_write(ssl, s.data(), static_cast<int>(s.size())) == static_cast<int>(s.size()); }

}  // namespace

TEST_SUITE("ConnectionPool") {
  TEST_CASE("a TLS connection whose peer closed while the response was paused is not reused") {
    TempDir dir;
    TestPki pki(dir.path());
    std::unique_ptr<SSL_CTX, SslCtxFree> server_ctx(SSL_CTX_new(TLS_server_method()));
    REQUIRE(server_ctx);
    REQUIRE(SSL_CTX_use_certificate_chain_file(server_ctx.get(), pki.server_cert.c_str()) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey_file(server_ctx.get(), pki.server_key.c_str(), SSL_FILETYPE_PEM) == 1);

    // Connection 0 answers one request with keep-alive framing and closes at once (close_notify
    // in the same TCP segment as the response: a Pod shutting down). Later connections answer
    // every request.
    ScriptServer server([ctx = server_ctx.get()](int& fd, int n) {
      timeval tv{3, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx));
      SSL_set_fd(ssl.get(), fd);
      if (SSL_accept(ssl.get()) != 1) return;
      if (n == 0) {
        if (!tls_read_request(ssl.get())) return;
        int on = 1, off = 0;
        ::setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
        tls_write(ssl.get(), "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
        SSL_shutdown(ssl.get());
        ::setsockopt(fd, IPPROTO_TCP, TCP_CORK, &off, sizeof off);
        char b[256];
        while (SSL_read(ssl.get(), b, sizeof b) > 0) {
        }
        return;
      }
      while (tls_read_request(ssl.get()))
        if (!tls_write(ssl.get(), "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")) return;
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
