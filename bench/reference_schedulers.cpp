#include "reference_schedulers.h"

namespace kupstream::bench {

NginxSmoothWrr::NginxSmoothWrr(const std::vector<std::uint32_t>& weights)
    : weight_(weights.begin(), weights.end()), current_(weights.size(), 0) {
  for (auto w : weights) total_ += w;
}

std::uint32_t NginxSmoothWrr::pick() {
  std::size_t best = 0;
  for (std::size_t i = 0; i < weight_.size(); ++i) {
    current_[i] += weight_[i];
    if (current_[i] > current_[best]) best = i;
  }
  current_[best] -= total_;
  return static_cast<std::uint32_t>(best);
}

EdfScheduler::EdfScheduler(const std::vector<std::uint32_t>& weights) {
  inverse_weight_.reserve(weights.size());
  for (std::uint32_t i = 0; i < weights.size(); ++i) {
    inverse_weight_.push_back(1.0 / weights[i]);
    heap_.push({inverse_weight_[i], order_++, i});
  }
}

std::uint32_t EdfScheduler::pick() {
  Entry e = heap_.top();
  heap_.pop();
  heap_.push({e.deadline + inverse_weight_[e.index], order_++, e.index});
  return e.index;
}

}  // namespace kupstream::bench
