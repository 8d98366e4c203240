// Balancer::build_grouped(): two-level weighted round robin over groups of endpoints, each
// group with its own Picker (the Upstream's default Picker, one group per service).
#include <doctest/doctest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <thread>

#include "support/weighted_endpoints.h"

using namespace kupstream;
using kupstream::test::count_picks;
using kupstream::test::weighted;

namespace {

Balancer wrr(std::uint64_t seed) { return kupstream::test::seeded_balancer(seed); }

// Groups of endpoints with these weights, each built by `b`; endpoint addresses differ across
// groups (group g's endpoint i is loopback endpoint 1000 * g + i).
std::vector<PickerPtr> groups_of(const Balancer& b, const std::vector<std::vector<std::uint32_t>>& weights) {
  std::vector<PickerPtr> out;
  for (std::size_t g = 0; g < weights.size(); ++g) {
    std::vector<WeightedEndpoint> list;
    for (std::size_t i = 0; i < weights[g].size(); ++i)
      list.push_back(WeightedEndpoint::make(test::loopback_endpoint(1000 * g + i), weights[g][i], static_cast<std::uint32_t>(g)));
    out.push_back(b.build(std::move(list)));
  }
  return out;
}

std::vector<std::uint32_t> flatten(const std::vector<std::vector<std::uint32_t>>& weights) {
  std::vector<std::uint32_t> out;
  for (const auto& g : weights) out.insert(out.end(), g.begin(), g.end());
  return out;
}

// Each endpoint's picks over `cycles` full cycles must be exactly cycles * weight / gcd.
void check_exact(const Picker& picker, const std::vector<std::uint32_t>& w, std::uint64_t cycles) {
  std::uint64_t g = 0, cycle = 0;
  for (auto x : w) g = std::gcd<std::uint64_t>(g, x);
  for (auto x : w) cycle += x / g;
  const auto counts = count_picks(picker, cycles * cycle);
  REQUIRE(counts.size() == w.size());
  for (std::size_t i = 0; i < w.size(); ++i) {
    CAPTURE(i);
    CHECK(counts[i] == cycles * w[i] / g);
  }
}

}  // namespace

TEST_SUITE("GroupedWrrPicker") {
  TEST_CASE("each endpoint gets exactly its weight's share over a cycle, across groups of different sizes and weights") {
    const std::vector<std::vector<std::uint32_t>> w = {{1, 1}, {2, 3, 5}, {4}, {0, 7}};
    const Balancer b = wrr(3);
    auto picker = b.build_grouped(groups_of(b, w));
    CHECK(picker->size() == 8);
    CHECK(picker->pickable() == 7);
    CHECK(picker->total_weight() == 23);
    check_exact(*picker, flatten(w), 3);
  }

  TEST_CASE("shares stay exact with weights sharing no factor, as slow start makes them (stride mode, no table)") {
    // 1000 and 437 (a ramping Pod) next to groups of 1000s: the cycle is 4437 x 5 + ..., far
    // beyond the table size, so the group order comes from the stride.
    std::vector<std::vector<std::uint32_t>> w = {{1000, 437}, std::vector<std::uint32_t>(12, 1000), {999, 1000, 1000}};
    const Balancer b = wrr(9);
    auto picker = b.build_grouped(groups_of(b, w));
    check_exact(*picker, flatten(w), 1);
    // Random groups, both modes.
    std::mt19937 rng(7);
    for (int round = 0; round < 20; ++round) {
      std::vector<std::vector<std::uint32_t>> r(2 + rng() % 5);
      for (auto& g : r) {
        g.resize(1 + rng() % 6);
        for (auto& x : g) x = (round % 2 ? 1000 : 1) * (1 + rng() % 9) + (round % 4 == 1 ? rng() % 3 : 0);
      }
      CAPTURE(round);
      auto p = b.build_grouped(groups_of(b, r));
      check_exact(*p, flatten(r), 2);
    }
  }

  TEST_CASE("index is the position in endpoints(), at() is the picked object, and each group's endpoints come in order") {
    const std::vector<std::vector<std::uint32_t>> w = {{1, 2}, {}, {3, 1, 1}};
    const Balancer b = wrr(1);
    auto groups = groups_of(b, w);
    groups.insert(groups.begin() + 1, nullptr);  // a null group counts as an empty one
    auto picker = b.build_grouped(groups);
    REQUIRE(picker->size() == 5);
    const auto& all = picker->endpoints();
    REQUIRE(all.size() == 5);
    CHECK(all[0].endpoint == groups[0]->endpoints()[0].endpoint);
    CHECK(all[2].endpoint == groups[3]->endpoints()[0].endpoint);
    CHECK(all[4].group == 2);
    for (int i = 0; i < 200; ++i) {
      const auto r = picker->pick();
      REQUIRE(r);
      REQUIRE(r.index < all.size());
      CHECK(picker->at(r.index) == r);
      CHECK(all[r.index].endpoint.get() == r.endpoint);
      CHECK(all[r.index].weight == r.weight);
      CHECK(all[r.index].group == r.group);
    }
  }

  TEST_CASE("a single group with endpoints is returned as it is; none gives an empty Picker with a reason") {
    const Balancer b = wrr(1);
    auto groups = groups_of(b, {{1, 2}});
    auto one = b.build_grouped({nullptr, groups[0], nullptr});
    CHECK(one.get() == groups[0].get());
    auto none = b.build_grouped({nullptr, nullptr});
    CHECK(none->empty());
    CHECK(none->no_endpoint_reason() == "no endpoints");
    CHECK_FALSE(none->pick());
    auto zero = b.build_grouped(groups_of(b, {{0}, {0, 0}}));
    CHECK(zero->empty());
    CHECK(zero->size() == 3);
    CHECK(zero->no_endpoint_reason() == "all 3 endpoints have weight 0");
    CHECK_FALSE(zero->pick());
  }

  TEST_CASE("small cycles are smooth at both levels: equal groups alternate, a group's endpoints take turns") {
    const Balancer b = wrr(5);
    auto picker = b.build_grouped(groups_of(b, {{1, 1, 1}, {1, 1, 1}}));
    std::vector<std::uint32_t> seq;
    for (int i = 0; i < 12; ++i) seq.push_back(picker->pick().index);
    for (std::size_t i = 1; i < seq.size(); ++i) CHECK((seq[i] < 3) != (seq[i - 1] < 3));  // ABAB...
    // Within group 0: its three endpoints in turn.
    std::vector<std::uint32_t> a;
    for (auto x : seq)
      if (x < 3) a.push_back(x);
    for (std::size_t i = 3; i < a.size(); ++i) CHECK(a[i] == a[i - 3]);
    CHECK(a[0] != a[1]);
    CHECK(a[1] != a[2]);
    CHECK(a[0] != a[2]);
  }

  TEST_CASE("large cycles spread the groups: no long run of one group among equals") {
    // Two groups of 10,000 and 10,001 endpoints of weight 1: a cycle of 20,001, stride mode.
    const Balancer b = wrr(11);
    auto picker = b.build_grouped(groups_of(b, {std::vector<std::uint32_t>(10000, 1), std::vector<std::uint32_t>(10001, 1)}));
    std::size_t run = 0, longest = 0;
    bool last = false;
    std::vector<std::uint64_t> counts(picker->size(), 0);
    for (int i = 0; i < 20001; ++i) {
      const auto r = picker->pick();
      ++counts[r.index];
      const bool first_group = r.index < 10000;
      run = (i > 0 && first_group == last) ? run + 1 : 1;
      last = first_group;
      longest = std::max(longest, run);
    }
    CHECK(longest <= 3);
    CHECK(std::all_of(counts.begin(), counts.end(), [](std::uint64_t c) { return c == 1; }));
  }

  TEST_CASE("threads picking at once each see exact shares over their own cycles") {
    const std::vector<std::vector<std::uint32_t>> w = {{1, 2}, {3}, {1, 1, 1, 1}};
    const Balancer b = wrr(2);
    auto picker = b.build_grouped(groups_of(b, w));
    std::vector<std::vector<std::uint64_t>> counts(4);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&, t] { counts[static_cast<std::size_t>(t)] = count_picks(*picker, 10 * 1000); });
    for (auto& t : threads) t.join();
    const auto flat = flatten(w);
    for (const auto& c : counts)
      for (std::size_t i = 0; i < flat.size(); ++i) CHECK(c[i] == 1000 * flat[i]);
  }
}
