// FaultPod: one simulated Pod that misbehaves on command, for the Pod-fault suite. A real
// HTTP/1.1 (or HTTPS) server on its own loopback address (127.0.<subnet>.<i>) built on
// ScriptServer: one thread per connection, keep-alive, answering every request with
// 200 "<name>\n" (header X-Pod) until set_fault() tells it to do something else. Every switch
// is atomic and applies to the next request each connection reads. All methods are thread-safe.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "net/support/net_script_server.h"

namespace kupstream::test {

struct TestPki;
class TlsServerContext;

enum class PodFault {
  none,             // 200 "<name>\n" with Content-Length, keep-alive
  refuse,           // stops listening (connections are refused); existing connections are shut
  reset_before,     // reads the request, then resets the connection (TCP RST) without a byte
  reset_mid_body,   // sends the head (Content-Length 4096) and 512 bytes, waits, then resets
  hang,             // reads the request and never answers (until the fault changes)
  garbage,          // answers bytes that are not HTTP, then closes
  close_each,       // answers normally (no "Connection: close"), then closes the connection
  close_after_n,    // same, after `n` responses on a connection
  dribble_head,     // sends the response head one byte every `n` ms (slow loris)
  status_503,       // 503 "<name> failing\n"
  slow,             // answers normally after `n` ms
};

const char* pod_fault_name(PodFault f);

// Which certificate an HTTPS FaultPod presents to new connections.
enum class PodCert { good, wrong_name, expired };

class FaultPod {
 public:
  // Listens on address:port (port 0 = any free port; read port()). With `pki`, speaks HTTPS
  // with pki->server_cert (or the wrong-name / expired one, see set_cert()).
  FaultPod(std::string name, std::string address, int port = 0, const TestPki* pki = nullptr);
  ~FaultPod();
  FaultPod(const FaultPod&) = delete;
  FaultPod& operator=(const FaultPod&) = delete;

  const std::string& name() const noexcept { return name_; }
  const std::string& address() const noexcept { return address_; }
  int port() const noexcept { return port_; }
  std::string host_port() const { return address_ + ":" + std::to_string(port_); }

  // Switches the behaviour for the next requests; `n` is the parameter of close_after_n
  // (responses per connection), dribble_head (ms per byte) and slow (ms).
  void set_fault(PodFault fault, int n = 0);
  PodFault fault() const noexcept { return fault_.load(); }
  // New connections get this certificate; open connections close after their current response
  // (as a Pod restarted with a new certificate would).
  void set_cert(PodCert cert);

  int answered() const noexcept { return answered_.load(); }  // requests answered normally (2xx)
  int faulted() const noexcept { return faulted_.load(); }    // requests that met a fault
  int accepted() const noexcept { return accepted_.load(); }  // connections accepted
  int busy() const noexcept { return busy_.load(); }          // requests being served now

 private:
  void serve(int& fd);
  void listen();

  std::string name_, address_;
  int port_ = 0;
  const TestPki* pki_ = nullptr;
  std::atomic<PodFault> fault_{PodFault::none};
  std::atomic<int> n_{0};
  std::atomic<int> cert_{0};
  std::atomic<int> answered_{0}, faulted_{0}, accepted_{0}, busy_{0};
  std::unique_ptr<TlsServerContext> tls_[3];
  std::mutex mu_;  // guards server_
  std::unique_ptr<ScriptServer> server_;
};

}  // namespace kupstream::test
