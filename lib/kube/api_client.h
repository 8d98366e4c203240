// ApiClient: GET (and POST) requests to one Kubernetes API server, with its TLS settings and credentials,
// on the host's loop. Used by the reflector for LIST (whole body) and WATCH (streamed body).
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
  explicit ApiClient(uv_loop_t& loop, ApiClientOptions options) : loop_(loop), options_(std::move(options)) {}
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

  const std::string& cluster_name() const noexcept { return options_.cluster_name; }
  uv_loop_t& loop() const noexcept { return loop_; }

 private:
  Result<std::unique_ptr<ApiCall>> send_request(std::string method, std::string path_and_query, std::string body,
                                           ApiHandlers handlers, std::chrono::milliseconds read_idle_timeout);

  uv_loop_t& loop_;
  ApiClientOptions options_;
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
