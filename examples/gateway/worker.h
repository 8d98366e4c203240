// Worker: one loop that serves clients: its own HttpServer (listening with SO_REUSEPORT when
// there are several workers), the routes of the configuration generation in service, and one
// Forwarder per upstream (forwarder.h).
//
// With one worker it runs on the control loop (no thread) and forwards through the Upstreams
// themselves; with N it runs on a LoopThread of its own and forwards through UpstreamWorkers.
// The control loop (Gateway) owns the Generations; a worker only borrows them:
//   - install(gen) builds this worker's WorkerRoutes for `gen`, reusing the Forwarder of an
//     upstream that `gen` carries over from the routes in service (same UpstreamHandle), and
//     makes them current. Requests in flight keep the routes (and Forwarders) they started on;
//   - when the last holder of a WorkerRoutes lets go, its Forwarders that no newer routes
//     reuse are destroyed on this loop, then the Gateway is told (Gateway::released) through
//     its mailbox, and only then may it drop the Generation and its Upstreams.
// Counters are plain fields touched only on this loop; the control loop reads them by asking
// for a snapshot().
//
// Thread: listen() and the first install() on the owning (control) thread before the loop
// runs; afterwards everything on the worker's loop thread, reached through Gateway::on_worker.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "forwarder.h"
#include "http_server.h"
#include "loop_thread.h"
#include "router.h"

namespace kupgw {

class Gateway;
struct Generation;
struct UpstreamHandle;

// Counters of one worker, exposed on /metrics summed over the workers.
struct GatewayCounters {
  std::map<std::pair<std::string, int>, std::uint64_t> responses;  // (upstream, status) → count
  std::map<std::string, std::uint64_t> upstream_errors;             // errc name → count
  std::uint64_t no_route = 0;
  std::uint64_t streams_aborted = 0;  // responses cut short after their head was sent
};

// One upstream as one worker forwards to it.
struct Lane {
  const UpstreamHandle* handle = nullptr;  // the Gateway's; outlives every routes holding the lane
  std::unique_ptr<Forwarder> forwarder;
  // (status, its GatewayCounters::responses entry): ProxyExchange::count's cache, so that a
  // response does not build a (name, status) key and search the map.
  std::vector<std::pair<int, std::uint64_t*>> response_counters;
};

// One Generation as one worker sees it.
struct WorkerRoutes {
  std::uint64_t generation = 0;
  const Router* router = nullptr;  // the Generation's (immutable)
  std::map<std::string, std::shared_ptr<Lane>, std::less<>> lanes;
};

struct WorkerSnapshot {
  GatewayCounters counters;
  HttpServerStats server;
};

class Worker {
 public:
  // `thread`: a LoopThread of its own (N workers), or nullptr to serve on the control loop.
  Worker(Gateway& gateway, std::size_t index, uv_loop_t& control_loop, std::unique_ptr<LoopThread> thread,
         HttpServerOptions options);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  std::size_t index() const { return index_; }
  uv_loop_t& loop() { return thread_ ? thread_->loop() : control_loop_; }
  bool on_control_loop() const { return thread_ == nullptr; }

  // Before the loop runs. Returns the bound port.
  kupstream::Result<std::uint16_t> listen(const std::string& address, std::uint16_t port);
  // Starts the worker's thread (no-op on the control loop).
  void start();
  // Runs `fn` on this worker's loop: at once on the control loop, else posted to its thread.
  // False when the worker has stopped.
  bool run(std::function<void()> fn);

  // Worker loop. Makes `gen`'s routes current. An upstream whose Forwarder cannot be made is
  // logged and answered 503 on this worker. Errors: the first Forwarder that failed.
  kupstream::Status install(const Generation& gen);
  // Worker loop. Graceful stop: drains the server, drops the routes and Forwarders, then tells
  // the Gateway (Gateway::worker_stopped) once the loop has closed.
  void drain(std::uint32_t timeout_ms);
  // Worker loop.
  WorkerSnapshot snapshot() const;

  GatewayCounters& counters() { return counters_; }
  void log(kupstream::LogLevel level, std::string_view text) const;

 private:
  std::unique_ptr<RequestHandler> route(RequestHead& head, ResponseWriter& writer);
  void finish();

  Gateway& gateway_;
  std::size_t index_;
  uv_loop_t& control_loop_;
  std::unique_ptr<LoopThread> thread_;
  std::unique_ptr<HttpServer> server_;
  std::shared_ptr<WorkerRoutes> current_;
  GatewayCounters counters_;
};

}  // namespace kupgw
