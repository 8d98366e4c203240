// SIGPIPE: the client's writes must not raise it, so a host may leave SIGPIPE at its default.
//
// Each case runs in a forked child whose SIGPIPE disposition is SIG_DFL (the test main ignores
// it, as hosts used to have to): if anything in the child raises SIGPIPE, the child dies of it
// and the parent sees the signal. The first case is the control: it shows that the scenario
// (writing to a loopback peer that has reset the connection) does raise SIGPIPE through a plain
// write(2), which is what libuv's uv_write/uv_try_write use.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <string>

#include "net/connection_pool.h"
#include "net/http_connection.h"
#include "net/support/net_loop.h"
#include "net/support/net_script_server.h"

using namespace kupstream;
using namespace kupstream::net;
using namespace kupstream::test;
using namespace std::chrono_literals;

namespace {

struct ChildResult {
  bool exited = false;
  int exit_code = -1;
  int signal = 0;
};

// Runs body() in a child with SIGPIPE at SIG_DFL; body returns the exit code.
template <class F>
ChildResult run_in_child(F body) {
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    std::signal(SIGPIPE, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    int code = body();
    std::_Exit(code);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  ChildResult r;
  r.exited = WIFEXITED(status);
  if (r.exited) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  return r;
}

// A connected loopback TCP pair; the accepted side is reset (SO_LINGER 0).
int connected_to_reset_peer() {
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(lfd, 1) != 0 ||
      getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    return -1;
  int c = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return -1;
  int s = accept(lfd, nullptr, nullptr);
  close(lfd);
  reset_connection(s);
  sleep_ms(20);
  return c;
}

struct Outcome {
  bool done = false;
  Status status;
};

}  // namespace

TEST_SUITE("Transport") {
  TEST_CASE("control: write(2) to a peer that reset kills a process whose SIGPIPE is at its default") {
    ChildResult r = run_in_child([] {
      int fd = connected_to_reset_peer();
      if (fd < 0) return 3;
      for (int i = 0; i < 100; ++i) {
        if (write(fd, "x", 1) < 0) sleep_ms(1);
      }
      return 0;  // not reached when SIGPIPE was raised
    });
    CHECK_FALSE(r.exited);
    CHECK(r.signal == SIGPIPE);
  }

  TEST_CASE("a streamed request body written to a Pod that reset fails with an error and raises no SIGPIPE") {
    ChildResult r = run_in_child([] {
      // The server reads the request head, then resets while the client keeps streaming.
      ScriptServer server([](int& fd, int) {
        char buf[4096];
        if (read(fd, buf, sizeof buf) <= 0) return;
        reset_connection(fd);
      });
      int code = 0;
      {
        TestLoop t;
        HttpConnectionOptions o;
        o.host = "127.0.0.1";
        o.port = static_cast<std::uint16_t>(server.port());
        o.connect_timeout = 3000ms;
        auto conn = HttpConnection::create(t.loop, o);
        if (!conn) return 4;
        HttpRequest req;
        req.method = "POST";
        req.target = "/upload";
        req.body_mode = BodyMode::streamed_chunked;
        Outcome out;
        HttpHandlers h;
        h.on_complete = [&out](Status s) {
          out.status = std::move(s);
          out.done = true;
        };
        auto ex = (*conn)->send(req, h);
        if (!ex) return 5;
        // Small writes (each tried at once with the socket), then large ones that fill the
        // socket buffer and wait for writability: both paths meet the reset.
        int writes = 0;
        bool ok = t.run_until([&] {
          if (out.done) return true;
          std::string piece(++writes % 4 == 0 ? 512 * 1024 : 100, 'b');
          (void)(*ex)->write_body(piece);
          return out.done;
        }, 10000);
        if (!ok) code = 6;
        else if (out.status.ok()) code = 7;
        else if (out.status.error().code != Errc::connection_closed && out.status.error().code != Errc::io_error) code = 8;
        ex->reset();
        conn->reset();
        if (t.close_loop() != 0) code = 9;
      }
      return code;
    });
    CHECK(r.signal == 0);
    CHECK(r.exited);
    CHECK(r.exit_code == 0);
  }

  TEST_CASE("requests through a pool to a Pod that resets every connection raise no SIGPIPE") {
    ChildResult r = run_in_child([] {
      // Answers, then resets: the client's next request on that connection (or its body) meets
      // the reset; the pool retries or fails, and nothing signals.
      ScriptServer server([](int& fd, int) {
        if (read_request(fd).empty()) return;
        write_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        reset_connection(fd);
      });
      int code = 0;
      {
        TestLoop t;
        PoolOptions po;
        po.connection.host = "127.0.0.1";
        po.connection.port = static_cast<std::uint16_t>(server.port());
        po.connection.connect_timeout = 3000ms;
        po.max_connections = 4;
        auto pool = ConnectionPool::create(t.loop, po);
        if (!pool) return 4;
        int completed = 0;
        for (int round = 0; round < 20 && code == 0; ++round) {
          HttpRequest req;
          req.method = "PUT";
          req.target = "/x";
          req.body = std::string(200 * 1024, 'p');
          Outcome out;
          HttpHandlers h;
          h.on_complete = [&out](Status s) {
            out.status = std::move(s);
            out.done = true;
          };
          auto ex = (*pool)->send(req, h);
          if (!ex) return 5;
          if (!t.run_until([&] { return out.done; }, 10000)) code = 6;
          ++completed;
          sleep_ms(5);  // let the reset land before the next request reuses the connection
        }
        pool->reset();
        if (t.close_loop() != 0) code = 9;
        if (completed != 20 && code == 0) code = 10;
      }
      return code;
    });
    CHECK(r.signal == 0);
    CHECK(r.exited);
    CHECK(r.exit_code == 0);
  }
}
