// TlsConfig (what a TLS client should trust and present) and TlsContext (the loaded, shareable
// SSL_CTX plus its client session cache).
//
// Thread: TlsConfig is a plain value. A TlsContext is created and used on the loop thread; it is
// immutable after create() except for its session cache, which only the loop thread touches.
// Lifetime: shared_ptr; every connection that uses it holds a reference, so it may be dropped by
// its creator at any time.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kupstream/error.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;

namespace kupstream::net {

struct TlsConfig {
  // Trust anchors. ca_file and ca_pem may both be set (both are loaded). When neither is set
  // and insecure_skip_verify is false, the system's default verify paths are used.
  std::string ca_file;
  std::string ca_pem;

  // Client certificate (mTLS, as kubeconfig's client-certificate[-data]). A file or PEM text;
  // the certificate may be followed by its chain. Both certificate and key, or neither.
  std::string cert_file;
  std::string cert_pem;
  std::string key_file;
  std::string key_pem;

  // The name sent as SNI and checked against the server certificate (DNS or IP SAN). Empty:
  // the connection's host. This is kubeconfig's tls-server-name.
  std::string server_name;

  // DANGER: accepts any server certificate (no chain, name or expiry check). Never the
  // default; every connection made with it logs a warning through its LogFn.
  bool insecure_skip_verify = false;

  // ALPN protocols offered, in order. The HTTP client only speaks http/1.1.
  std::vector<std::string> alpn{"http/1.1"};

  // Client-side session resumption (one cached session per server name and port).
  bool session_resumption = true;

  // A stable string identifying these settings, for pool keys (contains no key material,
  // only file names and a hash of in-memory PEM).
  std::string identity() const;
};

class TlsContext {
 public:
  // Loads CA, client certificate and key. Errors: invalid_config with a reason naming the
  // field (e.g. "tls.ca_file: /x: No such file"), or the key/cert mismatch.
  static Result<std::shared_ptr<TlsContext>> create(const TlsConfig& config);

  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  const TlsConfig& config() const noexcept { return config_; }
  SSL_CTX* native() const noexcept { return ctx_; }
  const std::string& identity() const noexcept { return identity_; }

  // Creates a client SSL for `host` (IP literal or DNS name) port `port`: SNI (not for IP
  // literals), hostname/IP verification, ALPN and a cached session. Errors: internal.
  Result<SSL*> new_client_ssl(std::string_view host, std::uint16_t port);

  // With insecure_skip_verify: true exactly once per context (any thread), so that turning
  // verification off is logged once by whoever claims it first (the object that configured
  // it, e.g. an Upstream or a ClusterClient, or else the first connection), not per connection.
  bool claim_insecure_warning() const noexcept {
    return config_.insecure_skip_verify && !insecure_warned_.exchange(true, std::memory_order_relaxed);
  }

  // Counters for tests and benchmarks.
  std::uint64_t sessions_cached() const noexcept { return sessions_cached_; }

 private:
  TlsContext() = default;
  friend struct TlsContextAccess;
  void store_session(const std::string& key, SSL_SESSION* session);

  TlsConfig config_;
  std::string identity_;
  SSL_CTX* ctx_ = nullptr;
  std::map<std::string, SSL_SESSION*> sessions_;
  std::uint64_t sessions_cached_ = 0;
  mutable std::atomic<bool> insecure_warned_{false};
};

}  // namespace kupstream::net
