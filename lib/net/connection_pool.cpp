#include "net/connection_pool.h"

#include <algorithm>

#include "net/block_cache.h"
#include "net/pool_core.h"
#include "net/tls_context.h"

namespace kupstream::net {

struct PoolCore::Depth {
  PoolCore* p;
  explicit Depth(PoolCore* pool) : p(pool) { ++p->depth_; }
  ~Depth() {
    if (--p->depth_ == 0 && p->released_) delete p;
  }
  Depth(const Depth&) = delete;
  Depth& operator=(const Depth&) = delete;
};

namespace {

void erase_one(std::vector<ConnectionCore*>& v, ConnectionCore* c) {
  auto it = std::find(v.begin(), v.end(), c);
  if (it != v.end()) v.erase(it);
}

bool idempotent(const std::string& m) {
  return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE" || m == "PUT" || m == "DELETE";
}

}  // namespace

std::string pool_key(const HttpConnectionOptions& o) {
  bool v6 = o.host.find(':') != std::string::npos;
  std::string key = o.tls ? "https://" : "http://";
  key += v6 ? "[" + o.host + "]" : o.host;
  key += ":" + std::to_string(o.port);
  if (o.tls) key += "#" + o.tls->identity();
  return key;
}

PoolCore::PoolCore(uv_loop_t& loop, PoolOptions options) : loop_(loop), options_(std::move(options)) {}

PoolCore::~PoolCore() = default;

void PoolCore::release() {
  if (released_) return;
  Depth guard(this);
  released_ = true;
  std::vector<ConnectionCore*> all;
  all.swap(idle_);
  all.insert(all.end(), busy_.begin(), busy_.end());
  busy_.clear();
  for (ConnectionCore* c : all) {
    c->set_owner(nullptr);
    c->release();
  }
  std::deque<std::shared_ptr<ExchangeCore>> pending;
  pending.swap(pending_);
  for (auto& ex : pending) {
    ex->pool = nullptr;
    ex->state = ExchangeCore::State::done;
    ex->cancel_silently();
  }
}

bool PoolCore::replayable(const ExchangeCore& ex) const {
  return ex.request.body_mode == BodyMode::buffered && (options_.retry_non_idempotent || idempotent(ex.request.method));
}

ConnectionCore* PoolCore::take_idle(const ExchangeCore& ex) {
  // A replayable request lost on a dead connection is re-sent once (on_connection_closed), so
  // only the others pay for the check (a system call per reuse).
  const bool check = !replayable(ex);
  while (!idle_.empty()) {
    ConnectionCore* conn = idle_.back();
    idle_.pop_back();
    if (!check || !conn->peer_hung_up()) return conn;
    conn->set_owner(nullptr);
    conn->release();
  }
  return nullptr;
}

ConnectionCore* PoolCore::open_connection() {
  auto* c = new ConnectionCore(loop_, options_.connection);
  c->set_owner(this);
  c->set_idle_timeout(static_cast<std::uint64_t>(options_.idle_timeout.count()));
  ++counters_.opened;
  return c;
}

bool PoolCore::assign(ConnectionCore* conn, const std::shared_ptr<ExchangeCore>& ex) {
  bool reused = conn->exchanges_started() > 0;
  Status s = conn->start(ex);
  if (!s) return false;
  if (reused) ++counters_.reused;
  busy_.push_back(conn);
  return true;
}

Status PoolCore::send(const std::shared_ptr<ExchangeCore>& ex) {
  Depth guard(this);
  ex->write_high_water = options_.connection.write_high_water;
  ConnectionCore* idle = take_idle(*ex);
  if (idle != nullptr || busy_.size() < options_.max_connections) {
    bool fresh = idle == nullptr;
    ConnectionCore* conn = fresh ? open_connection() : idle;
    bool reused = conn->exchanges_started() > 0;
    Status s = conn->start(ex);
    if (!s) {
      if (fresh) {
        conn->set_owner(nullptr);
        conn->release();
        --counters_.opened;
      } else {
        idle_.push_back(conn);
      }
      return s;
    }
    if (reused) ++counters_.reused;
    busy_.push_back(conn);
    return {};
  }
  if (pending_.size() >= options_.max_pending)
    return Error{Errc::pool_exhausted, pool_key(options_.connection) + ": " + std::to_string(pending_.size()) +
                                           " requests already wait for a connection (max_pending)"};
  std::string scratch;
  if (Status s = serialize_request_head(ex->request, "x", scratch); !s) return s;
  ex->pool = this;
  ex->state = ExchangeCore::State::queued;
  pending_.push_back(ex);
  return {};
}

void PoolCore::remove_pending(ExchangeCore& ex) {
  auto it = std::find_if(pending_.begin(), pending_.end(), [&](const auto& p) { return p.get() == &ex; });
  if (it != pending_.end()) pending_.erase(it);
}

void PoolCore::dispatch() {
  while (!pending_.empty() && !released_) {
    ConnectionCore* conn = take_idle(*pending_.front());
    if (conn == nullptr) {
      if (busy_.size() >= options_.max_connections) return;
      conn = open_connection();
    }
    std::shared_ptr<ExchangeCore> ex = std::move(pending_.front());
    pending_.pop_front();
    if (!assign(conn, ex)) {
      // Validated when queued, so this is a closed connection: fail the exchange, not the pool.
      conn->set_owner(nullptr);
      conn->release();
      ex->complete(Error{Errc::connection_closed, pool_key(options_.connection) + ": connection unusable"});
      if (released_) return;
    }
  }
}

void PoolCore::on_connection_idle(ConnectionCore& conn) {
  Depth guard(this);
  erase_one(busy_, &conn);
  if (!pending_.empty() && !replayable(*pending_.front()) && conn.peer_hung_up()) {
    // Closed right behind the response: a waiting exchange needs another connection.
    conn.set_owner(nullptr);
    conn.release();
    dispatch();
    return;
  }
  if (!pending_.empty()) {
    std::shared_ptr<ExchangeCore> ex = std::move(pending_.front());
    pending_.pop_front();
    if (assign(&conn, ex)) return;
    pending_.push_front(std::move(ex));
  }
  if (idle_.size() >= options_.max_idle) {
    conn.set_owner(nullptr);
    conn.release();
    return;
  }
  idle_.push_back(&conn);
}

bool PoolCore::on_connection_closed(ConnectionCore& conn, bool failed, std::shared_ptr<ExchangeCore> retry) {
  Depth guard(this);
  erase_one(busy_, &conn);
  erase_one(idle_, &conn);
  conn.set_owner(nullptr);
  conn.release();
  if (failed) ++counters_.failed;
  bool taken = false;
  if (retry && !options_.retry_non_idempotent && !idempotent(retry->request.method)) retry.reset();
  if (retry && !released_) {
    retry->retried = true;
    ++counters_.retried;
    ConnectionCore* fresh = open_connection();
    if (assign(fresh, retry)) {
      taken = true;
    } else {
      fresh->set_owner(nullptr);
      fresh->release();
    }
  }
  dispatch();
  return taken;
}

void PoolCore::close_idle() {
  Depth guard(this);
  std::vector<ConnectionCore*> idle;
  idle.swap(idle_);
  for (ConnectionCore* c : idle) {
    c->set_owner(nullptr);
    c->release();
  }
}

PoolCounters PoolCore::counters() const noexcept {
  PoolCounters c = counters_;
  c.in_use = busy_.size();
  c.idle = idle_.size();
  c.pending = pending_.size();
  return c;
}

Result<std::unique_ptr<ConnectionPool>> ConnectionPool::create(uv_loop_t& loop, PoolOptions options) {
  if (Status s = validate_connection_options(options.connection); !s) return s.error();
  if (options.max_connections == 0) return Error{Errc::invalid_argument, "pool.max_connections: 0"};
  return std::unique_ptr<ConnectionPool>(new ConnectionPool(new PoolCore(loop, std::move(options))));
}

ConnectionPool::~ConnectionPool() { core_->release(); }

Result<std::unique_ptr<HttpExchange>> ConnectionPool::send(HttpRequest request, HttpHandlers handlers) {
  auto ex = std::allocate_shared<ExchangeCore>(detail::BlockAllocator<ExchangeCore>{}, std::move(request),
                                               std::move(handlers));
  if (Status s = core_->send(ex); !s) return s.error();
  return std::make_unique<HttpExchange>(std::move(ex));
}

PoolCounters ConnectionPool::counters() const noexcept { return core_->counters(); }
const PoolOptions& ConnectionPool::options() const noexcept { return core_->options(); }
void ConnectionPool::close_idle() { core_->close_idle(); }

}  // namespace kupstream::net
