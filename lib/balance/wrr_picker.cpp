#include "balance/wrr_picker.h"

#include <numeric>

#include "balance/smooth_wrr_sequence.h"

namespace kupstream::detail {

WrrPicker::WrrPicker(std::vector<WeightedEndpoint> endpoints, std::uint64_t seed, std::uint32_t max_cycle)
    : Picker(BalancerPolicy::weighted_round_robin, std::move(endpoints)) {
  std::vector<std::uint32_t> weights;
  weights.reserve(endpoints_.size());
  for (const auto& e : endpoints_) {
    weights.push_back(e.weight);
    weight_gcd_ = std::gcd(weight_gcd_, e.weight);
  }
  cycle_ = smooth_wrr_sequence(weights, max_cycle);
  const auto length = static_cast<std::uint32_t>(cycle_.size());
  identity_ = length == endpoints_.size();
  for (std::uint32_t i = 0; identity_ && i < length; ++i) identity_ = cycle_[i] == i;
  mod_ = FastMod(length);
  // Equal weights (the usual service): position j is endpoint j, so the table is not kept
  // (4 bytes per endpoint).
  if (identity_) std::vector<std::uint32_t>().swap(cycle_);
  // Cursors start spread around the cycle, from a per-instance offset.
  const std::uint64_t offset = splitmix64(seed) % length;
  for (std::size_t i = 0; i < kCursors; ++i)
    cursors_[i].start = static_cast<std::uint32_t>((offset + std::uint64_t{length} * i / kCursors) % length);
}

PickResult WrrPicker::pick(std::uint64_t) const noexcept {
  const Cursor& c = cursors_[thread_slot() % kCursors];
  // A 32-bit cursor wraps after 2^32 picks: the walk then jumps to another point of the
  // cycle once, which shifts proportions by at most one cycle in four billion picks.
  const std::uint32_t n = c.next.fetch_add(1, std::memory_order_relaxed) + c.start;
  const std::uint32_t m = mod_(n);
  const std::uint32_t index = identity_ ? m : cycle_[m];
  return {&endpoints_[index], index};
}

}  // namespace kupstream::detail
