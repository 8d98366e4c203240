// HttpConnection over TLS against nginx (good, wrong-name, expired certificates, mTLS) and
// openssl s_server, with a throw-away PKI made by the test.
#include <doctest/doctest.h>

#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "net/http_connection.h"
#include "net/support/net_certs.h"
#include "net/support/net_loop.h"
#include "net/support/net_nginx.h"
#include "net/support/net_script_server.h"
#include "net/support/net_tls_server.h"
#include "net/tls_context.h"

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

// Shared PKI and nginx for the whole file: generating certificates costs time.
struct Fixture {
  TempDir dir;
  TestPki pki{dir.path()};
  NginxServer nginx{dir.path(), &pki};
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

std::shared_ptr<TlsContext> context(TlsConfig config) {
  auto c = TlsContext::create(config);
  REQUIRE_MESSAGE(c.ok(), c.error().reason);
  return *c;
}

TlsConfig trusting_ca() {
  TlsConfig c;
  c.ca_file = fixture().pki.ca_cert;
  return c;
}

HttpConnectionOptions tls_to(const std::string& host, int port, std::shared_ptr<TlsContext> tls) {
  HttpConnectionOptions o;
  o.host = host;
  o.port = static_cast<std::uint16_t>(port);
  o.tls = std::move(tls);
  o.connect_timeout = 3000ms;
  return o;
}

Outcome fetch(TestLoop& t, HttpConnection& conn, const std::string& target) {
  Outcome o;
  HttpRequest req;
  req.target = target;
  HttpHandlers h;
  h.on_head = [&o](const HttpResponseHead& r) { o.http_status = r.status; };
  h.on_body = [&o](std::string_view b) { o.body.append(b); };
  h.on_complete = [&o](Status s) {
    o.status = std::move(s);
    o.done = true;
  };
  auto ex = conn.send(req, h);
  REQUIRE(ex.ok());
  REQUIRE(t.run_until([&] { return o.done; }, 5000));
  return o;
}

Outcome fetch_once(const HttpConnectionOptions& options, const std::string& target = "/hello") {
  TestLoop t;
  Outcome o;
  {
    auto conn = HttpConnection::create(t.loop, options);
    REQUIRE(conn.ok());
    o = fetch(t, **conn, target);
  }
  CHECK(t.close_loop() == 0);
  return o;
}

// One GET to a TLS server (this process's TLS library, the test PKI's server certificate) that
// answers `answer` and closes: after a close_notify alert, or (close_notify false) by just
// closing the TCP connection, as a truncating attacker or a crashing server would.
Outcome fetch_tls_answer(const std::string& answer, bool close_notify) {
  TlsServerContext ctx(fixture().pki);
  ScriptServer server([&](int& fd, int) {
    TlsServerConn conn(ctx.get(), fd);
    if (conn.read_request().empty() || !conn.write(answer)) return;
    if (close_notify) conn.close_notify();
  });
  return fetch_once(tls_to("127.0.0.1", server.port(), context(trusting_ca())));
}

}  // namespace

TEST_SUITE("HttpConnection TLS") {
  TEST_CASE("a close-delimited body over TLS is complete only after close_notify (RFC 9112 9.8)") {
    const std::string answer = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nthe whole body";
    Outcome o = fetch_tls_answer(answer, true);
    REQUIRE_MESSAGE(o.status.ok(), o.status.error().reason);
    CHECK(o.body == "the whole body");

    // Without close_notify the end of the body cannot be told from a truncation.
    o = fetch_tls_answer(answer, false);
    REQUIRE_FALSE(o.status.ok());
    CHECK(o.status.error().code == make_error_code(Errc::connection_closed));
    CHECK(o.status.error().reason.find("close_notify") != std::string::npos);
  }

  TEST_CASE("a framed body over TLS is complete without close_notify, whatever follows") {
    const std::string answer = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nframe";
    Outcome o = fetch_tls_answer(answer, false);
    REQUIRE_MESSAGE(o.status.ok(), o.status.error().reason);
    CHECK(o.body == "frame");
  }

  TEST_CASE("HTTPS to nginx verifies the chain and the IP SAN, negotiates http/1.1 and reuses the connection") {
    Fixture& f = fixture();
    TestLoop t;
    {
      auto conn = HttpConnection::create(t.loop, tls_to("127.0.0.1", f.nginx.tls_port, context(trusting_ca())));
      REQUIRE(conn.ok());
      Outcome a = fetch(t, **conn, "/hello");
      REQUIRE_MESSAGE(a.status.ok(), a.status.error().reason);
      CHECK(a.http_status == 200);
      CHECK(a.body == "hello\n");
      CHECK((*conn)->alpn() == "http/1.1");
      Outcome b = fetch(t, **conn, "/hello");
      CHECK(b.status.ok());
      CHECK((*conn)->reusable());
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("a CA given as in-memory PEM and the DNS name localhost verify too") {
    Fixture& f = fixture();
    TlsConfig c;
    c.ca_pem = read_file(f.pki.ca_cert);
    Outcome o = fetch_once(tls_to("localhost", f.nginx.tls_port, context(c)));
    CHECK_MESSAGE(o.status.ok(), o.status.error().reason);
    Outcome v6 = fetch_once(tls_to("::1", f.nginx.tls_port, context(c)));
    CHECK_MESSAGE(v6.status.ok(), v6.status.error().reason);
  }

  TEST_CASE("a certificate for another name fails with tls_verify_failed") {
    Fixture& f = fixture();
    Outcome o = fetch_once(tls_to("127.0.0.1", f.nginx.wrong_name_port, context(trusting_ca())));
    REQUIRE_FALSE(o.status.ok());
    CHECK(o.status.error().code == make_error_code(Errc::tls_verify_failed));
    CHECK(o.status.error().reason.find("127.0.0.1") != std::string::npos);
  }

  TEST_CASE("tls-server-name overrides the name checked and sent as SNI") {
    Fixture& f = fixture();
    TlsConfig c = trusting_ca();
    c.server_name = "wrong.example";
    Outcome o = fetch_once(tls_to("127.0.0.1", f.nginx.wrong_name_port, context(c)));
    CHECK_MESSAGE(o.status.ok(), o.status.error().reason);
    // ... and the override is enforced against the good certificate, which lacks that name.
    Outcome mismatch = fetch_once(tls_to("127.0.0.1", f.nginx.tls_port, context(c)));
    REQUIRE_FALSE(mismatch.status.ok());
    CHECK(mismatch.status.error().code == make_error_code(Errc::tls_verify_failed));
  }

  TEST_CASE("an expired certificate fails with tls_verify_failed naming the expiry") {
    Fixture& f = fixture();
    Outcome o = fetch_once(tls_to("127.0.0.1", f.nginx.expired_port, context(trusting_ca())));
    REQUIRE_FALSE(o.status.ok());
    CHECK(o.status.error().code == make_error_code(Errc::tls_verify_failed));
    CHECK(o.status.error().reason.find("expired") != std::string::npos);
  }

  TEST_CASE("an unknown CA fails with tls_verify_failed") {
    Fixture& f = fixture();
    TlsConfig c;
    c.ca_file = f.pki.other_ca_cert;
    Outcome o = fetch_once(tls_to("127.0.0.1", f.nginx.tls_port, context(c)));
    REQUIRE_FALSE(o.status.ok());
    CHECK(o.status.error().code == make_error_code(Errc::tls_verify_failed));
  }

  TEST_CASE("insecure_skip_verify accepts a wrong-name certificate and logs a warning") {
    Fixture& f = fixture();
    TlsConfig c;
    c.insecure_skip_verify = true;
    HttpConnectionOptions o = tls_to("127.0.0.1", f.nginx.wrong_name_port, context(c));
    std::vector<std::string> warnings;
    o.log = [&](LogLevel level, std::string_view m) {
      if (level == LogLevel::warning) warnings.emplace_back(m);
    };
    Outcome r = fetch_once(o);
    CHECK_MESSAGE(r.status.ok(), r.status.error().reason);
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0].find("DISABLED") != std::string::npos);
  }

  TEST_CASE("TLS to a plain-HTTP port fails with tls_handshake_failed") {
    Fixture& f = fixture();
    Outcome o = fetch_once(tls_to("127.0.0.1", f.nginx.plain_port, context(trusting_ca())));
    REQUIRE_FALSE(o.status.ok());
    CHECK(o.status.error().code == make_error_code(Errc::tls_handshake_failed));
  }

  TEST_CASE("a peer that resets during the handshake fails with tls_handshake_failed") {
    ScriptServer server([](int& fd, int) {
      char buf[512];
      (void)read(fd, buf, sizeof buf);  // the ClientHello
      reset_connection(fd);
    });
    Outcome o = fetch_once(tls_to("127.0.0.1", server.port(), context(trusting_ca())));
    REQUIRE_FALSE(o.status.ok());
    CHECK(o.status.error().code == make_error_code(Errc::tls_handshake_failed));
  }

  TEST_CASE("a second connection resumes the TLS session") {
    Fixture& f = fixture();
    auto ctx = context(trusting_ca());
    TestLoop t;
    {
      auto first = HttpConnection::create(t.loop, tls_to("127.0.0.1", f.nginx.tls_port, ctx));
      REQUIRE(first.ok());
      CHECK(fetch(t, **first, "/hello").status.ok());
      CHECK_FALSE((*first)->tls_resumed());
      REQUIRE(t.run_until([&] { return ctx->sessions_cached() > 0; }, 2000));
      auto second = HttpConnection::create(t.loop, tls_to("127.0.0.1", f.nginx.tls_port, ctx));
      REQUIRE(second.ok());
      CHECK(fetch(t, **second, "/hello").status.ok());
      CHECK((*second)->tls_resumed());
    }
    CHECK(t.close_loop() == 0);
  }
}

TEST_SUITE("HttpConnection mTLS") {
  TEST_CASE("a client certificate from files is accepted by nginx with ssl_verify_client on") {
    Fixture& f = fixture();
    TlsConfig c = trusting_ca();
    c.cert_file = f.pki.client_cert;
    c.key_file = f.pki.client_key;
    Outcome o = fetch_once(tls_to("127.0.0.1", f.nginx.mtls_port, context(c)), "/whoami");
    REQUIRE_MESSAGE(o.status.ok(), o.status.error().reason);
    CHECK(o.http_status == 200);
    CHECK(o.body.find("CN=kupstream-client") != std::string::npos);
  }

  TEST_CASE("a client certificate from memory (kubeconfig client-certificate-data) works too") {
    Fixture& f = fixture();
    TlsConfig c;
    c.ca_pem = read_file(f.pki.ca_cert);
    c.cert_pem = read_file(f.pki.client_cert);
    c.key_pem = read_file(f.pki.client_key);
    Outcome o = fetch_once(tls_to("127.0.0.1", f.nginx.mtls_port, context(c)), "/whoami");
    REQUIRE_MESSAGE(o.status.ok(), o.status.error().reason);
    CHECK(o.body.find("CN=kupstream-client") != std::string::npos);
  }

  TEST_CASE("without a client certificate nginx refuses the request") {
    Fixture& f = fixture();
    Outcome o = fetch_once(tls_to("127.0.0.1", f.nginx.mtls_port, context(trusting_ca())), "/whoami");
    // nginx answers 400 "No required SSL certificate was sent" (TLS 1.3 sends no alert).
    if (o.status.ok()) {
      CHECK(o.http_status == 400);
    } else {
      CHECK(o.status.error().code == make_error_code(Errc::tls_handshake_failed));
    }
  }
}

TEST_SUITE("HttpConnection openssl s_server") {
  TEST_CASE("GET / against openssl s_server -www succeeds over TLS 1.2 and TLS 1.3") {
    Fixture& f = fixture();
    for (const char* version : {"-tls1_2", "-tls1_3"}) {
      CAPTURE(version);
      int port = free_port();
      ProcessGuard server({"openssl", "s_server", "-accept", "127.0.0.1:" + std::to_string(port), "-cert",
                           f.pki.server_cert, "-key", f.pki.server_key, "-www", version, "-quiet"});
      REQUIRE(wait_for_port(port, 5000));
      Outcome o = fetch_once(tls_to("127.0.0.1", port, context(trusting_ca())), "/");
      REQUIRE_MESSAGE(o.status.ok(), o.status.error().reason);
      CHECK(o.http_status == 200);
      CHECK_FALSE(o.body.empty());
    }
  }

  TEST_CASE("openssl s_server with the wrong-name certificate is rejected") {
    Fixture& f = fixture();
    int port = free_port();
    ProcessGuard server({"openssl", "s_server", "-accept", "127.0.0.1:" + std::to_string(port), "-cert",
                         f.pki.wrong_cert, "-key", f.pki.wrong_key, "-www", "-quiet"});
    REQUIRE(wait_for_port(port, 5000));
    Outcome o = fetch_once(tls_to("127.0.0.1", port, context(trusting_ca())), "/");
    REQUIRE_FALSE(o.status.ok());
    CHECK(o.status.error().code == make_error_code(Errc::tls_verify_failed));
  }
}
