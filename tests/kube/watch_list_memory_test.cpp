// WatchListMemory: which resources of a cluster skip watch-list, and for how long.
#include <doctest/doctest.h>

#include "kube/watch_list_memory.h"

using namespace kupstream::kube;
using namespace std::chrono_literals;

TEST_SUITE("WatchListMemory") {
  TEST_CASE("a slow resource is skipped until its retry time, then tried again; other resources are not affected") {
    WatchListMemory memory(10min);
    const auto t0 = WatchListMemory::Clock::now();
    CHECK_FALSE(memory.skip("endpointslices", t0));
    memory.record("endpointslices", WatchListMemory::Why::slow, t0);
    auto skip = memory.skip("endpointslices", t0 + 9min);
    REQUIRE(skip);
    CHECK(skip->why == WatchListMemory::Why::slow);
    CHECK(skip->when == t0);
    CHECK_FALSE(memory.skip("services", t0 + 1s));
    CHECK_FALSE(memory.skip("endpointslices", t0 + 10min));  // retry time reached: try watch-list again
  }

  TEST_CASE("a new record restarts the wait and a watch-list that synced in time forgets it") {
    WatchListMemory memory(10min);
    const auto t0 = WatchListMemory::Clock::now();
    memory.record("nodes", WatchListMemory::Why::refused, t0);
    memory.record("nodes", WatchListMemory::Why::slow, t0 + 10min);
    auto skip = memory.skip("nodes", t0 + 15min);
    REQUIRE(skip);
    CHECK(skip->why == WatchListMemory::Why::slow);
    memory.forget("nodes");
    CHECK_FALSE(memory.skip("nodes", t0 + 15min));
    memory.forget("nodes");  // forgetting twice is harmless
  }

  TEST_CASE("the resource is the last segment of a collection path") {
    CHECK(resource_of_path("/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices") == "endpointslices");
    CHECK(resource_of_path("/api/v1/namespaces/demo/services") == "services");
    CHECK(resource_of_path("/api/v1/nodes/") == "nodes");
    CHECK(resource_of_path("nodes") == "nodes");
  }
}
