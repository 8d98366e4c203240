#include "worker.h"

#include <fmt/format.h>

#include "gateway.h"
#include "proxy_exchange.h"

using namespace kupstream;

namespace kupgw {

Worker::Worker(Gateway& gateway, std::size_t index, uv_loop_t& control_loop, std::unique_ptr<LoopThread> thread,
               HttpServerOptions options)
    : gateway_(gateway), index_(index), control_loop_(control_loop), thread_(std::move(thread)) {
  server_ = std::make_unique<HttpServer>(loop(), std::move(options),
                                         [this](RequestHead& h, ResponseWriter& w) { return route(h, w); });
}

Worker::~Worker() {
  // After a graceful stop both are gone already (finish()); after a failed start the loop never
  // ran and this is the only thread that touched it.
  server_.reset();
  current_.reset();
  thread_.reset();  // joins the thread, or runs a never-started loop to its end
}

Result<std::uint16_t> Worker::listen(const std::string& address, std::uint16_t port) {
  return server_->listen(address, port);
}

void Worker::start() {
  if (!thread_) return;
  Gateway* gw = &gateway_;
  std::size_t i = index_;
  thread_->start([gw, i](bool closed) {
    // The last act of the worker's thread: its loop has closed.
    gw->post_control([gw, i, closed] { gw->worker_stopped(i, closed); });
  });
}

bool Worker::run(std::function<void()> fn) {
  if (!thread_) {
    fn();
    return true;
  }
  return thread_->post(std::move(fn));
}

Status Worker::install(const Generation& gen) {
  Status result;
  auto* routes = new WorkerRoutes;
  routes->generation = gen.id;
  routes->router = &gen.router;
  for (const auto& [name, handle] : gen.upstreams) {
    // An Upstream the new generation carries over keeps this worker's Forwarder (its pools).
    if (current_) {
      auto it = current_->lanes.find(name);
      if (it != current_->lanes.end() && it->second->handle == handle.get()) {
        routes->lanes.emplace(name, it->second);
        continue;
      }
    }
    auto fwd = make_forwarder(*handle->upstream, loop(), on_control_loop());
    if (!fwd) {
      auto reason = fmt::format("upstream {}: cannot forward on worker {}: {}", name, index_, fwd.error().reason);
      log(LogLevel::error, reason);
      if (result.ok()) result = Error{fwd.error().code, reason};
      continue;  // its requests get 503 on this worker
    }
    auto lane = std::make_shared<Lane>();
    lane->handle = handle.get();
    lane->forwarder = std::move(*fwd);
    routes->lanes.emplace(name, std::move(lane));
  }
  // The last holder (this worker's current_ or a request in flight) lets go on this loop: the
  // lanes no newer routes share are destroyed here, then the Gateway may drop the Generation.
  Gateway* gw = &gateway_;
  std::shared_ptr<WorkerRoutes> next(routes, [gw](WorkerRoutes* r) {
    std::uint64_t id = r->generation;
    delete r;
    gw->post_control([gw, id] { gw->released(id); });
  });
  current_ = std::move(next);
  return result;
}

std::unique_ptr<RequestHandler> Worker::route(RequestHead& head, ResponseWriter& writer) {
  auto routes = current_;
  if (!routes) {
    writer.simple(503, "stopping\n");
    return nullptr;
  }
  auto name = routes->router->match(head.header("host"), head.target);
  if (name.empty()) {
    counters_.no_route++;
    writer.simple(404, "no route\n");
    return nullptr;
  }
  auto it = routes->lanes.find(name);
  if (it == routes->lanes.end()) {
    writer.simple(503, fmt::format("service unavailable: upstream {}: not available on this worker\n", name));
    return nullptr;
  }
  Lane& lane = *it->second;
  auto ex = std::make_unique<ProxyExchange>(*this, std::move(routes), lane, head, writer);
  ex->begin();
  return ex;
}

void Worker::drain(std::uint32_t timeout_ms) {
  server_->drain(timeout_ms, [this] {
    // Not inside the server's own callback: on a later turn of this loop.
    if (thread_) thread_->post([this] { finish(); });
    else gateway_.post_control([this] { finish(); });
  });
}

void Worker::finish() {
  server_.reset();
  current_.reset();  // every request has ended: this releases the routes and their Forwarders
  if (thread_) {
    thread_->close_mailbox();  // the loop ends once the Forwarders' handles have closed
    return;
  }
  Gateway* gw = &gateway_;
  std::size_t i = index_;
  gw->post_control([gw, i] { gw->worker_stopped(i, true); });
}

WorkerSnapshot Worker::snapshot() const {
  WorkerSnapshot s;
  s.counters = counters_;
  if (server_) s.server = server_->stats();
  return s;
}

void Worker::log(LogLevel level, std::string_view text) const { gateway_.log(level, text); }

}  // namespace kupgw
