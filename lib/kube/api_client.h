// ApiClient: GET (and POST) requests to one Kubernetes API server, with its TLS settings and credentials,
// on the host's loop. Used by the reflector for LIST (whole body) and WATCH (streamed body).
//
// Connections: a watch (a call with a read_idle_timeout) gets a connection of its own, held for
// the watch's minutes. Every other call (LISTs, access reviews) goes through one keep-alive pool
// per client (net::ConnectionPool) of at most pool_max_connections: a start that lists 20
// Services and asks 5 access reviews per namespace opens a few TLS connections instead of one
// per request; a kept connection the server closed meanwhile is retried once on a fresh one
// (the pool's retry-once); a pooled response silent for pool_read_idle_timeout fails with
// timed_out (a stalled LIST cannot hold a pooled connection, nor its reflector, forever). Kept
// connections close as soon as no pooled call runs: an idle client holds no socket.
//
// Thread: loop thread only. Lifetime: the client and each ApiCall are dropped independently;
// an ApiCall keeps what it needs alive. Dropping an ApiCall at any time, even inside one of its
// handlers, cancels it: no handler runs afterwards.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "kube/auth_provider.h"
#include "kupstream/cluster.h"
#include "kupstream/log.h"
#include "net/connection_pool.h"
#include "net/http_types.h"

typedef struct uv_loop_s uv_loop_t;

namespace kupstream::net {
class TlsContext;
}

namespace kupstream::kube {

struct ApiClientOptions {
  std::string cluster_name;  // used in every error reason
  ServerUrl server;
  std::shared_ptr<net::TlsContext> tls;  // null for plain http servers
  std::shared_ptr<AuthProvider> auth;    // null: no Authorization header
  std::string user_agent = "kupstream/0.1";
  std::chrono::milliseconds connect_timeout{10'000};
  std::size_t max_header_bytes = 64u << 10;  // response head limit (http_limit_exceeded)
  // The pool of LISTs and access reviews: connections open at once (more calls queue), idle
  // ones kept, how long an idle one is kept (below common API server and proxy idle timeouts),
  // and the longest silence in a pooled response (above kube-apiserver's own 60 s limit for
  // non-watch requests, --request-timeout).
  std::size_t pool_max_connections = 4;
  std::size_t pool_max_idle = 4;
  std::chrono::milliseconds pool_idle_timeout{30'000};
  std::chrono::milliseconds pool_read_idle_timeout{90'000};
  LogFn log;
};

// Handlers of one call. All run on the loop thread, never inside get(); any may drop the call.
struct ApiHandlers {
  std::function<void(const net::HttpResponseHead&)> on_head;  // once, before any body
  std::function<void(std::string_view)> on_body;              // body bytes as they arrive
  std::function<void(Status)> on_complete;                    // exactly once unless dropped
};

class ApiCall {
 public:
  struct State;
  explicit ApiCall(std::shared_ptr<State> state) : state_(std::move(state)) {}
  ~ApiCall();
  ApiCall(const ApiCall&) = delete;
  ApiCall& operator=(const ApiCall&) = delete;

 private:
  std::shared_ptr<State> state_;
};

class ApiClient {
 public:
  struct SharedPool;
  explicit ApiClient(uv_loop_t& loop, ApiClientOptions options) : loop_(loop), options_(std::move(options)) {}
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  // `path_and_query` starts with '/' and is appended to the server's base path. A
  // read_idle_timeout > 0 fails the call with timed_out after that long without a byte (for
  // watches). Errors returned (no handler runs): invalid_argument for a bad path.
  Result<std::unique_ptr<ApiCall>> get(std::string path_and_query, ApiHandlers handlers,
                                       std::chrono::milliseconds read_idle_timeout = {});

  // POST of a JSON body (e.g. a SelfSubjectAccessReview); same contract as get().
  Result<std::unique_ptr<ApiCall>> post(std::string path_and_query, std::string json_body, ApiHandlers handlers);

  // After a 401: the next call fetches fresh credentials.
  void invalidate_credentials();
  // The keep-alive pool's counters (all zero before the first pooled call): connections opened,
  // exchanges on a reused connection, retries after a silent close.
  net::PoolCounters pool_counters() const noexcept;

  const std::string& cluster_name() const noexcept { return options_.cluster_name; }
  uv_loop_t& loop() const noexcept { return loop_; }

 private:
  Result<std::unique_ptr<ApiCall>> send_request(std::string method, std::string path_and_query, std::string body,
                                           ApiHandlers handlers, std::chrono::milliseconds read_idle_timeout);

  Result<std::shared_ptr<SharedPool>> shared_pool(const net::HttpConnectionOptions& connection);
  uv_loop_t& loop_;
  ApiClientOptions options_;
  // Made by the first pooled call; calls in flight keep it alive past the client.
  std::shared_ptr<SharedPool> pool_;
};

// Builds the client for a ClusterConfig: TLS from the CA / client certificate / server name /
// insecure flag, credentials from `auth` (the caller builds it from config.credentials).
// Errors: invalid_config (unparsable server URL, unreadable CA or key) naming the cluster.
Result<std::unique_ptr<ApiClient>> make_api_client(uv_loop_t& loop, const ClusterConfig& config,
                                                   std::shared_ptr<AuthProvider> auth, LogFn log,
                                                   std::size_t max_header_bytes = 64u << 10);

// Percent-encodes a query parameter value (RFC 3986 unreserved characters stay).
std::string url_encode(std::string_view value);

}  // namespace kupstream::kube
