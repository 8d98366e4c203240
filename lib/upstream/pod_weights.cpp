#include "upstream/pod_weights.h"

#include <algorithm>

namespace kupstream::detail {

std::uint32_t pod_base_weight(WeightMode mode, std::uint32_t weight, std::size_t pods) {
  if (weight == 0 || pods == 0) return 0;
  const std::uint64_t scaled = std::uint64_t{weight} * kWeightScale;
  if (mode == WeightMode::per_pod) return static_cast<std::uint32_t>(scaled);
  // Per-service shares: large scale so that e.g. 1/3 of 1 keeps three digits of precision.
  return static_cast<std::uint32_t>(std::max<std::uint64_t>(1, scaled * 1000 / pods / 1000));
}

std::uint32_t slow_start_weight(std::uint32_t weight, std::chrono::milliseconds age, std::chrono::milliseconds window) {
  if (weight == 0 || window.count() <= 0 || age >= window) return weight;
  const double progress = std::max(0.0, static_cast<double>(age.count()) / static_cast<double>(window.count()));
  const double factor = 0.1 + 0.9 * progress;
  return std::max<std::uint32_t>(1, static_cast<std::uint32_t>(weight * factor));
}

}  // namespace kupstream::detail
