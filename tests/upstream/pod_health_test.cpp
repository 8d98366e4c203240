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
    CHECK(h.ejected_until(t0 + 10s) == t0 + 10s + 20s);
    for (int i = 0; i < 3; ++i) h.record_failure(policy, t0 + 40s, true);
    CHECK(h.ejected_until(t0 + 40s) == t0 + 40s + 25s);  // capped
    CHECK(h.ejected_until(t0 + 50s) == t0 + 40s + 25s);
    CHECK(h.ejected_until(t0 + 70s) == t0 + 70s);  // over: now
    CHECK(h.times_ejected() == 3);
  }

  TEST_CASE("an ejection across the wrap of the 4-byte millisecond stamp, and one forgotten once over") {
    OutlierDetection policy;
    policy.consecutive_failures = 1;
    policy.base_ejection = 10s;
    PodHealth h;
    // 5 s before the stamp wraps (2^32 ms): the ejection ends 5 s after it.
    const auto t0 = PodHealth::Clock::time_point{} + std::chrono::milliseconds{(std::int64_t{1} << 32) - 5000};
    CHECK(h.record_failure(policy, t0, true));
    CHECK(h.ejected(t0));
    CHECK(h.ejected(t0 + 5s));
    CHECK(h.ejected(t0 + 9999ms));
    CHECK_FALSE(h.ejected(t0 + 10s));
    CHECK(h.ejected_until(t0 + 1s) == t0 + 10s);
    // Once expired at its end, it stays over however far the clock goes.
    h.expire(t0 + 9s);
    CHECK(h.ejected(t0 + 9s));  // not over yet: kept
    h.expire(t0 + 11s);
    const auto month = std::chrono::hours{24 * 30};
    for (auto later : {t0 + 11s, t0 + month, t0 + 2 * month, t0 + 3 * month}) CHECK_FALSE(h.ejected(later));
    // The longest ejection is cut to the stamp's span (about 24.8 days).
    policy.base_ejection = std::chrono::hours{24 * 40};
    policy.max_ejection = std::chrono::hours{24 * 40};
    const auto t1 = t0 + month;
    CHECK(h.record_failure(policy, t1, true));
    CHECK(h.ejected(t1 + std::chrono::hours{24 * 24}));
    CHECK_FALSE(h.ejected(t1 + std::chrono::hours{24 * 25}));
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
