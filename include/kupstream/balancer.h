/// @file
/// Balancer and Picker: spreading requests over weighted endpoints.
///
/// A Balancer turns a weighted endpoint list into an immutable Picker. Build on the loop
/// thread (or any one thread); a Picker may then be shared with any number of threads:
/// pick() is thread-safe, lock-free and never allocates. Publishing a new endpoint list is
/// building a new Picker and swapping a shared_ptr; the old one keeps serving until the swap.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kupstream/endpoint.h"
#include "kupstream/export.h"
#include "kupstream/upstream_config.h"

namespace kupstream {

/// In-flight requests on one endpoint, reported by the caller (start before sending,
/// finish when the response ends or fails). Shared between successive Pickers so that a
/// rebuild does not forget the load. Any thread.
struct EndpointLoad {
  std::atomic<std::uint32_t> in_flight{0};  ///< requests started and not finished yet
  /// Counts one request in: call before sending it.
  void start() noexcept { in_flight.fetch_add(1, std::memory_order_relaxed); }
  /// Counts one request out: call once when its response ends or fails.
  void finish() noexcept { in_flight.fetch_sub(1, std::memory_order_relaxed); }
};

/// An endpoint as a Balancer takes it: the backend, its weight and its load counter.
///
/// The backend is shared, not copied: a Picker of 60,000 endpoints holds 60,000 pointers into
/// Endpoints that live elsewhere. A plain Balancer user shares its own Endpoint values with
/// make() or shared_endpoint(). (The Upstream's own Pickers keep a smaller internal form that
/// points into its services' snapshots; their endpoints() list aliases those snapshots.)
///
/// Lifetime: the Endpoint pointed at stays alive, and unchanged, for as long as any copy of
/// `endpoint` does, so as long as the Picker that holds it.
struct WeightedEndpoint {
  /// The backend (address, port and metadata). A null one is kept in Picker::endpoints() with
  /// its weight set to 0: it is never picked.
  std::shared_ptr<const Endpoint> endpoint;
  std::uint32_t weight = 1;  ///< 0 = no new traffic; the Picker never returns it
  /// The caller's tag, carried along untouched. Upstream: the index in UpstreamConfig::services
  /// of the ServiceRef the endpoint came from (so a pick can name its service from any thread).
  /// (Next to `weight`, so that the two fill one 8-byte slot: 40 bytes per entry, not 48.)
  std::uint32_t group = 0;
  /// Load counter for least_request. When null, the Picker creates one of its own.
  std::shared_ptr<EndpointLoad> load;

  /// A WeightedEndpoint that owns a shared copy of `endpoint` (one allocation), with no load
  /// counter of its own (least_request then makes one).
  static WeightedEndpoint make(Endpoint endpoint, std::uint32_t weight = 1, std::uint32_t group = 0) {
    return {std::make_shared<const Endpoint>(std::move(endpoint)), weight, group, nullptr};
  }
};

/// `endpoint` moved into a shared, immutable Endpoint, for WeightedEndpoint::endpoint.
inline std::shared_ptr<const Endpoint> shared_endpoint(Endpoint endpoint) {
  return std::make_shared<const Endpoint>(std::move(endpoint));
}

/// The result of Picker::pick() and Picker::at(): a view of one endpoint of a Picker. Empty
/// (false) when there is no endpoint to pick; then Picker::no_endpoint_reason() says why.
///
/// Lifetime: it owns nothing. Its pointers stay valid while the Picker it came from lives (and
/// for Upstream::pick(), as long as that call documents). Copy what you need to keep longer.
struct PickResult {
  const Endpoint* endpoint = nullptr;  ///< the chosen backend; null when there is none
  /// Its load counter: WeightedEndpoint::load as given, or the one least_request made for it;
  /// null when the Picker has none (a plain Balancer user's endpoint under another policy).
  /// An Upstream's Pickers always have one per Pod (shared by every loop and thread).
  EndpointLoad* load = nullptr;
  std::uint32_t weight = 0;  ///< its weight in the Picker (WeightedEndpoint::weight)
  std::uint32_t group = 0;   ///< its WeightedEndpoint::group (Upstream: the ServiceRef's index)
  std::uint32_t index = 0;   ///< position in Picker::endpoints()
  /// True when an endpoint was picked.
  explicit operator bool() const noexcept { return endpoint != nullptr; }
  /// The same view: equal pointers, weight, group and index.
  friend bool operator==(const PickResult&, const PickResult&) = default;
};

/// An immutable set of weighted endpoints that picks one per request, by the policy it was
/// built for. Built by Balancer::build() and held through a PickerPtr; see the file comment
/// for the thread rules.
class KUPSTREAM_API Picker {
 public:
  virtual ~Picker();
  Picker(const Picker&) = delete;
  Picker& operator=(const Picker&) = delete;

  /// Thread-safe, lock-free, allocation-free. `hash` is used by consistent_hash only (see
  /// hash_key()); other policies ignore it.
  virtual PickResult pick(std::uint64_t hash = 0) const noexcept = 0;

  /// The policy it picks by.
  BalancerPolicy policy() const noexcept { return policy_; }
  /// Every endpoint given to the Balancer, in the given order, zero weights included. The
  /// Endpoints are shared with the caller (see WeightedEndpoint), not copied.
  ///
  /// A grouped Picker (Balancer::build_grouped(), the Upstream's default) and the Upstream's
  /// per-service Pickers keep their endpoints in a smaller form and assemble this list on the
  /// first call only (once, thread-safe, one pass over every endpoint and two shared_ptr copies
  /// each). Code that runs per request should use size() and at() instead, which never assemble
  /// anything. Any thread.
  const std::vector<WeightedEndpoint>& endpoints() const;
  /// The number of endpoints, endpoints().size(), without assembling the list. Any thread.
  std::size_t size() const noexcept { return size_; }
  /// The endpoint at `index` (< size()) of endpoints(), without assembling the list: what a pick
  /// of that index returns (zero weights included; `endpoint` is null for a null endpoint). Any
  /// thread, no allocation; valid while the Picker lives.
  virtual PickResult at(std::size_t index) const noexcept { return view(static_cast<std::uint32_t>(index)); }
  /// Number of endpoints with weight > 0.
  std::size_t pickable() const noexcept { return pickable_; }
  /// The sum of the endpoints' weights (null endpoints count 0).
  std::uint64_t total_weight() const noexcept { return total_weight_; }
  /// True when no endpoint has weight > 0: pick() then returns nothing.
  bool empty() const noexcept { return pickable_ == 0; }
  /// Why pick() returns nothing, e.g. "all 3 endpoints have weight 0"; "" when not empty.
  const std::string& no_endpoint_reason() const noexcept { return no_endpoint_reason_; }
  /// The same as an Error (Errc::no_endpoint), for callers that propagate errors.
  Error no_endpoint_error() const { return {Errc::no_endpoint, no_endpoint_reason_}; }

 protected:
  /// For the policy implementations: keeps `endpoints` and counts the pickable ones, setting
  /// the reason ("no endpoints", "all N endpoints have weight 0") when there is none.
  Picker(BalancerPolicy policy, std::vector<WeightedEndpoint> endpoints);
  /// For Pickers that keep their endpoints elsewhere: `size` endpoints, `pickable` of them with
  /// weight > 0, weights summing to `total_weight`. endpoints() calls assemble() once.
  Picker(BalancerPolicy policy, std::size_t size, std::size_t pickable, std::uint64_t total_weight);
  /// Fills `out` (empty) with every endpoint, in index order. Called at most once, by endpoints(),
  /// for Pickers made with the second constructor; the default does nothing.
  virtual void assemble(std::vector<WeightedEndpoint>& out) const;
  BalancerPolicy policy_;                            ///< see policy()
  /// see endpoints(); for Pickers made with the second constructor, filled by assemble() on first use
  mutable std::vector<WeightedEndpoint> endpoints_;
  std::size_t size_ = 0;                             ///< see size()
  std::size_t pickable_ = 0;                         ///< see pickable()
  std::uint64_t total_weight_ = 0;                   ///< see total_weight()
  std::string no_endpoint_reason_;                   ///< see no_endpoint_reason()
  /// Sets no_endpoint_reason_ from size_ and pickable_.
  void set_reason();
  /// endpoints_[i] as a PickResult (for Pickers made with the first constructor).
  PickResult view(std::uint32_t i) const noexcept {
    const WeightedEndpoint& e = endpoints_[i];
    return {e.endpoint.get(), e.load.get(), e.weight, e.group, i};
  }

 private:
  bool lazy_ = false;                   // endpoints_ is assembled on first use
  mutable std::once_flag assembled_;    // guards that one assemble()
};

/// How Pickers are shared: publishing one is swapping this pointer; readers keep theirs alive.
using PickerPtr = std::shared_ptr<const Picker>;

/// How a Balancer builds its Pickers.
struct BalancerOptions {
  BalancerPolicy policy = BalancerPolicy::weighted_round_robin;  ///< the policy of every Picker built
  /// Per-instance seed: the start of the WRR cycle and the random streams. Unset means a
  /// fresh random seed per Balancer, so a fleet of gateways does not pick in lockstep.
  /// Consistent hashing never uses it: every gateway maps a key to the same endpoint.
  std::optional<std::uint64_t> seed;
  /// weighted_round_robin: the longest cycle kept as a table. Weights are divided by their
  /// greatest common divisor first; if the total is still larger, weights are scaled down
  /// to fit (proportions then hold to within one part in this many).
  std::uint32_t max_wrr_cycle = 1u << 22;
  /// consistent_hash: minimum Maglev lookup table size. The table size is the first prime above
  /// the smallest power of two that holds both this and 2000 × endpoints (that part capped at
  /// 2^21 entries, 4 bytes each). Sizes move in powers of two so that adding or removing one
  /// endpoint rarely changes the size, which would remap every key.
  std::uint32_t maglev_table_size = 65537;
};

/// Builds Pickers of one policy and one seed. A plain value: no loop, no thread of its own.
class KUPSTREAM_API Balancer {
 public:
  /// Keeps `options`; draws a fresh random seed when options.seed is unset.
  explicit Balancer(BalancerOptions options = {});

  /// Builds a Picker over `endpoints`. Never fails: an empty or all-zero-weight list gives
  /// a Picker whose pick() is empty, with the reason. Any single thread. Copies no Endpoint:
  /// the Picker keeps the given shared pointers (and with them the Endpoints) alive.
  PickerPtr build(std::vector<WeightedEndpoint> endpoints) const;

  /// Builds a two-level weighted round-robin Picker: each pick chooses a group first, in
  /// proportion to its total_weight(), then an endpoint of that group. An endpoint of weight w
  /// in a group of total W, out of a grand total T, gets w/W × W/T = w/T of the picks: the same
  /// shares as one flat Picker over all the endpoints, exact over a full cycle (T divided by the
  /// gcd of all the weights). Groups built by build() with weighted_round_robin are walked
  /// through their own cycles (smooth within the group); other groups are asked to pick().
  ///
  /// The groups are shared, not copied: building costs O(groups) plus a table of at most 16,384
  /// entries, whatever the number of endpoints, so a caller that keeps the Pickers of unchanged
  /// groups rebuilds only what changed (this is how the Upstream publishes a change of one
  /// service). Small cycles follow the smooth sequence of the group weights; larger ones a
  /// stride through the cycle that spaces each group's turns nearly evenly. `round` moves the
  /// start of the cycle, so that successive Pickers of one caller do not all begin with the same
  /// group.
  ///
  /// endpoints() is the concatenation of the groups' endpoints, assembled on first use (see
  /// there); PickResult::index is the position in it. When only one group has endpoints, its
  /// Picker is returned as it is. Null groups count as empty ones. Any single thread; pick() as
  /// for every Picker (lock-free, allocation-free, any thread).
  PickerPtr build_grouped(std::vector<PickerPtr> groups, std::uint64_t round = 0) const;

  /// The options it was created with.
  const BalancerOptions& options() const noexcept { return options_; }
  /// The seed its Pickers use: options().seed, or the one drawn at construction.
  std::uint64_t seed() const noexcept { return seed_; }

 private:
  BalancerOptions options_;
  std::uint64_t seed_;
};

/// A stable 64-bit hash of a request key (a header value, a client address...) for
/// consistent_hash. The same on every machine and every run.
KUPSTREAM_API std::uint64_t hash_key(std::string_view key) noexcept;

}  // namespace kupstream
