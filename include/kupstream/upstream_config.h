/// @file
/// UpstreamConfig: what an Upstream is made of. Validated before any Upstream is created.
///
/// Thread: a regular value type; any thread.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kupstream/error.h"
#include "kupstream/export.h"
#include "kupstream/service_ref.h"

namespace kupstream {

/// How an Upstream talks to its Pods: `http`, plain HTTP/1.1; `https`, HTTP/1.1 over TLS
/// (see UpstreamTls).
enum class Scheme { http, https };

/// How a Picker spreads requests over weighted endpoints.
enum class BalancerPolicy {
  weighted_round_robin,  ///< smooth WRR, the default
  least_request,         ///< power of two choices on in-flight requests
  consistent_hash,       ///< Maglev on a caller-supplied key
  random,                ///< weighted random
};

/// How a ServiceRef's weight reaches its Pods.
enum class WeightMode {
  per_pod,      ///< each ready Pod of the service gets the service's weight (the default)
  per_service,  ///< the weight is the service's total share, split evenly among its ready Pods
};

/// The enumerator's name: "http" or "https".
KUPSTREAM_API const char* to_string(Scheme s) noexcept;
/// The enumerator's name, e.g. "weighted_round_robin".
KUPSTREAM_API const char* to_string(BalancerPolicy p) noexcept;
/// The enumerator's name: "per_pod" or "per_service".
KUPSTREAM_API const char* to_string(WeightMode m) noexcept;
/// Parse the names above ("http", "least_request", "per_service", ...). Errors: invalid_config
/// naming the text and the names allowed.
KUPSTREAM_API Result<Scheme> parse_scheme(std::string_view text);
/// Parses a to_string(BalancerPolicy) name; errors as parse_scheme().
KUPSTREAM_API Result<BalancerPolicy> parse_balancer_policy(std::string_view text);
/// Parses a to_string(WeightMode) name; errors as parse_scheme().
KUPSTREAM_API Result<WeightMode> parse_weight_mode(std::string_view text);

/// The default UpstreamConfig::max_services.
inline constexpr std::size_t kDefaultMaxServices = 20;

/// One upstream: its name, the Service ports it sends to and how. Check it with
/// validate_upstream_config() (Upstream::create() does).
struct UpstreamConfig {
  std::string name;                   ///< 1..253 of [A-Za-z0-9._-]
  std::vector<ServiceRef> services;   ///< 1..max_services entries, no two alike
  std::size_t max_services = kDefaultMaxServices;  ///< the most services this upstream may name
  Scheme scheme = Scheme::http;                    ///< how to talk to the Pods
  std::optional<std::string> host_header;  ///< "host" or "host:port"; no CR/LF
  std::vector<std::pair<std::string, std::string>> tags;  ///< free metadata, keys unique
  BalancerPolicy policy = BalancerPolicy::weighted_round_robin;  ///< how requests are spread over Pods
  WeightMode weight_mode = WeightMode::per_pod;  ///< how service weights reach the Pods

  /// Field-wise equality.
  friend bool operator==(const UpstreamConfig&, const UpstreamConfig&) = default;
};

/// Checks the whole config; the first problem is reported with its path, e.g.
/// `upstream "web": services[3].namespace: "Default" is not a DNS-1123 label`.
KUPSTREAM_API Status validate_upstream_config(const UpstreamConfig& config);

/// "" when `value` is a valid Host header value (a DNS name, an IPv4 literal or a bracketed
/// IPv6 literal, with an optional :port 1..65535), else the reason.
KUPSTREAM_API std::string check_host_header(std::string_view value);

}  // namespace kupstream
