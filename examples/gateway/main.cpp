// kup-gateway: an HTTP/1.1 gateway that sends each request straight to a Kubernetes Pod.
//
//   kup-gateway --config gateway.yaml [--check] [--log-level debug|info|warning|error]
//               [--ready-file PATH] [--workers N]
//
// --check loads and validates the file (and the kubeconfigs it names), prints every problem
// and exits 0 or 1. SIGHUP reloads the config; SIGTERM/SIGINT stop gracefully. --ready-file
// receives {"pid":..,"ports":[..],"admin_port":..} once the listeners are open (for scripts
// and tests that use port 0). --workers N (default: the file's server.workers, else 1) serves
// clients on N threads, each with its own loop and listener (SO_REUSEPORT), while discovery and
// the admin listener stay on the main thread's loop. Reference: docs/gateway.md.
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <unistd.h>
#include <uv.h>

#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string>

#include "config.h"
#include "gateway.h"

using namespace kupstream;

namespace {

LogLevel g_level = LogLevel::info;

void log_line(LogLevel level, std::string_view text) {
  if (level < g_level) return;
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  fmt::print(stderr, "{:%Y-%m-%dT%H:%M:%S}.{:03}Z {} {}\n", std::chrono::floor<std::chrono::seconds>(now), ms,
             log_level_name(level), text);
  std::fflush(stderr);
}

int usage(const std::string& why) {
  fmt::print(stderr,
             "kup-gateway: {}\nusage: kup-gateway --config FILE [--check] [--log-level debug|info|warning|error] "
             "[--ready-file PATH] [--workers N]\n",
             why);
  return 2;
}

struct Signals {
  uv_signal_t hup, term, intr;
  kupgw::Gateway* gateway = nullptr;
  bool stopping = false;
};

void close_signals(Signals& s) {
  for (auto* h : {&s.hup, &s.term, &s.intr}) uv_close(reinterpret_cast<uv_handle_t*>(h), nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path, ready_file;
  bool check = false;
  std::optional<std::uint32_t> workers;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        usage("missing value for " + a);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--config" || a == "-c") {
      config_path = value();
    } else if (a == "--check") {
      check = true;
    } else if (a == "--ready-file") {
      ready_file = value();
    } else if (a == "--workers") {
      auto v = value();
      std::uint32_t n = 0;
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc{} || end != v.data() + v.size() || n < 1 || n > kupgw::ServerSettings::max_workers)
        return usage(fmt::format("--workers {}: not a number from 1 to {}", v, kupgw::ServerSettings::max_workers));
      workers = n;
    } else if (a == "--log-level") {
      auto l = value();
      if (l == "debug") g_level = LogLevel::debug;
      else if (l == "info") g_level = LogLevel::info;
      else if (l == "warning") g_level = LogLevel::warning;
      else if (l == "error") g_level = LogLevel::error;
      else return usage("unknown log level " + l);
    } else if (a == "--help" || a == "-h") {
      return usage("help");
    } else {
      return usage("unexpected argument " + a);
    }
  }
  if (config_path.empty()) return usage("--config is required");

  if (check) {
    auto cfg = kupgw::load_config_file(config_path);
    if (!cfg) {
      fmt::print(stderr, "{}\n", cfg.error().reason);
      return 1;
    }
    fmt::print("{}: OK ({} listeners, {} clusters, {} upstreams, {} routes)\n", config_path, cfg->listeners.size(),
               cfg->clusters.size(), cfg->upstreams.size(), cfg->routes.size());
    return 0;
  }

  // A write to a socket the peer has just reset (a client, a Pod, the API server) must be an
  // error, not a signal that ends the process.
  std::signal(SIGPIPE, SIG_IGN);
  uv_loop_t loop;
  uv_loop_init(&loop);
  int rc = 0;
  {
    kupgw::Gateway gateway(loop, config_path, log_line, workers);
    auto st = gateway.start();
    if (!st) {
      log_line(LogLevel::error, st.error().reason);
      rc = 1;
    } else {
      if (!ready_file.empty()) {
        std::string ports;
        for (auto p : gateway.ports()) ports += (ports.empty() ? "" : ",") + std::to_string(p);
        std::string tmp = ready_file + ".tmp";
        std::ofstream(tmp) << fmt::format("{{\"pid\":{},\"ports\":[{}],\"admin_port\":{}}}\n", getpid(), ports,
                                          gateway.admin_port());
        std::rename(tmp.c_str(), ready_file.c_str());
      }
      Signals sig;
      sig.gateway = &gateway;
      uv_signal_init(&loop, &sig.hup);
      uv_signal_init(&loop, &sig.term);
      uv_signal_init(&loop, &sig.intr);
      for (auto* h : {&sig.hup, &sig.term, &sig.intr}) h->data = &sig;
      uv_signal_start(&sig.hup, [](uv_signal_t* h, int) { static_cast<Signals*>(h->data)->gateway->reload(); }, SIGHUP);
      auto on_stop = [](uv_signal_t* h, int signum) {
        auto* s = static_cast<Signals*>(h->data);
        if (s->stopping) return;
        s->stopping = true;
        log_line(LogLevel::info, fmt::format("signal {}: graceful stop", signum));
        s->gateway->stop([s] {
          close_signals(*s);
          // Closing the handles restored the default action; a second SIGTERM while the
          // process finishes must not kill it mid-teardown.
          std::signal(SIGTERM, SIG_IGN);
          std::signal(SIGINT, SIG_IGN);
          log_line(LogLevel::info, "stopped");
        });
      };
      uv_signal_start(&sig.term, on_stop, SIGTERM);
      uv_signal_start(&sig.intr, on_stop, SIGINT);
      uv_run(&loop, UV_RUN_DEFAULT);
      if (!gateway.workers_closed_cleanly()) rc = 3;
    }
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop) != 0) {
    log_line(LogLevel::error, "the loop did not drain");
    return 3;
  }
  return rc;
}
