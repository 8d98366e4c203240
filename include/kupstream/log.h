/// @file
/// The host's log callback. The library never prints; everything it has to say goes here.
#pragma once

#include <functional>
#include <string_view>

namespace kupstream {

/// How much a log message matters: `debug`, detail for debugging (e.g. each retry of a request);
/// `info`, normal events worth a line (e.g. a relist, a rotated token file); `warning`, wrong or
/// risky but service goes on (a failing watch, an ejected Pod, TLS checks off); `error`, something
/// could not be set up (e.g. a Pod's connection pool).
enum class LogLevel { debug, info, warning, error };

/// Called on the loop thread, synchronously, from inside library code. The message view is
/// valid only during the call. It must not throw and must not destroy the object that logs.
using LogFn = std::function<void(LogLevel level, std::string_view message)>;

/// The level's name: "debug", "info", "warning" or "error".
inline const char* log_level_name(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warning: return "warning";
    case LogLevel::error: return "error";
  }
  return "?";
}

}  // namespace kupstream
