#include "faults/support/fault_pod.h"

#include <poll.h>
#include <sys/socket.h>

#include <stdexcept>

#include "net/support/net_certs.h"
#include "net/support/net_tls_server.h"

namespace kupstream::test {
namespace {

// True once the peer has closed (or sent anything: a client waiting for an answer sends nothing).
bool peer_spoke(int fd, int wait_ms) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, wait_ms) > 0;
}

}  // namespace

const char* pod_fault_name(PodFault f) {
  switch (f) {
    case PodFault::none: return "none";
    case PodFault::refuse: return "refuse";
    case PodFault::reset_before: return "reset_before";
    case PodFault::reset_mid_body: return "reset_mid_body";
    case PodFault::hang: return "hang";
    case PodFault::garbage: return "garbage";
    case PodFault::close_each: return "close_each";
    case PodFault::close_after_n: return "close_after_n";
    case PodFault::dribble_head: return "dribble_head";
    case PodFault::status_503: return "status_503";
    case PodFault::slow: return "slow";
  }
  return "?";
}

FaultPod::FaultPod(std::string name, std::string address, int port, const TestPki* pki)
    : name_(std::move(name)), address_(std::move(address)), port_(port), pki_(pki) {
  if (pki_ != nullptr) {
    tls_[0] = std::make_unique<TlsServerContext>(pki_->server_cert, pki_->server_key);
    tls_[1] = std::make_unique<TlsServerContext>(pki_->wrong_cert, pki_->wrong_key);
    tls_[2] = std::make_unique<TlsServerContext>(pki_->expired_cert, pki_->expired_key);
  }
  listen();
}

FaultPod::~FaultPod() {
  std::unique_ptr<ScriptServer> server;
  {
    std::lock_guard<std::mutex> lock(mu_);
    server = std::move(server_);
  }
  fault_ = PodFault::none;  // ends hanging handlers
  server.reset();
}

void FaultPod::listen() {
  std::lock_guard<std::mutex> lock(mu_);
  server_ = std::make_unique<ScriptServer>([this](int& fd, int) { serve(fd); }, address_, port_);
  port_ = server_->port();
}

void FaultPod::set_fault(PodFault fault, int n) {
  n_ = n;
  const PodFault before = fault_.exchange(fault);
  if (fault == PodFault::refuse && before != PodFault::refuse) {
    std::unique_ptr<ScriptServer> server;
    {
      std::lock_guard<std::mutex> lock(mu_);
      server = std::move(server_);
    }
    server.reset();  // closes the listener and every connection, joins the handlers
  } else if (fault != PodFault::refuse && before == PodFault::refuse) {
    listen();
  }
}

void FaultPod::set_cert(PodCert cert) { cert_ = static_cast<int>(cert); }

void FaultPod::serve(int& fd) {
  ++accepted_;
  const int cert_at_accept = cert_.load();
  std::unique_ptr<TlsServerConn> tls;
  if (pki_ != nullptr) {
    tls = std::make_unique<TlsServerConn>(tls_[cert_at_accept]->get(), fd, 60);
    if (!tls->ok()) return;  // e.g. the client refused the certificate
  }
  auto read = [&] { return tls ? tls->read_request() : read_request(fd, 60000); };
  auto write = [&](std::string_view data) { return tls ? tls->write(data) : write_all(fd, data); };
  const std::string ok_body = name_ + "\n";
  const std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(ok_body.size()) + "\r\nX-Pod: " + name_ +
                         "\r\n\r\n" + ok_body;
  int on_connection = 0;
  for (;;) {
    if (read().empty()) return;
    const PodFault f = fault_.load();
    const int n = n_.load();
    ++busy_;
    struct Busy {
      std::atomic<int>& b;
      ~Busy() { --b; }
    } busy{busy_};
    switch (f) {
      case PodFault::none:
      case PodFault::refuse:  // a connection accepted just before the listener closed
      case PodFault::close_each:
      case PodFault::close_after_n:
      case PodFault::slow:
        if (f == PodFault::slow) sleep_ms(n);
        if (!write(ok)) return;
        ++answered_;
        ++on_connection;
        if (f == PodFault::close_each || (f == PodFault::close_after_n && on_connection >= n)) return;
        if (cert_.load() != cert_at_accept) return;
        break;
      case PodFault::reset_before:
        ++faulted_;
        reset_connection(fd);
        return;
      case PodFault::reset_mid_body: {
        ++faulted_;
        std::string part = "HTTP/1.1 200 OK\r\nContent-Length: 4096\r\nX-Pod: " + name_ + "\r\n\r\n" + std::string(512, 'x');
        if (!write(part)) return;
        sleep_ms(150);  // the client has the head and the first bytes: the reset cuts the body
        reset_connection(fd);
        return;
      }
      case PodFault::hang:
        ++faulted_;
        while (fault_.load() == PodFault::hang)
          if (peer_spoke(fd, 5)) return;  // the client gave up (closed)
        return;
      case PodFault::garbage:
        ++faulted_;
        (void)write("SSH-2.0-OpenSSH_9.2\r\n\x01\x02 not http at all\r\n\r\n");
        return;
      case PodFault::dribble_head: {
        ++faulted_;
        const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(ok_body.size()) + "\r\nX-Pod: " +
                                 name_ + "\r\n\r\n";
        for (char c : head) {
          if (!write(std::string_view(&c, 1))) return;
          if (peer_spoke(fd, n)) return;  // the client timed out and closed
        }
        if (!write(ok_body)) return;
        break;
      }
      case PodFault::status_503: {
        ++faulted_;
        const std::string body = name_ + " failing\n";
        if (!write("HTTP/1.1 503 Service Unavailable\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body))
          return;
        break;
      }
    }
  }
}

}  // namespace kupstream::test
