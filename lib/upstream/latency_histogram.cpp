#include "upstream/latency_histogram.h"

namespace kupstream::detail {

void LatencyHistogram::record(std::chrono::nanoseconds d) noexcept {
  const double s = std::chrono::duration<double>(d).count();
  sum_ += s;
  std::size_t i = 0;
  while (i < kBounds.size() && s > kBounds[i]) ++i;
  ++counts_[i];
}

std::array<std::uint64_t, LatencyHistogram::kBounds.size() + 1> LatencyHistogram::cumulative() const noexcept {
  std::array<std::uint64_t, kBounds.size() + 1> out{};
  std::uint64_t running = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) out[i] = running += counts_[i];
  return out;
}

}  // namespace kupstream::detail
