#include "discovery/slice_merge.h"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <stdexcept>

namespace kupstream::detail {
namespace {

const kube::ServicePort* find_service_port(const kube::Service& service, const PortRef& port) {
  for (const auto& p : service.ports) {
    if (port.is_number() ? p.port == port.as_number() : p.name == port.as_name()) return &p;
  }
  return nullptr;
}

std::string plural(std::size_t n, const char* what) { return fmt::format("{} {}{}", n, what, n == 1 ? "" : "s"); }

using EndpointsPtr = std::shared_ptr<const std::vector<Endpoint>>;

const EndpointsPtr& no_endpoints() {
  static const EndpointsPtr empty = std::make_shared<const std::vector<Endpoint>>();
  return empty;
}

// One slice's endpoints for the port name, in slice order (not yet de-duplicated), and their
// keys (when `keys` is given). When the port is the one the slice's endpoints are stored with
// and none is left out, that is the stored vector itself (shared, not copied); else a copy of
// the ones kept, with the port's number.
EndpointsPtr merge_one(const StoredSlice& slice, const std::string& port_name,
                       const std::set<std::string, std::less<>>* allowed_nodes, MergeCounts& counts, SliceKeys* keys) {
  if (slice.address_type == kube::AddressType::fqdn) {
    ++counts.fqdn;
    return no_endpoints();
  }
  if (slice.address_type != kube::AddressType::ipv4 && slice.address_type != kube::AddressType::ipv6) return no_endpoints();
  std::optional<std::int32_t> number;
  for (const auto& p : slice.ports)
    if (p.name == port_name && p.port && *p.port > 0 && *p.port <= 65535) number = p.port;
  if (!number) {
    ++counts.without_port;
    return no_endpoints();
  }
  const std::vector<Endpoint>& stored = *slice.endpoints;
  const auto family = slice.address_type == kube::AddressType::ipv6 ? BackendKey::ipv6 : BackendKey::ipv4;
  const auto port = static_cast<std::uint16_t>(*number);
  // A slice over the API server's limit keeps its first kMaxEndpointsPerSlice endpoints.
  const auto limit = static_cast<std::uint32_t>(std::min(stored.size(), kMaxEndpointsPerSlice));
  counts.over_limit += stored.size() - limit;
  if (keys) keys->start(family, port, limit);
  bool whole = port == slice.port && limit == stored.size();  // the stored vector as it is, while every endpoint is kept
  std::vector<std::uint32_t> kept;  // the endpoints kept, once `whole` is false
  if (!whole) kept.reserve(limit);
  for (std::uint32_t i = 0; i < limit; ++i) {
    const Endpoint& e = stored[i];
    const auto key = BackendKey::parse_as(family, e.address, port);
    bool keep = true;
    if (!key) {
      ++counts.bad_address;
      keep = false;
    } else if (allowed_nodes && !allowed_nodes->contains(e.node_name.view())) {
      counts.unknown_node += e.node_name.empty() ? 1 : 0;
      keep = false;
    }
    if (!keep) {
      if (whole) {
        whole = false;
        kept.reserve(stored.size());  // (the first endpoint left out: every one before it is kept)
        for (std::uint32_t j = 0; j < i; ++j) kept.push_back(j);
      }
      continue;
    }
    if (!whole) kept.push_back(i);
    if (keys) keys->push_back(*key);
  }
  if (whole) return slice.endpoints;
  auto out = std::make_shared<std::vector<Endpoint>>();
  out->reserve(kept.size());
  for (const std::uint32_t i : kept) out->emplace_back(stored[i]).port = port;
  return out;
}

std::vector<std::string> notes_of(const MergeCounts& c, const std::string& port_name) {
  std::vector<std::string> notes;
  if (c.fqdn) notes.push_back(plural(c.fqdn, "FQDN slice") + " ignored");
  if (c.without_port) notes.push_back(fmt::format("{} without port \"{}\" ignored", plural(c.without_port, "slice"), port_name));
  if (c.bad_address) notes.push_back(plural(c.bad_address, "endpoint") + " with an invalid address ignored");
  if (c.unknown_node) notes.push_back(plural(c.unknown_node, "endpoint") + " without nodeName left out by the node filter");
  if (c.over_limit)
    notes.push_back(fmt::format("{} beyond the {} an EndpointSlice may hold ignored", plural(c.over_limit, "endpoint"),
                                kMaxEndpointsPerSlice));
  return notes;
}

// The Service port's name, or the problem.
PortProblem resolve_port(const SliceMergeInput& in, std::string& name) {
  if (in.service == nullptr) return PortProblem::service_not_found;
  const kube::ServicePort* service_port = find_service_port(*in.service, in.port);
  if (service_port == nullptr) return PortProblem::port_not_found;
  name = service_port->name;
  return PortProblem::none;
}

}  // namespace

void SliceKeys::start(BackendKey::Family family, std::uint16_t port, std::size_t n) {
  family_ = family;
  port_ = port;
  v4_.clear();
  v6_.clear();
  if (family == BackendKey::ipv4)
    v4_.reserve(n);
  else
    v6_.reserve(2 * n);
}

SliceMergeResult merge_slices(const SliceMergeInput& in) {
  SliceMergeResult out;
  out.problem = resolve_port(in, out.port_name);
  if (out.problem != PortProblem::none) return out;
  MergeCounts counts;
  out.endpoints.reserve(in.slices->endpoint_count());  // (appending slice by slice never reallocates)
  for (const auto& [name, slice] : in.slices->by_name()) {
    const EndpointsPtr merged = merge_one(slice, out.port_name, in.allowed_nodes, counts, nullptr);
    out.endpoints.insert(out.endpoints.end(), merged->begin(), merged->end());
  }
  out.notes = notes_of(counts, out.port_name);
  return out;
}

SnapshotStep build_snapshot(const SliceMergeInput& input, const EndpointSetPtr& current,
                            const std::string& resource_version) {
  auto merged = merge_slices(input);
  SnapshotStep step;
  step.problem = merged.problem;
  step.notes = std::move(merged.notes);
  auto next = EndpointSet::make(current ? current->generation + 1 : 1, resource_version, std::move(merged.endpoints));
  step.changed = !current || !current->same_endpoints(*next);
  step.next = step.changed ? std::move(next) : current;
  return step;
}

SnapshotBuilder::Entry& SnapshotBuilder::add_entry(const std::string& name) {
  auto it = cache_.emplace(name, Entry{}).first;
  Entry& e = it->second;
  e.slice = &it->first;
  if (free_slots_.empty()) {
    if (slots_.size() >= (std::size_t{1} << (32 - kPosBits))) {
      cache_.erase(it);
      throw std::length_error(fmt::format("more than {} EndpointSlices for one service", slots_.size()));
    }
    e.slot = static_cast<std::uint32_t>(slots_.size());
    slots_.push_back(&e);
  } else {
    e.slot = free_slots_.back();
    free_slots_.pop_back();
    slots_[e.slot] = &e;
  }
  return e;
}

void SnapshotBuilder::drop_entries() {
  cache_.clear();
  slots_.clear();
  free_slots_.clear();
  sorted_.clear();
}

SnapshotStep SnapshotBuilder::build(const SliceMergeInput& in, const EndpointSetPtr& current,
                                     const std::string& resource_version) {
  SnapshotStep step;
  std::string port_name;
  step.problem = resolve_port(in, port_name);
  std::vector<Entry*> fresh;  // entries (re)merged now
  if (step.problem != PortProblem::none) {
    drop_entries();
  } else {
    if (port_name != port_name_ || in.nodes_epoch != nodes_epoch_ || (in.allowed_nodes != nullptr) != filtered_)
      drop_entries();
    port_name_ = port_name;
    nodes_epoch_ = in.nodes_epoch;
    filtered_ = in.allowed_nodes != nullptr;
    // Which entries change: slices gone, and slices whose resourceVersion moved (or is unknown).
    const SliceStore::Map& slices = in.slices->by_name();
    bool any_dirty = false;
    for (auto& [name, entry] : cache_) {
      auto it = slices.find(name);
      entry.dirty = it == slices.end() || it->second.resource_version.empty() ||
                    it->second.resource_version != entry.resource_version;
      any_dirty |= entry.dirty;
    }
    // The previous order minus the dirty entries' endpoints stays valid (before any entry is
    // touched: a freed entry's slot could come back for a new one).
    if (any_dirty) std::erase_if(sorted_, [this](Ref r) { return entry_of(r).dirty; });
    for (auto it = cache_.begin(); it != cache_.end();) {
      if (slices.contains(it->first)) {
        ++it;
        continue;
      }
      slots_[it->second.slot] = nullptr;
      free_slots_.push_back(it->second.slot);
      it = cache_.erase(it);
    }
    for (const auto& [name, slice] : slices) {
      auto it = cache_.find(name);
      if (it != cache_.end() && !slice.resource_version.empty() && it->second.resource_version == slice.resource_version)
        continue;
      Entry& e = it == cache_.end() ? add_entry(name) : it->second;
      if (it != cache_.end()) {
        const std::uint32_t slot = e.slot;
        e = Entry{};
        e.slice = &it->first;
        e.slot = slot;
      }
      e.resource_version = slice.resource_version;
      e.endpoints = merge_one(slice, port_name, in.allowed_nodes, e.counts, &e.keys);
      fresh.push_back(&e);
    }
  }

  // Order every endpoint by backend; for equal backends a ready one first, then the first in
  // slice order (EndpointSet::make's rule). Only the fresh entries are sorted; they are merged
  // into the kept order in one linear pass. References keep the Endpoints in place.
  std::vector<Ref> added;
  std::size_t fresh_endpoints = 0;
  for (const Entry* e : fresh) fresh_endpoints += e->endpoints->size();
  added.reserve(fresh_endpoints);
  for (auto& [name, entry] : cache_) {
    if (std::find(fresh.begin(), fresh.end(), &entry) == fresh.end()) continue;
    for (std::uint32_t i = 0; i < entry.endpoints->size(); ++i) added.push_back(ref(entry.slot, i));
  }
  // (A lambda, not the function's address: lets the compiler inline the comparison.)
  const auto before = [this](Ref a, Ref b) { return this->before(a, b); };
  std::sort(added.begin(), added.end(), before);
  if (!added.empty()) {
    // (A fresh buffer each time, 4 bytes per endpoint, rather than a spare one kept for the
    // next build: the spare doubled the order's memory for the life of the watch.)
    std::vector<Ref> merged(sorted_.size() + added.size());
    std::merge(sorted_.begin(), sorted_.end(), added.begin(), added.end(), merged.begin(), before);
    sorted_ = std::move(merged);
  }

  MergeCounts counts;
  for (const auto& [name, entry] : cache_) {
    counts.fqdn += entry.counts.fqdn;
    counts.without_port += entry.counts.without_port;
    counts.bad_address += entry.counts.bad_address;
    counts.unknown_node += entry.counts.unknown_node;
    counts.over_limit += entry.counts.over_limit;
  }
  if (step.problem == PortProblem::none) step.notes = notes_of(counts, port_name_);

  auto next = std::make_shared<EndpointSet>();
  next->generation = current ? current->generation + 1 : 1;
  next->resource_version = resource_version;
  next->ready.reserve(sorted_.size());
  std::optional<BackendKey> last;
  for (const Ref r : sorted_) {
    const Entry& owner = entry_of(r);
    const BackendKey key = owner.keys[r.pos()];
    if (last && *last == key) continue;
    last = key;
    const Endpoint& e = (*owner.endpoints)[r.pos()];
    if (e.is_ready())
      next->ready.add_ref(e);
    else if (e.is_draining())
      next->draining.add_ref(e);
  }
  // The snapshot shares the entries' endpoints: it keeps every entry's storage alive.
  for (const auto& [name, entry] : cache_) {
    next->ready.keep_alive(entry.endpoints);
    if (!next->draining.empty()) next->draining.keep_alive(entry.endpoints);
  }
  step.changed = !current || !current->same_endpoints(*next);
  step.next = step.changed ? EndpointSetPtr(std::move(next)) : current;
  return step;
}

}  // namespace kupstream::detail
