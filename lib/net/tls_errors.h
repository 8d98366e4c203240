// Turns the OpenSSL/BoringSSL error queue into text for Error reasons.
#pragma once

#include <string>
#include <string_view>

namespace kupstream::net {

// Drains the thread's error queue; returns "<what>: <first error text>" (or just what).
std::string take_ssl_error(std::string_view what);

}  // namespace kupstream::net
