#include <doctest/doctest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <set>
#include <thread>

#include "support/weighted_endpoints.h"

using namespace kupstream;
using kupstream::test::count_picks;
using kupstream::test::weighted;

namespace {

Balancer wrr(std::uint64_t seed) { return kupstream::test::seeded_balancer(seed); }

std::uint64_t reduced_total(const std::vector<std::uint32_t>& w) {
  std::uint64_t g = 0, sum = 0;
  for (auto x : w) g = std::gcd<std::uint64_t>(g, x);
  for (auto x : w) sum += g ? x / g : 0;
  return sum;
}

// The largest |count_i(t) - t * w_i / W| over every prefix t of `picks` picks.
double max_prefix_deviation(const Picker& picker, const std::vector<std::uint32_t>& w, std::uint64_t picks) {
  const double total = std::accumulate(w.begin(), w.end(), 0.0);
  std::vector<double> count(w.size(), 0);
  double worst = 0;
  for (std::uint64_t t = 1; t <= picks; ++t) {
    const auto i = picker.pick().index;
    count[i] += 1;
    // Only the picked endpoint moved up; every other endpoint's deviation is checked when it is
    // most behind, i.e. at every step: scan all (small n in these tests).
    for (std::size_t j = 0; j < w.size(); ++j)
      worst = std::max(worst, std::abs(count[j] - static_cast<double>(t) * w[j] / total));
  }
  return worst;
}

}  // namespace

TEST_SUITE("WrrPicker") {
  TEST_CASE("a full cycle gives exact proportions") {
    std::mt19937 rng(42);
    for (int round = 0; round < 50; ++round) {
      std::vector<std::uint32_t> w(1 + rng() % 40);
      for (auto& x : w) x = rng() % 12;  // zeros included
      w[0] = std::max<std::uint32_t>(w[0], 1);
      auto picker = wrr(rng()).build(weighted(w));
      const std::uint64_t cycle = reduced_total(w);
      const auto counts = count_picks(*picker, 3 * cycle);
      std::uint64_t g = 0;
      for (auto x : w) g = std::gcd<std::uint64_t>(g, x);
      for (std::size_t i = 0; i < w.size(); ++i) {
        CAPTURE(round);
        CAPTURE(i);
        CHECK(counts[i] == 3 * w[i] / g);
      }
    }
  }

  TEST_CASE("the classic 5,1,1 interleaves: a b a a a c a, never five a in a row") {
    auto picker = wrr(0).build(weighted({5, 1, 1}));
    std::string seq;
    for (int i = 0; i < 14; ++i) seq += static_cast<char>('a' + picker->pick().index);
    // Cursors start at a per-instance offset, so the cycle appears rotated.
    const std::string cycle = "abaaaca";
    const std::string twice = cycle + cycle;
    CHECK(twice.find(seq.substr(0, 7)) != std::string::npos);
    CHECK(seq.substr(0, 7) == seq.substr(7, 7));
    // The longest run of 'a' anywhere in the repeating sequence is 3 (nginx's a a b a c a a has 4
    // across the cycle boundary; unsmoothed WRR has 5).
    CHECK(twice.find("aaaa") == std::string::npos);
  }

  TEST_CASE("smooth: from any starting point, every prefix stays within two picks of each endpoint's weighted share") {
    std::mt19937 rng(7);
    double worst = 0;
    for (int round = 0; round < 60; ++round) {
      std::vector<std::uint32_t> w(2 + rng() % 12);
      for (auto& x : w) x = 1 + rng() % (round % 2 ? 100 : 6);
      auto picker = wrr(rng()).build(weighted(w));  // random start: any rotation must be smooth
      const double d = max_prefix_deviation(*picker, w, 2 * reduced_total(w));
      CAPTURE(round);
      CHECK(d < 2.0);
      worst = std::max(worst, d);
    }
    MESSAGE("worst prefix deviation over 60 random weight sets and random starts: " << worst);
  }

  TEST_CASE("a heavy endpoint among many light ones is spread, not bunched") {
    std::vector<std::uint32_t> w(200, 1);
    w[0] = 200;  // half of all traffic
    auto picker = wrr(3).build(weighted(w));
    int run = 0, longest = 0, light_run = 0, longest_light = 0;
    for (int i = 0; i < 800; ++i) {
      const bool heavy = picker->pick().index == 0;
      run = heavy ? run + 1 : 0;
      light_run = heavy ? 0 : light_run + 1;
      longest = std::max(longest, run);
      longest_light = std::max(longest_light, light_run);
    }
    CHECK(longest <= 2);
    CHECK(longest_light <= 2);
  }

  TEST_CASE("weight changes and removals rebuild with the new proportions") {
    Balancer b = wrr(11);
    auto before = b.build(weighted({3, 1, 2}));
    CHECK(count_picks(*before, 6) == std::vector<std::uint64_t>{3, 1, 2});
    auto reweighted = b.build(weighted({1, 1, 4}));
    CHECK(count_picks(*reweighted, 6) == std::vector<std::uint64_t>{1, 1, 4});
    auto without_middle = b.build(weighted({3, 0, 2}));
    CHECK(count_picks(*without_middle, 10) == std::vector<std::uint64_t>{6, 0, 4});
    // The old picker is untouched by later builds (immutable snapshots).
    CHECK(count_picks(*before, 6) == std::vector<std::uint64_t>{3, 1, 2});
  }

  TEST_CASE("an empty or all-zero list gives a clear no-endpoint result") {
    Balancer b = wrr(1);
    auto empty = b.build({});
    CHECK_FALSE(empty->pick());
    CHECK(empty->empty());
    CHECK(empty->no_endpoint_reason() == "no endpoints");
    auto zeros = b.build(weighted({0, 0, 0}));
    CHECK_FALSE(zeros->pick());
    CHECK(zeros->no_endpoint_reason() == "all 3 endpoints have weight 0");
    CHECK(zeros->no_endpoint_error().code == Errc::no_endpoint);
    CHECK(zeros->endpoints().size() == 3);
  }

  TEST_CASE("different seeds start the cycle at different points, so a fleet does not pick in lockstep") {
    std::set<std::uint32_t> first_picks;
    for (std::uint64_t seed = 1; seed <= 16; ++seed)
      first_picks.insert(wrr(seed).build(weighted(std::vector<std::uint32_t>(100, 1)))->pick().index);
    CHECK(first_picks.size() >= 12);
    // Unseeded balancers draw a fresh seed each.
    std::set<std::uint32_t> unseeded;
    for (int i = 0; i < 16; ++i) unseeded.insert(Balancer{}.build(weighted(std::vector<std::uint32_t>(100, 1)))->pick().index);
    CHECK(unseeded.size() >= 8);
  }

  TEST_CASE("two threads picking concurrently together keep exact proportions over whole cycles") {
    const std::vector<std::uint32_t> w{5, 3, 2, 0, 1, 9};
    auto picker = wrr(5).build(weighted(w));
    const std::uint64_t per_thread = 1000 * reduced_total(w);
    std::vector<std::uint64_t> a, c;
    std::thread t1([&] { a = count_picks(*picker, per_thread); });
    std::thread t2([&] { c = count_picks(*picker, per_thread); });
    t1.join();
    t2.join();
    for (std::size_t i = 0; i < w.size(); ++i) CHECK(a[i] + c[i] == 2000 * w[i]);
  }

  TEST_CASE("a cycle longer than max_wrr_cycle is scaled down and stays close to the weights") {
    BalancerOptions o;
    o.seed = 9;
    o.max_wrr_cycle = 1000;
    std::vector<std::uint32_t> w{7919, 104729, 15485863 % 100000, 1};  // co-prime, total far above 1000
    auto picker = Balancer(o).build(weighted(w));
    const auto counts = count_picks(*picker, 200000);
    const double total = std::accumulate(w.begin(), w.end(), 0.0);
    for (std::size_t i = 0; i < w.size(); ++i) {
      const double share = counts[i] / 200000.0;
      CAPTURE(i);
      CHECK(share == doctest::Approx(w[i] / total).epsilon(0.01).scale(1));
      CHECK(counts[i] > 0);  // every live endpoint keeps at least one slot
    }
  }
}
