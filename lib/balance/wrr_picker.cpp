#include "balance/wrr_picker.h"

#include <numeric>

#include "balance/smooth_wrr_sequence.h"

namespace kupstream::detail {
namespace {

std::vector<std::uint32_t> weights_of(const std::vector<WeightedEndpoint>& endpoints) {
  std::vector<std::uint32_t> weights;
  weights.reserve(endpoints.size());
  // Picker's constructor has already set the weight of a null endpoint to 0.
  for (const auto& e : endpoints) weights.push_back(e.weight);
  return weights;
}

}  // namespace

WrrCycle::WrrCycle(std::span<const std::uint32_t> weights, std::uint64_t seed, std::uint32_t max_cycle) {
  for (const auto w : weights) weight_gcd_ = std::gcd(weight_gcd_, w);
  cycle_ = smooth_wrr_sequence(weights, max_cycle);
  const auto length = static_cast<std::uint32_t>(cycle_.size());
  identity_ = length == weights.size();
  for (std::uint32_t i = 0; identity_ && i < length; ++i) identity_ = cycle_[i] == i;
  mod_ = FastMod(length);
  // Equal weights (the usual service): position j is entry j, so the table is not kept
  // (4 bytes per entry).
  if (identity_) std::vector<std::uint32_t>().swap(cycle_);
  start_cursors(seed);
}

WrrCycle::WrrCycle(std::uint32_t n, std::uint32_t weight, std::uint64_t seed)
    : mod_(n), weight_gcd_(weight), identity_(true) {
  start_cursors(seed);
}

void WrrCycle::start_cursors(std::uint64_t seed) {
  // Cursors start spread around the cycle, from a per-instance offset.
  const std::uint64_t length = mod_.divisor();
  const std::uint64_t offset = splitmix64(seed) % length;
  for (std::size_t i = 0; i < kCursors; ++i)
    cursors_[i].start = static_cast<std::uint32_t>((offset + length * i / kCursors) % length);
}

WrrPicker::WrrPicker(std::vector<WeightedEndpoint> endpoints, std::uint64_t seed, std::uint32_t max_cycle)
    : Picker(BalancerPolicy::weighted_round_robin, std::move(endpoints)),
      cycle_(weights_of(endpoints_), seed, max_cycle) {}

PickResult WrrPicker::pick(std::uint64_t) const noexcept { return view(cycle_.next()); }

}  // namespace kupstream::detail
