// ClusterClient and EndpointWatch: watching Kubernetes Services' endpoints in one cluster.
//
// A ClusterClient talks to one API server (ClusterConfig from cluster.h). watch() returns an
// EndpointWatch for one ServiceRef (namespace, service, port, node labels). Watches are
// shared: every (namespace, service) is listed and watched once per ClusterClient (its
// EndpointSlices and its Service), and every distinct (port, node labels) of it is computed
// once, however many EndpointWatch handles subscribe to it.
//
// Thread: loop thread only, except that the EndpointSetPtr snapshots may be read anywhere.
// Lifetime: the ClusterClient must outlive its EndpointWatch handles. Dropping a handle (even
// inside its own callback) unsubscribes; no callback runs afterwards. The last handle of a
// service stops its watches. Dropping the ClusterClient requires that its handles are gone.
// Callbacks: never inside watch(); always on the loop thread.
// Signals: the host must ignore SIGPIPE (as any libuv program): a write to a connection the API
// server has just reset would otherwise kill the process.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kupstream/cluster.h"
#include "kupstream/endpoint.h"
#include "kupstream/error.h"
#include "kupstream/export.h"
#include "kupstream/log.h"
#include "kupstream/service_ref.h"

typedef struct uv_loop_s uv_loop_t;

namespace kupstream {

enum class WatchPhase {
  syncing,    // not listed yet: no snapshot
  synced,     // the snapshot reflects the API server
  stale,      // the watch is failing; the last good snapshot stays in service
  forbidden,  // RBAC refuses a needed verb (reason: verb, resource, namespace and the rule to add,
              // from a SelfSubjectAccessReview preflight); the last good snapshot (if any) stays
  not_found,  // the Service, or its port, does not exist: the snapshot is empty
};
KUPSTREAM_API const char* to_string(WatchPhase phase) noexcept;

struct WatchState {
  WatchPhase phase = WatchPhase::syncing;
  std::string reason;  // why, naming cluster, namespace, service and resource; "" when synced
  // When this phase began ("stale since T"). A new reason within the same phase keeps it.
  std::chrono::system_clock::time_point since;
  std::uint64_t generation = 0;      // of the current snapshot; 0 before the first
  std::string resource_version;      // the snapshot reflects this resourceVersion
  std::chrono::system_clock::time_point snapshot_time;  // when the current snapshot was built
  std::vector<std::string> notes;    // e.g. "1 FQDN slice ignored"
  // From a slice's endpoints.kubernetes.io/last-change-trigger-time to the snapshot that
  // carried the change being published; nullopt when the current snapshot was not caused by
  // such a slice event (reset for every snapshot).
  std::optional<std::chrono::microseconds> propagation_lag;

  // How old the snapshot is: zero while synced, else the time since the phase began.
  std::chrono::milliseconds staleness(std::chrono::system_clock::time_point now) const {
    return phase == WatchPhase::synced || phase == WatchPhase::syncing
               ? std::chrono::milliseconds{0}
               : std::chrono::duration_cast<std::chrono::milliseconds>(now - since);
  }
};

struct EndpointWatchCallbacks {
  // Each new snapshot: the first once synced, then one per real change (none for bookmarks
  // or no-op updates). Generations only grow.
  std::function<void(const EndpointSetPtr& snapshot)> on_update;
  // Each phase change (and reason change).
  std::function<void(const WatchState& state)> on_state;
};

class KUPSTREAM_API EndpointWatch {
 public:
  struct Impl;
  EndpointWatch(std::shared_ptr<Impl> impl, std::uint64_t subscription);
  ~EndpointWatch();
  EndpointWatch(const EndpointWatch&) = delete;
  EndpointWatch& operator=(const EndpointWatch&) = delete;

  // The current snapshot, or null before the first sync.
  EndpointSetPtr current() const;
  WatchState state() const;

 private:
  std::shared_ptr<Impl> impl_;
  std::uint64_t subscription_;
};

struct ClusterClientOptions {
  LogFn log;
  std::chrono::seconds watch_timeout{300};     // randomized to [t, 2t) per watch
  std::chrono::milliseconds idle_timeout{0};   // reconnect a silent watch after this; 0 = timeout + 30 s
  std::chrono::milliseconds backoff_initial{800};
  std::chrono::milliseconds backoff_max{30'000};
  bool watch_list = false;  // try sendInitialEvents streaming first (falls back to LIST)
};

class KUPSTREAM_API ClusterClient {
 public:
  // Errors: invalid_config naming the cluster and field (bad server URL, unreadable CA or key,
  // unsupported credentials).
  static Result<std::unique_ptr<ClusterClient>> create(uv_loop_t& loop, const ClusterConfig& config,
                                                       ClusterClientOptions options = {});
  ~ClusterClient();
  ClusterClient(const ClusterClient&) = delete;
  ClusterClient& operator=(const ClusterClient&) = delete;

  // Watches ref's endpoints (ref.cluster is informational here). Errors: invalid_config when
  // the ServiceRef does not validate.
  Result<std::unique_ptr<EndpointWatch>> watch(const ServiceRef& ref, EndpointWatchCallbacks callbacks);

  const std::string& name() const noexcept;

  struct Impl;

 private:
  explicit ClusterClient(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace kupstream
