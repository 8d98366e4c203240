// NginxServer: a real nginx on loopback, run as this test's own child process
// (`nginx -p dir -c dir/nginx.conf`, daemon off, master_process off) and stopped by PID.
//
// Ports: plain (127.0.0.1 and [::1]), and when a TestPki is given: tls (good certificate),
// wrong_name, expired, mtls (ssl_verify_client on). Locations on every server:
//   /hello            200 "hello\n" (Content-Length)
//   /empty            204
//   /close            200 "bye" with Connection: close
//   /files/<name>     static files written with add_file()
//   /whoami           200 "<client subject>" (mtls server only; any other path too)
#pragma once

#include <memory>
#include <string>

#include "net/support/net_certs.h"
#include "net/support/net_process.h"

namespace kupstream::test {

struct NginxOptions {
  int keepalive_timeout_s = 60;
  int keepalive_requests = 1000000;
  int worker_processes = 0;  // 0: master_process off (one process)
};

class NginxServer {
 public:
  // Starts nginx in dir (must exist); throws std::runtime_error when it does not come up.
  NginxServer(const std::string& dir, const TestPki* pki = nullptr, NginxOptions options = {});
  ~NginxServer();
  NginxServer(const NginxServer&) = delete;
  NginxServer& operator=(const NginxServer&) = delete;

  // Creates dir/www/files/<name> (call before requests; nginx serves it directly).
  void add_file(const std::string& name, const std::string& content);
  // Stops nginx now (SIGTERM to its PID, then reaped).
  void stop() { process_.stop(); }

  int plain_port = 0;
  int tls_port = 0;
  int wrong_name_port = 0;
  int expired_port = 0;
  int mtls_port = 0;
  std::string dir;

 private:
  ProcessGuard process_;
};

}  // namespace kupstream::test
