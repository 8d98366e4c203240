// Turning service weights into per-Pod weights for the Balancer.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "kupstream/upstream_config.h"

namespace kupstream::detail {

// Per-Pod weights are in units of 1/kWeightScale of a service weight, so slow start and
// per_service shares keep their precision; the Balancer divides out common factors.
inline constexpr std::uint32_t kWeightScale = 1000;

// The weight of each Pod of a service with `weight` and `pods` Pods that take traffic now.
// per_pod: each gets the service weight. per_service: they share it evenly (the service's
// total is `weight`, whatever its size). 0 for a zero weight.
std::uint32_t pod_base_weight(WeightMode mode, std::uint32_t weight, std::size_t pods);

// Slow start: a Pod first seen `age` ago gets a share rising linearly from 10% to 100% over
// `window` (0 = off). Never below 1 when `weight` > 0.
std::uint32_t slow_start_weight(std::uint32_t weight, std::chrono::milliseconds age, std::chrono::milliseconds window);

}  // namespace kupstream::detail
