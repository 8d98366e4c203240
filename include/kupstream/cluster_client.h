/// @file
/// ClusterClient and EndpointWatcher: watching Kubernetes Services' endpoints in one cluster.
///
/// A ClusterClient talks to one API server (ClusterConfig from cluster.h). watch() returns an
/// EndpointWatcher for one ServiceRef (namespace, service, port, node labels). Watches are
/// shared: every (namespace, service) is listed and watched once per ClusterClient (its
/// EndpointSlices and its Service), and every distinct (port, node labels) of it is computed
/// once, however many EndpointWatcher handles subscribe to it.
///
/// Thread: loop thread only, except that the EndpointSetPtr snapshots may be read anywhere.
/// Lifetime: the ClusterClient must outlive its EndpointWatcher handles. Dropping a handle (even
/// inside its own callback) unsubscribes; no callback runs afterwards. The last handle of a
/// service stops its watches. Dropping the ClusterClient requires that its handles are gone.
/// Callbacks: never inside watch(); always on the loop thread.
/// Signals: none needed. The library's writes use send(MSG_NOSIGNAL), so a connection the API
/// server has reset cannot raise SIGPIPE (docs/security.md); a host that writes its own sockets
/// with libuv still has to ignore SIGPIPE for those.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kupstream/cluster.h"
#include "kupstream/endpoint.h"
#include "kupstream/endpoint_watcher.h"
#include "kupstream/error.h"
#include "kupstream/export.h"
#include "kupstream/log.h"
#include "kupstream/service_ref.h"

/// libuv's loop type, declared here so that this header does not need uv.h.
typedef struct uv_loop_s uv_loop_t;

namespace kupstream {

/// How a ClusterClient lists and watches EndpointSlices (docs/discovery.md, "Watch fan-in").
enum class SliceWatchMode {
  /// One EndpointSlice list+watch per watched Service (`kubernetes.io/service-name=NAME`).
  per_service,
  /// Fan-in: one EndpointSlice list+watch per namespace, with the set-based selector
  /// `kubernetes.io/service-name in (a,b,...)` naming every Service watched in that namespace
  /// through this ClusterClient. A Service starting or stopping to be watched restarts that
  /// namespace's watch with the new selector (one LIST; the others keep their snapshots).
  per_namespace,
};

/// "per_service" or "per_namespace".
KUPSTREAM_API const char* to_string(SliceWatchMode mode) noexcept;

/// How a ClusterClient logs, times its watches and backs off after failures.
struct ClusterClientOptions {
  LogFn log;  ///< where the client's messages go; may be empty
  std::chrono::seconds watch_timeout{300};     ///< randomized to [t, 2t) per watch
  std::chrono::milliseconds idle_timeout{0};   ///< reconnect a silent watch after this; 0 = timeout + 30 s
  /// First delay before a failed list or watch is retried; it doubles per consecutive failure
  /// (plus up to 25% jitter).
  std::chrono::milliseconds backoff_initial{800};
  std::chrono::milliseconds backoff_max{30'000};  ///< the doubling stops here
  bool watch_list = false;  ///< try sendInitialEvents streaming first (falls back to LIST)

  /// One EndpointSlice watch per Service, or one per namespace shared by its Services.
  SliceWatchMode slice_watch = SliceWatchMode::per_namespace;

  /// watch-list: how long a stream may wait for its k8s.io/initial-events-end bookmark (from its
  /// 200 on) before that resource is LISTed and watched instead. A v1.28 server holds the
  /// bookmark back until the next write to the resource type, so on a quiet type it never comes.
  std::chrono::milliseconds watch_list_bookmark_timeout{3000};
  /// watch-list: after a resource (endpointslices, services, nodes) was slow or refused (422) in
  /// this cluster, its syncs use LIST for this long; the next sync after it tries watch-list again.
  std::chrono::milliseconds watch_list_retry{std::chrono::minutes{30}};
  // Limits on what the API server sends: a hostile or broken server must not grow memory
  // without bound. Over a limit, that request fails with http_limit_exceeded (head, LIST) or
  // decode_error (event), the reason naming the limit; the watch goes stale and retries with
  // backoff, keeping the last good snapshot.

  /// Limit: one LIST, all its pages together; an error body; a watch-list's initial events together.
  std::size_t max_response_bytes = 512u << 20;
  std::size_t max_event_bytes = 64u << 20;   ///< limit: one watch event (one line of the stream)
  std::size_t max_header_bytes = 64u << 10;  ///< limit: a response head (status line + headers)
};

/// The connection to one cluster's API server, shared by every EndpointWatcher it hands out.
/// See the file comment for the thread, lifetime and callback rules.
class KUPSTREAM_API ClusterClient {
 public:
  /// Errors: invalid_config naming the cluster and field (bad server URL, unreadable CA or key,
  /// unsupported credentials).
  static Result<std::unique_ptr<ClusterClient>> create(uv_loop_t& loop, const ClusterConfig& config,
                                                       ClusterClientOptions options = {});
  ~ClusterClient();
  ClusterClient(const ClusterClient&) = delete;
  ClusterClient& operator=(const ClusterClient&) = delete;

  /// Watches ref's endpoints (ref.cluster is informational here). Errors: invalid_config when
  /// the ServiceRef does not validate.
  Result<std::unique_ptr<EndpointWatcher>> watch(const ServiceRef& ref, EndpointWatcherCallbacks callbacks);

  /// The cluster's name for messages (ClusterConfig::name).
  const std::string& name() const noexcept;

  struct Impl;

 private:
  explicit ClusterClient(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace kupstream
