// A weighted round-robin Picker that keeps 16 bytes per endpoint: the Upstream's per-service
// Picker, whose endpoints share one group and, unless some are in slow start, one weight.
#pragma once

#include <memory>
#include <vector>

#include "balance/wrr_picker.h"
#include "kupstream/balancer.h"

namespace kupstream::detail {

// One endpoint of a CompactWrrPicker: the backend and its load counter, both kept alive by the
// Picker's owner (not by the entry).
struct CompactEntry {
  const Endpoint* endpoint = nullptr;
  EndpointLoad* load = nullptr;
};

// Picks as WrrPicker does (the same smooth cycle for the same weights), over entries instead of
// 40-byte WeightedEndpoints. Immutable; pick() and at() are lock-free and allocation-free, any
// thread. endpoints() is assembled on first use, its shared_ptrs aliasing `owner`.
class CompactWrrPicker final : public Picker {
 public:
  // `entries`: at least one, each with an endpoint and a load counter. `weights`: empty when
  // every entry has weight `weight`, else one weight per entry (each > 0). `group` is every
  // entry's WeightedEndpoint::group. `owner` keeps what the entries point at alive for as long
  // as the Picker lives; it is released on the thread that drops the Picker's last reference.
  CompactWrrPicker(std::vector<CompactEntry> entries, std::vector<std::uint32_t> weights, std::uint32_t weight,
                   std::uint32_t group, std::shared_ptr<const void> owner, std::uint64_t seed, std::uint32_t max_cycle);
  PickResult pick(std::uint64_t hash) const noexcept override;
  PickResult at(std::size_t index) const noexcept override { return entry(static_cast<std::uint32_t>(index)); }

  // For GroupedWrrPicker, which walks the cycle itself.
  const WrrCycle& cycle() const noexcept { return cycle_; }
  const CompactEntry* entries() const noexcept { return entries_.data(); }
  // Null when every entry has weight().
  const std::uint32_t* weights() const noexcept { return weights_.empty() ? nullptr : weights_.data(); }
  std::uint32_t weight() const noexcept { return weight_; }
  std::uint32_t group() const noexcept { return group_; }
  // Appends every entry to `out` as a WeightedEndpoint (aliasing the owner), in index order.
  void append_endpoints(std::vector<WeightedEndpoint>& out) const;

 private:
  void assemble(std::vector<WeightedEndpoint>& out) const override { append_endpoints(out); }
  PickResult entry(std::uint32_t i) const noexcept {
    const CompactEntry& e = entries_[i];
    return {e.endpoint, e.load, weights_.empty() ? weight_ : weights_[i], group_, i};
  }
  std::vector<CompactEntry> entries_;
  std::vector<std::uint32_t> weights_;
  std::uint32_t weight_ = 0;
  std::uint32_t group_ = 0;
  std::shared_ptr<const void> owner_;
  WrrCycle cycle_;
};

}  // namespace kupstream::detail
