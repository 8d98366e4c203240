// BackendKey: an endpoint's (address, port) as numbers, the order of EndpointSet lists.
//
// Addresses compare numerically (127.0.1.9 before 127.0.1.10), IPv4 before IPv6, then ports.
// A string that is not an IP literal gets family `unparsed` and sorts after every address;
// such keys are equal to each other, so callers break those ties by the address text.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>

namespace kupstream::detail {

struct BackendKey {
  enum Family : std::uint8_t { ipv4 = 4, ipv6 = 6, unparsed = 255 };
  Family family = unparsed;  // first: the order is by family, then address, then port
  std::uint64_t hi = 0, lo = 0;  // the address bytes, big-endian (IPv4 in the low 32 bits of lo)
  std::uint16_t port = 0;
  friend auto operator<=>(const BackendKey&, const BackendKey&) = default;

  // Parses `address` as a literal of `family` (ipv4 or ipv6); nullopt when it is not one.
  static std::optional<BackendKey> parse_as(Family family, const std::string& address, std::uint16_t port) noexcept;
  // Parses `address` as IPv4, then IPv6; `unparsed` when it is neither.
  static BackendKey parse(const std::string& address, std::uint16_t port) noexcept;
};

}  // namespace kupstream::detail
