#include "net/support/net_nginx.h"

#include <stdexcept>

namespace kupstream::test {
namespace {

std::string locations() {
  return R"(
    location = /hello { default_type text/plain; return 200 "hello\n"; }
    location = /empty { return 204; }
    location = /close { keepalive_timeout 0; default_type text/plain; return 200 "bye"; }
    location /files/ { root www; }
)";
}

std::string tls_server(int port, const std::string& cert, const std::string& key, const std::string& extra) {
  return "  server {\n    listen 127.0.0.1:" + std::to_string(port) + " ssl;\n    listen [::1]:" + std::to_string(port) +
         " ssl;\n    ssl_certificate " + cert + ";\n    ssl_certificate_key " + key +
         ";\n    ssl_protocols TLSv1.2 TLSv1.3;\n    ssl_session_cache shared:S" + std::to_string(port) +
         ":1m;\n    ssl_session_tickets on;\n" + extra + locations() + "  }\n";
}

}  // namespace

NginxServer::NginxServer(const std::string& d, const TestPki* pki, NginxOptions options) : dir(d) {
  run_shell("mkdir -p " + dir + "/www/files " + dir + "/logs " + dir + "/tmp");
  plain_port = free_port();
  std::string conf;
  conf += "daemon off;\n";
  if (options.worker_processes == 0) conf += "master_process off;\n";
  else conf += "worker_processes " + std::to_string(options.worker_processes) + ";\n";
  conf += "pid " + dir + "/nginx.pid;\nerror_log " + dir + "/logs/error.log warn;\n";
  conf += "events { worker_connections 4096; }\n";
  conf += "http {\n  access_log off;\n";
  conf += "  client_body_temp_path tmp/body;\n  proxy_temp_path tmp/proxy;\n  fastcgi_temp_path tmp/fcgi;\n"
          "  uwsgi_temp_path tmp/uwsgi;\n  scgi_temp_path tmp/scgi;\n";
  conf += "  keepalive_timeout " + std::to_string(options.keepalive_timeout_s) + "s;\n";
  conf += "  keepalive_requests " + std::to_string(options.keepalive_requests) + ";\n";
  conf += "  server {\n    listen 127.0.0.1:" + std::to_string(plain_port) + ";\n    listen [::1]:" +
          std::to_string(plain_port) + ";\n" + locations() + "  }\n";
  if (pki != nullptr) {
    tls_port = free_port();
    wrong_name_port = free_port();
    expired_port = free_port();
    mtls_port = free_port();
    conf += tls_server(tls_port, pki->server_cert, pki->server_key, "");
    conf += tls_server(wrong_name_port, pki->wrong_cert, pki->wrong_key, "");
    conf += tls_server(expired_port, pki->expired_cert, pki->expired_key, "");
    conf += tls_server(mtls_port, pki->server_cert, pki->server_key,
                       "    ssl_verify_client on;\n    ssl_client_certificate " + pki->ca_cert +
                           ";\n    location = /whoami { default_type text/plain; return 200 \"$ssl_client_s_dn\"; }\n");
  }
  conf += "}\n";
  write_file(dir + "/nginx.conf", conf);
  process_ = ProcessGuard({"nginx", "-p", dir + "/", "-c", dir + "/nginx.conf", "-e", dir + "/logs/error.log"},
                         dir + "/logs/stdout.log");
  for (int port : {plain_port, tls_port, wrong_name_port, expired_port, mtls_port}) {
    if (port != 0 && !wait_for_port(port, 5000)) {
      process_.stop();
      throw std::runtime_error("nginx did not start: " + read_file(dir + "/logs/error.log") +
                               read_file(dir + "/logs/stdout.log"));
    }
  }
}

NginxServer::~NginxServer() { process_.stop(); }

void NginxServer::add_file(const std::string& name, const std::string& content) {
  write_file(dir + "/www/files/" + name, content);
}

}  // namespace kupstream::test
