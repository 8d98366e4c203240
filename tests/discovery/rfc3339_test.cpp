#include <doctest/doctest.h>

#include "discovery/rfc3339.h"

using namespace std::chrono;
using kupstream::detail::parse_rfc3339;

TEST_SUITE("parse_rfc3339") {
  TEST_CASE("Kubernetes timestamps parse with fractions and offsets") {
    const auto base = sys_days{2026y / 11 / 27} + 7h + 50min + 30s;
    CHECK(parse_rfc3339("2026-11-27T07:50:30Z") == base);
    CHECK(parse_rfc3339("2026-11-27T07:50:30.25Z") == base + 250ms);
    CHECK(parse_rfc3339("2026-11-27T08:50:30+01:00") == base);
    CHECK(parse_rfc3339("2026-11-27T06:20:30-01:30") == base);
  }

  TEST_CASE("anything else is rejected") {
    for (const char* bad : {"", "2026-11-27", "2026-11-27T07:50:30", "2026-13-27T07:50:30Z", "2026-11-27T07:50:30.Z",
                            "2026-11-27T07:50:30Zjunk", "yesterday"}) {
      CAPTURE(bad);
      CHECK_FALSE(parse_rfc3339(bad).has_value());
    }
  }

  // Found by fuzzing (the exec credential's twin of this parser): converting a date outside
  // system_clock's 64-bit nanosecond range overflowed a signed integer (UBSan).
  TEST_CASE("a date outside system_clock's range is rejected instead of overflowing") {
    for (const char* far : {"0001-01-01T00:00:00Z", "1000-06-01T00:00:00Z", "9999-12-31T23:59:59Z", "2263-01-01T00:00:00Z"}) {
      CAPTURE(far);
      CHECK_FALSE(parse_rfc3339(far).has_value());
    }
    CHECK(parse_rfc3339("2261-12-31T23:59:59Z").has_value());
  }
}
