// A fixed-bucket latency histogram (Prometheus style), one thread at a time.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>

namespace kupstream::detail {

class LatencyHistogram {
 public:
  static constexpr std::array<double, 12> kBounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                  0.05,   0.1,   0.25,   0.5,   1.0,  5.0};
  void record(std::chrono::nanoseconds d) noexcept;
  // Cumulative counts per bound, then the total (+Inf).
  std::array<std::uint64_t, kBounds.size() + 1> cumulative() const noexcept;
  double sum_seconds() const noexcept { return sum_; }
  // Adds another histogram's counts (a worker loop's, on the control loop).
  void merge(const LatencyHistogram& other) noexcept {
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
    sum_ += other.sum_;
  }

 private:
  std::array<std::uint64_t, kBounds.size() + 1> counts_{};
  double sum_ = 0;
};

}  // namespace kupstream::detail
