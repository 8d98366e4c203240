// Gateway: the live state behind kup-gateway: the control loop's part.
//
// A Generation is what one loaded configuration built: its ClusterClients, Upstreams and
// Router. A ClusterClient whose cluster entry and loaded ClusterConfig are unchanged is reused
// by the next Generation, and so is an Upstream whose YAML is unchanged (its connection pools
// and health state carry over).
//
// Threads: discovery (ClusterClients, Upstreams), reloads, the admin listener and signals run on
// the control loop. Client requests are served by Workers (worker.h): with one worker on the
// control loop itself, with N each on a thread and loop of its own, all listening on the same
// address (SO_REUSEPORT). A reload builds the new Generation here, waits for its new Upstreams
// to be ready, then asks every worker to install it on its own loop; requests in flight finish
// on the routes they started on. A Generation is dropped here, on the control loop, only once
// every worker has released it (Gateway::released), so an Upstream always outlives its
// UpstreamWorkers.
//
// Thread: control loop only, except post_control() (any thread).
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config.h"
#include "heap_trimmer.h"
#include "http_server.h"
#include "mailbox.h"
#include "kupstream/cluster.h"
#include "kupstream/cluster_client.h"
#include "kupstream/upstream.h"
#include "router.h"
#include "worker.h"

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

class Gateway {
 public:
  // `workers`: overrides the file's server.workers when set (the --workers flag).
  Gateway(uv_loop_t& loop, std::string config_path, LogSink log, std::optional<std::uint32_t> workers = {});
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Loads the config, builds the first Generation, opens the listeners (on every worker) and
  // starts the worker threads. Errors name the config line, cluster or upstream at fault.
  kupstream::Status start();
  // SIGHUP: load the file again; a bad file or a failing build is logged and the old
  // Generation keeps serving. The new Generation is swapped in once its new Upstreams are
  // ready (or after reload_wait_ms, with a warning).
  void reload();
  // Graceful stop: listeners close, in-flight requests finish (up to server.drain_timeout_ms),
  // every worker drops its routes and Forwarders and its loop ends (its thread is joined), then
  // every Upstream and ClusterClient is dropped. `done` runs once all of that is closed.
  void stop(std::function<void()> done);

  const std::vector<std::uint16_t>& ports() const { return ports_; }
  std::uint16_t admin_port() const { return admin_port_; }
  std::size_t worker_count() const { return workers_.size(); }
  // False when a worker loop did not close cleanly (uv_loop_close failed): a bug.
  bool workers_closed_cleanly() const { return workers_clean_; }

  // Admin endpoints. metrics_text() takes the workers' snapshots (one per worker, by index).
  std::string metrics_text(const std::vector<WorkerSnapshot>& workers) const;
  bool ready(std::string* reasons) const;

  // Any thread (the logger is thread-safe).
  void log(kupstream::LogLevel level, std::string_view text) const { log_(level, text); }
  // Any thread: runs `fn` on the control loop on a later turn (false once stopped).
  bool post_control(std::function<void()> fn) { return control_mailbox_->post(std::move(fn)); }
  // Control loop, from a worker (through post_control): that worker let go of generation `id`.
  void released(std::uint64_t id);
  // Control loop, from a worker (through post_control): its loop has ended.
  void worker_stopped(std::size_t index, bool closed);
  // Runs `fn` on worker `w`'s loop (at once when it is the control loop).
  bool on_worker(Worker& w, std::function<void()> fn) { return w.run(std::move(fn)); }

  static constexpr std::uint32_t reload_wait_ms = 10'000;

 private:
  kupstream::Result<std::shared_ptr<Generation>> build(const GatewayConfig& config);
  void swap_in(std::shared_ptr<Generation> next);
  void install_everywhere(const std::shared_ptr<Generation>& gen);
  void all_stopped();
  void check_pending();
  std::unique_ptr<RequestHandler> admin(RequestHead& head, ResponseWriter& writer);

  uv_loop_t& loop_;
  std::string config_path_;
  LogSink log_;
  std::optional<std::uint32_t> workers_override_;
  std::shared_ptr<Generation> current_;
  std::shared_ptr<Generation> pending_;  // built, waiting for its Upstreams to be ready
  std::uint64_t pending_since_ms_ = 0;
  // Every generation some worker still holds (the current one included), with how many
  // workers hold it; dropped here when that reaches 0.
  struct Held {
    std::shared_ptr<Generation> gen;
    std::size_t workers = 0;
  };
  std::map<std::uint64_t, Held> held_;
  std::uint64_t next_id_ = 1;
  uv_timer_t* pending_timer_ = nullptr;
  std::optional<Mailbox> control_mailbox_;
  std::unique_ptr<HttpServer> admin_server_;
  std::unique_ptr<HeapTrimmer> trimmer_;  // null when server.heap_trim_mib is 0
  std::vector<std::unique_ptr<Worker>> workers_;  // destroyed before the mailbox (see ~Gateway)
  std::vector<std::uint16_t> ports_;
  std::uint16_t admin_port_ = 0;
  std::uint64_t reloads_ok_ = 0, reloads_failed_ = 0;
  bool stopping_ = false;
  std::size_t workers_running_ = 0;
  bool workers_clean_ = true;
  std::function<void()> stop_done_;
  int stop_remaining_ = 0;
};

}  // namespace kupgw
