#include "upstream/pod_health.h"

#include <algorithm>

namespace kupstream::detail {

bool PodHealth::record_failure(const OutlierDetection& policy, Clock::time_point now, bool may_eject) noexcept {
  if (consecutive_failures_ < kMaxCount) ++consecutive_failures_;
  if (policy.consecutive_failures == 0 || consecutive_failures_ < std::min(policy.consecutive_failures, kMaxCount)) return false;
  if (ejected(now) || !may_eject) return false;
  if (times_ejected_ < kMaxCount) ++times_ejected_;
  consecutive_failures_ = 0;
  const auto duration = std::min({policy.base_ejection * std::uint32_t{times_ejected_}, policy.max_ejection, kMaxStampSpan});
  until_ = stamp_ms(now + duration);
  if (until_ == 0) until_ = 1;  // 0 means "not ejected": one millisecond later instead
  return true;
}

bool ejection_allowed(const OutlierDetection& policy, std::size_t ejected, std::size_t total) noexcept {
  if (total == 0) return false;
  return (ejected + 1) * 100 <= total * policy.max_ejected_percent;
}

}  // namespace kupstream::detail
