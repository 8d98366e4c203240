// SliceStore: the EndpointSlices of one Service as its ServiceCache keeps them between events,
// in the form the merge (slice_merge.h) reads and the snapshots share.
//
//  - Per slice: its resourceVersion, address type and ports (name and number), and the number
//    of the port its endpoints are stored with (`port`: the first valid one).
//  - Per endpoint that has an address: one `Endpoint` (addresses[0] only, as kube-proxy and the
//    merge use only the first; the Pod name only when targetRef.kind is "Pod"; nodeName, zone,
//    hints.forZones and the conditions, defaulted the Kubernetes way), with `port` set to the
//    slice's `port`. The slice's Endpoints are one immutable vector: a snapshot of that port
//    that keeps every one of them (no node filter left any out, every address valid) points
//    into it instead of copying it (SnapshotBuilder), so the store and the snapshots hold one
//    Endpoint per backend.
//  - A new version of a slice keeps the previous version's Pod name where the same Pod is at
//    the same place, so that snapshots of the old version and the store share the name.
//  - Node names, zones and hint lists repeat across thousands of endpoints: each distinct
//    value is one SharedName (or SharedNameList) of the store's InternTable, which every
//    endpoint with that value shares.
//
// The table only grows while events bring new values (nodes replaced, zones renamed); when it
// has grown well past what the slices use, put() rebuilds it from the values the stored
// endpoints hold, so its size stays within a constant factor of the live values. replace()
// always starts a new one.
//
// Thread: loop thread (plain value, no synchronization). The stored Endpoint vectors are
// immutable, so snapshots may share them with any thread. Lifetime: references into the store
// are valid until the next put(), erase() or replace(); a vector shared through its
// shared_ptr lives as long as that pointer.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "kube/objects.h"
#include "kupstream/endpoint.h"

namespace kupstream::detail {

// Distinct strings and string lists, each kept once, named by a dense 4-byte id. Id 0 is the
// empty string and the empty list (strings and lists are separate id spaces).
class InternTable {
 public:
  InternTable();
  InternTable(const InternTable&) = delete;
  InternTable& operator=(const InternTable&) = delete;
  // Moving keeps the values where they are (the ids and references stay valid).
  InternTable(InternTable&&) = default;
  InternTable& operator=(InternTable&&) = default;

  std::uint32_t string_id(std::string_view s);
  std::uint32_t list_id(const std::vector<std::string>& list);
  // The id of `name`'s text, kept as this very name (its buffer) when the text is new here: a
  // rebuilt table takes the values the stored endpoints already share.
  std::uint32_t adopt(const SharedName& name);
  // The same for a list (and for each of its names).
  std::uint32_t adopt_list(const SharedNameList& list);
  std::string_view string(std::uint32_t id) const noexcept { return strings_[id].view(); }
  const std::vector<std::string>& list(std::uint32_t id) const noexcept { return *lists_[id]; }
  // The same values as the Endpoints carry them: endpoints built from one table share each
  // name's buffer (and a hint list's names are shared with the zones of the same text).
  const SharedName& shared(std::uint32_t id) const noexcept { return strings_[id]; }
  const SharedNameList& shared_list(std::uint32_t id) const noexcept { return shared_lists_[id]; }
  // Distinct values held (strings + lists, the two empty ones included).
  std::size_t size() const noexcept { return strings_.size() + lists_.size(); }

 private:
  // Keys are views of the SharedNames' buffers, which do not move.
  std::unordered_map<std::string_view, std::uint32_t> string_ids_;
  // Node-based: the keys do not move, so lists_ points at them.
  std::map<std::vector<std::string>, std::uint32_t> list_ids_;
  std::vector<SharedName> strings_;
  std::vector<const std::vector<std::string>*> lists_;
  std::vector<SharedNameList> shared_lists_;
};

struct StoredPort {
  std::string name;                  // "" when absent
  std::optional<std::int32_t> port;  // nullopt when absent or null
};

struct StoredSlice {
  std::string resource_version;
  kube::AddressType address_type = kube::AddressType::unset;
  std::vector<StoredPort> ports;
  // The number the endpoints carry as Endpoint::port: the first of `ports` that is 1..65535;
  // 0 when none is.
  std::uint16_t port = 0;
  // The endpoints that have an address, in slice order; never null, immutable once stored.
  std::shared_ptr<const std::vector<Endpoint>> endpoints;
  std::size_t without_address = 0;  // endpoints left out: no address at all

  std::string_view address(std::size_t i) const noexcept { return (*endpoints)[i].address; }
  const SharedName& pod_name(std::size_t i) const noexcept { return (*endpoints)[i].pod_name; }
};

class SliceStore {
 public:
  using Map = std::map<std::string, StoredSlice, std::less<>>;

  // All slices at once (a LIST, a relist): the previous ones and their table are dropped.
  // `items` is consumed (freed here, before the caller goes on to merge).
  void replace(std::vector<kube::EndpointSlice> items);
  // Adds or replaces the slice named slice.metadata.name.
  void put(const kube::EndpointSlice& slice);
  void erase(std::string_view name);

  const Map& by_name() const noexcept { return slices_; }
  const InternTable& names() const noexcept { return names_; }
  // Endpoints stored (those with an address), over every slice.
  std::size_t endpoint_count() const noexcept { return endpoints_; }

 private:
  // `previous`: the slice's stored version, whose Pod names are reused where unchanged.
  StoredSlice store(const kube::EndpointSlice& slice, InternTable& names, const StoredSlice* previous) const;
  void compact();

  Map slices_;
  InternTable names_;
  std::size_t endpoints_ = 0;    // over every stored slice
  std::size_t live_names_ = 0;   // names_.size() right after it was last rebuilt
};

}  // namespace kupstream::detail
