// Two-level weighted round robin: a group by its total weight, then an endpoint from the
// group's own Picker (Balancer::build_grouped()).
#pragma once

#include <array>
#include <atomic>

#include "balance/pick_support.h"
#include "kupstream/balancer.h"

namespace kupstream::detail {

// The group cycle is not a table: position n of the cycle of total T (group weights divided by
// their gcd) is the group whose range of [0, T) holds n * stride mod T, with a stride coprime
// to T near T / golden ratio. Each group owns as many positions as its weight (a bijection of
// [0, T)), and consecutive positions land far apart, so a group's turns come at nearly even
// intervals. Building is O(groups); the groups' Pickers are shared, never copied.
class GroupedWrrPicker final : public Picker {
 public:
  // `groups`: at least two of them with endpoints (null ones count as empty). `seed` sets the
  // start of the cursors.
  GroupedWrrPicker(std::vector<PickerPtr> groups, std::uint64_t seed);
  PickResult pick(std::uint64_t hash) const noexcept override;
  const WeightedEndpoint& at(std::size_t index) const noexcept override;

  // The groups, as given (tests: a group's Picker is the same object from one build to the next).
  const std::vector<PickerPtr>& groups() const noexcept { return groups_; }

 private:
  void assemble(std::vector<WeightedEndpoint>& out) const override;
  std::size_t group_of_index(std::size_t index) const noexcept;

  static constexpr std::size_t kCursors = 16;
  struct alignas(64) Cursor {
    mutable std::atomic<std::uint32_t> next{0};
    std::uint32_t start = 0;
  };
  std::vector<PickerPtr> groups_;
  std::vector<std::size_t> offsets_;   // first index of each group in endpoints(); size + 1 entries
  std::vector<std::uint64_t> bounds_;  // group g owns positions [bounds_[g], bounds_[g + 1]) of the cycle
  std::uint64_t total_ = 1;            // cycle length T
  std::uint64_t stride_ = 0;           // coprime to T
  std::uint64_t reciprocal_ = 0;       // floor((2^64 - 1) / T), for x mod T without a division
  std::array<Cursor, kCursors> cursors_;
};

}  // namespace kupstream::detail
