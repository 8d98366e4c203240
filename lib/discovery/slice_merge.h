// Joins a Service's EndpointSlices, its Service object and an optional node filter into the
// endpoint list of one Service port. Pure function: no I/O, no state.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/backend_key.h"
#include "discovery/slice_store.h"
#include "kube/objects.h"
#include "kupstream/endpoint.h"
#include "kupstream/service_ref.h"

namespace kupstream::detail {

enum class PortProblem {
  none,
  service_not_found,  // no Service object with that name
  port_not_found,     // the Service has no port with that number or name
};

struct SliceMergeInput {
  const SliceStore* slices = nullptr;      // the Service's EndpointSlices
  const kube::Service* service = nullptr;  // null: the Service does not exist
  PortRef port;                             // the ServiceRef's port: number or name
  // Names of the nodes that carry the required labels; null when there is no node filter.
  const std::set<std::string, std::less<>>* allowed_nodes = nullptr;
  // Changes whenever *allowed_nodes changes (SnapshotBuilder reuses work while it stays).
  std::uint64_t nodes_epoch = 0;
};

struct SliceMergeResult {
  std::vector<Endpoint> endpoints;  // may repeat a backend across slices: EndpointSet::make de-duplicates
  PortProblem problem = PortProblem::none;
  std::string port_name;  // the Service port's name ("" for an unnamed single port)
  // Human notes for the watcher's state, e.g. "1 FQDN slice ignored".
  std::vector<std::string> notes;
};

// Maps the Service port (by number or name) to its name, then takes each slice's number for
// that name (slices may disagree). Uses addresses[0] of each endpoint, as kube-proxy does.
// Skips FQDN slices and bad addresses (with a note). With a node filter, endpoints whose node
// is unknown or not allowed are left out.
SliceMergeResult merge_slices(const SliceMergeInput& input);

// One step of an EndpointWatcher: merge, build the next immutable EndpointSet (generation
// current+1) and tell whether it differs from `current` (a no-op publishes nothing). This is
// the whole path from the watch's copy of the objects to the snapshot, shared by the watcher
// and the benchmarks.
struct SnapshotStep {
  EndpointSetPtr next;  // == current when nothing changed
  bool changed = false;
  PortProblem problem = PortProblem::none;
  std::vector<std::string> notes;
};
SnapshotStep build_snapshot(const SliceMergeInput& input, const EndpointSetPtr& current, const std::string& resource_version);

// build_snapshot with memory: each slice's merged endpoints are kept and reused while the
// slice's resourceVersion, the Service port's name and the node filter (epoch) stay the same,
// so one changed slice costs the work of that slice plus one pointer per endpoint of the set
// (snapshots share the unchanged slices' endpoints). Gives
// the same snapshot as build_snapshot (tests check both on random inputs).
// What merging left out, per reason (for the state's notes).
struct MergeCounts {
  std::size_t fqdn = 0, without_port = 0, bad_address = 0, unknown_node = 0;
};

class SnapshotBuilder {
 public:
  SnapshotStep build(const SliceMergeInput& input, const EndpointSetPtr& current, const std::string& resource_version);

 private:
  struct Entry {
    std::string resource_version;
    // Immutable once merged: snapshots point into it (EndpointList) and keep it alive.
    std::shared_ptr<std::vector<Endpoint>> endpoints = std::make_shared<std::vector<Endpoint>>();
    std::vector<BackendKey> keys;  // keys[i] is endpoints[i]'s
    MergeCounts counts;
    const std::string* slice = nullptr;  // its key in cache_ (the slice's name)
    bool dirty = false;  // being replaced or removed by the current build
  };
  // One endpoint of an entry, in the set's order: 16 bytes per endpoint (the endpoint and its
  // key are found through the entry), as the order is kept for every endpoint of the service.
  struct Ref {
    const Entry* entry;
    std::uint32_t pos;  // in the entry's endpoints
    const Endpoint& e() const { return (*entry->endpoints)[pos]; }
    const BackendKey& key() const { return entry->keys[pos]; }
    static bool before(const Ref& a, const Ref& b) {
      if (const auto c = a.key() <=> b.key(); c != 0) return c < 0;
      const bool ra = a.e().is_ready(), rb = b.e().is_ready();
      if (ra != rb) return ra;
      // Ties between equal backends go by slice name, then by position in the slice.
      if (a.entry != b.entry) return *a.entry->slice < *b.entry->slice;
      return a.pos < b.pos;
    }
  };
  std::map<std::string, Entry, std::less<>> cache_;
  std::vector<Ref> sorted_;  // every cached endpoint, ordered by Ref::before
  std::string port_name_;
  std::uint64_t nodes_epoch_ = 0;
  bool filtered_ = false;
};

}  // namespace kupstream::detail
