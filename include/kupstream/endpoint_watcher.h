/// @file
/// EndpointWatcher: the ready endpoints of one Kubernetes Service port, kept up to date.
///
/// An EndpointWatcher is the design's per-ServiceRef watcher: it joins the Service's
/// EndpointSlices, the Service itself (service port -> EndpointSlice port) and, when the
/// ServiceRef names node labels, the Nodes, into immutable EndpointSet snapshots. It is created by
/// ClusterClient::watch() (cluster_client.h); the list+watch connections behind it are shared by
/// every EndpointWatcher of the same (namespace, service) in that ClusterClient.
///
/// Thread: loop thread only, except that the EndpointSetPtr snapshots may be read anywhere.
/// Lifetime: the ClusterClient must outlive its EndpointWatchers. Dropping one (even inside its
/// own callback) unsubscribes; no callback runs afterwards.
/// Callbacks: never inside ClusterClient::watch(); always on the loop thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kupstream/endpoint.h"
#include "kupstream/export.h"

namespace kupstream {

/// Where an EndpointWatcher's snapshot stands with respect to the API server.
enum class WatchPhase {
  syncing,    ///< not listed yet: no snapshot
  synced,     ///< the snapshot reflects the API server
  stale,      ///< the watch is failing; the last good snapshot stays in service
  forbidden,  ///< RBAC refuses a needed verb (reason: verb, resource, namespace and the rule to add,
              ///< from a SelfSubjectAccessReview preflight); the last good snapshot (if any) stays
  not_found,  ///< the Service, or its port, does not exist: the snapshot is empty
};
/// The enumerator's name: "syncing", "synced", "stale", "forbidden" or "not_found".
KUPSTREAM_API const char* to_string(WatchPhase phase) noexcept;

/// The health of one EndpointWatcher: its phase, why, and which snapshot it serves.
struct WatchState {
  WatchPhase phase = WatchPhase::syncing;  ///< the current phase
  std::string reason;  ///< why, naming cluster, namespace, service and resource; "" when synced
  /// When this phase began ("stale since T"). A new reason within the same phase keeps it.
  std::chrono::system_clock::time_point since;
  std::uint64_t generation = 0;      ///< of the current snapshot; 0 before the first
  std::string resource_version;      ///< the snapshot reflects this resourceVersion
  std::chrono::system_clock::time_point snapshot_time;  ///< when the current snapshot was built
  std::vector<std::string> notes;    ///< e.g. "1 FQDN slice ignored"
  /// From a slice's endpoints.kubernetes.io/last-change-trigger-time to the snapshot that
  /// carried the change being published; nullopt when the current snapshot was not caused by
  /// such a slice event (reset for every snapshot).
  std::optional<std::chrono::microseconds> propagation_lag;

  /// How old the snapshot is: zero while synced, else the time since the phase began.
  std::chrono::milliseconds staleness(std::chrono::system_clock::time_point now) const {
    return phase == WatchPhase::synced || phase == WatchPhase::syncing
               ? std::chrono::milliseconds{0}
               : std::chrono::duration_cast<std::chrono::milliseconds>(now - since);
  }
};

/// What an EndpointWatcher calls, on the loop thread, never inside ClusterClient::watch().
/// Either may be empty. A callback may drop the EndpointWatcher; nothing runs afterwards.
struct EndpointWatcherCallbacks {
  /// Each new snapshot: the first once synced, then one per real change (none for bookmarks
  /// or no-op updates). Generations only grow.
  std::function<void(const EndpointSetPtr& snapshot)> on_update;
  /// Each phase change (and reason change).
  std::function<void(const WatchState& state)> on_state;
};

/// A subscription to one ServiceRef's endpoints, made by ClusterClient::watch(). Dropping it
/// unsubscribes (see the file comment for the thread and lifetime rules).
class KUPSTREAM_API EndpointWatcher {
 public:
  struct Impl;
  /// Used by ClusterClient::watch(); hosts get EndpointWatchers from there, never build one.
  EndpointWatcher(std::shared_ptr<Impl> impl, std::uint64_t subscription);
  /// Unsubscribes: no callback of this handle runs afterwards. Safe inside its own callback.
  ~EndpointWatcher();
  EndpointWatcher(const EndpointWatcher&) = delete;
  EndpointWatcher& operator=(const EndpointWatcher&) = delete;

  /// The current snapshot, or null before the first sync.
  EndpointSetPtr current() const;
  /// The current state (a copy).
  WatchState state() const;

 private:
  std::shared_ptr<Impl> impl_;
  std::uint64_t subscription_;
};

}  // namespace kupstream
