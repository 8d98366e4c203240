// RFC 3339 timestamps as Kubernetes writes them ("2026-11-27T07:50:30Z",
// "2026-11-27T07:50:30.123456Z", "2026-11-27T08:50:30+01:00").
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace kupstream::detail {

// nullopt when `text` is not such a timestamp.
std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text);

}  // namespace kupstream::detail
