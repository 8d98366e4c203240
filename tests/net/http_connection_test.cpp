// HttpConnection against nginx and the scripted misbehaving server, on loopback.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "net/http_connection.h"
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
  HttpResponseHead head;
  int heads = 0;
  std::vector<int> informational;
  std::string body;
  int body_calls = 0;
};

HttpHandlers collect(Outcome& o) {
  HttpHandlers h;
  h.on_informational = [&o](const HttpResponseHead& r) { o.informational.push_back(r.status); };
  h.on_head = [&o](const HttpResponseHead& r) {
    o.head = r;
    ++o.heads;
  };
  h.on_body = [&o](std::string_view b) {
    o.body.append(b);
    ++o.body_calls;
  };
  h.on_complete = [&o](Status s) {
    o.status = std::move(s);
    o.done = true;
  };
  return h;
}

HttpConnectionOptions to(const std::string& host, int port) {
  HttpConnectionOptions o;
  o.host = host;
  o.port = static_cast<std::uint16_t>(port);
  o.connect_timeout = 3000ms;
  return o;
}

HttpRequest get(const std::string& target) {
  HttpRequest r;
  r.target = target;
  return r;
}

std::unique_ptr<HttpConnection> make(TestLoop& t, HttpConnectionOptions o) {
  auto c = HttpConnection::create(t.loop, std::move(o));
  REQUIRE(c.ok());
  return std::move(c).value();
}

// Sends one request and runs the loop until it completes.
Outcome fetch(TestLoop& t, HttpConnection& conn, HttpRequest req, int timeout_ms = 5000) {
  Outcome o;
  auto ex = conn.send(std::move(req), collect(o));
  REQUIRE(ex.ok());
  REQUIRE(t.run_until([&] { return o.done; }, timeout_ms));
  return o;
}

// A scripted server that answers every request on a connection with `response`.
ScriptServer respond_with(std::string response) {
  return ScriptServer([response](int& fd, int) {
    if (read_request(fd).empty()) return;
    write_all(fd, response);
    sleep_ms(200);
  });
}

}  // namespace

TEST_SUITE("HttpConnection") {
  TEST_CASE("a GET to nginx over IPv4 returns the status, headers and body") {
    TempDir dir;
    NginxServer nginx(dir.path());
    TestLoop t;
    {
      auto conn = make(t, to("127.0.0.1", nginx.plain_port));
      Outcome o = fetch(t, *conn, get("/hello"));
      CHECK(o.status.ok());
      CHECK(o.head.status == 200);
      CHECK(o.body == "hello\n");
      REQUIRE(o.head.content_length.has_value());
      CHECK(*o.head.content_length == 6);
      REQUIRE(o.head.find("content-type") != nullptr);
      CHECK(*o.head.find("Content-Type") == "text/plain");
      CHECK(conn->reusable());
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("IPv6 literals and host names connect too") {
    TempDir dir;
    NginxServer nginx(dir.path());
    TestLoop t;
    {
      auto v6 = make(t, to("::1", nginx.plain_port));
      Outcome a = fetch(t, *v6, get("/hello"));
      CHECK(a.status.ok());
      CHECK(a.body == "hello\n");
      auto named = make(t, to("localhost", nginx.plain_port));
      Outcome b = fetch(t, *named, get("/hello"));
      CHECK_MESSAGE(b.status.ok(), b.status.error().reason);
      CHECK(b.head.status == 200);
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("a host name reaches an IPv4-only server whatever order the resolver returns") {
    // Where "localhost" resolves to ::1 first (a common /etc/hosts), ::1 is refused and the next
    // address is tried; where it resolves to 127.0.0.1 only, this is the plain path.
    ScriptServer server = respond_with("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    TestLoop t;
    {
      auto conn = make(t, to("localhost", server.port()));
      Outcome o = fetch(t, *conn, get("/"));
      CHECK_MESSAGE(o.status.ok(), o.status.error().reason);
      CHECK(o.body == "ok");
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("a keep-alive connection carries many requests one after another") {
    TempDir dir;
    NginxServer nginx(dir.path());
    nginx.add_file("a.txt", "AAAA");
    TestLoop t;
    {
      auto conn = make(t, to("127.0.0.1", nginx.plain_port));
      for (int i = 0; i < 20; ++i) {
        Outcome o = fetch(t, *conn, get(i % 2 == 0 ? "/hello" : "/files/a.txt"));
        CHECK(o.status.ok());
        CHECK(o.body == (i % 2 == 0 ? "hello\n" : "AAAA"));
      }
      CHECK(conn->reusable());
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("Connection: close ends reuse and a later send is refused") {
    TempDir dir;
    NginxServer nginx(dir.path());
    TestLoop t;
    {
      auto conn = make(t, to("127.0.0.1", nginx.plain_port));
      Outcome o = fetch(t, *conn, get("/close"));
      CHECK(o.status.ok());
      CHECK(o.body == "bye");
      CHECK_FALSE(o.head.keep_alive);
      CHECK_FALSE(conn->reusable());
      Outcome unused;
      auto again = conn->send(get("/hello"), collect(unused));
      REQUIRE_FALSE(again.ok());
      CHECK(again.error().code == make_error_code(Errc::connection_closed));
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("HEAD and 204 responses complete without a body and keep the connection") {
    TempDir dir;
    NginxServer nginx(dir.path());
    nginx.add_file("big.bin", std::string(100000, 'x'));
    TestLoop t;
    {
      auto conn = make(t, to("127.0.0.1", nginx.plain_port));
      HttpRequest head = get("/files/big.bin");
      head.method = "HEAD";
      Outcome h = fetch(t, *conn, head);
      CHECK(h.status.ok());
      CHECK(h.head.status == 200);
      CHECK(*h.head.content_length == 100000);
      CHECK(h.body.empty());
      Outcome e = fetch(t, *conn, get("/empty"));
      CHECK(e.status.ok());
      CHECK(e.head.status == 204);
      CHECK(e.body.empty());
      Outcome after = fetch(t, *conn, get("/hello"));
      CHECK(after.body == "hello\n");
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("pause_body stops delivery until resume_body and the whole body arrives intact") {
    TempDir dir;
    NginxServer nginx(dir.path());
    std::string content;
    for (int i = 0; i < 400000; ++i) content += static_cast<char>('a' + i % 26);
    nginx.add_file("big.txt", content);
    TestLoop t;
    {
      auto conn = make(t, to("127.0.0.1", nginx.plain_port));
      Outcome o;
      HttpHandlers h = collect(o);
      std::unique_ptr<HttpExchange> ex;
      bool paused = false;
      int calls_while_paused = 0;
      h.on_body = [&](std::string_view b) {
        if (paused) ++calls_while_paused;
        o.body.append(b);
        ex->pause_body();
        paused = true;
      };
      auto r = conn->send(get("/files/big.txt"), h);
      REQUIRE(r.ok());
      ex = std::move(r).value();
      int resumes = 0;
      while (!o.done && resumes < 10000) {
        REQUIRE(t.run_until([&] { return paused || o.done; }));
        if (o.done) break;
        std::size_t before = o.body.size();
        t.run_for(2);
        if (o.body.size() != before) ++calls_while_paused;  // nothing may arrive while paused
        paused = false;
        ex->resume_body();
        ++resumes;
      }
      CHECK_MESSAGE(o.status.ok(), o.status.error().reason);
      CHECK(calls_while_paused == 0);
      CHECK(resumes > 1);
      CHECK(o.body.size() == content.size());
      std::size_t diff = 0;
      while (diff < o.body.size() && diff < content.size() && o.body[diff] == content[diff]) ++diff;
      CHECK(diff == content.size());
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("a chunked stream is delivered piece by piece as it arrives, like a watch") {
    ScriptServer server([](int& fd, int) {
      if (read_request(fd).empty()) return;
      write_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
      for (int i = 0; i < 3; ++i) {
        std::string event = "{\"type\":\"ADDED\",\"n\":" + std::to_string(i) + "}\n";
        char size[16];
        std::snprintf(size, sizeof size, "%zx\r\n", event.size());
        write_all(fd, std::string(size) + event + "\r\n");
        sleep_ms(60);
      }
      write_all(fd, "0\r\n\r\n");
      sleep_ms(100);
    });
    TestLoop t;
    {
      auto conn = make(t, to("127.0.0.1", server.port()));
      Outcome o;
      std::vector<std::string> events;
      HttpHandlers h = collect(o);
      h.on_body = [&](std::string_view b) { events.emplace_back(b); };
      auto ex = conn->send(get("/api/v1/endpointslices?watch=1"), h);
      REQUIRE(ex.ok());
      REQUIRE(t.run_until([&] { return events.size() == 1; }));
      CHECK_FALSE(o.done);  // the first event arrived while the response is still open
      CHECK(events[0] == "{\"type\":\"ADDED\",\"n\":0}\n");
      REQUIRE(t.run_until([&] { return o.done; }));
      CHECK(o.status.ok());
      CHECK(o.head.chunked);
      CHECK(events.size() == 3);
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("a response split into single bytes, with chunk extensions and trailers, parses the same") {
    const std::string response =
        "HTTP/1.1 200 OK\r\nX-Long-Header-Name: some long value\r\nTransfer-Encoding: chunked\r\n\r\n"
        "4;ext=1\r\nwiki\r\n5\r\npedia\r\n0\r\nX-Trailer: t\r\n\r\n"
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nend";
    ScriptServer server([response](int& fd, int) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      std::size_t split = response.find("HTTP/1.1", 10);
      if (read_request(fd).empty()) return;
      for (std::size_t i = 0; i < split; ++i) {
        write_all(fd, response.substr(i, 1));
        if (i % 16 == 0) sleep_ms(1);
      }
      if (read_request(fd).empty()) return;
      for (std::size_t i = split; i < response.size(); ++i) write_all(fd, response.substr(i, 1));
      sleep_ms(100);
    });
    TestLoop t;
    {
      auto conn = make(t, to("127.0.0.1", server.port()));
      Outcome a = fetch(t, *conn, get("/"));
      CHECK(a.status.ok());
      CHECK(a.body == "wikipedia");
      REQUIRE(a.head.find("x-long-header-name") != nullptr);
      CHECK(*a.head.find("x-long-header-name") == "some long value");
      CHECK(conn->reusable());
      Outcome b = fetch(t, *conn, get("/"));
      CHECK(b.status.ok());
      CHECK(b.body == "end");
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("random garbage after a valid status line never crashes or hangs") {
    std::uint32_t seed = 12345;
    auto next = [&seed] {
      seed = seed * 1664525u + 1013904223u;
      return seed >> 8;
    };
    for (int round = 0; round < 30; ++round) {
      std::string junk = "HTTP/1.1 200 OK\r\n";
      std::size_t len = next() % 300;
      for (std::size_t i = 0; i < len; ++i) {
        // Mostly header-ish characters, with CR/LF and binary mixed in.
        static const char alphabet[] = "ab:\r\n 0123456789;xTransfer-Encoding: chunked\r\nContent-Length\x01\xff";
        junk += alphabet[next() % (sizeof alphabet - 1)];
      }
      ScriptServer server([junk](int& fd, int) {
        if (read_request(fd).empty()) return;
        write_all(fd, junk);
      });
      TestLoop t;
      {
        HttpConnectionOptions o = to("127.0.0.1", server.port());
        o.read_idle_timeout = 2000ms;  // a parse that waits for more bytes ends on EOF anyway
        auto conn = make(t, o);
        Outcome r = fetch(t, *conn, get("/"));
        CHECK(r.done);
        if (!r.status.ok()) CHECK_FALSE(r.status.error().reason.empty());
      }
      CHECK(t.close_loop() == 0);
    }
  }

  TEST_CASE("1xx responses are reported and the final response follows") {
    ScriptServer server = respond_with(
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    TestLoop t;
    {
      auto conn = make(t, to("127.0.0.1", server.port()));
      Outcome o = fetch(t, *conn, get("/"));
      CHECK(o.status.ok());
      CHECK(o.informational == std::vector<int>{100, 103});
      CHECK(o.heads == 1);
      CHECK(o.head.status == 200);
      CHECK(o.body == "ok");
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("a body read until EOF completes when the server closes") {
    ScriptServer server([](int& fd, int) {
      if (read_request(fd).empty()) return;
      write_all(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil-eof");
    });
    TestLoop t;
    {
      auto conn = make(t, to("127.0.0.1", server.port()));
      Outcome o = fetch(t, *conn, get("/"));
      CHECK(o.status.ok());
      CHECK(o.body == "until-eof");
      CHECK_FALSE(conn->reusable());
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("a streamed chunked request body reaches the server") {
    std::string received;
    ScriptServer server([&received](int& fd, int) {
      std::string head = read_request(fd);
      // Read the chunked body up to the last chunk.
      std::string rest = head.substr(head.find("\r\n\r\n") + 4);
      char buf[4096];
      while (rest.find("0\r\n\r\n") == std::string::npos) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) break;
        rest.append(buf, static_cast<std::size_t>(n));
      }
      received = head.substr(0, head.find("\r\n\r\n")) + "|" + rest;
      write_all(fd, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
      sleep_ms(100);
    });
    TestLoop t;
    {
      auto conn = make(t, to("127.0.0.1", server.port()));
      HttpRequest req = get("/upload");
      req.method = "POST";
      req.body_mode = BodyMode::streamed_chunked;
      Outcome o;
      auto ex = conn->send(req, collect(o));
      REQUIRE(ex.ok());
      CHECK((*ex)->write_body("hello ").ok());
      t.run_for(20);
      CHECK((*ex)->write_body("world").ok());
      CHECK((*ex)->end_body().ok());
      CHECK_FALSE((*ex)->write_body("late").ok());
      REQUIRE(t.run_until([&] { return o.done; }));
      CHECK(o.status.ok());
      CHECK(o.head.status == 201);
      CHECK(received.find("Transfer-Encoding: chunked") != std::string::npos);
      CHECK(received.find("|6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n") != std::string::npos);
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("write_body reports a full send buffer and on_writable says when to continue") {
    std::atomic<std::size_t> received{0};
    ScriptServer server([&received](int& fd, int) {
      std::string data;
      sleep_ms(300);  // let the client fill the socket buffers first
      char buf[65536];
      std::string tail;
      while (true) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) return;
        received += static_cast<std::size_t>(n);
        tail.append(buf, static_cast<std::size_t>(n));
        if (tail.size() > 16) tail.erase(0, tail.size() - 16);
        if (tail.find("\r\n0\r\n\r\n") != std::string::npos) break;
      }
      write_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
      sleep_ms(100);
    });
    TestLoop t;
    {
      HttpConnectionOptions o = to("127.0.0.1", server.port());
      o.write_high_water = 1024;
      auto conn = make(t, o);
      HttpRequest req = get("/upload");
      req.method = "PUT";
      req.body_mode = BodyMode::streamed_chunked;
      Outcome out;
      HttpHandlers h = collect(out);
      int writable = 0;
      h.on_writable = [&] { ++writable; };
      auto ex = conn->send(req, h);
      REQUIRE(ex.ok());
      // Before the connection is up everything is buffered: above the mark at once.
      auto first = (*ex)->write_body(std::string(4096, 'a'));
      REQUIRE(first.ok());
      CHECK_FALSE(*first);
      REQUIRE(t.run_until([&] { return writable == 1; }));
      // Now fill the kernel buffers until the client has to queue.
      std::string chunk(256 * 1024, 'b');
      std::size_t written = 4096;
      bool full = false;
      for (int i = 0; i < 1024 && !full; ++i) {
        auto r = (*ex)->write_body(chunk);
        REQUIRE(r.ok());
        written += chunk.size();
        full = !*r;
      }
      REQUIRE(full);
      CHECK(writable == 1);
      REQUIRE(t.run_until([&] { return writable == 2; }, 5000));
      CHECK((*ex)->end_body().ok());
      REQUIRE(t.run_until([&] { return out.done; }));
      CHECK(out.status.ok());
      CHECK(out.body == "ok");
      CHECK(received.load() > written);  // payload plus chunk framing
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("a 304 with a Content-Length has no body and the connection stays usable") {
    ScriptServer server([](int& fd, int) {
      if (read_request(fd).empty()) return;
      write_all(fd, "HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\nETag: \"x\"\r\n\r\n");
      if (read_request(fd).empty()) return;
      write_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
      sleep_ms(100);
    });
    TestLoop t;
    {
      auto conn = make(t, to("127.0.0.1", server.port()));
      Outcome a = fetch(t, *conn, get("/"));
      CHECK(a.status.ok());
      CHECK(a.head.status == 304);
      CHECK(a.body.empty());
      Outcome b = fetch(t, *conn, get("/"));
      CHECK(b.status.ok());
      CHECK(b.body == "hi");
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("a buffered POST body is sent with its Content-Length") {
    std::string received;
    ScriptServer server([&received](int& fd, int) {
      received = read_request(fd);
      write_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
      sleep_ms(100);
    });
    TestLoop t;
    {
      auto conn = make(t, to("127.0.0.1", server.port()));
      HttpRequest req = get("/p");
      req.method = "POST";
      req.body = "a=1&b=2";
      req.headers.push_back({"Authorization", "Bearer abc"});
      Outcome o = fetch(t, *conn, req);
      CHECK(o.status.ok());
      CHECK(received.find("POST /p HTTP/1.1\r\n") == 0);
      CHECK(received.find("Host: 127.0.0.1:" + std::to_string(server.port()) + "\r\n") != std::string::npos);
      CHECK(received.find("Authorization: Bearer abc\r\n") != std::string::npos);
      CHECK(received.find("Content-Length: 7\r\n\r\na=1&b=2") != std::string::npos);
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("bad requests are refused at send with invalid_argument") {
    TestLoop t;
    {
      auto conn = make(t, to("127.0.0.1", 9));
      Outcome o;
      HttpRequest req = get("/");
      req.headers.push_back({"X-Evil", "a\r\nInjected: 1"});
      auto r = conn->send(req, collect(o));
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code == make_error_code(Errc::invalid_argument));
      CHECK(r.error().reason.find("X-Evil") != std::string::npos);
      HttpConnectionOptions bad;
      bad.host = "127.0.0.1";
      auto c = HttpConnection::create(t.loop, bad);
      REQUIRE_FALSE(c.ok());
      CHECK(c.error().code == make_error_code(Errc::invalid_argument));
    }
    CHECK(t.close_loop() == 0);
  }
}

TEST_SUITE("HttpConnection errors") {
  TEST_CASE("a refused connection fails with connect_failed") {
    TestLoop t;
    {
      auto conn = make(t, to("127.0.0.1", free_port()));
      Outcome o = fetch(t, *conn, get("/"));
      REQUIRE_FALSE(o.status.ok());
      CHECK(o.status.error().code == make_error_code(Errc::connect_failed));
      CHECK(o.heads == 0);
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("a connect that never completes fails with timed_out after connect_timeout") {
    // A listener whose accept queue is full: the kernel drops further SYNs, so connect hangs.
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(listen(listener, 0) == 0);
    socklen_t len = sizeof a;
    getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len);
    std::vector<int> fillers;
    for (int i = 0; i < 4; ++i) {
      int f = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      (void)connect(f, reinterpret_cast<sockaddr*>(&a), sizeof a);
      fillers.push_back(f);
    }
    sleep_ms(50);
    TestLoop t;
    {
      HttpConnectionOptions o = to("127.0.0.1", ntohs(a.sin_port));
      o.connect_timeout = 200ms;
      auto conn = make(t, o);
      Outcome r = fetch(t, *conn, get("/"));
      REQUIRE_FALSE(r.status.ok());
      CHECK(r.status.error().code == make_error_code(Errc::timed_out));
      CHECK(r.status.error().reason.find("connect") != std::string::npos);
    }
    CHECK(t.close_loop() == 0);
    for (int f : fillers) close(f);
    close(listener);
  }

  TEST_CASE("connect() reports success later, never inside the call") {
    TempDir dir;
    NginxServer nginx(dir.path());
    TestLoop t;
    {
      auto conn = make(t, to("127.0.0.1", nginx.plain_port));
      int calls = 0;
      Status result;
      REQUIRE(conn->connect([&](Status s) {
        ++calls;
        result = s;
      }).ok());
      CHECK(calls == 0);
      REQUIRE(t.run_until([&] { return calls == 1; }));
      CHECK(result.ok());
      CHECK(conn->connected());
      REQUIRE(conn->connect([&](Status) { ++calls; }).ok());
      CHECK(calls == 1);
      REQUIRE(t.run_until([&] { return calls == 2; }));
    }
    CHECK(t.close_loop() == 0);
  }

  struct BadCase {
    const char* name;
    std::string response;
    Errc expected;
  };

  TEST_CASE("malformed or truncated responses fail with a reason and close the connection") {
    std::vector<BadCase> cases = {
        {"malformed status line", "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n", Errc::http_parse_error},
        {"garbage", "\x16\x03\x01 this is not http at all\r\n\r\n", Errc::http_parse_error},
        {"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", Errc::http_parse_error},
        {"truncated chunked body", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", Errc::connection_closed},
        {"truncated content-length body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", Errc::connection_closed},
        {"truncated head", "HTTP/1.1 200 OK\r\nContent-Le", Errc::connection_closed},
        {"oversize header", "HTTP/1.1 200 OK\r\nX-Big: " + std::string(70000, 'a') + "\r\nContent-Length: 0\r\n\r\n",
         Errc::http_limit_exceeded},
    };
    std::string too_many = "HTTP/1.1 200 OK\r\n";
    for (int i = 0; i < 200; ++i) too_many += "X-H" + std::to_string(i) + ": v\r\n";
    cases.push_back({"too many headers", too_many + "Content-Length: 0\r\n\r\n", Errc::http_limit_exceeded});
    for (const auto& c : cases) {
      CAPTURE(c.name);
      std::string response = c.response;
      ScriptServer server([response](int& fd, int) {
        if (read_request(fd).empty()) return;
        write_all(fd, response);
        // then close (EOF)
      });
      TestLoop t;
      {
        auto conn = make(t, to("127.0.0.1", server.port()));
        Outcome o = fetch(t, *conn, get("/"));
        REQUIRE_FALSE(o.status.ok());
        CHECK(o.status.error().code == make_error_code(c.expected));
        CHECK_FALSE(o.status.error().reason.empty());
        CHECK_FALSE(conn->reusable());
      }
      CHECK(t.close_loop() == 0);
    }
  }

  TEST_CASE("a peer that resets mid-body fails the exchange with connection_closed") {
    ScriptServer server([](int& fd, int) {
      if (read_request(fd).empty()) return;
      write_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + std::string(1000, 'x'));
      sleep_ms(50);
      reset_connection(fd);
    });
    TestLoop t;
    {
      auto conn = make(t, to("127.0.0.1", server.port()));
      Outcome o = fetch(t, *conn, get("/"));
      REQUIRE_FALSE(o.status.ok());
      CHECK(o.status.error().code == make_error_code(Errc::connection_closed));
      CHECK(o.body.size() == 1000);
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("a slow server hits the response header timeout") {
    ScriptServer server([](int& fd, int) {
      if (read_request(fd).empty()) return;
      for (int i = 0; i < 50; ++i) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 20) > 0) return;  // the client went away
      }
    });
    TestLoop t;
    {
      HttpConnectionOptions o = to("127.0.0.1", server.port());
      o.response_header_timeout = 100ms;
      auto conn = make(t, o);
      auto start = uv_now(&t.loop);
      Outcome r = fetch(t, *conn, get("/"));
      REQUIRE_FALSE(r.status.ok());
      CHECK(r.status.error().code == make_error_code(Errc::timed_out));
      CHECK(uv_now(&t.loop) - start >= 90);
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("a body that stalls hits the read idle timeout") {
    ScriptServer server([](int& fd, int) {
      if (read_request(fd).empty()) return;
      write_all(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
      for (int i = 0; i < 50; ++i) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 20) > 0) return;
      }
    });
    TestLoop t;
    {
      HttpConnectionOptions o = to("127.0.0.1", server.port());
      o.read_idle_timeout = 100ms;
      auto conn = make(t, o);
      Outcome r = fetch(t, *conn, get("/"));
      REQUIRE_FALSE(r.status.ok());
      CHECK(r.status.error().code == make_error_code(Errc::timed_out));
      CHECK(r.body == "abc");
    }
    CHECK(t.close_loop() == 0);
  }
}

TEST_SUITE("HttpConnection lifetime") {
  TEST_CASE("dropping the connection inside on_body stops every callback") {
    ScriptServer server([](int& fd, int) {
      if (read_request(fd).empty()) return;
      write_all(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
      sleep_ms(30);
      write_all(fd, "3\r\ndef\r\n0\r\n\r\n");
      sleep_ms(100);
    });
    TestLoop t;
    {
      std::unique_ptr<HttpConnection> conn = make(t, to("127.0.0.1", server.port()));
      Outcome o;
      HttpHandlers h = collect(o);
      int after_drop = 0;
      h.on_body = [&](std::string_view b) {
        if (!conn) {
          ++after_drop;
          return;
        }
        o.body.append(b);
        conn.reset();
      };
      h.on_complete = [&](Status) { ++after_drop; };
      auto ex = conn->send(get("/"), h);
      REQUIRE(ex.ok());
      REQUIRE(t.run_until([&] { return !conn; }));
      t.run_for(150);
      CHECK(o.body == "abc");
      CHECK(after_drop == 0);
      CHECK_FALSE((*ex)->write_body("x").ok());
      ex->reset();
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("dropping the exchange inside on_head cancels it and no callback follows") {
    TempDir dir;
    NginxServer nginx(dir.path());
    TestLoop t;
    {
      auto conn = make(t, to("127.0.0.1", nginx.plain_port));
      std::unique_ptr<HttpExchange> ex;
      int calls = 0;
      HttpHandlers h;
      h.on_head = [&](const HttpResponseHead&) {
        ++calls;
        ex.reset();
      };
      h.on_body = [&](std::string_view) { ++calls; };
      h.on_complete = [&](Status) { ++calls; };
      auto r = conn->send(get("/hello"), h);
      REQUIRE(r.ok());
      ex = std::move(r).value();
      REQUIRE(t.run_until([&] { return !ex; }));
      t.run_for(50);
      CHECK(calls == 1);
      CHECK_FALSE(conn->reusable());  // an abandoned response poisons the stream
    }
    CHECK(t.close_loop() == 0);
  }

  TEST_CASE("dropping a connection that is still connecting is safe") {
    TempDir dir;
    NginxServer nginx(dir.path());
    TestLoop t;
    {
      int calls = 0;
      for (int i = 0; i < 5; ++i) {
        auto conn = make(t, to(i % 2 ? "localhost" : "127.0.0.1", nginx.plain_port));
        HttpHandlers h;
        h.on_complete = [&](Status) { ++calls; };
        auto ex = conn->send(get("/hello"), h);
        REQUIRE(ex.ok());
        conn.reset();  // the exchange handle outlives its connection
      }
      t.run_for(50);
      CHECK(calls == 0);
    }
    CHECK(t.close_loop() == 0);
  }
}
