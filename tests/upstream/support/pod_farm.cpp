#include "upstream/support/pod_farm.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <thread>
#include <random>
#include <stdexcept>

namespace kupstream::test {
namespace {

bool bindable(const std::string& address, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<std::uint16_t>(port));
  ::inet_pton(AF_INET, address.c_str(), &sa.sin_addr);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

PodFarm::PodFarm(const std::string& dir, int pods, std::string prefix, int subnet, const TestPki* pki)
    : dir_(dir), prefix_(std::move(prefix)), pods_(pods), subnet_(subnet), pki_(pki), listening_(pods, true) {
  run_shell("mkdir -p " + dir_ + "/www/files " + dir_ + "/www/upload " + dir_ + "/logs " + dir_ + "/tmp " + dir_ +
            "/flags");
  // One port free on every Pod address (and the dead one).
  std::mt19937 rng(std::random_device{}());
  for (int tries = 0; tries < 50 && port_ == 0; ++tries) {
    const int candidate = 20000 + static_cast<int>(rng() % 30000);
    bool ok = true;
    for (int i = 0; i <= pods_ && ok; ++i) ok = bindable(i == pods_ ? dead_address() : address(i), candidate);
    if (ok) port_ = candidate;
  }
  if (port_ == 0) throw std::runtime_error("PodFarm: no free port");
  write_config();
  process_ = ProcessGuard({"nginx", "-p", dir_ + "/", "-c", dir_ + "/nginx.conf", "-e", dir_ + "/logs/error.log"},
                         dir_ + "/logs/stdout.log");
  for (int i = 0; i < pods_; ++i)
    if (!wait_for_port(port_, 5000, address(i).c_str())) {
      process_.stop();
      throw std::runtime_error("PodFarm: nginx did not start: " + read_file(dir_ + "/logs/error.log"));
    }
}

PodFarm::~PodFarm() { process_.stop(); }

void PodFarm::write_config() {
  std::string conf;
  conf += "daemon off;\nworker_processes 1;\n";  // a master: reloads start a fresh worker
  // As root, the worker would switch to nobody and could not read the test's private files.
  if (::geteuid() == 0) conf += "user root;\n";
  conf += "pid " + dir_ + "/nginx.pid;\nerror_log " + dir_ + "/logs/error.log warn;\n";
  conf += "events { worker_connections 4096; }\n";
  conf += "http {\n  access_log off;\n  keepalive_requests 1000000;\n  keepalive_timeout 60s;\n";
  conf += "  client_body_temp_path tmp/body;\n  proxy_temp_path tmp/proxy;\n  fastcgi_temp_path tmp/fcgi;\n"
          "  uwsgi_temp_path tmp/uwsgi;\n  scgi_temp_path tmp/scgi;\n  client_max_body_size 64m;\n";
  for (int i = 0; i < pods_; ++i) {
    if (!listening_[static_cast<std::size_t>(i)]) continue;
    const std::string n = name(i);
    conf += "  server {\n    listen " + address(i) + ":" + std::to_string(port_) + (pki_ ? " ssl" : "") + ";\n";
    if (pki_) {
      conf += "    ssl_certificate " + pki_->server_cert + ";\n    ssl_certificate_key " + pki_->server_key + ";\n";
      conf += "    ssl_protocols TLSv1.2 TLSv1.3;\n";
    }
    conf += "    default_type text/plain;\n    add_header X-Pod " + n + " always;\n";
    conf += "    if (-f " + dir_ + "/flags/" + n + ".fail) { return 503 \"" + n + " failing\\n\"; }\n";
    conf += "    location = / { return 200 \"" + n + "\\n\"; }\n";
    conf += "    location = /headers { return 200 \"host=$http_host xff=$http_x_forwarded_for "
            "proto=$http_x_forwarded_proto xhost=$http_x_forwarded_host\\n\"; }\n";
    conf += "    location = /healthz { if (-f " + dir_ + "/flags/" + n + ".unhealthy) { return 503 \"sick\\n\"; } "
            "return 200 \"ok\\n\"; }\n";
    conf += "    location /files/ { root www; }\n";
    conf += "    location /upload/ { root www; dav_methods PUT; create_full_put_path on; }\n";
    conf += "    location / { return 200 \"" + n + "\\n\"; }\n";
    conf += "  }\n";
  }
  conf += "}\n";
  write_file(dir_ + "/nginx.conf", conf);
}

bool PodFarm::set_listening(int i, bool listening) {
  listening_[static_cast<std::size_t>(i)] = listening;
  write_config();
  ::kill(process_.pid(), SIGHUP);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    if (wait_for_port(port_, 1, address(i).c_str()) == listening) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

std::string PodFarm::address(int i) const { return "127.0." + std::to_string(subnet_) + "." + std::to_string(i + 1); }

std::string PodFarm::name(int i) const { return prefix_ + "-" + std::to_string(i); }

std::string PodFarm::dead_address() const { return "127.0." + std::to_string(subnet_) + ".250"; }

void PodFarm::set_failing(int i, bool failing) {
  const std::string flag = dir_ + "/flags/" + name(i) + ".fail";
  if (failing) write_file(flag, "1");
  else std::remove(flag.c_str());
}

void PodFarm::set_unhealthy(int i, bool unhealthy) {
  const std::string flag = dir_ + "/flags/" + name(i) + ".unhealthy";
  if (unhealthy) write_file(flag, "1");
  else std::remove(flag.c_str());
}

void PodFarm::add_file(const std::string& name, const std::string& content) {
  write_file(dir_ + "/www/files/" + name, content);
}

std::string PodFarm::uploaded(const std::string& name) const { return read_file(dir_ + "/www/upload/" + name); }

}  // namespace kupstream::test
