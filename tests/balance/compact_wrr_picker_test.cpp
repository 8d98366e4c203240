// detail::CompactWrrPicker, the Upstream's per-service Picker: 16 bytes per endpoint, the same
// smooth cycle as a WrrPicker for the same weights, views that carry the entry's endpoint, load,
// weight and group, an owner that keeps what the entries point at alive, and picks from several
// threads at once (the workers'; run under ThreadSanitizer too).
#include "balance/compact_wrr_picker.h"

#include <doctest/doctest.h>

#include <memory>
#include <numeric>
#include <thread>
#include <vector>

#include "support/weighted_endpoints.h"

using namespace kupstream;

namespace {

constexpr std::uint64_t kSeed = 7;

// What an owner keeps: the endpoints and their load counters (as the Upstream's snapshot and Pods).
struct Backends {
  std::vector<Endpoint> endpoints;
  std::vector<EndpointLoad> loads;
  explicit Backends(std::size_t n) : loads(n) {
    for (std::size_t i = 0; i < n; ++i) endpoints.push_back(test::loopback_endpoint(i));
  }
};

std::shared_ptr<detail::CompactWrrPicker> compact(const std::shared_ptr<Backends>& b, std::vector<std::uint32_t> weights,
                                                  std::uint32_t weight, std::uint32_t group, std::uint64_t seed = kSeed) {
  std::vector<detail::CompactEntry> entries;
  for (std::size_t i = 0; i < b->endpoints.size(); ++i) entries.push_back({&b->endpoints[i], &b->loads[i]});
  return std::make_shared<detail::CompactWrrPicker>(std::move(entries), std::move(weights), weight, group, b, seed, 1u << 22);
}

}  // namespace

TEST_SUITE("CompactWrrPicker") {
  TEST_CASE("an entry is 16 bytes") {
    if (sizeof(void*) == 8) CHECK(sizeof(detail::CompactEntry) == 16);
  }

  TEST_CASE("it picks the same sequence as a WrrPicker of the same weights and seed") {
    const Balancer b = test::seeded_balancer(kSeed);
    for (const auto& w : {std::vector<std::uint32_t>{3, 1, 2, 5}, std::vector<std::uint32_t>(6, 4)}) {
      CAPTURE(w.size());
      auto backends = std::make_shared<Backends>(w.size());
      const bool uniform = std::all_of(w.begin(), w.end(), [&](std::uint32_t x) { return x == w[0]; });
      // Equal weights: no per-entry weights at all; else one per entry.
      auto mine = compact(backends, uniform ? std::vector<std::uint32_t>{} : w, w[0], 0);
      auto reference = b.build(test::weighted(w));
      CHECK(mine->size() == w.size());
      CHECK(mine->pickable() == w.size());
      CHECK(mine->total_weight() == reference->total_weight());
      CHECK((mine->weights() == nullptr) == uniform);
      for (int i = 0; i < 500; ++i) {
        const auto r = mine->pick(0);
        const auto e = reference->pick();
        REQUIRE(r);
        REQUIRE(r.index == e.index);
        CHECK(r.endpoint == &backends->endpoints[r.index]);
        CHECK(r.weight == w[r.index]);
      }
    }
  }

  TEST_CASE("a pick carries the entry's endpoint, load, weight and group; at() and endpoints() agree") {
    auto backends = std::make_shared<Backends>(3);
    auto picker = compact(backends, {2, 1, 1}, 2, 9);
    for (int i = 0; i < 40; ++i) {
      const auto r = picker->pick(0);
      REQUIRE(r);
      CHECK(picker->at(r.index) == r);
      CHECK(r.load == &backends->loads[r.index]);
      CHECK(r.group == 9);
      CHECK(r.weight == (r.index == 0 ? 2u : 1u));
    }
    const auto& all = picker->endpoints();
    REQUIRE(all.size() == 3);
    for (std::uint32_t i = 0; i < 3; ++i) {
      CHECK(all[i].endpoint.get() == &backends->endpoints[i]);
      CHECK(all[i].load.get() == &backends->loads[i]);
      CHECK(all[i].weight == picker->at(i).weight);
      CHECK(all[i].group == 9);
    }
  }

  TEST_CASE("the owner lives as long as the Picker or any endpoint of its assembled list") {
    auto backends = std::make_shared<Backends>(2);
    std::weak_ptr<Backends> watch = backends;
    auto picker = compact(backends, {}, 1, 0);
    backends.reset();
    CHECK_FALSE(watch.expired());
    std::shared_ptr<const Endpoint> kept = picker->endpoints()[1].endpoint;
    picker.reset();
    CHECK_FALSE(watch.expired());
    CHECK(kept->address == test::loopback_endpoint(1).address);
    kept.reset();
    CHECK(watch.expired());
  }

  TEST_CASE("four threads pick from one Picker at once: every pick is a whole entry, and the shares hold") {
    auto backends = std::make_shared<Backends>(5);
    const PickerPtr picker = compact(backends, {1, 2, 3, 2, 1}, 1, 4);
    std::vector<std::vector<std::uint64_t>> counts(4, std::vector<std::uint64_t>(5));
    std::vector<int> bad(4, 0);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&, t] {
        for (int i = 0; i < 9 * 2000; ++i) {
          const auto r = picker->pick();
          const bool whole = r && r.index < 5 && r.endpoint == &backends->endpoints[r.index] &&
                             r.load == &backends->loads[r.index] && r.group == 4;
          if (!whole) ++bad[t];
          else ++counts[t][r.index];
        }
      });
    for (auto& t : threads) t.join();
    const std::vector<std::uint32_t> w = {1, 2, 3, 2, 1};
    for (int t = 0; t < 4; ++t) {
      CHECK(bad[t] == 0);
      // Each thread walks the cycle (9 positions) with a cursor of its own: 2,000 whole cycles.
      for (std::size_t i = 0; i < 5; ++i) CHECK(counts[t][i] == 2000u * w[i]);
    }
  }

  TEST_CASE("in a grouped Picker next to WrrPicker groups: exact shares over a full cycle, picks equal at()") {
    const Balancer b = test::seeded_balancer(kSeed);
    auto backends = std::make_shared<Backends>(4);
    std::vector<PickerPtr> groups;
    groups.push_back(compact(backends, {}, 3, 0));            // 4 endpoints of weight 3
    groups.push_back(b.build(test::weighted({2, 1})));        // a WrrPicker group
    groups.push_back(compact(backends, {1, 2, 1, 2}, 1, 2));  // mixed weights (slow start)
    auto picker = b.build_grouped(groups);
    const std::vector<std::uint32_t> w = {3, 3, 3, 3, 2, 1, 1, 2, 1, 2};
    REQUIRE(picker->size() == w.size());
    const std::uint32_t g = std::accumulate(w.begin(), w.end(), 0u, [](std::uint32_t a, std::uint32_t x) { return std::gcd(a, x); });
    const std::uint64_t cycle = std::accumulate(w.begin(), w.end(), std::uint64_t{0}) / g;
    std::vector<std::uint64_t> counts(w.size());
    for (std::uint64_t i = 0; i < 3 * cycle; ++i) {
      const auto r = picker->pick(0);
      REQUIRE(r);
      REQUIRE(picker->at(r.index) == r);
      CHECK(r.group == (r.index < 4 ? 0u : r.index < 6 ? 0u : 2u));
      ++counts[r.index];
    }
    for (std::size_t i = 0; i < w.size(); ++i) {
      CAPTURE(i);
      CHECK(counts[i] == 3 * w[i] / g);
    }
    // The assembled list: each group's endpoints in order, compact ones aliasing their owner.
    const auto& all = picker->endpoints();
    REQUIRE(all.size() == w.size());
    CHECK(all[0].endpoint.get() == &backends->endpoints[0]);
    CHECK(all[6].endpoint.get() == &backends->endpoints[0]);
    CHECK(all[7].weight == 2);
    CHECK(all[9].group == 2);
  }
}
