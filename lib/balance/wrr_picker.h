// Smooth weighted round robin: a precomputed cycle walked by lock-free per-thread cursors.
#pragma once

#include <array>
#include <atomic>

#include "balance/pick_support.h"
#include "kupstream/balancer.h"

namespace kupstream::detail {

class WrrPicker final : public Picker {
 public:
  WrrPicker(std::vector<WeightedEndpoint> endpoints, std::uint64_t seed, std::uint32_t max_cycle);
  PickResult pick(std::uint64_t hash) const noexcept override;

  // For GroupedWrrPicker, which walks the cycle with its own cursor: the cycle's length, its
  // entries (endpoint indices) and their modulo, and the gcd of the non-zero weights (the cycle
  // holds each endpoint weight / gcd times, unless the weights were scaled down to fit).
  std::uint32_t cycle_length() const noexcept { return mod_.divisor(); }
  // Null for an identity cycle (not kept: entry j is j).
  const std::uint32_t* cycle_data() const noexcept { return identity_ ? nullptr : cycle_.data(); }
  const FastMod& cycle_mod() const noexcept { return mod_; }
  std::uint32_t weight_gcd() const noexcept { return weight_gcd_; }
  // True when the cycle is 0, 1, ..., n - 1 (every endpoint has the same weight): entry j is j.
  bool identity_cycle() const noexcept { return identity_; }

 private:
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

}  // namespace kupstream::detail
