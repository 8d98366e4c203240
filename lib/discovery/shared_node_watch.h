// SharedNodeWatch: one list+watch of the Nodes that carry a set of labels, per (ClusterClient,
// label selector), shared by every EndpointWatcher whose ServiceRef asks for those node labels.
//
//  - Without it each watched (service, port, labels) ran its own Node watch and its own RBAC
//    preflight: 20 services with the same `node_labels` cost the API server 20 Node watches of
//    the same objects.
//  - It keeps the names of the Nodes the selector matches, whether it has synced, its health,
//    the watch-list waiting text and note, and the answer of its RBAC preflight (list/watch on
//    nodes), and tells every live sink when any of them changes.
//  - A relist replaces the names at once (never emptied first); a failing watch keeps the last
//    names, so the views keep their last good snapshot.
//  - Views hear of Node events only when the set of names changed: the status updates that
//    every Node sends cost no view a re-merge.
//
// Thread: loop thread only. Lifetime: held by shared_ptr (ClusterClient keeps a weak one per
// selector; each view holds a strong one). Dropping the last view stops the watch. Sinks are
// told on the Reflector's callbacks, never inside add().
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "kupstream/error.h"
#include "kupstream/log.h"

namespace kupstream::kube {
class ApiClient;
struct ReflectorOptions;
template <class T>
class Reflector;
struct Node;
enum class EventType : std::uint8_t;
}  // namespace kupstream::kube

namespace kupstream::detail {

class AccessPreflight;

// What a view hears from its Node watch: something it reads changed (names, sync, health,
// waiting text, note or the preflight's answer).
class NodeSink {
 public:
  virtual ~NodeSink() = default;
  virtual void on_nodes_changed() = 0;
};

class SharedNodeWatch : public std::enable_shared_from_this<SharedNodeWatch> {
 public:
  using Names = std::set<std::string, std::less<>>;

  // `options` are the Reflector's (path /api/v1/nodes, its label selector, the cluster's
  // timeouts and limits). Nothing starts before start().
  SharedNodeWatch(kube::ApiClient& api, kube::ReflectorOptions options, LogFn log);
  ~SharedNodeWatch();
  SharedNodeWatch(const SharedNodeWatch&) = delete;
  SharedNodeWatch& operator=(const SharedNodeWatch&) = delete;

  // Starts the Reflector and the preflight (once; call on a shared_ptr-owned watch).
  void start();
  // Adds a view to tell about changes (weak: a dropped view is skipped and forgotten).
  void add(std::weak_ptr<NodeSink> sink);

  // The names of the matching Nodes (the last good list while the watch fails).
  const Names& names() const noexcept { return names_; }
  // Bumped on every change of names() (the SnapshotBuilder reuses work while it stays), and
  // only then: a Node event that leaves the set as it was (a status update of a listed Node)
  // tells no view, and a relist that finds the same Nodes keeps it.
  std::uint64_t epoch() const noexcept { return epoch_; }
  // One watch event applied to `names` (ADDED or MODIFIED: the Node matches the selector;
  // DELETED: it is gone or no longer matches). True when the set changed.
  static bool apply_event(Names& names, kube::EventType type, std::string name);
  bool synced() const noexcept { return synced_; }
  const Status& health() const noexcept { return health_; }
  const std::string& waiting() const noexcept { return waiting_; }
  const std::string& note() const noexcept { return note_; }
  // Forbidden (naming the rules to add) when the preflight found a denial; ok otherwise.
  const Status& preflight() const noexcept { return preflight_; }
  // Views told about changes now (live ones only).
  std::size_t sinks() const;

 private:
  void changed();

  kube::ApiClient& api_;
  std::unique_ptr<kube::ReflectorOptions> options_;
  LogFn log_;
  std::unique_ptr<kube::Reflector<kube::Node>> reflector_;
  std::unique_ptr<AccessPreflight> preflight_run_;
  std::vector<std::weak_ptr<NodeSink>> sinks_;
  Names names_;
  std::uint64_t epoch_ = 0;
  bool synced_ = false;
  Status health_, preflight_;
  std::string waiting_, note_;
};

}  // namespace kupstream::detail
