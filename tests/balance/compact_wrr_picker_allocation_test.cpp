// detail::CompactWrrPicker's pick() and at() never allocate (not built under ThreadSanitizer,
// whose runtime owns the global operator new that the allocation counter replaces).
#include <doctest/doctest.h>

#include <vector>

#include "balance/compact_wrr_picker.h"
#include "support/allocation_counter.h"
#include "support/weighted_endpoints.h"

using namespace kupstream;
using kupstream::test::g_allocations;

TEST_SUITE("CompactWrrPicker") {
  TEST_CASE("a CompactWrrPicker's pick and at() never allocate, with one weight or one per entry") {
    std::vector<Endpoint> endpoints{test::loopback_endpoint(0), test::loopback_endpoint(1), test::loopback_endpoint(2)};
    std::vector<EndpointLoad> loads(3);
    std::vector<detail::CompactEntry> entries;
    for (std::size_t i = 0; i < 3; ++i) entries.push_back({&endpoints[i], &loads[i]});
    for (const auto& weights : {std::vector<std::uint32_t>{}, std::vector<std::uint32_t>{1, 5, 2}}) {
      detail::CompactWrrPicker picker(entries, weights, 1, 0, nullptr, 3, 1u << 22);
      picker.pick(0);
      const auto before = g_allocations.load();
      std::uint64_t sum = 0;
      for (std::uint64_t i = 0; i < 10000; ++i) {
        const auto r = picker.pick(i);
        sum += r.weight + (picker.at(r.index) == r ? 0 : 1'000'000'000);
      }
      CHECK(g_allocations.load() == before);
      CHECK(sum > 0);
      CHECK(sum < 1'000'000'000);
    }
  }

}
