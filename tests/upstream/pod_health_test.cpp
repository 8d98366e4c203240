#include <doctest/doctest.h>

#include "upstream/pod_health.h"

using namespace kupstream;
using namespace kupstream::detail;
using namespace std::chrono_literals;

TEST_SUITE("PodHealth") {
  TEST_CASE("consecutive failures eject for a time that grows with each ejection, up to the cap") {
    OutlierDetection policy;
    policy.consecutive_failures = 3;
    policy.base_ejection = 10s;
    policy.max_ejection = 25s;
    PodHealth h;
    const auto t0 = PodHealth::Clock::time_point{} + 1000s;
    CHECK_FALSE(h.record_failure(policy, t0, true));
    CHECK_FALSE(h.record_failure(policy, t0, true));
    CHECK(h.record_failure(policy, t0, true));
    CHECK(h.ejected(t0 + 9s));
    CHECK_FALSE(h.ejected(t0 + 10s));
    for (int i = 0; i < 3; ++i) h.record_failure(policy, t0 + 10s, true);
    CHECK(h.ejected_until() == t0 + 10s + 20s);
    for (int i = 0; i < 3; ++i) h.record_failure(policy, t0 + 40s, true);
    CHECK(h.ejected_until() == t0 + 40s + 25s);  // capped
    CHECK(h.times_ejected() == 3);
  }

  TEST_CASE("a success ends the streak") {
    OutlierDetection policy;
    policy.consecutive_failures = 2;
    PodHealth h;
    const auto t0 = PodHealth::Clock::time_point{} + 1000s;
    h.record_failure(policy, t0, true);
    h.record_success();
    CHECK_FALSE(h.record_failure(policy, t0, true));
    CHECK(h.record_failure(policy, t0, true));
  }

  TEST_CASE("the ejection cap is respected and 0 turns detection off") {
    OutlierDetection policy;
    policy.consecutive_failures = 1;
    PodHealth h;
    const auto t0 = PodHealth::Clock::time_point{} + 1000s;
    CHECK_FALSE(h.record_failure(policy, t0, false));
    CHECK_FALSE(h.ejected(t0));
    policy.max_ejected_percent = 50;
    CHECK(ejection_allowed(policy, 0, 2));
    CHECK_FALSE(ejection_allowed(policy, 1, 2));
    CHECK_FALSE(ejection_allowed(policy, 0, 1));
    CHECK(ejection_allowed(policy, 4, 10));
    policy.consecutive_failures = 0;
    PodHealth off;
    for (int i = 0; i < 100; ++i) CHECK_FALSE(off.record_failure(policy, t0, true));
  }
}
