#include "balance/alias_table.h"

#include <cmath>

namespace kupstream::detail {

AliasTable::AliasTable(std::span<const std::uint32_t> weights) {
  size_ = static_cast<std::uint32_t>(weights.size());
  entries_.resize(size_);
  double total = 0;
  for (auto w : weights) total += w;
  // Scaled probabilities: the mean column holds exactly 1.
  std::vector<double> p(size_);
  std::vector<std::uint32_t> small, large;
  for (std::uint32_t i = 0; i < size_; ++i) {
    p[i] = static_cast<double>(weights[i]) * size_ / total;
    (p[i] < 1.0 ? small : large).push_back(i);
  }
  constexpr double kScale = 4294967296.0;  // 2^32
  auto threshold = [&](double prob) {
    return prob >= 1.0 ? 0xFFFFFFFFu : static_cast<std::uint32_t>(std::llround(prob * kScale));
  };
  while (!small.empty() && !large.empty()) {
    const std::uint32_t s = small.back(), l = large.back();
    small.pop_back();
    entries_[s] = {threshold(p[s]), l};
    p[l] -= 1.0 - p[s];
    if (p[l] < 1.0) {
      large.pop_back();
      small.push_back(l);
    }
  }
  // Leftovers are 1 up to rounding: they keep their own column. A zero-weight column can
  // only be left over through rounding, and then it must never be returned.
  for (auto i : large) entries_[i] = {0xFFFFFFFFu, i};
  std::uint32_t any_positive = 0;
  while (any_positive + 1 < size_ && weights[any_positive] == 0) ++any_positive;
  for (auto i : small) entries_[i] = weights[i] > 0 ? Entry{0xFFFFFFFFu, i} : Entry{0u, any_positive};
  for (std::uint32_t i = 0; i < size_; ++i)
    if (weights[i] == 0) entries_[i].threshold = 0;
}

}  // namespace kupstream::detail
