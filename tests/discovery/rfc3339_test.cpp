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
}
