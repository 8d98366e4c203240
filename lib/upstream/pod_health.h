// Passive health of one Pod: consecutive failures eject it for a time that grows with each
// ejection (outlier detection, as Envoy and NGINX Plus do).
#pragma once

#include <chrono>
#include <cstdint>

#include "kupstream/upstream.h"

namespace kupstream::detail {

class PodHealth {
 public:
  using Clock = std::chrono::steady_clock;

  // A request finished well: the failure streak ends.
  void record_success() noexcept { consecutive_failures_ = 0; }

  // A connect failure, timeout or 5xx. Returns true when this failure ejects the Pod:
  // the streak reached the threshold and `may_eject` (the cap on ejected Pods allows it).
  bool record_failure(const OutlierDetection& policy, Clock::time_point now, bool may_eject) noexcept;

  bool ejected(Clock::time_point now) const noexcept { return now < ejected_until_; }
  Clock::time_point ejected_until() const noexcept { return ejected_until_; }
  std::uint32_t times_ejected() const noexcept { return times_ejected_; }
  std::uint32_t consecutive_failures() const noexcept { return consecutive_failures_; }

 private:
  std::uint32_t consecutive_failures_ = 0;
  std::uint32_t times_ejected_ = 0;
  Clock::time_point ejected_until_{};
};

// Whether one more of `total` Pods may be ejected when `ejected` already are.
bool ejection_allowed(const OutlierDetection& policy, std::size_t ejected, std::size_t total) noexcept;

}  // namespace kupstream::detail
