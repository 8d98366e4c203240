// Two-level weighted round robin: a group by its total weight, then an endpoint from the
// group's own Picker (Balancer::build_grouped()).
#pragma once

#include <array>
#include <atomic>

#include "balance/compact_wrr_picker.h"
#include "balance/pick_support.h"
#include "balance/wrr_picker.h"
#include "kupstream/balancer.h"

namespace kupstream::detail {

// One cursor walks a cycle of T positions, T = the sum of all the endpoints' weights divided by
// their gcd (the length of one flat WrrPicker's cycle over the same endpoints). Each group owns
// as many positions as its weight; at its j-th position (j < its weight) it picks entry j of its
// WrrPicker's cycle, whose length divides the group's weight, so one walk of T picks gives
// every endpoint exactly weight / gcd picks, with one atomic increment per pick.
//
// Which group owns which position:
// - T <= kMaxTable (small upstreams, or weights with a large common factor): a table of T
//   entries, the smooth WRR sequence of the group weights (smooth_wrr_sequence) with each
//   entry's visit number j: both levels are then smooth round robin;
// - larger T: no table. Group g owns the range [begin, end) of [0, T) and pick n goes to
//   position n * stride mod T, with a stride coprime to T near T / golden ratio: a bijection of
//   [0, T) whose consecutive values land far apart (the three-gap theorem), so a group's turns
//   come at nearly even intervals; j is the offset in the group's range.
// Groups that are neither WrrPickers nor CompactWrrPickers are asked to pick() themselves. Building costs O(groups) plus
// the table (at most kMaxTable entries), whatever the number of endpoints.
class GroupedWrrPicker final : public Picker {
 public:
  // `groups`: at least two of them with endpoints (null ones count as empty). `seed` sets the
  // start of the cursors.
  GroupedWrrPicker(std::vector<PickerPtr> groups, std::uint64_t seed);
  PickResult pick(std::uint64_t hash) const noexcept override;
  PickResult at(std::size_t index) const noexcept override;

  // The groups, as given (tests: a group's Picker is the same object from one build to the next).
  const std::vector<PickerPtr>& groups() const noexcept { return groups_; }
  // The length of the virtual cycle (tests).
  std::uint64_t cycle_length() const noexcept { return total_; }

 private:
  void assemble(std::vector<WeightedEndpoint>& out) const override;
  std::size_t group_of_index(std::size_t index) const noexcept;
  struct Group;
  PickResult pick_in(const Group& group, std::uint32_t j, std::uint64_t hash) const noexcept;

  static constexpr std::uint64_t kMaxTable = 1u << 14;
  static constexpr std::size_t kCursors = 16;
  struct alignas(64) Cursor {
    mutable std::atomic<std::uint32_t> next{0};
    std::uint32_t start = 0;
  };
  // What a pick reads of a group, in one place (the cycle and entries of a WrrPicker or
  // CompactWrrPicker group are read through plain pointers: the group's Picker, held by groups_,
  // keeps them alive).
  struct Group {
    std::uint64_t end = 0;                          // one past its last cycle position
    std::uint64_t begin = 0;                        // its first cycle position
    const std::uint32_t* cycle = nullptr;           // a walked group's cycle (null when identity)
    bool walk = false;                              // a WrrPicker or CompactWrrPicker group: walked through its cycle
    bool identity = false;                          // its cycle is 0..n-1: entry j is j (not kept)
    FastMod mod;                                    // its length
    const WeightedEndpoint* endpoints = nullptr;    // a WrrPicker group's endpoints
    const CompactEntry* entries = nullptr;          // a CompactWrrPicker group's entries,
    const std::uint32_t* weights = nullptr;         // their weights (null: all `weight`),
    std::uint32_t weight = 0, tag = 0;              // and their common weight and group
    const Picker* picker = nullptr;                 // any group with endpoints
    std::uint32_t offset = 0;                       // its first index in endpoints()
  };
  std::vector<PickerPtr> groups_;
  std::vector<Group> info_;
  // Table mode: per position, the group (high 16 bits) and its visit number j (low 16 bits).
  std::vector<std::uint32_t> table_;
  FastMod table_mod_;
  // Stride mode: the group owning position b << shift_, where the search for a group starts.
  std::vector<std::uint32_t> bucket_;
  unsigned shift_ = 0;
  std::uint64_t total_ = 1;       // cycle length T
  std::uint64_t stride_ = 0;      // coprime to T
  std::uint64_t reciprocal_ = 0;  // floor((2^64 - 1) / T), for x mod T without a division
  std::array<Cursor, kCursors> cursors_;
};

}  // namespace kupstream::detail
