// PodFarm: simulated Pods for Upstream tests. ONE nginx (this test's child: a master and one
// worker, stopped by the master's PID) with one server block per Pod, each on its own loopback address 127.0.<subnet>.<i+1>
// and the same port (as Pods of one Deployment share a targetPort). Every Pod answers:
//   /                200 "<name>\n", header X-Pod: <name>
//   /headers         200 "host=<Host> xff=<X-Forwarded-For> proto=<...> xhost=<X-Forwarded-Host>\n"
//   /healthz         200 "ok" (503 while set_unhealthy(i, true))
//   /files/<name>    static files written with add_file()
//   /upload/<name>   PUT stores the body (WebDAV), GET reads it back
// set_failing(i, true) makes Pod i answer 503 to everything (checked per request, no reload).
// With a TestPki every Pod speaks HTTPS with pki->server_cert.
#pragma once

#include <string>
#include <vector>

#include "net/support/net_certs.h"
#include "net/support/net_process.h"

namespace kupstream::test {

class PodFarm {
 public:
  // Starts nginx in dir (must exist) with `pods` Pods named "<prefix>-0".. on 127.0.<subnet>.1...
  // Throws std::runtime_error when nginx does not come up.
  PodFarm(const std::string& dir, int pods, std::string prefix = "pod", int subnet = 1, const TestPki* pki = nullptr);
  ~PodFarm();
  PodFarm(const PodFarm&) = delete;
  PodFarm& operator=(const PodFarm&) = delete;

  int size() const noexcept { return pods_; }
  int port() const noexcept { return port_; }
  std::string address(int i) const;
  std::string name(int i) const;
  std::string host_port(int i) const { return address(i) + ":" + std::to_string(port_); }
  // An address in the same subnet where nothing listens (connections are refused).
  std::string dead_address() const;

  void set_failing(int i, bool failing);
  // Pod i stops (or starts again) listening: the config is rewritten without (with) its server
  // block and nginx reloads (SIGHUP); returns once connections are refused (accepted) there.
  // The old worker finishes its requests and closes its keep-alive connections (a graceful
  // reload). False on timeout. (Single-process nginx mishandles reloads: it runs out of
  // connections, hence the master.)
  bool set_listening(int i, bool listening);
  void set_unhealthy(int i, bool unhealthy);
  void add_file(const std::string& name, const std::string& content);
  std::string uploaded(const std::string& name) const;
  void stop() { process_.stop(); }

 private:
  void write_config();

  std::string dir_, prefix_;
  int pods_ = 0, subnet_ = 1, port_ = 0;
  const TestPki* pki_ = nullptr;
  std::vector<bool> listening_;
  ProcessGuard process_;
};

}  // namespace kupstream::test
