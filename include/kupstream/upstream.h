/// @file
/// Upstream: a named set of Kubernetes Services (possibly in several clusters) that requests
/// are sent to, straight to their Pods.
///
/// An Upstream subscribes to one EndpointWatcher per ServiceRef (shared through each cluster's
/// ClusterClient), merges the ready endpoints with their weights (per_pod or per_service),
/// keeps passive (and optional active) health per Pod, and publishes an immutable Picker after
/// every change. It forwards requests over pooled HTTP/1.1 or HTTPS connections, with the Host
/// override, X-Forwarded-* headers, timeouts and retries on another Pod; or the host may just
/// call pick() and use its own transport.
///
/// Thread: loop thread only, except pick() and picker(), which any thread may call. Other loops
/// (one per thread) forward through UpstreamWorkers (worker(), kupstream/upstream_worker.h).
/// Lifetime: create() returns a unique_ptr; dropping it at any time (even inside a handler of one
/// of its requests) cancels its requests (no handler runs afterwards) and unsubscribes. The
/// ClusterClients in the ClusterMap must outlive the Upstream.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kupstream/balancer.h"
#include "kupstream/cluster_client.h"
#include "kupstream/error.h"
#include "kupstream/export.h"
#include "kupstream/log.h"
#include "kupstream/upstream_config.h"

/// libuv's loop type, declared here so that this header does not need uv.h.
typedef struct uv_loop_s uv_loop_t;

namespace kupstream {

class UpstreamWorker;

/// Cluster name (ServiceRef::cluster) → its client. Not owned.
using ClusterMap = std::map<std::string, ClusterClient*, std::less<>>;

/// Time limits of a forwarded request, and how long idle pooled connections are kept.
/// A request that runs out of time fails with timed_out, naming the upstream and the Pod.
struct UpstreamTimeouts {
  std::chrono::milliseconds connect{1'000};           ///< TCP connect + TLS handshake to a Pod
  std::chrono::milliseconds response_header{15'000};  ///< request sent → response head
  std::chrono::milliseconds total{60'000};            ///< whole exchange, retries included; 0 = none
  std::chrono::milliseconds idle_connection{60'000};  ///< pooled connection kept idle this long
};

/// When a failed attempt is tried again on another Pod (details in docs/upstream.md).
struct RetryPolicy {
  std::uint32_t max_retries = 2;  ///< extra attempts, each on another Pod when there is one
  bool on_connect_failure = true;  ///< any method: nothing was sent; false = never after a connect failure
  /// For idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE) with a buffered body only.
  std::vector<int> on_status{502, 503, 504};
  /// Retries in flight may not exceed this share of requests in flight (plus min_concurrent).
  double budget_ratio = 0.2;
  std::uint32_t min_concurrent = 3;  ///< retries in flight always allowed, whatever budget_ratio says
};

/// Passive health: consecutive failures eject a Pod for base_ejection × times ejected (capped at
/// max_ejection). At most max_ejected_percent of Pods are ejected at once.
struct OutlierDetection {
  std::uint32_t consecutive_failures = 5;  ///< connect failures, timeouts and 5xx; 0 = off; above 65,535 acts as 65,535
  std::chrono::milliseconds base_ejection{30'000};  ///< the first ejection's length
  std::chrono::milliseconds max_ejection{300'000};  ///< no ejection lasts longer (nor, whatever this says, about 24.8 days: 2^31 ms)

  /// The most Pods ejected at once, as a share of those that could take traffic now (listed,
  /// of a service with weight > 0, ready, or draining under the draining fallback).
  std::uint32_t max_ejected_percent = 50;
};

/// Active health: `GET path` to every Pod, one probe per Pod at a time; 2xx/3xx is a success.
/// Pods start healthy; an unhealthy Pod gets no traffic (unless the Upstream is in panic).
struct ActiveHealthCheck {
  bool enabled = false;                       ///< off by default
  std::string path = "/healthz";              ///< the origin-form target probed
  std::chrono::milliseconds interval{5'000};  ///< between two probes of one Pod
  std::chrono::milliseconds timeout{1'000};   ///< a probe without an answer by then fails (connection closed)
  std::uint32_t unhealthy_threshold = 2;      ///< consecutive failures that make a healthy Pod unhealthy
  std::uint32_t healthy_threshold = 1;        ///< consecutive successes that make it healthy again
};

/// TLS to the Pods, used when UpstreamConfig::scheme is https.
struct UpstreamTls {
  std::string ca_file;               ///< trust for HTTPS Pods; "" = system defaults
  bool insecure_skip_verify = false;  ///< DANGER: no certificate check; logged

  /// Name for SNI and verification: this, else the Host override (without port), else the
  /// Service DNS name `<service>.<namespace>.svc`.
  std::string server_name;
};

/// Zone-aware routing (docs/upstream.md, "Zone-aware routing"): keep traffic in this host's zone
/// while that zone has the healthy capacity for it, following EndpointSlice hints as kube-proxy
/// does, and spill the rest over to other zones in proportion to their spare capacity, as
/// Envoy's zone-aware routing does. Off by default. Applied each time the Picker is rebuilt:
/// pick() costs the same with it on or off.
struct ZoneAwareRouting {
  bool enabled = false;  ///< off by default
  /// This host's zone (the `topology.kubernetes.io/zone` label of its node); required when
  /// enabled (Upstream::create() fails with invalid_config naming `locality.zone` otherwise).
  std::string zone;
  /// Follow `hints.forZones` when every ready endpoint has hints and one is hinted for `zone`
  /// (kube-proxy's rules); false = always group endpoints by their own `zone`.
  bool use_hints = true;
  /// Share of the fleet's traffic that starts in each zone (Envoy's originating-cluster
  /// distribution: e.g. gateway replicas per zone); must include `zone` with a share > 0.
  /// Empty = traffic starts evenly in every zone where the upstream has endpoints. Not used
  /// when hints are followed (the hints already carry the EndpointSlice controller's split).
  std::vector<std::pair<std::string, double>> zone_traffic;
  /// Fewer healthy endpoints than this in the whole upstream: no zone preference (Envoy's
  /// min_cluster_size).
  std::uint32_t min_endpoints = 6;
  /// Fewer healthy endpoints than this in the local zone: no zone preference.
  std::uint32_t min_local_endpoints = 1;
  /// When the local zone can keep less than this percent of its own traffic: no zone
  /// preference (0 = spill over proportionally however little stays local).
  std::uint32_t min_local_percent = 0;
};

/// Checks a ZoneAwareRouting: zone set when enabled, zone_traffic names non-empty and unique,
/// shares finite and >= 0, the local zone's share > 0, percents <= 100. Errors: invalid_config,
/// the reason naming the field under `path` and the value, e.g. `locality.zone: is required`.
KUPSTREAM_API Status validate_zone_aware_routing(const ZoneAwareRouting& locality, std::string_view path = "locality");

/// How an Upstream forwards, retries and judges its Pods. Every field has a working default.
struct UpstreamOptions {
  UpstreamTimeouts timeouts;       ///< time limits
  RetryPolicy retries;             ///< retries on another Pod
  OutlierDetection outlier;        ///< passive health
  ActiveHealthCheck health_check;  ///< active health (off by default)
  UpstreamTls tls;                 ///< TLS to the Pods (scheme https)

  /// When fewer than this percent of known Pods are healthy (not ejected), all are used.
  std::uint32_t panic_threshold_percent = 50;
  /// A newly seen Pod's weight ramps linearly from 10% to 100% over this window; 0 = off. At
  /// most about 24.8 days (2^31 ms): a longer window is cut to that.
  std::chrono::milliseconds slow_start{0};
  /// Open connections (busy, idle or connecting) to one Pod at most; further requests wait for
  /// one in a bounded queue. A full queue gives pool_exhausted, retried on another Pod like a
  /// connect failure.
  std::size_t max_connections_per_pod = 256;
  std::size_t max_idle_per_pod = 64;  ///< idle keep-alive connections kept per Pod
  /// Limits on a Pod's response head (status line + header lines, and the number of fields).
  /// Over either, the attempt fails with http_limit_exceeded naming the limit; no more is read.
  std::size_t max_response_header_bytes = 64 * 1024;
  std::size_t max_response_header_count = 128;  ///< header fields in a Pod's response head (see above)
  std::optional<std::uint64_t> seed;  ///< balancer seed; unset = random
  /// How many Pods get their own series in prometheus_text(): the ones with the most failures
  /// (then the most requests). Per-upstream and per-service series are always there; stats()
  /// always lists every Pod. SIZE_MAX = every Pod (one scrape grows by ~5 series per Pod).
  std::size_t pod_metrics_limit = 10;
  ZoneAwareRouting locality;  ///< zone-aware routing (off by default)
  /// Where everything the Upstream has to say goes; may be empty. Called on the Upstream's loop
  /// thread, and on an UpstreamWorker's thread for the events of that worker's pools.
  LogFn log;
};

/// One header, as sent or received.
using Header = std::pair<std::string, std::string>;
/// One header as views into storage someone else owns (see where it is handed out).
using HeaderView = std::pair<std::string_view, std::string_view>;

/// One request for Upstream::forward(), as the host received it from its client.
struct ForwardRequest {
  std::string method = "GET";  ///< an HTTP method token
  std::string target = "/";  ///< origin-form path and query
  std::vector<Header> headers;  ///< hop-by-hop headers are removed; Host is replaced by the override
  /// X-Forwarded-For (appended), X-Forwarded-Proto and X-Forwarded-Host come from these.
  std::string client_address;
  std::string client_scheme = "http";  ///< the scheme the client used (X-Forwarded-Proto)
  std::string client_host;  ///< the Host the client asked for
  /// Body: `body` when streamed is false (may be empty); else the caller streams it with
  /// UpstreamRequest::write_body()/end_body() (content_length known, or chunked when nullopt).
  std::string body;
  bool streamed = false;  ///< true: the body comes through write_body()/end_body()
  std::optional<std::uint64_t> content_length;  ///< of a streamed body; nullopt = chunked
  std::uint64_t hash = 0;  ///< consistent_hash key (see hash_key())
};

/// The Pod's response head as ForwardHandlers::on_head sees it. Lifetime: `headers` and `pod`
/// view the library's buffers and are valid only until on_head returns: copy what is kept.
struct ForwardResponseHead {
  int status = 0;  ///< the HTTP status code
  std::span<const HeaderView> headers;  ///< in order, as received; hop-by-hop headers removed
  std::optional<std::uint64_t> content_length;  ///< the response's Content-Length; nullopt when none
  std::string_view pod;  ///< "address:port" of the Pod that answered
  std::uint32_t attempts = 1;  ///< attempts made, this one included (1 = no retry)
};

/// All run on the loop thread, never inside forward(); any may drop the UpstreamRequest or the
/// Upstream.
struct ForwardHandlers {
  /// The response head, at most once: the head of an attempt that is retried is not shown.
  std::function<void(const ForwardResponseHead&)> on_head;
  std::function<void(std::string_view)> on_body;  ///< call pause_body() inside for backpressure
  std::function<void()> on_writable;              ///< a streamed request body may be written again
  /// Exactly once unless dropped. Errors: no_endpoint, connect_failed, timed_out,
  /// connection_closed, tls_handshake_failed, tls_verify_failed, http_parse_error... with a
  /// reason naming the upstream and Pod.
  std::function<void(Status)> on_complete;
};

/// The handle of one forwarded request, from Upstream::forward(). Loop thread. Dropping it
/// cancels the request (no handler runs afterwards), also inside one of its handlers.
class KUPSTREAM_API UpstreamRequest {
 public:
  struct Impl;
  /// Used by Upstream::forward(); hosts get UpstreamRequests from there, never build one.
  explicit UpstreamRequest(std::shared_ptr<Impl> impl);
  ~UpstreamRequest();  ///< cancels if still running
  UpstreamRequest(const UpstreamRequest&) = delete;
  UpstreamRequest& operator=(const UpstreamRequest&) = delete;

  /// Streamed request bodies. write_body returns false when the caller should wait for
  /// on_writable. Errors: invalid_argument (not streamed, already ended), operation_canceled.
  Result<bool> write_body(std::string_view data);
  /// Ends a streamed body. Errors: invalid_argument (not streamed, already ended, fewer bytes
  /// than content_length), operation_canceled (the request has finished).
  Status end_body();
  /// Stops on_body calls (the Pod's connection stops reading) until resume_body(): backpressure
  /// for a slow client. Takes effect once the response has started, e.g. inside on_body.
  void pause_body();
  /// Lets on_body calls flow again after pause_body().
  void resume_body();

  /// One is created and dropped per request: freed blocks are kept per thread for the next
  /// ones (bounded; not under AddressSanitizer). Any thread may free one.
  static void* operator new(std::size_t size);
  /// Keeps the block in this thread's cache (see operator new).
  static void operator delete(void* p, std::size_t size) noexcept;

 private:
  std::shared_ptr<Impl> impl_;
};

/// One Pod as Upstream::stats() sees it.
struct PodStats {
  std::string pod;       ///< "address:port"
  std::string pod_name;  ///< the Pod's name; "" when its EndpointSlice entry names none
  std::string service;   ///< ServiceRef::to_string()
  std::string zone;      ///< the EndpointSlice entry's `zone`; "" when unknown
  std::uint32_t weight = 0;  ///< effective weight now (after slow start), 0 when ejected
  bool ejected = false;   ///< ejected by outlier detection right now
  bool draining = false;  ///< serving but terminating (not ready)
  /// @var requests
  /// Attempts sent to this Pod, retries included.
  /// @var failures
  /// Attempts that counted as this Pod's failures (outlier detection).
  /// @var ejections
  /// Times it was ejected.
  std::uint64_t requests = 0, failures = 0, ejections = 0;
  std::uint32_t in_flight = 0;  ///< attempts on this Pod now
};

/// One ServiceRef of an Upstream as Upstream::stats() sees it.
struct ServiceStatus {
  ServiceRef ref;    ///< the service, as configured
  WatchState state;  ///< its EndpointWatcher's state
  std::chrono::milliseconds staleness{0};  ///< state.staleness(now) when stats() was taken
  /// @var ready
  /// Ready endpoints in its current snapshot (0 before the first).
  /// @var draining
  /// Serving-but-terminating endpoints in its current snapshot.
  std::size_t ready = 0, draining = 0;
  std::size_t ejected = 0;  ///< of this service's Pods, ejected now by outlier detection
  // The counters below run since the Upstream was created; they survive the Pods that come and go.
  std::uint64_t requests = 0;    ///< attempts sent to this service's Pods
  std::uint64_t failures = 0;    ///< attempts on its Pods that failed (connect, timeout, reset, 5xx)
  std::uint64_t ejections = 0;   ///< outlier ejections of its Pods
};

/// What zone-aware routing did when the current Picker was built.
enum class LocalityMode {
  off,         ///< zone-aware routing is not enabled
  local,       ///< every new request stays in the local zone (it has the capacity)
  spill,       ///< part stays local, the rest goes to other zones by their spare capacity
  everywhere,  ///< no zone preference: below a threshold, in panic, or no local endpoint
};
/// "off", "local", "spill" or "everywhere".
KUPSTREAM_API const char* to_string(LocalityMode m) noexcept;

/// One zone as zone-aware routing sees it. With hints followed, an endpoint counts in the zone
/// it is hinted for (the local zone when that is among its hints), else in its own `zone`.
struct ZoneStats {
  std::string zone;            ///< "" for endpoints whose zone is unknown
  std::size_t endpoints = 0;   ///< endpoints that could take traffic (ejected ones included)
  std::size_t healthy = 0;     ///< of those, not ejected and passing active checks
  double traffic_start = 0;    ///< share of the fleet's traffic assumed to start here (0..1)
  double capacity = 0;         ///< share of the upstream's healthy weight here (0..1)
  double routed = 0;           ///< share of this host's new requests the Picker sends here (0..1)
};

/// Zone-aware routing in UpstreamStats.
struct LocalityStats {
  bool enabled = false;  ///< UpstreamOptions::locality.enabled
  std::string zone;      ///< this host's zone
  LocalityMode mode = LocalityMode::off;  ///< what the current Picker does
  bool hints = false;    ///< zones come from EndpointSlice hints (kube-proxy's rules held)
  std::string reason;    ///< why this mode, e.g. "1 healthy local endpoint < min_local_endpoints 2"
  double local_share = 0;  ///< share of new requests the current Picker keeps in the local zone
  /// @var local_requests
  /// Attempts sent to local-zone Pods since the Upstream was created (while enabled).
  /// @var cross_zone_requests
  /// Attempts sent to Pods of other (or unknown) zones since the Upstream was created (while enabled).
  std::uint64_t local_requests = 0, cross_zone_requests = 0;
  std::vector<ZoneStats> zones;  ///< the local zone first, then by name
};

/// Counters and state of one Upstream, from Upstream::stats(); prometheus_text() renders the same.
struct UpstreamStats {
  /// @var requests
  /// Requests accepted by forward().
  /// @var failures
  /// Requests that completed with an error (no_endpoint included).
  /// @var retries
  /// Retry attempts made.
  /// @var no_endpoint
  /// Requests that failed with no_endpoint: no Pod to pick.
  std::uint64_t requests = 0, failures = 0, retries = 0, no_endpoint = 0;
  std::uint32_t in_flight = 0;  ///< requests accepted and not completed yet
  bool panic = false;          ///< too few healthy Pods: all are used
  bool using_draining = false;  ///< nothing ready anywhere: serving-but-terminating Pods are used
  /// Latency histogram (request start → response complete), cumulative counts per bucket.
  std::vector<double> latency_buckets_seconds;  ///< upper bounds
  std::vector<std::uint64_t> latency_counts;    ///< same size, plus +Inf as the last element
  double latency_sum_seconds = 0;  ///< the sum of all latencies counted in the histogram
  /// Every Pod the Upstream knows now, service by service (in UpstreamConfig::services order),
  /// each service's in its snapshot order (address, then port).
  std::vector<PodStats> pods;
  std::vector<ServiceStatus> services;   ///< one per ServiceRef, in the config's order
  LocalityStats locality;                ///< zone-aware routing (mode off when not enabled)
};

/// A named set of Kubernetes Services that requests go to, straight to their Pods. See the file
/// comment for the thread, lifetime and callback rules.
class KUPSTREAM_API Upstream {
 public:
  /// Validates the config (validate_upstream_config) and that every cluster is in `clusters`;
  /// errors name the upstream and entry. Subscribes at once; the first Picker is published once
  /// services sync.
  static Result<std::unique_ptr<Upstream>> create(uv_loop_t& loop, UpstreamConfig config, const ClusterMap& clusters,
                                                  UpstreamOptions options = {});
  ~Upstream();
  Upstream(const Upstream&) = delete;
  Upstream& operator=(const Upstream&) = delete;

  /// Any thread. The current Picker (never null; empty before sync).
  PickerPtr picker() const;
  /// Any thread. A Pod for the host's own transport. The result points into the Picker of the
  /// moment, which this thread keeps alive until its next pick() on any Upstream; hold
  /// picker() instead to keep it longer.
  PickResult pick(std::uint64_t hash = 0) const;

  /// Loop thread. Sends the request to a Pod and streams the response back. The bytes leave
  /// when the loop phase that called forward() ends (writes are batched per phase, see
  /// docs/net.md): inside a loop callback that is before the loop polls again; called from
  /// outside the loop's callbacks, it is when the host next runs the loop (uv_run).
  /// Errors returned (no handler runs): invalid_argument (bad method/target/header; CR, LF or NUL
  /// in the target or a header value).
  Result<std::unique_ptr<UpstreamRequest>> forward(ForwardRequest request, ForwardHandlers handlers);

  /// True once every service has synced at least once and some Pod can take traffic.
  bool ready() const;
  /// Loop thread. A copy of the counters, the Pods and the services' watch states.
  UpstreamStats stats() const;
  /// Prometheus text exposition of stats(), metric names kupstream_*, labelled upstream="name".
  std::string prometheus_text() const;
  /// The config it was created with.
  const UpstreamConfig& config() const noexcept;

  /// A handle that forwards on `worker_loop` with its own connection pools, sharing this
  /// Upstream's discovery, Picker, health verdicts and in-flight counts (kupstream/upstream_worker.h).
  /// Call it on worker_loop's thread (or before that loop runs), while this Upstream is alive
  /// (not concurrently with its drop); any number of workers per loop and per Upstream.
  /// Errors: invalid_config when a per-worker TLS context cannot be made (the reason names the
  /// upstream), operation_canceled when the Upstream is shutting down.
  Result<std::unique_ptr<UpstreamWorker>> worker(uv_loop_t& worker_loop);

  struct Impl;

 private:
  friend struct UpstreamTestPeer;  // tests: an Upstream over an Impl fed by hand (no cluster)
  explicit Upstream(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

/// A Prometheus label value with backslash, double quote and newline escaped, for hosts that
/// add their own metrics beside prometheus_text(). Any thread.
KUPSTREAM_API std::string prometheus_label_value(std::string_view value);

}  // namespace kupstream
