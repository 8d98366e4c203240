// PoolCore: the internal state of a ConnectionPool. Owns its connections (as their
// ConnectionOwner) and the queue of exchanges waiting for one.
#pragma once

#include <deque>
#include <memory>
#include <vector>

#include "net/connection_core.h"
#include "net/connection_pool.h"
#include "net/exchange_core.h"

namespace kupstream::net {

Status validate_connection_options(const HttpConnectionOptions& options);

class PoolCore final : private ConnectionOwner {
 public:
  PoolCore(uv_loop_t& loop, PoolOptions options);
  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;

  void release();  // the handle's drop
  Status send(const std::shared_ptr<ExchangeCore>& ex);
  void remove_pending(ExchangeCore& ex);
  void close_idle();
  PoolCounters counters() const noexcept;
  const PoolOptions& options() const noexcept { return options_; }

 private:
  struct Depth;
  ~PoolCore();

  void dispatch();
  bool assign(ConnectionCore* conn, const std::shared_ptr<ExchangeCore>& ex);
  ConnectionCore* open_connection();
  // The most recently used idle connection for `ex`, nullptr when none is left. For a request
  // that cannot be replayed, connections whose server has already hung up are closed, not used.
  ConnectionCore* take_idle(const ExchangeCore& ex);
  // The retry-once may re-send it on a fresh connection: a buffered body, and an idempotent
  // method or retry_non_idempotent.
  bool replayable(const ExchangeCore& ex) const;
  void drop_connection(ConnectionCore* conn);

  void on_connection_idle(ConnectionCore& conn) override;
  bool on_connection_closed(ConnectionCore& conn, bool failed, std::shared_ptr<ExchangeCore> retry) override;

  uv_loop_t& loop_;
  PoolOptions options_;
  std::vector<ConnectionCore*> idle_;  // most recently used last
  std::vector<ConnectionCore*> busy_;
  std::deque<std::shared_ptr<ExchangeCore>> pending_;
  PoolCounters counters_;
  int depth_ = 0;
  bool released_ = false;
};

}  // namespace kupstream::net
