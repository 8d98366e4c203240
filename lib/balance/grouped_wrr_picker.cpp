#include "balance/grouped_wrr_picker.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace kupstream::detail {
namespace {

// Group totals can reach 2^64 in theory (20 groups of 2^32 weights); the cycle position is
// computed in 64 bits from a 32-bit cursor, so the cycle is kept below 2^31 (scaled down, each
// weight keeping at least 1, when it would not fit: shares then hold to one part in 2^31).
constexpr std::uint64_t kMaxCycle = std::uint64_t{1} << 31;

std::vector<std::uint64_t> reduced(const std::vector<PickerPtr>& groups) {
  std::vector<std::uint64_t> w;
  w.reserve(groups.size());
  for (const auto& g : groups) w.push_back(g ? g->total_weight() : 0);
  auto divide = [&w] {
    std::uint64_t g = 0, total = 0;
    for (auto x : w) g = std::gcd(g, x);
    for (auto& x : w) {
      if (g > 1) x /= g;
      total += x;
    }
    return total;
  };
  std::uint64_t total = divide();
  if (total > kMaxCycle) {
    const long double scale = static_cast<long double>(kMaxCycle / 2) / static_cast<long double>(total);
    for (auto& x : w)
      if (x > 0) x = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(static_cast<long double>(x) * scale));
    divide();
  }
  return w;
}

}  // namespace

GroupedWrrPicker::GroupedWrrPicker(std::vector<PickerPtr> groups, std::uint64_t seed)
    : Picker(BalancerPolicy::weighted_round_robin, 0, 0, 0), groups_(std::move(groups)) {
  offsets_.reserve(groups_.size() + 1);
  offsets_.push_back(0);
  for (const auto& g : groups_) {
    size_ += g ? g->size() : 0;
    pickable_ += g ? g->pickable() : 0;
    total_weight_ += g ? g->total_weight() : 0;
    offsets_.push_back(size_);
  }
  set_reason();

  const auto weights = reduced(groups_);
  bounds_.reserve(weights.size() + 1);
  bounds_.push_back(0);
  for (auto w : weights) bounds_.push_back(bounds_.back() + w);
  total_ = std::max<std::uint64_t>(1, bounds_.back());
  // A stride near T / phi, coprime to T: n -> n * stride mod T is then a bijection of [0, T) whose
  // consecutive values are spread like the golden-ratio sequence.
  stride_ = static_cast<std::uint64_t>(std::llround(static_cast<double>(total_) * 0.6180339887498949));
  if (stride_ == 0) stride_ = 1;
  while (std::gcd(stride_, total_) != 1) ++stride_;
  stride_ %= total_;
  reciprocal_ = ~std::uint64_t{0} / total_;
  const std::uint64_t offset = splitmix64(seed) % total_;
  for (std::size_t i = 0; i < kCursors; ++i)
    cursors_[i].start = static_cast<std::uint32_t>((offset + total_ * i / kCursors) % total_);
}

PickResult GroupedWrrPicker::pick(std::uint64_t hash) const noexcept {
  if (pickable_ == 0) return {};
  const Cursor& c = cursors_[thread_slot() % kCursors];
  // As in WrrPicker, the 32-bit cursor wraps after 2^32 picks and the walk then jumps once.
  const std::uint32_t n = c.next.fetch_add(1, std::memory_order_relaxed) + c.start;
  // x = n * stride mod T by a Barrett reduction (x < 2^63; the estimate is short by at most 2).
  const std::uint64_t x = std::uint64_t{n} * stride_;
  std::uint64_t r = x - static_cast<std::uint64_t>((u128{x} * reciprocal_) >> 64) * total_;
  while (r >= total_) r -= total_;
  // The group whose range holds r: the last bound <= r (empty groups have equal bounds).
  const auto g = static_cast<std::size_t>(std::upper_bound(bounds_.begin() + 1, bounds_.end(), r) - bounds_.begin() - 1);
  PickResult result = groups_[g]->pick(hash);
  result.index += static_cast<std::uint32_t>(offsets_[g]);
  return result;
}

std::size_t GroupedWrrPicker::group_of_index(std::size_t index) const noexcept {
  return static_cast<std::size_t>(std::upper_bound(offsets_.begin() + 1, offsets_.end(), index) - offsets_.begin() - 1);
}

const WeightedEndpoint& GroupedWrrPicker::at(std::size_t index) const noexcept {
  const std::size_t g = group_of_index(index);
  return groups_[g]->at(index - offsets_[g]);
}

void GroupedWrrPicker::assemble(std::vector<WeightedEndpoint>& out) const {
  out.reserve(size_);
  for (const auto& g : groups_)
    if (g)
      for (std::size_t i = 0; i < g->size(); ++i) out.push_back(g->at(i));
}

}  // namespace kupstream::detail
