// Gateway: the live state behind kup-gateway's listeners.
//
// A Generation is what one loaded configuration built: its ClusterClients, Upstreams and
// Router. Requests hold the Generation they started on (shared_ptr), so a reload swaps the
// current Generation while in-flight requests finish on the old one, whose Upstreams are
// destroyed only when their last request ends. A ClusterClient whose cluster entry and loaded
// ClusterConfig are unchanged is reused, and so is an Upstream whose YAML is unchanged (its
// connection pools and health state carry over).
//
// Thread: loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "http_server.h"
#include "kupstream/cluster.h"
#include "kupstream/cluster_client.h"
#include "kupstream/upstream.h"
#include "router.h"

namespace kupgw {

using LogSink = std::function<void(kupstream::LogLevel, std::string_view)>;

struct ClusterHandle {
  ClusterEntry entry;
  kupstream::ClusterConfig config;
  std::unique_ptr<kupstream::ClusterClient> client;
};

struct UpstreamHandle {
  // Declared first, destroyed last: the clients must outlive the Upstream.
  std::vector<std::shared_ptr<ClusterHandle>> clusters;
  UpstreamEntry entry;
  std::unique_ptr<kupstream::Upstream> upstream;
  // (status, its GatewayCounters::responses entry for this upstream): ProxyExchange::count's
  // cache, so that a response does not build a (name, status) key and search the map.
  std::vector<std::pair<int, std::uint64_t*>> response_counters;
};

struct Generation {
  std::uint64_t id = 0;
  GatewayConfig config;
  std::map<std::string, std::shared_ptr<ClusterHandle>> clusters;
  std::map<std::string, std::shared_ptr<UpstreamHandle>, std::less<>> upstreams;
  Router router;

  UpstreamHandle* find(std::string_view name) const {
    auto it = upstreams.find(name);
    return it == upstreams.end() ? nullptr : it->second.get();
  }
};

// Gateway-wide counters exposed on /metrics beside the Upstreams' own.
struct GatewayCounters {
  std::map<std::pair<std::string, int>, std::uint64_t> responses;  // (upstream, status) → count
  std::map<std::string, std::uint64_t> upstream_errors;             // errc name → count
  std::uint64_t no_route = 0;
  std::uint64_t reloads_ok = 0, reloads_failed = 0;
  std::uint64_t streams_aborted = 0;  // responses cut short after their head was sent
};

class Gateway {
 public:
  Gateway(uv_loop_t& loop, std::string config_path, LogSink log);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Loads the config, builds the first Generation and opens the listeners. Errors name the
  // config line, cluster or upstream at fault.
  kupstream::Status start();
  // SIGHUP: load the file again; a bad file or a failing build is logged and the old
  // Generation keeps serving. The new Generation is swapped in once its new Upstreams are
  // ready (or after reload_wait_ms, with a warning).
  void reload();
  // Graceful stop: listeners close, in-flight requests finish (up to server.drain_timeout_ms),
  // then every Upstream and ClusterClient is dropped. `done` runs once all of that is closed.
  void stop(std::function<void()> done);

  const std::vector<std::uint16_t>& ports() const { return ports_; }
  std::uint16_t admin_port() const { return admin_port_; }

  // Admin endpoints.
  std::string metrics_text() const;
  bool ready(std::string* reasons) const;

  GatewayCounters& counters() { return counters_; }
  void log(kupstream::LogLevel level, std::string_view text) const { log_(level, text); }

  static constexpr std::uint32_t reload_wait_ms = 10'000;

 private:
  kupstream::Result<std::shared_ptr<Generation>> build(const GatewayConfig& config);
  void swap_in(std::shared_ptr<Generation> next);
  void check_pending();
  std::unique_ptr<RequestHandler> route(RequestHead& head, ResponseWriter& writer);
  std::unique_ptr<RequestHandler> admin(RequestHead& head, ResponseWriter& writer);

  uv_loop_t& loop_;
  std::string config_path_;
  LogSink log_;
  std::shared_ptr<Generation> current_;
  std::shared_ptr<Generation> pending_;  // built, waiting for its Upstreams to be ready
  std::uint64_t pending_since_ms_ = 0;
  std::vector<std::weak_ptr<Generation>> retired_;  // old generations still finishing requests
  std::uint64_t next_id_ = 1;
  uv_timer_t* pending_timer_ = nullptr;
  std::unique_ptr<HttpServer> server_;
  std::unique_ptr<HttpServer> admin_server_;
  std::vector<std::uint16_t> ports_;
  std::uint16_t admin_port_ = 0;
  GatewayCounters counters_;
  bool stopping_ = false;
};

}  // namespace kupgw
