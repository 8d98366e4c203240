// SliceStore: the EndpointSlices of one Service as its ServiceCache keeps them between events,
// in a compact form that holds only what the merge (slice_merge.h) and the watcher's state read.
//
//  - Per slice: its resourceVersion, address type and ports (name and number).
//  - Per endpoint (32 bytes, StoredEndpoint): addresses[0] only (kube-proxy and the merge use
//    only the first; whether there was one is kept), the Pod name only when targetRef.kind is
//    "Pod", nodeName, zone, hints.forZones and the conditions (defaulted the Kubernetes way).
//    The addresses are bytes of one text buffer per slice. The Pod name is a SharedName that
//    the merged Endpoints share (one copy of each Pod name for the store and every snapshot);
//    a new version of a slice keeps the previous version's name where it is unchanged.
//  - Node names, zones and hint lists repeat across thousands of endpoints: each distinct
//    value is kept once, in the store's InternTable, and endpoints hold 4-byte ids.
//
// The table only grows while events bring new values (nodes replaced, zones renamed); when it
// has grown well past what the slices use, put() rebuilds it from the stored slices, so its
// size stays within a constant factor of the live values. replace() always starts a new one.
//
// Thread: loop thread (plain value, no synchronization). Lifetime: ids and string views are
// valid until the next put(), erase() or replace().
#pragma once

#include <cstdint>
#include <functional>
#include <map>
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

struct StoredEndpoint {
  static constexpr std::uint8_t kHasAddress = 1, kReady = 2, kServing = 4, kTerminating = 8;
  std::uint32_t text = 0;          // offset of addresses[0] in StoredSlice::text
  std::uint32_t address_size = 0;
  SharedName pod;                  // targetRef.name when targetRef.kind is "Pod", else empty
  std::uint32_t node = 0;          // nodeName (InternTable string id)
  std::uint32_t zone = 0;          // zone (InternTable string id)
  std::uint32_t hints = 0;         // hints.forZones[].name (InternTable list id)
  std::uint8_t flags = 0;

  bool has_address() const noexcept { return flags & kHasAddress; }
  EndpointConditions conditions() const noexcept {
    return {(flags & kReady) != 0, (flags & kServing) != 0, (flags & kTerminating) != 0};
  }
};

struct StoredPort {
  std::string name;                  // "" when absent
  std::optional<std::int32_t> port;  // nullopt when absent or null
};

struct StoredSlice {
  std::string resource_version;
  kube::AddressType address_type = kube::AddressType::unset;
  std::vector<StoredPort> ports;
  std::vector<StoredEndpoint> endpoints;
  std::string text;  // every endpoint's address, back to back, in endpoint order

  std::string_view address(std::size_t i) const noexcept {
    return std::string_view(text).substr(endpoints[i].text, endpoints[i].address_size);
  }
  const SharedName& pod_name(std::size_t i) const noexcept { return endpoints[i].pod; }
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
