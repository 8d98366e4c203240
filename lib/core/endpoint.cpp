#include "kupstream/endpoint.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <tuple>

namespace kupstream {

std::string Endpoint::host_port() const {
  return is_ipv6() ? fmt::format("[{}]:{}", address, port) : fmt::format("{}:{}", address, port);
}

Status validate_endpoint(const Endpoint& endpoint, std::string_view path) {
  unsigned char buf[16];
  if (inet_pton(AF_INET, endpoint.address.c_str(), buf) != 1 && inet_pton(AF_INET6, endpoint.address.c_str(), buf) != 1)
    return {Errc::invalid_argument,
            fmt::format("{}.address: \"{}\" is not an IPv4 or IPv6 literal", path, endpoint.address)};
  if (endpoint.port == 0) return {Errc::invalid_argument, fmt::format("{}.port: 0 is not a port 1..65535", path)};
  return {};
}

namespace {

bool backend_less(const Endpoint& a, const Endpoint& b) {
  return std::tie(a.address, a.port) < std::tie(b.address, b.port);
}

// Sorts by backend and keeps one entry per backend: the first ready one if any, else the first.
void sort_unique(std::vector<Endpoint>& list) {
  std::stable_sort(list.begin(), list.end(), [](const Endpoint& a, const Endpoint& b) {
    if (backend_less(a, b)) return true;
    if (backend_less(b, a)) return false;
    return a.is_ready() && !b.is_ready();
  });
  list.erase(std::unique(list.begin(), list.end(), same_backend), list.end());
}

}  // namespace

std::shared_ptr<const EndpointSet> EndpointSet::make(std::uint64_t generation, std::string resource_version,
                                                     std::vector<Endpoint> endpoints) {
  sort_unique(endpoints);
  auto set = std::make_shared<EndpointSet>();
  set->generation = generation;
  set->resource_version = std::move(resource_version);
  for (auto& e : endpoints) {
    if (e.is_ready())
      set->ready.push_back(std::move(e));
    else if (e.is_draining())
      set->draining.push_back(std::move(e));
  }
  return set;
}

bool EndpointSet::same_endpoints(const EndpointSet& other) const noexcept {
  return ready == other.ready && draining == other.draining;
}

}  // namespace kupstream
