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
#include "kupstream/shared_name.h"

namespace kupstream {

/// EndpointSlice conditions, already defaulted the Kubernetes way (nil ready → true,
/// nil serving → true, nil terminating → false).
struct EndpointConditions {
  bool ready = true;         ///< conditions.ready
  bool serving = true;       ///< conditions.serving: answers requests, even while terminating
  bool terminating = false;  ///< conditions.terminating: the Pod is shutting down
  /// Field-wise equality.
  friend bool operator==(const EndpointConditions&, const EndpointConditions&) = default;
};

/// One backend: a Pod's address and port (the EndpointSlice port that serves the watched
/// Service port), with the metadata of its EndpointSlice entry.
struct Endpoint {
  std::string address;  ///< IPv4 or IPv6 literal, without brackets
  std::uint16_t port = 0;  ///< 1..65535 once validated
  /// Ready, serving, terminating. (Right after port, in its padding: an Endpoint is 72 bytes
  /// on 64-bit targets with libstdc++.)
  EndpointConditions conditions;
  /// targetRef.name when the targetRef is a Pod, else "". Shared: the snapshots and the
  /// watch's store hold one copy of each Pod's name.
  SharedName pod_name;
  /// nodeName; "" when unknown. Shared: the endpoints of a service on one node hold one copy.
  SharedName node_name;
  /// The endpoint's zone; "" when unknown. Shared as node_name is.
  SharedName zone;
  /// hints.forZones[].name. Shared: the endpoints of a service with the same hints hold one
  /// list, and its names are shared as zone is.
  SharedNameList hint_zones;

  /// Receives traffic: ready and not terminating.
  bool is_ready() const noexcept { return conditions.ready && !conditions.terminating; }
  /// Still serving while it terminates: gets no new traffic unless nothing is ready.
  bool is_draining() const noexcept { return conditions.serving && conditions.terminating; }
  /// True for an IPv6 address (it contains ':').
  bool is_ipv6() const noexcept { return address.find(':') != std::string::npos; }
  /// "127.0.1.5:80" or "[::1]:80".
  KUPSTREAM_API std::string host_port() const;

  /// Field-wise equality, metadata included (see same_backend() for address and port only).
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
  /// A random-access iterator over const Endpoints. Valid while the list it came from lives.
  class const_iterator {
   public:
    using iterator_category = std::random_access_iterator_tag;  ///< random access
    using iterator_concept = std::random_access_iterator_tag;   ///< random access (C++20 concepts)
    using value_type = Endpoint;                                ///< the element type
    using difference_type = std::ptrdiff_t;                     ///< distance between iterators
    using pointer = const Endpoint*;                            ///< what operator->() returns
    using reference = const Endpoint&;                          ///< what operator*() returns

    /// A singular iterator; only assignment and comparison with another singular one are valid.
    const_iterator() = default;
    /// For EndpointList: an iterator at one slot of its pointer array.
    explicit const_iterator(const Endpoint* const* at) noexcept : at_(at) {}
    /// The endpoint here.
    reference operator*() const noexcept { return **at_; }
    /// The endpoint here, for member access.
    pointer operator->() const noexcept { return *at_; }
    /// The endpoint `n` places away.
    reference operator[](difference_type n) const noexcept { return *at_[n]; }
    /// Pre-increment: moves to the next endpoint.
    const_iterator& operator++() noexcept { ++at_; return *this; }
    /// Post-increment: moves to the next endpoint and returns the old position.
    const_iterator operator++(int) noexcept { auto old = *this; ++at_; return old; }
    /// Pre-decrement: moves to the previous endpoint.
    const_iterator& operator--() noexcept { --at_; return *this; }
    /// Post-decrement: moves to the previous endpoint and returns the old position.
    const_iterator operator--(int) noexcept { auto old = *this; --at_; return old; }
    /// Moves `n` places forward.
    const_iterator& operator+=(difference_type n) noexcept { at_ += n; return *this; }
    /// Moves `n` places back.
    const_iterator& operator-=(difference_type n) noexcept { at_ -= n; return *this; }
    /// The iterator `n` places after `it`.
    friend const_iterator operator+(const_iterator it, difference_type n) noexcept { return it += n; }
    /// The iterator `n` places after `it`.
    friend const_iterator operator+(difference_type n, const_iterator it) noexcept { return it += n; }
    /// The iterator `n` places before `it`.
    friend const_iterator operator-(const_iterator it, difference_type n) noexcept { return it -= n; }
    /// The distance from `b` to `a` (both of the same list).
    friend difference_type operator-(const_iterator a, const_iterator b) noexcept { return a.at_ - b.at_; }
    /// Same position.
    friend bool operator==(const_iterator a, const_iterator b) noexcept { return a.at_ == b.at_; }
    /// Orders positions of the same list.
    friend auto operator<=>(const_iterator a, const_iterator b) noexcept { return a.at_ <=> b.at_; }

   private:
    const Endpoint* const* at_ = nullptr;
  };
  using iterator = const_iterator;  ///< the list is immutable: iterators are const
  using value_type = Endpoint;      ///< the element type
  using size_type = std::size_t;    ///< the type of size()

  /// An empty list.
  EndpointList() = default;
  /// A list that owns a copy of `endpoints`, in the given order.
  KUPSTREAM_API explicit EndpointList(std::vector<Endpoint> endpoints);

  /// Number of endpoints.
  std::size_t size() const noexcept { return items_.size(); }
  /// True when it holds no endpoint.
  bool empty() const noexcept { return items_.empty(); }
  /// The endpoint at `i` (< size(); not checked).
  const Endpoint& operator[](std::size_t i) const noexcept { return *items_[i]; }
  /// The first endpoint (the list must not be empty).
  const Endpoint& front() const noexcept { return *items_.front(); }
  /// The last endpoint (the list must not be empty).
  const Endpoint& back() const noexcept { return *items_.back(); }
  /// Iterator at the first endpoint.
  const_iterator begin() const noexcept { return const_iterator(items_.data()); }
  /// Iterator past the last endpoint.
  const_iterator end() const noexcept { return const_iterator(items_.data() + items_.size()); }
  /// A copy of the endpoints, in order, as a plain vector.
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
  EndpointList ready;     ///< ready and not terminating: these get traffic
  EndpointList draining;  ///< serving but terminating: no new traffic unless nothing is ready

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

/// How snapshots are handed out: shared, immutable, readable on any thread.
using EndpointSetPtr = std::shared_ptr<const EndpointSet>;

}  // namespace kupstream
