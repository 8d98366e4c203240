#include "discovery/slice_store.h"

#include <array>
#include <utility>

namespace kupstream::detail {
namespace {

// put() rebuilds the table once it holds more than twice the values in use at its last
// rebuild, plus this many: a rebuild walks every endpoint of the service, so it must not come
// with every new node name of a rolling node upgrade.
constexpr std::size_t kTableSlack = 256;

// The last few zones interned while a slice is stored: a cluster has a handful, so comparing
// with them is cheaper than hashing one. (Not for node names: with tens of nodes per slice the
// comparisons would mostly miss and add to the lookup.)
class RecentIds {
 public:
  std::uint32_t id(InternTable& names, std::string_view s) {
    if (s.empty()) return 0;
    for (const auto& [value, id] : recent_)
      if (value == s) return id;
    const std::uint32_t id = names.string_id(s);
    recent_[next_++ % recent_.size()] = {s, id};
    return id;
  }

 private:
  std::array<std::pair<std::string_view, std::uint32_t>, 4> recent_{};  // views into the decoded slice
  std::size_t next_ = 0;
};

}  // namespace

InternTable::InternTable() {
  strings_.emplace_back();
  string_ids_.emplace(std::string_view(), 0);
  lists_.push_back(&list_ids_.emplace(std::vector<std::string>(), 0).first->first);
  shared_lists_.emplace_back();
}

std::uint32_t InternTable::string_id(std::string_view s) {
  if (s.empty()) return 0;
  if (auto it = string_ids_.find(s); it != string_ids_.end()) return it->second;
  const auto id = static_cast<std::uint32_t>(strings_.size());
  strings_.emplace_back(s);
  string_ids_.emplace(strings_.back().view(), id);
  return id;
}

std::uint32_t InternTable::list_id(const std::vector<std::string>& list) {
  if (list.empty()) return 0;
  if (auto it = list_ids_.find(list); it != list_ids_.end()) return it->second;
  std::vector<SharedName> shared;
  shared.reserve(list.size());
  for (const auto& name : list) shared.push_back(strings_[string_id(name)]);
  const auto id = static_cast<std::uint32_t>(lists_.size());
  lists_.push_back(&list_ids_.emplace(list, id).first->first);
  shared_lists_.emplace_back().assign(shared.begin(), shared.end());
  return id;
}

std::uint32_t InternTable::adopt(const SharedName& name) {
  if (name.empty()) return 0;
  if (auto it = string_ids_.find(name.view()); it != string_ids_.end()) return it->second;
  const auto id = static_cast<std::uint32_t>(strings_.size());
  strings_.push_back(name);
  string_ids_.emplace(strings_.back().view(), id);
  return id;
}

std::uint32_t InternTable::adopt_list(const SharedNameList& list) {
  if (list.empty()) return 0;
  std::vector<std::string> key;
  key.reserve(list.size());
  for (const auto& name : list) {
    adopt(name);
    key.emplace_back(name.view());
  }
  if (auto it = list_ids_.find(key); it != list_ids_.end()) return it->second;
  const auto id = static_cast<std::uint32_t>(lists_.size());
  lists_.push_back(&list_ids_.emplace(std::move(key), id).first->first);
  shared_lists_.push_back(list);
  return id;
}

StoredSlice SliceStore::store(const kube::EndpointSlice& slice, InternTable& names, const StoredSlice* previous) const {
  StoredSlice out;
  out.resource_version = slice.metadata.resource_version;
  out.address_type = slice.address_type;
  out.ports.reserve(slice.ports.size());
  for (const auto& p : slice.ports) {
    out.ports.push_back({p.name, p.port});
    if (out.port == 0 && p.port && *p.port > 0 && *p.port <= 65535) out.port = static_cast<std::uint16_t>(*p.port);
  }
  std::size_t with_address = 0;
  for (const auto& e : slice.endpoints) with_address += e.addresses.empty() ? 0 : 1;
  out.without_address = slice.endpoints.size() - with_address;
  auto endpoints = std::make_shared<std::vector<Endpoint>>();
  endpoints->reserve(with_address);
  const std::vector<Endpoint>* before = previous ? previous->endpoints.get() : nullptr;
  RecentIds zones;
  for (const auto& e : slice.endpoints) {
    if (e.addresses.empty()) continue;
    const std::size_t i = endpoints->size();
    Endpoint& ep = endpoints->emplace_back();
    ep.address = e.addresses.front();
    ep.port = out.port;
    if (e.target_ref && e.target_ref->kind == "Pod" && !e.target_ref->name.empty()) {
      // A new version of a slice mostly lists the same Pods in the same places: keep their names.
      const bool same = before && i < before->size() && (*before)[i].pod_name == e.target_ref->name;
      ep.pod_name = same ? (*before)[i].pod_name : SharedName(e.target_ref->name);
    }
    ep.node_name = names.shared(names.string_id(e.node_name));
    ep.zone = names.shared(zones.id(names, e.zone));
    ep.hint_zones = names.shared_list(names.list_id(e.hint_zones));
    ep.conditions = e.conditions.defaulted();
  }
  out.endpoints = std::move(endpoints);
  return out;
}

void SliceStore::replace(std::vector<kube::EndpointSlice> items) {
  // Built aside, then swapped in: the old slices and table go at once, and the new table holds
  // only what these slices use.
  Map slices;
  InternTable names;
  for (auto& s : items) {
    // The previous version's Pod names, so that snapshots kept from before (unchanged slices)
    // and the new store share them.
    const auto old = slices_.find(s.metadata.name);
    slices.insert_or_assign(s.metadata.name, store(s, names, old == slices_.end() ? nullptr : &old->second));
    s = kube::EndpointSlice{};  // the decoded form goes as soon as it is stored
  }
  items.clear();
  slices_ = std::move(slices);
  names_ = std::move(names);
  endpoints_ = 0;
  for (const auto& [name, slice] : slices_) endpoints_ += slice.endpoints->size();
  live_names_ = names_.size();
}

void SliceStore::put(const kube::EndpointSlice& slice) {
  auto it = slices_.find(slice.metadata.name);
  StoredSlice stored = store(slice, names_, it == slices_.end() ? nullptr : &it->second);
  endpoints_ += stored.endpoints->size();
  if (it == slices_.end()) {
    slices_.emplace(slice.metadata.name, std::move(stored));
  } else {
    endpoints_ -= it->second.endpoints->size();
    it->second = std::move(stored);
  }
  if (names_.size() > 2 * live_names_ + kTableSlack) compact();
}

void SliceStore::erase(std::string_view name) {
  if (auto it = slices_.find(name); it != slices_.end()) {
    endpoints_ -= it->second.endpoints->size();
    slices_.erase(it);
  }
}

// A new table with only the values the stored endpoints hold, as those very buffers (the
// endpoints are immutable and keep theirs; values no endpoint holds any more go with the old
// table).
void SliceStore::compact() {
  InternTable fresh;
  // Endpoints in a row mostly share one hint list: adopt_list() builds its key, so a list just
  // adopted is not looked up again.
  const SharedNameList* last_list = nullptr;
  for (const auto& [name, slice] : slices_) {
    for (const auto& e : *slice.endpoints) {
      fresh.adopt(e.node_name);
      fresh.adopt(e.zone);
      if (last_list && e.hint_zones.shares_buffer_with(*last_list)) continue;
      fresh.adopt_list(e.hint_zones);
      last_list = &e.hint_zones;
    }
  }
  names_ = std::move(fresh);
  live_names_ = names_.size();
}

}  // namespace kupstream::detail
