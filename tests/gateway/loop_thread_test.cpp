// The gateway's threading parts: Mailbox (closures across threads), LoopThread (a loop on a
// thread of its own) and HttpServers on several loops sharing one port (SO_REUSEPORT), as
// kup-gateway --workers N uses them. Loopback only.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "http_server.h"
#include "loop_thread.h"
#include "mailbox.h"

using namespace kupgw;

namespace {

// One request on a new connection; returns the response body ("" when it failed).
std::string get_once(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string in;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    std::string req = "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      char b[4096];
      ssize_t n;
      while ((n = ::recv(fd, b, sizeof b, 0)) > 0) in.append(b, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  auto body = in.find("\r\n\r\n");
  if (in.rfind("HTTP/1.1 200", 0) != 0 || body == std::string::npos) return "";
  return in.substr(body + 4);
}

// Runs `loop` on this thread until `done` or 20 s (a test failure, not a hang).
void run_until(uv_loop_t& loop, const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!done() && std::chrono::steady_clock::now() < deadline) uv_run(&loop, UV_RUN_NOWAIT), std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

}  // namespace

TEST_SUITE("Mailbox") {
  TEST_CASE("closures posted from other threads run on the loop thread, each poster's in order") {
    uv_loop_t loop;
    uv_loop_init(&loop);
    auto box = std::make_unique<Mailbox>(loop);
    constexpr int kThreads = 4, kEach = 500;
    std::vector<int> last(kThreads, -1);  // loop thread only
    int ran = 0;
    bool in_order = true, on_loop_thread = true;
    auto loop_thread = std::this_thread::get_id();
    std::vector<std::thread> posters;
    for (int t = 0; t < kThreads; ++t)
      posters.emplace_back([&, t] {
        for (int i = 0; i < kEach; ++i)
          CHECK(box->post([&, t, i] {
            in_order = in_order && last[static_cast<std::size_t>(t)] == i - 1;
            on_loop_thread = on_loop_thread && std::this_thread::get_id() == loop_thread;
            last[static_cast<std::size_t>(t)] = i;
            ++ran;
          }));
      });
    run_until(loop, [&] { return ran == kThreads * kEach; });
    for (auto& p : posters) p.join();
    CHECK(ran == kThreads * kEach);
    CHECK(in_order);
    CHECK(on_loop_thread);
    box->close();
    CHECK_FALSE(box->post([&] { ++ran; }));
    box.reset();
    CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
    CHECK(ran == kThreads * kEach);
    CHECK(uv_loop_close(&loop) == 0);
  }

  TEST_CASE("a closure that closes the mailbox stops the ones queued after it, which are dropped unrun") {
    uv_loop_t loop;
    uv_loop_init(&loop);
    Mailbox box(loop);
    auto token = std::make_shared<int>(0);
    int ran = 0;
    box.post([&] {
      ++ran;
      box.close();
    });
    box.post([&ran, token] { ++ran; });
    CHECK(token.use_count() == 2);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(ran == 1);
    CHECK(token.use_count() == 1);  // the second closure was destroyed without running
    CHECK(uv_loop_close(&loop) == 0);
  }
}

TEST_SUITE("LoopThread") {
  TEST_CASE("runs posted closures on its own thread and ends once its handles close") {
    std::promise<bool> exited;
    std::thread::id worker_id;
    {
      LoopThread lt;
      std::promise<std::thread::id> seen;
      lt.start([&](bool closed) { exited.set_value(closed); });
      CHECK(lt.post([&] { seen.set_value(std::this_thread::get_id()); }));
      worker_id = seen.get_future().get();
      CHECK(worker_id != std::this_thread::get_id());
      // A timer opened on its loop keeps it running until it is closed, on its thread.
      auto* timer = new uv_timer_t;
      CHECK(lt.post([&lt, timer] {
        uv_timer_init(&lt.loop(), timer);
        uv_timer_start(timer, [](uv_timer_t* t) {
          uv_close(reinterpret_cast<uv_handle_t*>(t), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
        }, 50, 0);
      }));
      CHECK(lt.post([&lt] { lt.close_mailbox(); }));
      auto f = exited.get_future();
      REQUIRE(f.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
      CHECK(f.get());  // uv_loop_close succeeded on the worker thread
      CHECK_FALSE(lt.post([] {}));
      lt.join();
    }
  }

  TEST_CASE("one never started drops what was posted and closes its loop when destroyed") {
    auto token = std::make_shared<int>(0);
    {
      LoopThread lt;
      CHECK(lt.post([token] {}));
      CHECK(token.use_count() == 2);
    }  // the destructor closed the mailbox (dropping the closure) and ran the loop to its end
    CHECK(token.use_count() == 1);
  }
}

TEST_SUITE("HttpServer") {
  TEST_CASE("servers on two loop threads share one port with reuse_port and both get connections") {
    constexpr int kWorkers = 2, kRequests = 64;
    std::vector<std::unique_ptr<LoopThread>> threads;
    std::vector<std::unique_ptr<HttpServer>> servers;
    HttpServerOptions o;
    o.reuse_port = true;
    std::uint16_t port = 0;
    for (int i = 0; i < kWorkers; ++i) {
      threads.push_back(std::make_unique<LoopThread>());
      auto body = "worker " + std::to_string(i);
      servers.push_back(std::make_unique<HttpServer>(threads.back()->loop(), o,
                                                     [body](RequestHead&, ResponseWriter& w) -> std::unique_ptr<RequestHandler> {
                                                       w.simple(200, body);
                                                       return nullptr;
                                                     }));
      auto bound = servers.back()->listen("127.0.0.1", port);  // before the loop runs
      REQUIRE(bound);
      port = *bound;
    }
    std::vector<std::promise<bool>> exited(kWorkers);
    for (int i = 0; i < kWorkers; ++i)
      threads[static_cast<std::size_t>(i)]->start([&exited, i](bool closed) { exited[static_cast<std::size_t>(i)].set_value(closed); });

    std::map<std::string, int> by_worker;
    for (int r = 0; r < kRequests; ++r) by_worker[get_once(port)]++;
    CHECK(by_worker.count("") == 0);  // every request answered
    CHECK(by_worker.size() == static_cast<std::size_t>(kWorkers));  // each worker accepted some

    // Graceful stop, each on its own loop: drain, drop the server, close the mailbox.
    for (int i = 0; i < kWorkers; ++i) {
      auto* lt = threads[static_cast<std::size_t>(i)].get();
      auto* server = &servers[static_cast<std::size_t>(i)];
      lt->post([lt, server] {
        (*server)->drain(1000, [lt, server] {
          lt->post([lt, server] {
            server->reset();
            lt->close_mailbox();
          });
        });
      });
    }
    for (auto& e : exited) {
      auto f = e.get_future();
      REQUIRE(f.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
      CHECK(f.get());
    }
    threads.clear();
  }

  TEST_CASE("without reuse_port a second server cannot listen on a port in use, and says which") {
    uv_loop_t loop;
    uv_loop_init(&loop);
    {
      auto none = [](RequestHead&, ResponseWriter& w) -> std::unique_ptr<RequestHandler> {
        w.simple(200, "");
        return nullptr;
      };
      HttpServer a(loop, {}, none), b(loop, {}, none);
      auto pa = a.listen("127.0.0.1", 0);
      REQUIRE(pa);
      auto pb = b.listen("127.0.0.1", *pa);
      REQUIRE_FALSE(pb);
      CHECK(pb.error().reason.find("127.0.0.1:" + std::to_string(*pa)) != std::string::npos);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
  }
}
