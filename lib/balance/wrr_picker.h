// Smooth weighted round robin: a precomputed cycle walked by lock-free per-thread cursors.
#pragma once

#include <array>
#include <atomic>
#include <span>

#include "balance/pick_support.h"
#include "kupstream/balancer.h"

namespace kupstream::detail {

// The cycle of a weighted round-robin Picker and its per-thread cursors: which entry the next
// pick of the calling thread takes. Immutable once built, apart from the cursors (atomic).
class WrrCycle {
 public:
  // Over `weights` (one per entry, zeros never taken; at least one non-zero): the smooth
  // sequence of smooth_wrr_sequence(), at most `max_cycle` long.
  WrrCycle(std::span<const std::uint32_t> weights, std::uint64_t seed, std::uint32_t max_cycle);
  // Over `n` > 0 entries of one weight `weight` > 0: entry j at position j, with no table.
  WrrCycle(std::uint32_t n, std::uint32_t weight, std::uint64_t seed);
  WrrCycle(const WrrCycle&) = delete;
  WrrCycle& operator=(const WrrCycle&) = delete;

  // The entry the calling thread takes next. Lock-free, any thread.
  std::uint32_t next() const noexcept {
    const Cursor& c = cursors_[thread_slot() % kCursors];
    // A 32-bit cursor wraps after 2^32 picks: the walk then jumps to another point of the
    // cycle once, which shifts proportions by at most one cycle in four billion picks.
    const std::uint32_t n = c.next.fetch_add(1, std::memory_order_relaxed) + c.start;
    return entry(mod_(n));
  }
  // The entry at position `m` (< length()) of the cycle.
  std::uint32_t entry(std::uint32_t m) const noexcept { return identity_ ? m : cycle_[m]; }

  // For GroupedWrrPicker, which walks the cycle with its own cursor: the cycle's length, its
  // entries (null for an identity cycle, which is not kept: entry j is j) and their modulo, and
  // the gcd of the non-zero weights (the cycle holds each entry weight / gcd times, unless the
  // weights were scaled down to fit).
  std::uint32_t length() const noexcept { return mod_.divisor(); }
  const std::uint32_t* data() const noexcept { return identity_ ? nullptr : cycle_.data(); }
  const FastMod& mod() const noexcept { return mod_; }
  std::uint32_t weight_gcd() const noexcept { return weight_gcd_; }
  // True when the cycle is 0, 1, ..., n - 1 (every entry has the same weight): entry j is j.
  bool identity() const noexcept { return identity_; }

 private:
  void start_cursors(std::uint64_t seed);
  // Each thread walks the cycle with the cursor of its slot; one thread alone sees the exact
  // smooth sequence, and threads on different slots never share a cache line.
  static constexpr std::size_t kCursors = 16;
  struct alignas(64) Cursor {
    mutable std::atomic<std::uint32_t> next{0};
    std::uint32_t start = 0;
  };
  std::vector<std::uint32_t> cycle_;
  FastMod mod_;
  std::uint32_t weight_gcd_ = 0;
  bool identity_ = false;
  std::array<Cursor, kCursors> cursors_;
};

class WrrPicker final : public Picker {
 public:
  WrrPicker(std::vector<WeightedEndpoint> endpoints, std::uint64_t seed, std::uint32_t max_cycle);
  PickResult pick(std::uint64_t hash) const noexcept override;
  // For GroupedWrrPicker: the cycle over endpoints_ (entry i is endpoints()[i]), and the list.
  const WrrCycle& cycle() const noexcept { return cycle_; }
  const WeightedEndpoint* data() const noexcept { return endpoints_.data(); }

 private:
  WrrCycle cycle_;
};

}  // namespace kupstream::detail
