// ScriptServer: the project's own misbehaving HTTP peer. It listens on loopback (port 0) and
// runs a handler per accepted connection on its own thread, so a test can script exactly what
// the "server" does: answer slowly, truncate, reset, send garbage, stream forever.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace kupstream::test {

class ScriptServer {
 public:
  // handler(fd, n): serves the n-th accepted connection (0-based). The server closes fd
  // afterwards unless the handler set it to -1 (e.g. after reset()).
  using Handler = std::function<void(int& fd, int n)>;
  explicit ScriptServer(Handler handler, bool ipv6 = false);
  // Listens on the IPv4 loopback `address` (e.g. "127.0.1.5") and `port` (0 = any free port), so
  // that several servers can stand for the Pods of one Service (one address each, one port).
  // Throws std::runtime_error when the address cannot be bound.
  ScriptServer(Handler handler, const std::string& address, int port);
  ~ScriptServer();  // shuts every connection down and joins all threads
  ScriptServer(const ScriptServer&) = delete;
  ScriptServer& operator=(const ScriptServer&) = delete;

  int port() const noexcept { return port_; }
  int accepted() const noexcept { return accepted_.load(); }
  bool stopping() const noexcept { return stopping_.load(); }

 private:
  void accept_loop();
  void listen_on(int family, const void* addr, unsigned addr_len);
  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<int> accepted_{0};
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> workers_;
  std::vector<int> fds_;
};

// Reads one request head (and a Content-Length body). "" on EOF/error/timeout.
std::string read_request(int fd, int timeout_ms = 5000);
// The same through read_some(buf, cap), which returns the bytes read, <= 0 on EOF, error or
// timeout (e.g. SSL_read on a server-side TLS connection).
std::string read_request_from(const std::function<long(char*, std::size_t)>& read_some);
bool write_all(int fd, std::string_view data);
// Closes with SO_LINGER 0, so the peer sees a TCP RST; sets fd to -1.
void reset_connection(int& fd);
void sleep_ms(int ms);

}  // namespace kupstream::test
