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
  std::array<Cursor, kCursors> cursors_;
};

}  // namespace kupstream::detail
