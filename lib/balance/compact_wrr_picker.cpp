#include "balance/compact_wrr_picker.h"

#include <numeric>

namespace kupstream::detail {
namespace {

std::uint64_t total_of(std::size_t n, const std::vector<std::uint32_t>& weights, std::uint32_t weight) {
  if (weights.empty()) return std::uint64_t{weight} * n;
  return std::accumulate(weights.begin(), weights.end(), std::uint64_t{0});
}

}  // namespace

CompactWrrPicker::CompactWrrPicker(std::vector<CompactEntry> entries, std::vector<std::uint32_t> weights,
                                   std::uint32_t weight, std::uint32_t group, std::shared_ptr<const void> owner,
                                   std::uint64_t seed, std::uint32_t max_cycle)
    : Picker(BalancerPolicy::weighted_round_robin, entries.size(), entries.size(), total_of(entries.size(), weights, weight)),
      entries_(std::move(entries)),
      weights_(std::move(weights)),
      weight_(weight),
      group_(group),
      owner_(std::move(owner)),
      cycle_(weights_.empty() ? WrrCycle(static_cast<std::uint32_t>(entries_.size()), weight_, seed)
                              : WrrCycle(weights_, seed, max_cycle)) {}

PickResult CompactWrrPicker::pick(std::uint64_t) const noexcept { return entry(cycle_.next()); }

void CompactWrrPicker::append_endpoints(std::vector<WeightedEndpoint>& out) const {
  out.reserve(out.size() + entries_.size());
  for (std::uint32_t i = 0; i < entries_.size(); ++i) {
    const PickResult r = entry(i);
    out.push_back({std::shared_ptr<const Endpoint>(owner_, r.endpoint), r.weight, r.group,
                   std::shared_ptr<EndpointLoad>(owner_, r.load)});
  }
}

}  // namespace kupstream::detail
