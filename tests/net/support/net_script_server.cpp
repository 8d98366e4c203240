#include "net/support/net_script_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace kupstream::test {

ScriptServer::ScriptServer(Handler handler, bool ipv6) : handler_(std::move(handler)) {
  if (ipv6) {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    listen_on(AF_INET6, &a, sizeof a);
  } else {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    listen_on(AF_INET, &a, sizeof a);
  }
}

ScriptServer::ScriptServer(Handler handler, const std::string& address, int port) : handler_(std::move(handler)) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  if (inet_pton(AF_INET, address.c_str(), &a.sin_addr) != 1 || (ntohl(a.sin_addr.s_addr) >> 24) != 127)
    throw std::runtime_error("ScriptServer: not an IPv4 loopback address: " + address);
  listen_on(AF_INET, &a, sizeof a);
}

void ScriptServer::listen_on(int family, const void* addr, unsigned addr_len) {
  listen_fd_ = socket(family, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_storage bound{};
  std::memcpy(&bound, addr, addr_len);
  int rc = bind(listen_fd_, reinterpret_cast<sockaddr*>(&bound), addr_len);
  socklen_t len = addr_len;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                             : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  if (rc != 0 || listen(listen_fd_, 64) != 0) {
    close(listen_fd_);
    throw std::runtime_error("ScriptServer: bind/listen failed");
  }
  acceptor_ = std::thread([this] { accept_loop(); });
}

ScriptServer::~ScriptServer() {
  stopping_ = true;
  acceptor_.join();
  close(listen_fd_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : fds_) shutdown(fd, SHUT_RDWR);  // unblocks handlers waiting in read()
  }
  for (auto& t : workers_) t.join();
}

void ScriptServer::accept_loop() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 20) <= 0) continue;
    int fd = accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) continue;
    int n = accepted_++;
    std::lock_guard<std::mutex> lock(mu_);
    fds_.push_back(fd);
    workers_.emplace_back([this, fd, n] {
      int f = fd;
      handler_(f, n);
      std::lock_guard<std::mutex> l(mu_);
      for (auto& x : fds_)
        if (x == fd) x = -1;
      if (f >= 0) close(f);
    });
  }
}

std::string read_request_from(const std::function<long(char*, std::size_t)>& read_some) {
  std::string data;
  std::size_t head_end = std::string::npos;
  std::size_t need = 0;
  char buf[16384];
  while (true) {
    if (head_end == std::string::npos) {
      head_end = data.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        need = head_end + 4;
        auto cl = data.find("Content-Length: ");
        if (cl != std::string::npos && cl < head_end) need += std::stoul(data.substr(cl + 16));
      }
    }
    if (head_end != std::string::npos && data.size() >= need) return data;
    const long n = read_some(buf, sizeof buf);
    if (n <= 0) return "";
    data.append(buf, static_cast<std::size_t>(n));
  }
}

std::string read_request(int fd, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  return read_request_from([fd, deadline](char* buf, std::size_t cap) -> long {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) return 0;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) return 0;
    return static_cast<long>(read(fd, buf, cap));
  });
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

void reset_connection(int& fd) {
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd);
  fd = -1;
}

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

}  // namespace kupstream::test
