#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>
#include <numeric>
#include <random>

#include "support/weighted_endpoints.h"

using namespace kupstream;
using kupstream::test::count_picks;
using kupstream::test::weighted;

#include "support/allocation_counter.h"

using kupstream::test::g_allocations;

namespace {

Balancer balancer(BalancerPolicy policy, std::uint64_t seed = 1) { return kupstream::test::seeded_balancer(seed, policy); }

std::vector<std::uint32_t> key_owners(const Picker& picker, int keys) {
  std::vector<std::uint32_t> owners;
  for (int k = 0; k < keys; ++k) {
    const Endpoint& e = *picker.pick(hash_key("client-" + std::to_string(k))).endpoint;
    owners.push_back(static_cast<std::uint32_t>(std::stoul(e.pod_name.str().substr(4))));
  }
  return owners;
}

}  // namespace

TEST_SUITE("Picker") {
  TEST_CASE("pick never allocates, for every policy") {
    for (auto policy : {BalancerPolicy::weighted_round_robin, BalancerPolicy::least_request,
                        BalancerPolicy::consistent_hash, BalancerPolicy::random}) {
      const std::string name = to_string(policy);
      CAPTURE(name);  // before counting: doctest's context stack allocates on first use
      auto picker = balancer(policy).build(weighted({3, 1, 4, 1, 5, 9, 2, 6}));
      picker->pick(0);  // first use on this thread sets up its thread-local cursor and random state
      const auto before = g_allocations.load();
      std::uint64_t sum = 0;
      for (std::uint64_t i = 0; i < 10000; ++i) sum += picker->pick(i * 0x9e3779b97f4a7c15ULL).index;
      CHECK(g_allocations.load() == before);
      CHECK(sum > 0);
    }
  }

  TEST_CASE("a grouped Picker's pick, at() and size() never allocate, in table and in stride mode") {
    const Balancer b = balancer(BalancerPolicy::weighted_round_robin);
    // Totals 3 + 5 (a table of 8 positions) and 20,000 + 1 (a stride over 20,001).
    for (const auto& sizes : {std::vector<std::uint32_t>{3, 5}, std::vector<std::uint32_t>{20000, 1}}) {
      std::vector<PickerPtr> groups;
      for (auto n : sizes) groups.push_back(b.build(weighted(std::vector<std::uint32_t>(n, 1))));
      auto picker = b.build_grouped(groups);
      picker->pick(0);
      const auto before = g_allocations.load();
      std::uint64_t sum = 0;
      for (std::uint64_t i = 0; i < 10000; ++i) {
        const auto r = picker->pick(i);
        sum += r.index + (picker->at(r.index) == r ? 0 : 1'000'000'000) + picker->size();
      }
      CHECK(g_allocations.load() == before);
      CHECK(sum > 0);
      CHECK(sum < 1'000'000'000);
    }
  }

  TEST_CASE("every policy gives the same clear result for an empty list") {
    for (auto policy : {BalancerPolicy::weighted_round_robin, BalancerPolicy::least_request,
                        BalancerPolicy::consistent_hash, BalancerPolicy::random}) {
      auto picker = balancer(policy).build(weighted({0, 0}));
      CHECK_FALSE(picker->pick(42));
      CHECK(picker->policy() == policy);
      CHECK(picker->no_endpoint_reason() == "all 2 endpoints have weight 0");
    }
  }

  TEST_CASE("a Picker shares the caller's Endpoints instead of copying them, and keeps them alive") {
    for (auto policy : {BalancerPolicy::weighted_round_robin, BalancerPolicy::least_request,
                        BalancerPolicy::consistent_hash, BalancerPolicy::random}) {
      const std::string name = to_string(policy);
      CAPTURE(name);
      auto list = weighted({2, 3});
      const Endpoint* first = list[0].endpoint.get();
      std::weak_ptr<const Endpoint> watch = list[0].endpoint;
      auto picker = balancer(policy).build(std::move(list));
      CHECK(picker->endpoints()[0].endpoint.get() == first);
      CHECK(watch.use_count() == 1);  // only the Picker holds it now
      const auto r = picker->pick(7);
      REQUIRE(r);
      CHECK(r.endpoint->address.rfind("127.0.1.", 0) == 0);
      picker.reset();
      CHECK(watch.expired());
    }
  }

  TEST_CASE("a null endpoint stays in the list and is never picked") {
    for (auto policy : {BalancerPolicy::weighted_round_robin, BalancerPolicy::least_request,
                        BalancerPolicy::consistent_hash, BalancerPolicy::random}) {
      const std::string name = to_string(policy);
      CAPTURE(name);
      auto list = weighted({5, 1});
      list[0].endpoint = nullptr;
      auto picker = balancer(policy).build(std::move(list));
      REQUIRE(picker->endpoints().size() == 2);
      CHECK(picker->endpoints()[0].weight == 0);
      CHECK(picker->pickable() == 1);
      for (std::uint64_t i = 0; i < 200; ++i) CHECK(picker->pick(i * 0x9e3779b97f4a7c15ULL).index == 1);

      std::vector<WeightedEndpoint> only_null{WeightedEndpoint{nullptr, 3, 0, nullptr}};
      auto none = balancer(policy).build(std::move(only_null));
      CHECK_FALSE(none->pick(1));
      CHECK(none->no_endpoint_reason() == "all 1 endpoint have weight 0");
    }
  }

  TEST_CASE("an entry is two shared pointers, the weight and the group: 40 bytes on 64-bit hosts") {
    // A Picker holds one per endpoint (60,000 in a large Upstream): `group` shares the weight's
    // 8-byte slot.
    if (sizeof(void*) == 8) CHECK(sizeof(WeightedEndpoint) == 40);
    auto e = WeightedEndpoint::make(Endpoint{"127.0.1.1", 80, {}, {}, {}, {}, {}}, 7, 3);
    CHECK(e.endpoint->address == "127.0.1.1");
    CHECK(e.weight == 7);
    CHECK(e.group == 3);
    CHECK(e.load == nullptr);
  }
}

TEST_SUITE("RandomPicker") {
  TEST_CASE("weighted random follows the weights and never picks weight 0") {
    const std::vector<std::uint32_t> w{1, 0, 2, 7};
    auto picker = balancer(BalancerPolicy::random).build(weighted(w));
    const std::uint64_t n = 200000;
    const auto counts = count_picks(*picker, n);
    CHECK(counts[1] == 0);
    for (std::size_t i : {0u, 2u, 3u}) CHECK(counts[i] / double(n) == doctest::Approx(w[i] / 10.0).epsilon(0.02));
  }
}

TEST_SUITE("LeastRequestPicker") {
  TEST_CASE("of two candidates the less loaded one wins") {
    auto list = weighted({1, 1});
    auto busy = std::make_shared<EndpointLoad>();
    busy->in_flight = 10;
    list[0].load = busy;
    auto picker = balancer(BalancerPolicy::least_request).build(std::move(list));
    const auto counts = count_picks(*picker, 10000);
    // The busy endpoint only wins when every draw lands on it.
    CHECK(counts[0] < 1000);
    CHECK(counts[1] > 9000);
  }

  TEST_CASE("load reported through start and finish is seen by later picks and survives rebuilds") {
    Balancer b = balancer(BalancerPolicy::least_request);
    auto picker = b.build(weighted({1, 1, 1}));
    // Keep every pick in flight: the picker must keep spreading them.
    for (int i = 0; i < 300; ++i) picker->pick().load->start();
    std::vector<std::uint32_t> loads;
    for (const auto& e : picker->endpoints()) loads.push_back(e.load->in_flight.load());
    CHECK(*std::max_element(loads.begin(), loads.end()) - *std::min_element(loads.begin(), loads.end()) <= 10);
    // A rebuild that carries the load objects carries the load.
    auto rebuilt = b.build(std::vector<WeightedEndpoint>(picker->endpoints()));
    CHECK(rebuilt->endpoints()[0].load->in_flight.load() == loads[0]);
    for (const auto& e : picker->endpoints())
      while (e.load->in_flight.load() > 0) e.load->finish();
  }

  TEST_CASE("with equal load the weights decide") {
    auto picker = balancer(BalancerPolicy::least_request).build(weighted({1, 3}));
    const auto counts = count_picks(*picker, 40000);
    CHECK(counts[1] > 2 * counts[0]);
  }
}

TEST_SUITE("MaglevPicker") {
  TEST_CASE("the same key maps to the same endpoint on every gateway, whatever the seed or order") {
    auto a = balancer(BalancerPolicy::consistent_hash, 1).build(weighted(std::vector<std::uint32_t>(50, 1)));
    auto list = weighted(std::vector<std::uint32_t>(50, 1));
    std::shuffle(list.begin(), list.end(), std::mt19937(3));
    auto b = balancer(BalancerPolicy::consistent_hash, 999).build(std::move(list));
    CHECK(key_owners(*a, 5000) == key_owners(*b, 5000));
  }

  TEST_CASE("removing one of N endpoints moves about 1/N of the keys") {
    const int n = 100, keys = 100000;
    auto list = weighted(std::vector<std::uint32_t>(n, 1));
    auto before = key_owners(*balancer(BalancerPolicy::consistent_hash).build(list), keys);
    list.erase(list.begin() + 37);
    auto after = key_owners(*balancer(BalancerPolicy::consistent_hash).build(list), keys);
    int moved = 0, moved_needlessly = 0;
    for (int k = 0; k < keys; ++k) {
      if (before[k] == after[k]) continue;
      ++moved;
      if (before[k] != 37) ++moved_needlessly;
    }
    const double fraction = double(moved) / keys;
    MESSAGE("moved " << fraction * 100 << "% of keys, " << moved_needlessly << " of them not from the removed endpoint");
    CHECK(fraction < 1.3 / n);
    CHECK(fraction > 0.9 / n);
    CHECK(moved_needlessly < moved / 4);
  }

  TEST_CASE("keys spread in proportion to weight") {
    auto picker = balancer(BalancerPolicy::consistent_hash).build(weighted({1, 2, 1, 4}));
    std::vector<int> counts(4);
    for (auto owner : key_owners(*picker, 80000)) ++counts[owner];
    CHECK(counts[0] / 80000.0 == doctest::Approx(1 / 8.0).epsilon(0.1));
    CHECK(counts[1] / 80000.0 == doctest::Approx(2 / 8.0).epsilon(0.1));
    CHECK(counts[3] / 80000.0 == doctest::Approx(4 / 8.0).epsilon(0.1));
  }

  TEST_CASE("hash_key is stable across runs") {
    CHECK(hash_key("") == hash_key(""));
    CHECK(hash_key("client-1") != hash_key("client-2"));
    // A fixed value guards against accidental changes: every gateway must agree.
    CHECK(hash_key("kupstream") == hash_key(std::string("kup") + "stream"));
  }
}
