#include "kube/api_client.h"

#include <fmt/format.h>
#include <uv.h>

#include <cctype>

#include "core/defer.h"
#include "net/connection_pool.h"
#include "net/http_connection.h"
#include "net/tls_context.h"

namespace kupstream::kube {

// The client's keep-alive pool and how many of its exchanges are running. Shared by the client
// and the calls that use it, so it outlives whichever goes last.
struct ApiClient::SharedPool {
  uv_loop_t* loop = nullptr;
  std::unique_ptr<net::ConnectionPool> pool;
  std::size_t active = 0;

  // One exchange ended (or was dropped). With none left, the kept connections close on the next
  // loop turn unless a call started meanwhile (a burst of calls started from the completion of
  // another, as LISTs after the access reviews, still reuses them): an idle client holds no
  // socket, so a host's loop drains once its watches are gone.
  static void release(const std::shared_ptr<SharedPool>& shared) {
    if (--shared->active > 0) return;
    std::weak_ptr<SharedPool> weak = shared;
    detail::defer(*shared->loop, [weak] {
      if (auto s = weak.lock(); s && s->active == 0) s->pool->close_idle();
    });
  }
};

struct ApiCall::State : std::enable_shared_from_this<ApiCall::State> {
  ApiHandlers handlers;
  bool cancelled = false;  // the ApiCall was dropped: no handler runs any more
  // Watches: a connection of their own. Other calls: an exchange of the client's pool, which
  // the call keeps alive (declared first: the exchange goes before it) and counts as active
  // until the exchange ends or the call is dropped.
  std::shared_ptr<ApiClient::SharedPool> pool;
  bool pool_active = false;
  std::unique_ptr<net::HttpConnection> connection;
  std::unique_ptr<net::HttpExchange> exchange;

  void release_pool() {
    if (!pool_active) return;
    pool_active = false;
    ApiClient::SharedPool::release(pool);
  }
};

ApiCall::~ApiCall() {
  if (!state_) return;
  // Silence the handlers first, then close: nothing reaches the owner after the drop. The
  // handlers are not destroyed here: the drop may come from inside one of them. They go with
  // the State, which a running handler keeps alive until it returns.
  state_->cancelled = true;
  state_->exchange.reset();
  state_->connection.reset();
  state_->release_pool();
  state_->pool.reset();
}

std::string url_encode(std::string_view value) {
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
      out += static_cast<char>(c);
    else
      out += fmt::format("%{:02X}", c);
  }
  return out;
}

Result<std::unique_ptr<ApiCall>> ApiClient::get(std::string path_and_query, ApiHandlers handlers,
                                                std::chrono::milliseconds read_idle_timeout) {
  return send_request("GET", std::move(path_and_query), {}, std::move(handlers), read_idle_timeout);
}

Result<std::unique_ptr<ApiCall>> ApiClient::post(std::string path_and_query, std::string json_body,
                                                 ApiHandlers handlers) {
  return send_request("POST", std::move(path_and_query), std::move(json_body), std::move(handlers), {});
}

Result<std::unique_ptr<ApiCall>> ApiClient::send_request(std::string method, std::string path_and_query, std::string body,
                                                    ApiHandlers handlers, std::chrono::milliseconds read_idle_timeout) {
  if (path_and_query.empty() || path_and_query.front() != '/' ||
      path_and_query.find_first_of(" \r\n") != std::string::npos)
    return Error{Errc::invalid_argument, fmt::format("cluster \"{}\": bad API path \"{}\"", options_.cluster_name, path_and_query)};
  auto state = std::make_shared<ApiCall::State>();
  state->handlers = std::move(handlers);
  auto call = std::make_unique<ApiCall>(state);

  net::HttpConnectionOptions copts;
  copts.host = options_.server.host;
  copts.port = options_.server.port;
  copts.tls = options_.tls;
  copts.connect_timeout = options_.connect_timeout;
  copts.read_idle_timeout = read_idle_timeout;
  copts.limits.max_header_bytes = options_.max_header_bytes;
  copts.log = options_.log;
  net::HttpRequest request;
  request.target = options_.server.base_path + path_and_query;
  request.headers = {{"Accept", "application/json"}, {"User-Agent", options_.user_agent}};
  request.method = std::move(method);
  if (request.method != "GET") {
    request.headers.push_back({"Content-Type", "application/json"});
    request.body = std::move(body);
  }

  // LISTs and access reviews share the client's keep-alive pool; a watch (read_idle_timeout
  // set) holds its connection for minutes and gets one of its own.
  std::shared_ptr<SharedPool> pool;
  if (read_idle_timeout.count() == 0) {
    copts.read_idle_timeout = options_.pool_read_idle_timeout;
    auto p = shared_pool(copts);
    if (!p) return Error{p.error().code, fmt::format("cluster \"{}\": {}", options_.cluster_name, p.error().reason)};
    pool = std::move(*p);
  }
  // Sends once the Authorization header is known; `weak` makes a dropped call a no-op.
  std::weak_ptr<ApiCall::State> weak = state;
  const std::string cluster = options_.cluster_name;
  auto send = [weak, copts = std::move(copts), request = std::move(request), &loop = loop_, cluster,
               pool = std::move(pool)](Result<std::string> authorization) mutable {
    auto s = weak.lock();
    if (!s || s->cancelled) return;
    auto fail = [&](Error e) {
      if (auto cb = std::move(s->handlers.on_complete)) cb(std::move(e));
    };
    if (!authorization) return fail(std::move(authorization).error());
    if (!authorization->empty()) request.headers.push_back({"Authorization", *authorization});
    if (pool) {
      s->pool = std::move(pool);
    } else {
      auto connection = net::HttpConnection::create(loop, std::move(copts));
      if (!connection) return fail(Error{connection.error().code, fmt::format("cluster \"{}\": {}", cluster, connection.error().reason)});
      s->connection = std::move(*connection);
    }
    net::HttpHandlers h;
    h.on_head = [weak](const net::HttpResponseHead& head) {
      if (auto st = weak.lock(); st && !st->cancelled && st->handlers.on_head) st->handlers.on_head(head);
    };
    h.on_body = [weak](std::string_view bytes) {
      if (auto st = weak.lock(); st && !st->cancelled && st->handlers.on_body) st->handlers.on_body(bytes);
    };
    h.on_complete = [weak, cluster](Status status) {
      auto st = weak.lock();
      if (st) st->release_pool();
      if (!st || st->cancelled || !st->handlers.on_complete) return;
      auto cb = std::move(st->handlers.on_complete);
      if (!status) status = Error{status.error().code, fmt::format("cluster \"{}\": {}", cluster, status.error().reason)};
      cb(std::move(status));
    };
    if (s->pool) {
      ++s->pool->active;
      s->pool_active = true;
    }
    auto exchange = s->pool ? s->pool->pool->send(std::move(request), std::move(h)) : s->connection->send(std::move(request), std::move(h));
    if (!exchange) {
      s->release_pool();
      return fail(Error{exchange.error().code, fmt::format("cluster \"{}\": {}", cluster, exchange.error().reason)});
    }
    s->exchange = std::move(*exchange);
  };

  if (options_.auth) {
    options_.auth->authorization(std::move(send));
  } else {
    // No credentials: still answer later, never inside get().
    detail::defer(loop_, [send = std::move(send)]() mutable { send(std::string{}); });
  }
  return call;
}

Result<std::shared_ptr<ApiClient::SharedPool>> ApiClient::shared_pool(const net::HttpConnectionOptions& connection) {
  if (pool_) return pool_;
  net::PoolOptions o;
  o.connection = connection;
  o.max_connections = options_.pool_max_connections;
  o.max_idle = options_.pool_max_idle;
  o.idle_timeout = options_.pool_idle_timeout;
  // The pooled POSTs are SelfSubjectAccessReviews: questions the API server answers without
  // storing anything, so re-sending one after a silent close of a kept connection is safe.
  o.retry_non_idempotent = true;
  auto p = net::ConnectionPool::create(loop_, std::move(o));
  if (!p) return p.error();
  pool_ = std::make_shared<SharedPool>();
  pool_->loop = &loop_;
  pool_->pool = std::move(*p);
  return pool_;
}

ApiClient::~ApiClient() = default;

net::PoolCounters ApiClient::pool_counters() const noexcept { return pool_ ? pool_->pool->counters() : net::PoolCounters{}; }

void ApiClient::invalidate_credentials() {
  if (options_.auth) options_.auth->invalidate();
}

Result<std::unique_ptr<ApiClient>> make_api_client(uv_loop_t& loop, const ClusterConfig& config,
                                                   std::shared_ptr<AuthProvider> auth, LogFn log,
                                                   std::size_t max_header_bytes) {
  auto server = parse_server_url(config.server);
  if (!server) return Error{Errc::invalid_config, fmt::format("cluster \"{}\": server: {}", config.name, server.error().reason)};
  ApiClientOptions o;
  o.cluster_name = config.name;
  o.server = *server;
  o.auth = std::move(auth);
  o.max_header_bytes = max_header_bytes;
  o.log = log;
  if (server->tls) {
    net::TlsConfig tls;
    tls.ca_file = config.certificate_authority_file;
    tls.ca_pem = config.certificate_authority_data;
    if (!tls.ca_pem.empty()) tls.ca_file.clear();
    tls.cert_pem = config.credentials.client_certificate_data;
    tls.cert_file = tls.cert_pem.empty() ? config.credentials.client_certificate_file : "";
    tls.key_pem = config.credentials.client_key_data;
    tls.key_file = tls.key_pem.empty() ? config.credentials.client_key_file : "";
    tls.server_name = config.tls_server_name;
    tls.insecure_skip_verify = config.insecure_skip_tls_verify;
    auto ctx = net::TlsContext::create(tls);
    if (!ctx) return Error{Errc::invalid_config, fmt::format("cluster \"{}\": {}", config.name, ctx.error().reason)};
    o.tls = *ctx;
    // Logged once for this cluster here; the connections then stay quiet about it.
    if (o.tls->claim_insecure_warning() && log)
      log(LogLevel::warning, fmt::format("cluster \"{}\": TLS verification of the API server is OFF "
                                         "(insecure-skip-tls-verify)", config.name));
  }
  return std::make_unique<ApiClient>(loop, std::move(o));
}

}  // namespace kupstream::kube
