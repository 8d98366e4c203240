#include "gateway.h"

#include <fmt/format.h>

#include <set>

#include "proxy_exchange.h"

using namespace kupstream;

namespace kupgw {

namespace {

std::uint64_t now_ms(uv_loop_t& loop) { return uv_now(&loop); }

bool same_settings(const GatewayConfig& a, const GatewayConfig& b) {
  return a.listeners == b.listeners && a.admin == b.admin && a.server == b.server;
}

}  // namespace

Gateway::Gateway(uv_loop_t& loop, std::string config_path, LogSink log, std::optional<std::uint32_t> workers)
    : loop_(loop), config_path_(std::move(config_path)), log_(std::move(log)), workers_override_(workers) {
  control_mailbox_.emplace(loop_);
}

Gateway::~Gateway() {
  if (pending_timer_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(pending_timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    pending_timer_ = nullptr;
  }
  trimmer_.reset();
  // After a graceful stop the workers are gone already. After a failed start their threads never
  // ran: their servers and Forwarders close here, on this thread, before the Upstreams.
  workers_.clear();
  admin_server_.reset();
  pending_.reset();
  held_.clear();
  current_.reset();
  control_mailbox_.reset();
}

Result<std::shared_ptr<Generation>> Gateway::build(const GatewayConfig& config) {
  auto gen = std::make_shared<Generation>();
  gen->id = next_id_++;
  gen->config = config;
  const Generation* prev = current_.get();

  for (std::size_t i = 0; i < config.clusters.size(); ++i) {
    const auto& entry = config.clusters[i];
    auto where = fmt::format("{}:{}: clusters[{}] ({})", config.source, entry.line, i, entry.name);
    Result<ClusterConfig> cc = [&]() -> Result<ClusterConfig> {
      if (entry.in_cluster) return load_in_cluster_config();
      KubeconfigOptions ko;
      if (!entry.kubeconfig.empty()) ko.paths = {entry.kubeconfig};
      ko.context = entry.context;
      ko.log = [this](LogLevel l, std::string_view t) { log_(l, t); };
      return load_kubeconfig(ko);
    }();
    if (!cc) return Error{cc.error().code, fmt::format("{}: {}", where, cc.error().reason)};
    if (prev != nullptr) {
      auto it = prev->clusters.find(entry.name);
      if (it != prev->clusters.end() && it->second->entry.kubeconfig == entry.kubeconfig &&
          it->second->entry.context == entry.context && it->second->entry.in_cluster == entry.in_cluster &&
          it->second->entry.slice_watch == entry.slice_watch && it->second->config == *cc) {
        gen->clusters[entry.name] = it->second;  // unchanged: keep its watches
        continue;
      }
    }
    ClusterClientOptions co;
    co.slice_watch = entry.slice_watch;
    std::string name = entry.name;
    co.log = [this, name](LogLevel l, std::string_view t) { log_(l, fmt::format("cluster {}: {}", name, t)); };
    auto client = ClusterClient::create(loop_, *cc, co);
    if (!client) return Error{client.error().code, fmt::format("{}: {}", where, client.error().reason)};
    auto handle = std::make_shared<ClusterHandle>();
    handle->entry = entry;
    handle->config = std::move(*cc);
    handle->client = std::move(*client);
    gen->clusters[entry.name] = std::move(handle);
  }

  for (std::size_t i = 0; i < config.upstreams.size(); ++i) {
    const auto& entry = config.upstreams[i];
    const auto& name = entry.config.name;
    std::vector<std::shared_ptr<ClusterHandle>> used;
    ClusterMap map;
    for (const auto& ref : entry.config.services) {
      auto& h = gen->clusters.at(ref.cluster);
      if (map.emplace(ref.cluster, h->client.get()).second) used.push_back(h);
    }
    if (prev != nullptr) {
      auto it = prev->upstreams.find(name);
      if (it != prev->upstreams.end() && it->second->entry.fingerprint == entry.fingerprint &&
          it->second->clusters == used) {
        gen->upstreams[name] = it->second;  // unchanged, on unchanged clusters: keep pools and health
        continue;
      }
    }
    auto options = entry.options;
    options.log = [this, name](LogLevel l, std::string_view t) { log_(l, fmt::format("upstream {}: {}", name, t)); };
    auto up = Upstream::create(loop_, entry.config, map, std::move(options));
    if (!up) {
      return Error{up.error().code,
                   fmt::format("{}:{}: upstreams[{}] ({}): {}", config.source, entry.line, i, name, up.error().reason)};
    }
    auto handle = std::make_shared<UpstreamHandle>();
    handle->clusters = std::move(used);
    handle->entry = entry;
    handle->upstream = std::move(*up);
    gen->upstreams[name] = std::move(handle);
  }
  gen->router = Router(config.routes);
  return gen;
}

Status Gateway::start() {
  auto cfg = load_config_file(config_path_);
  if (!cfg) return cfg.error();
  std::uint32_t n = workers_override_.value_or(cfg->server.workers);
  if (n > 1 && !multi_worker_supported())
    return Error{Errc::unsupported, fmt::format("{} workers: this build's kupstream has no UpstreamWorker; use 1", n)};
  auto gen = build(*cfg);
  if (!gen) return gen.error();
  current_ = std::move(*gen);
  const auto& c = current_->config;

  HttpServerOptions so;
  so.max_header_bytes = c.server.max_header_bytes;
  so.max_body_bytes = c.server.max_body_bytes;
  so.header_timeout_ms = c.server.header_timeout_ms;
  so.idle_timeout_ms = c.server.idle_timeout_ms;
  so.log = [this](std::string_view t) { log_(LogLevel::debug, t); };
  if (n > 1) so.reuse_port = true;
  for (std::uint32_t i = 0; i < n; ++i)
    workers_.push_back(std::make_unique<Worker>(*this, i, loop_, n > 1 ? std::make_unique<LoopThread>() : nullptr, so));
  // The first worker binds (port 0 picks a port); the others join it on the port it got.
  for (const auto& l : c.listeners) {
    std::uint16_t port = l.port;
    for (auto& w : workers_) {
      auto bound = w->listen(l.address, port);
      if (!bound) return bound.error();
      port = *bound;
    }
    ports_.push_back(port);
    log_(LogLevel::info, n > 1 ? fmt::format("listening on {}:{} ({} workers)", l.address, port, n)
                               : fmt::format("listening on {}:{}", l.address, port));
  }
  if (c.admin) {
    HttpServerOptions ao = so;
    ao.reuse_port = false;
    admin_server_ = std::make_unique<HttpServer>(loop_, ao, [this](RequestHead& h, ResponseWriter& w) { return admin(h, w); });
    auto port = admin_server_->listen(c.admin->address, c.admin->port);
    if (!port) return port.error();
    admin_port_ = *port;
    log_(LogLevel::info, fmt::format("admin on {}:{}", c.admin->address, *port));
  }
  if (c.server.heap_trim_mib > 0) {
    trimmer_ = std::make_unique<HeapTrimmer>(loop_, std::size_t{c.server.heap_trim_mib} << 20, 1000,
                                             [this](std::string_view t) { log_(LogLevel::debug, t); });
    trimmer_->start();
  }
  // The first routes are installed before the worker loops run (so on this thread).
  held_[current_->id] = Held{current_, workers_.size()};
  for (auto& w : workers_) {
    auto st = w->install(*current_);
    if (!st) return st.error();
  }
  for (auto& w : workers_) w->start();
  workers_running_ = workers_.size();
  return {};
}

void Gateway::reload() {
  if (stopping_) return;
  log_(LogLevel::info, fmt::format("reloading {}", config_path_));
  auto cfg = load_config_file(config_path_);
  if (!cfg) {
    reloads_failed_++;
    log_(LogLevel::error, fmt::format("reload rejected, the running config stays:\n{}", cfg.error().reason));
    return;
  }
  if (!same_settings(*cfg, current_->config))
    log_(LogLevel::warning, "reload: listeners, admin and server settings only change on restart");
  pending_.reset();  // a newer file replaces a reload still waiting
  auto gen = build(*cfg);
  if (!gen) {
    reloads_failed_++;
    log_(LogLevel::error, fmt::format("reload rejected, the running config stays: {}", gen.error().reason));
    return;
  }
  // Keep listener settings from the running config: the sockets stay open.
  (*gen)->config.listeners = current_->config.listeners;
  (*gen)->config.admin = current_->config.admin;
  (*gen)->config.server = current_->config.server;
  pending_ = std::move(*gen);
  pending_since_ms_ = now_ms(loop_);
  if (pending_timer_ == nullptr) {
    pending_timer_ = new uv_timer_t;
    uv_timer_init(&loop_, pending_timer_);
    pending_timer_->data = this;
  }
  check_pending();
}

void Gateway::check_pending() {
  if (!pending_) return;
  std::string waiting;
  for (const auto& [name, h] : pending_->upstreams) {
    bool reused = current_ && current_->upstreams.count(name) && current_->upstreams.at(name) == h;
    if (!reused && !h->upstream->ready()) waiting += (waiting.empty() ? "" : ", ") + name;
  }
  bool expired = now_ms(loop_) - pending_since_ms_ >= reload_wait_ms;
  if (!waiting.empty() && !expired) {
    uv_timer_start(pending_timer_, [](uv_timer_t* t) { static_cast<Gateway*>(t->data)->check_pending(); }, 10, 0);
    return;
  }
  if (!waiting.empty())
    log_(LogLevel::warning, fmt::format("reload: upstreams not ready after {} ms, switching anyway: {}", reload_wait_ms, waiting));
  swap_in(std::move(pending_));
}

void Gateway::swap_in(std::shared_ptr<Generation> next) {
  reloads_ok_++;
  log_(LogLevel::info, fmt::format("config generation {} in service ({} upstreams, {} routes, {} workers)", next->id,
                                   next->upstreams.size(), next->config.routes.size(), workers_.size()));
  current_ = std::move(next);
  install_everywhere(current_);
}

void Gateway::install_everywhere(const std::shared_ptr<Generation>& gen) {
  // Each worker swaps its routes on its own loop; the old generation stays here until every
  // worker has released it (its requests in flight finish on it).
  held_[gen->id] = Held{gen, workers_.size()};
  for (auto& w : workers_) {
    Worker* worker = w.get();
    const Generation* g = gen.get();
    bool posted = on_worker(*worker, [worker, g] {
      auto st = worker->install(*g);
      if (!st) worker->log(LogLevel::error, fmt::format("worker {}: {}", worker->index(), st.error().reason));
    });
    if (!posted) released(gen->id);  // that worker has stopped: it holds nothing
  }
}

void Gateway::released(std::uint64_t id) {
  auto it = held_.find(id);
  if (it == held_.end()) return;
  if (--it->second.workers > 0) return;
  // Every worker has let go: the Upstreams that no newer generation reuses are dropped here, on
  // the control loop, after their UpstreamWorkers were dropped on their own loops.
  held_.erase(it);
}

void Gateway::stop(std::function<void()> done) {
  if (stopping_) return;
  stopping_ = true;
  log_(LogLevel::info, "stopping: draining connections");
  if (pending_timer_ != nullptr) uv_timer_stop(pending_timer_);
  pending_.reset();
  stop_done_ = std::move(done);
  stop_remaining_ = 1 + (admin_server_ ? 1 : 0);  // the workers (together), the admin server
  std::uint32_t timeout = current_ ? current_->config.server.drain_timeout_ms : 0;
  if (admin_server_) admin_server_->drain(timeout, [this] { all_stopped(); });
  for (auto& w : workers_) {
    Worker* worker = w.get();
    if (!on_worker(*worker, [worker, timeout] { worker->drain(timeout); })) worker_stopped(worker->index(), true);
  }
  if (workers_.empty()) all_stopped();
}

void Gateway::worker_stopped(std::size_t index, bool closed) {
  if (!closed) {
    workers_clean_ = false;
    log_(LogLevel::error, fmt::format("worker {}: its loop did not drain", index));
  }
  if (workers_running_ == 0 || --workers_running_ > 0) return;
  all_stopped();
}

void Gateway::all_stopped() {
  if (--stop_remaining_ > 0) return;
  // Every worker loop has ended (its thread is finishing its last act): join them, then drop the
  // Upstreams and ClusterClients (Generation member order) and close the control loop's handles.
  workers_.clear();
  held_.clear();
  current_.reset();
  if (pending_timer_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(pending_timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    pending_timer_ = nullptr;
  }
  trimmer_.reset();
  control_mailbox_->close();
  auto done = std::move(stop_done_);
  if (done) done();
}

}  // namespace kupgw
