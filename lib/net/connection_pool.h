// ConnectionPool: keep-alive HTTP/1.1 connections to one target, i.e. one (scheme, address,
// port, TLS settings) — see pool_key(). Used by the Pod request path (throughput: many
// concurrent exchanges, streaming bodies, backpressure) and usable by the Kubernetes client.
//
// Thread: loop thread only. Lifetime: dropping the pool at any time (even inside a handler of
// one of its exchanges) closes every connection; no handler of any of its exchanges runs
// afterwards; exchange handles the caller still holds stay safe to use and drop.
//
// Retry-once: when an exchange fails with connection_closed on a connection that had been
// reused, before any response byte arrived, and its body was buffered (replayable), it is
// re-sent once on a freshly opened connection: the server closed the idle connection while the
// request was on its way. The caller sees only the second outcome. Counted in `retried`.
// Only idempotent methods (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) are retried unless
// PoolOptions::retry_non_idempotent is set: a POST that met a silent close may have been
// processed by a server that died before answering.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "kupstream/error.h"
#include "net/http_exchange.h"
#include "net/http_types.h"

typedef struct uv_loop_s uv_loop_t;

namespace kupstream::net {

struct PoolOptions {
  HttpConnectionOptions connection;  // target + per-connection settings
  std::size_t max_connections = 64;  // open (busy + idle + connecting)
  std::size_t max_idle = 16;         // idle connections kept; extra ones are closed
  std::chrono::milliseconds idle_timeout{60'000};  // an idle connection older than this closes
  std::size_t max_pending = 4096;    // queued exchanges waiting for a connection
  bool retry_non_idempotent = false;  // also retry-once POST/PATCH/... (see above)
};

struct PoolCounters {
  std::uint64_t opened = 0;   // connections opened (connect attempts started)
  std::uint64_t reused = 0;   // exchanges sent on a previously used connection
  std::uint64_t failed = 0;   // connections that ended in an error (connect, TLS, I/O, parse)
  std::uint64_t retried = 0;  // exchanges re-sent by retry-once
  std::size_t in_use = 0;     // connections carrying an exchange or connecting for one
  std::size_t idle = 0;       // connections idle in the pool
  std::size_t pending = 0;    // exchanges waiting for a connection
};

// "http://127.0.0.1:8080" or "https://[::1]:443#<tls identity>": equal keys may share a pool.
std::string pool_key(const HttpConnectionOptions& options);

class PoolCore;

class ConnectionPool {
 public:
  // invalid_argument for bad options (empty host, port 0, max_connections 0).
  static Result<std::unique_ptr<ConnectionPool>> create(uv_loop_t& loop, PoolOptions options);

  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;
  ConnectionPool(ConnectionPool&&) = delete;
  ConnectionPool& operator=(ConnectionPool&&) = delete;

  // Sends on an idle connection, a new one, or queues until one frees up. Errors returned
  // (no handler runs): invalid_argument (bad request), pool_exhausted (max_pending queued).
  Result<std::unique_ptr<HttpExchange>> send(HttpRequest request, HttpHandlers handlers);

  PoolCounters counters() const noexcept;
  const PoolOptions& options() const noexcept;

  // Closes idle connections now (e.g. after endpoints changed). In-use ones finish normally.
  void close_idle();

 private:
  explicit ConnectionPool(PoolCore* core) : core_(core) {}
  PoolCore* core_;
};

}  // namespace kupstream::net
