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
  std::size_t fqdn = 0, without_port = 0, bad_address = 0, unknown_node = 0, over_limit = 0;
};

// The most endpoints one EndpointSlice may hold: the API server rejects a slice with more
// (validation of `endpoints`, maxItems 1000). A slice that comes with more anyway (a server that
// does not validate) keeps its first 1,000; the rest are left out and counted (over_limit).
inline constexpr std::size_t kMaxEndpointsPerSlice = 1000;

// The BackendKeys of one slice's merged endpoints. They all share the slice's family and port,
// so only the addresses are kept: 4 bytes per IPv4 endpoint, 16 per IPv6 (not 32 per key).
class SliceKeys {
 public:
  // Empties it for keys of this family and port (ipv4 or ipv6), room for n.
  void start(BackendKey::Family family, std::uint16_t port, std::size_t n);
  // A key of the family and port given to start().
  void push_back(const BackendKey& key) {
    if (family_ == BackendKey::ipv4) {
      v4_.push_back(static_cast<std::uint32_t>(key.lo));
    } else {
      v6_.push_back(key.hi);
      v6_.push_back(key.lo);
    }
  }
  BackendKey operator[](std::size_t i) const noexcept {
    BackendKey k;
    k.family = family_;
    k.port = port_;
    if (family_ == BackendKey::ipv4) {
      k.lo = v4_[i];
    } else {
      k.hi = v6_[2 * i];
      k.lo = v6_[2 * i + 1];
    }
    return k;
  }

 private:
  BackendKey::Family family_ = BackendKey::ipv4;
  std::uint16_t port_ = 0;
  std::vector<std::uint32_t> v4_;
  std::vector<std::uint64_t> v6_;  // hi, lo of each
};

class SnapshotBuilder {
 public:
  SnapshotStep build(const SliceMergeInput& input, const EndpointSetPtr& current, const std::string& resource_version);

 private:
  struct Entry {
    std::string resource_version;
    // Immutable: snapshots point into it (EndpointList) and keep it alive. The stored slice's
    // own vector when the merge keeps all of it at its stored port (SliceStore), else a copy
    // of the endpoints kept. Set by every merge of the entry.
    std::shared_ptr<const std::vector<Endpoint>> endpoints;
    SliceKeys keys;  // keys[i] is endpoints[i]'s
    MergeCounts counts;
    const std::string* slice = nullptr;  // its key in cache_ (the slice's name)
    std::uint32_t slot = 0;              // its index in slots_
    bool dirty = false;  // being replaced or removed by the current build
  };
  // One endpoint of an entry, in the set's order: 4 bytes per endpoint (the entry by its slot,
  // the endpoint and its key found through the entry), as the order is kept for every endpoint
  // of the service. The position takes kPosBits (a slice holds at most kMaxEndpointsPerSlice),
  // the slot the other 22 bits: 4,194,304 slices per service (add_entry() throws
  // std::length_error beyond; the slices alone would take gigabytes first).
  static constexpr unsigned kPosBits = 10;
  static_assert(kMaxEndpointsPerSlice <= (1u << kPosBits));
  struct Ref {
    std::uint32_t bits;  // slot << kPosBits | pos
    std::uint32_t slot() const noexcept { return bits >> kPosBits; }  // the entry's, in slots_
    std::uint32_t pos() const noexcept { return bits & ((1u << kPosBits) - 1); }  // in the entry's endpoints
  };
  static Ref ref(std::uint32_t slot, std::uint32_t pos) noexcept { return {slot << kPosBits | pos}; }
  const Entry& entry_of(Ref r) const noexcept { return *slots_[r.slot()]; }
  bool before(Ref a, Ref b) const noexcept {
    const Entry& ea = entry_of(a);
    const Entry& eb = entry_of(b);
    if (const auto c = ea.keys[a.pos()] <=> eb.keys[b.pos()]; c != 0) return c < 0;
    const bool ra = (*ea.endpoints)[a.pos()].is_ready(), rb = (*eb.endpoints)[b.pos()].is_ready();
    if (ra != rb) return ra;
    // Ties between equal backends go by slice name, then by position in the slice.
    if (a.slot() != b.slot()) return *ea.slice < *eb.slice;
    return a.pos() < b.pos();
  }
  Entry& add_entry(const std::string& name);  // a new entry in cache_, with a slot
  void drop_entries();                        // every entry, slot and the order

  std::map<std::string, Entry, std::less<>> cache_;
  std::vector<Entry*> slots_;                // by slot; nullptr when free
  std::vector<std::uint32_t> free_slots_;
  std::vector<Ref> sorted_;  // every cached endpoint, ordered by before()
  std::string port_name_;
  std::uint64_t nodes_epoch_ = 0;
  bool filtered_ = false;
};

}  // namespace kupstream::detail
