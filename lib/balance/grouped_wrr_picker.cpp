#include "balance/grouped_wrr_picker.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <numeric>

#include "balance/smooth_wrr_sequence.h"

namespace kupstream::detail {
namespace {

// The cycle position is computed in 64 bits from a 32-bit cursor times the stride, so the cycle
// stays below 2^31 positions: beyond, the weights are scaled down (each keeping at least 1) and
// shares hold to about one part in 2^30.
constexpr std::uint64_t kMaxCycle = std::uint64_t{1} << 31;
constexpr unsigned kBucketBits = 10;

}  // namespace

GroupedWrrPicker::GroupedWrrPicker(std::vector<PickerPtr> groups, std::uint64_t seed)
    : Picker(BalancerPolicy::weighted_round_robin, 0, 0, 0), groups_(std::move(groups)) {
  // The gcd of every endpoint weight: a WrrPicker group brings its own, another its total.
  std::uint64_t gcd = 0;
  info_.reserve(groups_.size());
  for (const auto& g : groups_) {
    Group info;
    info.offset = static_cast<std::uint32_t>(size_);
    if (g) {
      info.picker = g.get();
      const WrrCycle* cycle = nullptr;
      if (const auto* wrr = dynamic_cast<const WrrPicker*>(g.get()); wrr && g->size() > 0) {
        cycle = &wrr->cycle();
        info.endpoints = wrr->data();
      } else if (const auto* compact = dynamic_cast<const CompactWrrPicker*>(g.get()); compact && g->size() > 0) {
        cycle = &compact->cycle();
        info.entries = compact->entries();
        info.weights = compact->weights();
        info.weight = compact->weight();
        info.tag = compact->group();
      }
      if (cycle) {
        info.walk = true;
        info.cycle = cycle->data();
        info.identity = cycle->identity();
        info.mod = cycle->mod();
      }
      size_ += g->size();
      pickable_ += g->pickable();
      total_weight_ += g->total_weight();
      if (g->total_weight() > 0) gcd = std::gcd(gcd, cycle ? std::uint64_t{cycle->weight_gcd()} : g->total_weight());
    }
    info_.push_back(info);
  }
  set_reason();

  std::vector<std::uint64_t> weights;
  weights.reserve(groups_.size());
  std::uint64_t total = 0;
  for (const auto& g : groups_) {
    weights.push_back(g && gcd > 0 ? g->total_weight() / gcd : 0);
    total += weights.back();
  }
  if (total >= kMaxCycle) {
    const long double scale = static_cast<long double>(kMaxCycle / 2) / static_cast<long double>(total);
    for (auto& w : weights)
      if (w > 0) w = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(static_cast<long double>(w) * scale));
  }
  std::uint64_t end = 0;
  for (std::size_t g = 0; g < info_.size(); ++g) {
    info_[g].begin = end;
    end += weights[g];
    info_[g].end = end;
  }
  total_ = std::max<std::uint64_t>(1, end);

  const std::uint64_t offset = splitmix64(seed) % total_;
  for (std::size_t i = 0; i < kCursors; ++i)
    cursors_[i].start = static_cast<std::uint32_t>((offset + total_ * i / kCursors) % total_);
  if (end == 0) return;  // nothing to pick: pick() returns early

  if (total_ <= kMaxTable && info_.size() <= 0xffff) {
    // The smooth sequence of the group weights, repeated when they still share a factor (it
    // divides it out), so that group g appears exactly weights[g] times, visits 0, 1, ...
    std::vector<std::uint32_t> w(weights.begin(), weights.end());
    const auto sequence = smooth_wrr_sequence(w, static_cast<std::uint32_t>(kMaxTable));
    std::vector<std::uint32_t> visits(info_.size(), 0);
    table_.reserve(total_);
    while (table_.size() < total_)
      for (const auto g : sequence) table_.push_back((g << 16) | visits[g]++);
    table_mod_ = FastMod(static_cast<std::uint32_t>(total_));
    return;
  }

  // A stride near T / phi, coprime to T: n -> n * stride mod T is then a bijection of [0, T) whose
  // consecutive values are spread like the golden-ratio sequence.
  stride_ = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::llround(static_cast<double>(total_) * 0.6180339887498949)));
  while (std::gcd(stride_, total_) != 1) ++stride_;
  stride_ %= total_;
  reciprocal_ = ~std::uint64_t{0} / total_;

  // Buckets of 2^shift positions, each with the group owning its first position: a pick then
  // steps over at most the few groups that start inside its bucket.
  const unsigned bits = static_cast<unsigned>(std::bit_width(total_));
  shift_ = bits > kBucketBits ? bits - kBucketBits : 0;
  bucket_.resize(((total_ - 1) >> shift_) + 1);
  std::uint32_t g = 0;
  for (std::size_t b = 0; b < bucket_.size(); ++b) {
    const std::uint64_t first = std::uint64_t{b} << shift_;
    while (first >= info_[g].end) ++g;
    bucket_[b] = g;
  }
}

PickResult GroupedWrrPicker::pick(std::uint64_t hash) const noexcept {
  if (pickable_ == 0) return {};
  const Cursor& c = cursors_[thread_slot() % kCursors];
  // As in WrrPicker, the 32-bit cursor wraps after 2^32 picks and the walk then jumps once.
  const std::uint32_t n = c.next.fetch_add(1, std::memory_order_relaxed) + c.start;
  if (!table_.empty()) {
    const std::uint32_t entry = table_[table_mod_(n)];
    const Group& group = info_[entry >> 16];
    return pick_in(group, entry & 0xffff, hash);
  }
  // r = n * stride mod T by a Barrett reduction (x < 2^63; the estimate is short by at most 2).
  const std::uint64_t x = std::uint64_t{n} * stride_;
  std::uint64_t r = x - static_cast<std::uint64_t>((u128{x} * reciprocal_) >> 64) * total_;
  while (r >= total_) r -= total_;
  const Group* group = &info_[bucket_[r >> shift_]];
  while (r >= group->end) ++group;  // empty groups own no position: stepped over
  return pick_in(*group, static_cast<std::uint32_t>(r - group->begin), hash);
}

// The group's pick at its position j (a WrrPicker's cycle entry j), else its own pick().
inline PickResult GroupedWrrPicker::pick_in(const Group& group, std::uint32_t j, std::uint64_t hash) const noexcept {
  if (group.walk) {
    // Equal weights (the usual service): the cycle is the identity, so there is none to read.
    const std::uint32_t m = group.mod(j);
    const std::uint32_t i = group.identity ? m : group.cycle[m];
    if (group.entries) {
      const CompactEntry& e = group.entries[i];
      return {e.endpoint, e.load, group.weights ? group.weights[i] : group.weight, group.tag, group.offset + i};
    }
    const WeightedEndpoint& e = group.endpoints[i];
    return {e.endpoint.get(), e.load.get(), e.weight, e.group, group.offset + i};
  }
  PickResult result = group.picker->pick(hash);
  result.index += group.offset;
  return result;
}

std::size_t GroupedWrrPicker::group_of_index(std::size_t index) const noexcept {
  const auto it = std::upper_bound(info_.begin() + 1, info_.end(), index,
                                   [](std::size_t i, const Group& g) { return i < g.offset; });
  return static_cast<std::size_t>(it - info_.begin() - 1);
}

PickResult GroupedWrrPicker::at(std::size_t index) const noexcept {
  const std::size_t g = group_of_index(index);
  PickResult result = info_[g].picker->at(index - info_[g].offset);
  result.index = static_cast<std::uint32_t>(index);
  return result;
}

void GroupedWrrPicker::assemble(std::vector<WeightedEndpoint>& out) const {
  out.reserve(size_);
  for (const auto& g : groups_) {
    if (!g) continue;
    // A compact group's list is made here, not kept in the group as well.
    if (const auto* compact = dynamic_cast<const CompactWrrPicker*>(g.get())) compact->append_endpoints(out);
    else out.insert(out.end(), g->endpoints().begin(), g->endpoints().end());
  }
}

}  // namespace kupstream::detail
