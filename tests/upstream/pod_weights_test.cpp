#include <doctest/doctest.h>

#include "upstream/pod_weights.h"

using namespace kupstream;
using namespace kupstream::detail;
using namespace std::chrono_literals;

TEST_SUITE("pod weights") {
  TEST_CASE("per_pod gives every Pod the service weight") {
    CHECK(pod_base_weight(WeightMode::per_pod, 3, 1) == 3 * kWeightScale);
    CHECK(pod_base_weight(WeightMode::per_pod, 3, 10) == 3 * kWeightScale);
    CHECK(pod_base_weight(WeightMode::per_pod, 0, 10) == 0);
  }

  TEST_CASE("per_service splits the service weight so each service's total is its weight") {
    // Service A weight 3 with 3 Pods, service B weight 1 with 2 Pods: totals 3:1.
    const double a = 3.0 * pod_base_weight(WeightMode::per_service, 3, 3);
    const double b = 2.0 * pod_base_weight(WeightMode::per_service, 1, 2);
    CHECK(a / b == doctest::Approx(3.0).epsilon(0.001));
    CHECK(pod_base_weight(WeightMode::per_service, 1, 7) > 0);
    CHECK(pod_base_weight(WeightMode::per_service, 1, 100000) >= 1);
  }

  TEST_CASE("slow start ramps from 10% to 100% over the window") {
    CHECK(slow_start_weight(1000, 0ms, 10s) == 100);
    CHECK(slow_start_weight(1000, 5s, 10s) == 550);
    CHECK(slow_start_weight(1000, 10s, 10s) == 1000);
    CHECK(slow_start_weight(1000, 3s, 0ms) == 1000);
    CHECK(slow_start_weight(1, 0ms, 10s) == 1);
    CHECK(slow_start_weight(0, 0ms, 10s) == 0);
  }
}
