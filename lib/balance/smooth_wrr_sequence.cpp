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
  const std::uint64_t total = r.total;
  if (total == 0) return {};

  // Endpoints of equal weight form a class, served round robin in input order; a class of n
  // endpoints of weight w is scheduled as one stream of weight n * w. Its m-th pick is due at
  // (m + 0.5) * W / (n * w), which gives member j its k-th pick at (k + (j + 0.5) / n) * W / w.
  struct Class {
    std::uint64_t weight;
    std::vector<std::uint32_t> members;
    double period = 0;     // W / (n * w)
  };
  std::vector<Class> classes;
  // Weight → class id: a direct table for the usual small weights, a hash map otherwise.
  const std::uint64_t max_weight = *std::max_element(r.weights.begin(), r.weights.end());
  const bool direct = max_weight <= 4 * r.weights.size() + 1024;
  std::vector<std::uint32_t> class_by_weight(direct ? max_weight + 1 : 0, UINT32_MAX);
  std::unordered_map<std::uint64_t, std::uint32_t> class_by_weight_sparse;
  for (std::uint32_t i = 0; i < r.weights.size(); ++i) {
    const std::uint64_t w = r.weights[i];
    if (w == 0) continue;
    std::uint32_t& id = direct ? class_by_weight[w] : class_by_weight_sparse.try_emplace(w, UINT32_MAX).first->second;
    if (id == UINT32_MAX) {
      id = static_cast<std::uint32_t>(classes.size());
      classes.push_back({w, {}});
    }
    classes[id].members.push_back(i);
  }
  for (auto& c : classes)
    c.period = static_cast<double>(total) / static_cast<double>(c.weight * c.members.size());

  // Order all picks by deadline with a counting sort over W unit slots of virtual time. Each
  // class walks the slots in increasing order, so memory is touched in K sequential sweeps.
  auto slot_of = [&](double t) { return std::min<std::uint64_t>(static_cast<std::uint64_t>(t), total - 1); };
  std::vector<std::uint32_t> start(total + 1, 0);
  for (const auto& c : classes) {
    const std::uint64_t picks = c.weight * c.members.size();
    double t = 0.5 * c.period;
    for (std::uint64_t m = 0; m < picks; ++m, t += c.period) ++start[slot_of(t) + 1];
  }
  std::partial_sum(start.begin(), start.end(), start.begin());

  std::vector<std::uint32_t> sequence(total);
  std::vector<double> deadline(total);
  std::vector<std::uint32_t> cursor(start.begin(), start.end() - 1);
  for (auto& c : classes) {
    const std::uint64_t picks = c.weight * c.members.size();
    std::size_t member = 0;  // m modulo the class size
    double t = 0.5 * c.period;  // summed, not multiplied: both passes must agree bit for bit
    for (std::uint64_t m = 0; m < picks; ++m, t += c.period) {
      const std::uint32_t at = cursor[slot_of(t)]++;
      sequence[at] = c.members[member];
      deadline[at] = t;
      if (++member == c.members.size()) member = 0;
    }
  }

  // A slot holds one pick on average and at most one per class (a class's period is at least
  // one slot); order the few that share one by exact deadline, keeping class order on ties.
  for (std::uint64_t s = 0; s < total; ++s) {
    const std::uint32_t lo = start[s], hi = start[s + 1];
    for (std::uint32_t a = lo + 1; a < hi; ++a)
      for (std::uint32_t b = a; b > lo && deadline[b] < deadline[b - 1]; --b) {
        std::swap(deadline[b], deadline[b - 1]);
        std::swap(sequence[b], sequence[b - 1]);
      }
  }
  return sequence;
}

}  // namespace kupstream::detail
