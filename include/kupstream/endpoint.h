/// @file
/// Endpoint (one Pod address and port) and EndpointSet (an immutable snapshot of a service).
///
/// Thread: value types. An EndpointSet is built whole on the loop thread and never mutated
/// afterwards, so any thread may read it through its shared_ptr<const EndpointSet>.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kupstream/error.h"
#include "kupstream/export.h"

namespace kupstream {

/// EndpointSlice conditions, already defaulted the Kubernetes way (nil ready → true,
/// nil serving → true, nil terminating → false).
struct EndpointConditions {
  bool ready = true;
  bool serving = true;
  bool terminating = false;
  friend bool operator==(const EndpointConditions&, const EndpointConditions&) = default;
};

struct Endpoint {
  std::string address;  ///< IPv4 or IPv6 literal, without brackets
  std::uint16_t port = 0;
  std::string pod_name;   ///< targetRef.name when the targetRef is a Pod, else ""
  std::string node_name;  ///< "" when unknown
  std::string zone;       ///< "" when unknown
  std::vector<std::string> hint_zones;  ///< hints.forZones
  EndpointConditions conditions;

  /// Receives traffic: ready and not terminating.
  bool is_ready() const noexcept { return conditions.ready && !conditions.terminating; }
  /// Still serving while it terminates: gets no new traffic unless nothing is ready.
  bool is_draining() const noexcept { return conditions.serving && conditions.terminating; }
  bool is_ipv6() const noexcept { return address.find(':') != std::string::npos; }
  /// "127.0.1.5:80" or "[::1]:80".
  KUPSTREAM_API std::string host_port() const;

  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

/// Two endpoints with equal (address, port) are the same backend even if their metadata differs.
inline bool same_backend(const Endpoint& a, const Endpoint& b) noexcept {
  return a.port == b.port && a.address == b.address;
}

/// Checks that the address is an IPv4 or IPv6 literal and the port is 1..65535.
/// `path` prefixes the reason, e.g. "endpoints[2]".
KUPSTREAM_API Status validate_endpoint(const Endpoint& endpoint, std::string_view path);

namespace detail {
class SnapshotBuilder;
}

/// A sorted, immutable list of Endpoints that shares them with other lists. A service's next
/// snapshot keeps pointing at the endpoints of the slices that did not change instead of copying
/// them (as Envoy's host vectors share hosts), so publishing one change costs one pointer per
/// endpoint. Reads like a const std::vector<Endpoint>: size, empty, [], front, back, random-access
/// iteration, == (element-wise), to_vector().
///
/// Thread: immutable once built; any thread may read it. Lifetime: the list (and every copy of
/// it) keeps the storage of its endpoints alive; references and iterators stay valid while the
/// list they came from lives.
class EndpointList {
 public:
  class const_iterator {
   public:
    using iterator_category = std::random_access_iterator_tag;
    using iterator_concept = std::random_access_iterator_tag;
    using value_type = Endpoint;
    using difference_type = std::ptrdiff_t;
    using pointer = const Endpoint*;
    using reference = const Endpoint&;

    const_iterator() = default;
    explicit const_iterator(const Endpoint* const* at) noexcept : at_(at) {}
    reference operator*() const noexcept { return **at_; }
    pointer operator->() const noexcept { return *at_; }
    reference operator[](difference_type n) const noexcept { return *at_[n]; }
    const_iterator& operator++() noexcept { ++at_; return *this; }
    const_iterator operator++(int) noexcept { auto old = *this; ++at_; return old; }
    const_iterator& operator--() noexcept { --at_; return *this; }
    const_iterator operator--(int) noexcept { auto old = *this; --at_; return old; }
    const_iterator& operator+=(difference_type n) noexcept { at_ += n; return *this; }
    const_iterator& operator-=(difference_type n) noexcept { at_ -= n; return *this; }
    friend const_iterator operator+(const_iterator it, difference_type n) noexcept { return it += n; }
    friend const_iterator operator+(difference_type n, const_iterator it) noexcept { return it += n; }
    friend const_iterator operator-(const_iterator it, difference_type n) noexcept { return it -= n; }
    friend difference_type operator-(const_iterator a, const_iterator b) noexcept { return a.at_ - b.at_; }
    friend bool operator==(const_iterator a, const_iterator b) noexcept { return a.at_ == b.at_; }
    friend auto operator<=>(const_iterator a, const_iterator b) noexcept { return a.at_ <=> b.at_; }

   private:
    const Endpoint* const* at_ = nullptr;
  };
  using iterator = const_iterator;
  using value_type = Endpoint;
  using size_type = std::size_t;

  EndpointList() = default;
  /// A list that owns a copy of `endpoints`, in the given order.
  KUPSTREAM_API explicit EndpointList(std::vector<Endpoint> endpoints);

  std::size_t size() const noexcept { return items_.size(); }
  bool empty() const noexcept { return items_.empty(); }
  const Endpoint& operator[](std::size_t i) const noexcept { return *items_[i]; }
  const Endpoint& front() const noexcept { return *items_.front(); }
  const Endpoint& back() const noexcept { return *items_.back(); }
  const_iterator begin() const noexcept { return const_iterator(items_.data()); }
  const_iterator end() const noexcept { return const_iterator(items_.data() + items_.size()); }
  KUPSTREAM_API std::vector<Endpoint> to_vector() const;

  /// Same endpoints in the same order (shared ones compare by address first: the cheap case).
  KUPSTREAM_API friend bool operator==(const EndpointList& a, const EndpointList& b) noexcept;

 private:
  friend struct EndpointSet;
  friend class detail::SnapshotBuilder;
  using Storage = std::shared_ptr<const std::vector<Endpoint>>;
  /// Builders only: appends a reference to an endpoint that lives in one of storage_'s vectors.
  void reserve(std::size_t n) { items_.reserve(n); }
  void add_ref(const Endpoint& e) { items_.push_back(&e); }
  void keep_alive(Storage storage) { storage_.push_back(std::move(storage)); }

  std::vector<const Endpoint*> items_;
  std::vector<Storage> storage_;  ///< owns what items_ points at
};

/// An immutable snapshot of one service's endpoints. `ready` holds what gets traffic;
/// `draining` holds serving-but-terminating endpoints, kept apart so callers can finish
/// in-flight requests on them or fall back to them when nothing is ready. Each list is
/// sorted by address (numerically, IPv4 before IPv6), then port, and holds each backend once.
/// Consecutive snapshots of a service share the endpoints that did not change (EndpointList).
struct EndpointSet {
  std::uint64_t generation = 0;     ///< grows by one for each published change
  std::string resource_version;     ///< the Kubernetes resourceVersion it reflects, "" if none
  EndpointList ready;
  EndpointList draining;

  /// Partitions, sorts and de-duplicates `endpoints` (the first occurrence of a backend wins,
  /// except that a ready occurrence beats a non-ready one). Endpoints neither ready nor
  /// draining are dropped.
  KUPSTREAM_API static std::shared_ptr<const EndpointSet> make(std::uint64_t generation,
                                                               std::string resource_version,
                                                               std::vector<Endpoint> endpoints);

  /// Same backends with the same conditions and metadata (generation and resource_version
  /// are not compared): used to publish nothing for no-op updates.
  KUPSTREAM_API bool same_endpoints(const EndpointSet& other) const noexcept;
};

using EndpointSetPtr = std::shared_ptr<const EndpointSet>;

}  // namespace kupstream
