#include "balance/smooth_wrr_sequence.h"

#include <algorithm>
#include <numeric>
#include <unordered_map>

namespace kupstream::detail {
namespace {

struct Reduced {
  std::vector<std::uint64_t> weights;
  std::uint64_t total = 0;
};

Reduced reduce(std::span<const std::uint32_t> weights, std::uint32_t max_cycle) {
  Reduced r{std::vector<std::uint64_t>(weights.begin(), weights.end()), 0};
  auto divide_by_gcd = [&] {
    std::uint64_t g = 0;
    for (auto w : r.weights) g = std::gcd(g, w);
    r.total = 0;
    for (auto& w : r.weights) {
      if (g > 1) w /= g;
      r.total += w;
    }
  };
  divide_by_gcd();
  if (r.total > max_cycle) {
    const double scale = static_cast<double>(max_cycle) / static_cast<double>(r.total);
    for (auto& w : r.weights)
      if (w > 0) w = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(static_cast<double>(w) * scale));
    divide_by_gcd();
  }
  return r;
}

}  // namespace

std::vector<std::uint32_t> smooth_wrr_sequence(std::span<const std::uint32_t> weights, std::uint32_t max_cycle) {
  Reduced r = reduce(weights, std::max<std::uint32_t>(max_cycle, 1));
  const std::size_t n = r.weights.size();
  const std::uint64_t total = r.total;
  if (total == 0) return {};

  // Rank of each endpoint among those of equal weight, and the size of each such group.
  struct Group {
    std::uint32_t size = 0;
    std::uint32_t next_rank = 0;
  };
  std::unordered_map<std::uint64_t, Group> groups;
  for (auto w : r.weights)
    if (w > 0) ++groups[w].size;

  const double period_total = static_cast<double>(total);
  auto first_deadline = [&](std::size_t i, Group& g) {
    const double period = period_total / static_cast<double>(r.weights[i]);
    return period * (static_cast<double>(g.next_rank++) + 0.5) / static_cast<double>(g.size);
  };
  auto slot_of = [&](double t) { return std::min<std::uint64_t>(static_cast<std::uint64_t>(t), total - 1); };

  // Pass 1: how many picks fall in each unit slot [s, s+1) of virtual time.
  std::vector<std::uint32_t> start(total + 1, 0);
  for (std::size_t i = 0; i < n; ++i) {
    if (r.weights[i] == 0) continue;
    const double period = period_total / static_cast<double>(r.weights[i]);
    double t = first_deadline(i, groups[r.weights[i]]);
    for (std::uint64_t k = 0; k < r.weights[i]; ++k, t += period) ++start[slot_of(t) + 1];
  }
  std::partial_sum(start.begin(), start.end(), start.begin());

  // Pass 2: place every pick in its slot, remembering its exact deadline for ties.
  for (auto& [w, g] : groups) g.next_rank = 0;
  std::vector<std::uint32_t> sequence(total);
  std::vector<double> deadline(total);
  std::vector<std::uint32_t> cursor(start.begin(), start.end() - 1);
  for (std::size_t i = 0; i < n; ++i) {
    if (r.weights[i] == 0) continue;
    const double period = period_total / static_cast<double>(r.weights[i]);
    double t = first_deadline(i, groups[r.weights[i]]);
    for (std::uint64_t k = 0; k < r.weights[i]; ++k, t += period) {
      const std::uint32_t at = cursor[slot_of(t)]++;
      sequence[at] = static_cast<std::uint32_t>(i);
      deadline[at] = t;
    }
  }

  // Slots hold one pick on average; order the few shared ones by exact deadline.
  std::vector<std::pair<double, std::uint32_t>> crowd;
  for (std::uint64_t s = 0; s < total; ++s) {
    const std::uint32_t lo = start[s], hi = start[s + 1];
    if (hi - lo < 2) continue;
    crowd.clear();
    for (std::uint32_t a = lo; a < hi; ++a) crowd.emplace_back(deadline[a], sequence[a]);
    std::sort(crowd.begin(), crowd.end());
    for (std::uint32_t a = lo; a < hi; ++a) sequence[a] = crowd[a - lo].second;
  }
  return sequence;
}

}  // namespace kupstream::detail
