// Endpoint (one Pod address and port) and EndpointSet (an immutable snapshot of a service).
//
// Thread: value types. An EndpointSet is built whole on the loop thread and never mutated
// afterwards, so any thread may read it through its shared_ptr<const EndpointSet>.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kupstream/error.h"
#include "kupstream/export.h"

namespace kupstream {

// EndpointSlice conditions, already defaulted the Kubernetes way (nil ready → true,
// nil serving → true, nil terminating → false).
struct EndpointConditions {
  bool ready = true;
  bool serving = true;
  bool terminating = false;
  friend bool operator==(const EndpointConditions&, const EndpointConditions&) = default;
};

struct Endpoint {
  std::string address;  // IPv4 or IPv6 literal, without brackets
  std::uint16_t port = 0;
  std::string pod_name;   // targetRef.name when the targetRef is a Pod, else ""
  std::string node_name;  // "" when unknown
  std::string zone;       // "" when unknown
  std::vector<std::string> hint_zones;  // hints.forZones
  EndpointConditions conditions;

  // Receives traffic: ready and not terminating.
  bool is_ready() const noexcept { return conditions.ready && !conditions.terminating; }
  // Still serving while it terminates: gets no new traffic unless nothing is ready.
  bool is_draining() const noexcept { return conditions.serving && conditions.terminating; }
  bool is_ipv6() const noexcept { return address.find(':') != std::string::npos; }
  // "127.0.1.5:80" or "[::1]:80".
  KUPSTREAM_API std::string host_port() const;

  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

// Two endpoints with equal (address, port) are the same backend even if their metadata differs.
inline bool same_backend(const Endpoint& a, const Endpoint& b) noexcept {
  return a.port == b.port && a.address == b.address;
}

// Checks that the address is an IPv4 or IPv6 literal and the port is 1..65535.
// `path` prefixes the reason, e.g. "endpoints[2]".
KUPSTREAM_API Status validate_endpoint(const Endpoint& endpoint, std::string_view path);

// An immutable snapshot of one service's endpoints. `ready` holds what gets traffic;
// `draining` holds serving-but-terminating endpoints, kept apart so callers can finish
// in-flight requests on them or fall back to them when nothing is ready. Each list is
// sorted by (address, port) and holds each backend once.
struct EndpointSet {
  std::uint64_t generation = 0;     // grows by one for each published change
  std::string resource_version;     // the Kubernetes resourceVersion it reflects, "" if none
  std::vector<Endpoint> ready;
  std::vector<Endpoint> draining;

  // Partitions, sorts and de-duplicates `endpoints` (the first occurrence of a backend wins,
  // except that a ready occurrence beats a non-ready one). Endpoints neither ready nor
  // draining are dropped.
  KUPSTREAM_API static std::shared_ptr<const EndpointSet> make(std::uint64_t generation,
                                                               std::string resource_version,
                                                               std::vector<Endpoint> endpoints);

  // Same backends with the same conditions and metadata (generation and resource_version
  // are not compared): used to publish nothing for no-op updates.
  KUPSTREAM_API bool same_endpoints(const EndpointSet& other) const noexcept;
};

using EndpointSetPtr = std::shared_ptr<const EndpointSet>;

}  // namespace kupstream
