#include "kupstream/endpoint.h"

#include "core/backend_key.h"

#include <fmt/format.h>

#include <algorithm>
#include <tuple>

namespace kupstream {

// The store and every snapshot hold one Endpoint per backend (docs/performance.md): the
// conditions sit in the padding after port, so on 64-bit targets an Endpoint is the address
// string and 40 bytes (72 with libstdc++).
static_assert(sizeof(void*) != 8 || sizeof(Endpoint) == sizeof(std::string) + 40, "Endpoint grew: check its field order");

std::string Endpoint::host_port() const {
  return is_ipv6() ? fmt::format("[{}]:{}", address, port) : fmt::format("{}:{}", address, port);
}

Status validate_endpoint(const Endpoint& endpoint, std::string_view path) {
  if (detail::BackendKey::parse(endpoint.address, endpoint.port).family == detail::BackendKey::unparsed)
    return {Errc::invalid_argument,
            fmt::format("{}.address: \"{}\" is not an IPv4 or IPv6 literal", path, endpoint.address)};
  if (endpoint.port == 0) return {Errc::invalid_argument, fmt::format("{}.port: 0 is not a port 1..65535", path)};
  return {};
}

namespace {

// The lists' order (BackendKey: numeric address, IPv4 first, then port); strings that are
// not IP literals come last, by text.
bool backend_less(const detail::BackendKey& ka, const Endpoint& a, const detail::BackendKey& kb, const Endpoint& b) {
  if (ka.family == detail::BackendKey::unparsed && kb.family == detail::BackendKey::unparsed)
    return std::tie(a.address, a.port) < std::tie(b.address, b.port);
  return ka < kb;
}

// Sorts by backend and keeps one entry per backend: the first ready one if any, else the first.
void sort_unique(std::vector<Endpoint>& list) {
  struct Item {
    detail::BackendKey key;
    Endpoint* e;
  };
  std::vector<Item> items;
  items.reserve(list.size());
  for (auto& e : list) items.push_back({detail::BackendKey::parse(e.address, e.port), &e});
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    if (backend_less(a.key, *a.e, b.key, *b.e)) return true;
    if (backend_less(b.key, *b.e, a.key, *a.e)) return false;
    return a.e->is_ready() && !b.e->is_ready();
  });
  // One backend: equal keys (so "::1" and "0::1" are one), or equal text when not IP literals.
  std::vector<Endpoint> out;
  out.reserve(list.size());
  const Item* last = nullptr;
  for (const auto& item : items) {
    if (last && !backend_less(last->key, *last->e, item.key, *item.e)) continue;
    last = &item;
    out.push_back(std::move(*item.e));
  }
  list = std::move(out);
}

}  // namespace

EndpointList::EndpointList(std::vector<Endpoint> endpoints) {
  auto storage = std::make_shared<const std::vector<Endpoint>>(std::move(endpoints));
  items_.reserve(storage->size());
  for (const auto& e : *storage) items_.push_back(&e);
  storage_.push_back(std::move(storage));
}

std::vector<Endpoint> EndpointList::to_vector() const {
  std::vector<Endpoint> out;
  out.reserve(items_.size());
  for (const auto* e : items_) out.push_back(*e);
  return out;
}

bool operator==(const EndpointList& a, const EndpointList& b) noexcept {
  if (a.items_.size() != b.items_.size()) return false;
  for (std::size_t i = 0; i < a.items_.size(); ++i)
    if (a.items_[i] != b.items_[i] && !(*a.items_[i] == *b.items_[i])) return false;
  return true;
}

std::shared_ptr<const EndpointSet> EndpointSet::make(std::uint64_t generation, std::string resource_version,
                                                     std::vector<Endpoint> endpoints) {
  sort_unique(endpoints);
  std::erase_if(endpoints, [](const Endpoint& e) { return !e.is_ready() && !e.is_draining(); });
  auto storage = std::make_shared<const std::vector<Endpoint>>(std::move(endpoints));
  auto set = std::make_shared<EndpointSet>();
  set->generation = generation;
  set->resource_version = std::move(resource_version);
  for (const auto& e : *storage) (e.is_ready() ? set->ready : set->draining).add_ref(e);
  set->ready.keep_alive(storage);
  set->draining.keep_alive(std::move(storage));
  return set;
}

bool EndpointSet::same_endpoints(const EndpointSet& other) const noexcept {
  return ready == other.ready && draining == other.draining;
}

}  // namespace kupstream
