// Passive health of one Pod: consecutive failures eject it for a time that grows with each
// ejection (outlier detection, as Envoy and NGINX Plus do).
#pragma once

#include <chrono>
#include <cstdint>

#include "kupstream/upstream.h"

namespace kupstream::detail {

// The steady clock in milliseconds modulo 2^32: the 4-byte time stamps of a Pod's record. Two
// stamps compare by their difference modulo 2^32, which is right for spans shorter than
// kMaxStampSpan; the code that keeps them forgets a stamp once its span has ended.
inline std::uint32_t stamp_ms(std::chrono::steady_clock::time_point t) noexcept {
  return static_cast<std::uint32_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count());
}
// About 24.8 days: no ejection and no slow start lasts longer (longer settings are cut to it).
inline constexpr std::chrono::milliseconds kMaxStampSpan{0x7fffffff};

class PodHealth {
 public:
  using Clock = std::chrono::steady_clock;

  // A request finished well: the failure streak ends.
  void record_success() noexcept { consecutive_failures_ = 0; }

  // A connect failure, timeout or 5xx. Returns true when this failure ejects the Pod:
  // the streak reached the threshold and `may_eject` (the cap on ejected Pods allows it).
  bool record_failure(const OutlierDetection& policy, Clock::time_point now, bool may_eject) noexcept;

  bool ejected(Clock::time_point now) const noexcept {
    return until_ != 0 && static_cast<std::int32_t>(until_ - stamp_ms(now)) > 0;
  }
  // When the current ejection ends; `now` when the Pod is not ejected.
  Clock::time_point ejected_until(Clock::time_point now) const noexcept {
    if (!ejected(now)) return now;
    return now + std::chrono::milliseconds{static_cast<std::int32_t>(until_ - stamp_ms(now))};
  }
  // Forgets an ejection that has ended, so that its 4-byte stamp never reads as a future one
  // (which it would about 24.8 days later). The Upstream calls it on each walk of the Pods,
  // and walks them when an ejection ends.
  void expire(Clock::time_point now) noexcept {
    if (until_ != 0 && !ejected(now)) until_ = 0;
  }
  std::uint32_t times_ejected() const noexcept { return times_ejected_; }
  std::uint32_t consecutive_failures() const noexcept { return consecutive_failures_; }

 private:
  // Both counts stop at 65,535 (8 bytes in all keep UpstreamPod at 64): a larger
  // OutlierDetection::consecutive_failures acts as 65,535, and an ejection's length reaches
  // max_ejection long before base_ejection × 65,535.
  static constexpr std::uint32_t kMaxCount = 0xFFFF;
  std::uint16_t consecutive_failures_ = 0;
  std::uint16_t times_ejected_ = 0;
  std::uint32_t until_ = 0;  // stamp_ms() of the ejection's end; 0 = not ejected
};

// Whether one more of `total` Pods may be ejected when `ejected` already are.
bool ejection_allowed(const OutlierDetection& policy, std::size_t ejected, std::size_t total) noexcept;

}  // namespace kupstream::detail
