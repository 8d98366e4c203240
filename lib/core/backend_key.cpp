#include "core/backend_key.h"

#include <arpa/inet.h>

namespace kupstream::detail {
namespace {

std::uint64_t big_endian(const unsigned char* p, int n) noexcept {
  std::uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

std::optional<BackendKey> BackendKey::parse_as(Family family, const std::string& address, std::uint16_t port) noexcept {
  unsigned char buf[16];
  if (family == unparsed || inet_pton(family == ipv4 ? AF_INET : AF_INET6, address.c_str(), buf) != 1) return std::nullopt;
  BackendKey k;
  k.family = family;
  k.port = port;
  if (family == ipv4) {
    k.lo = big_endian(buf, 4);
  } else {
    k.hi = big_endian(buf, 8);
    k.lo = big_endian(buf + 8, 8);
  }
  return k;
}

BackendKey BackendKey::parse(const std::string& address, std::uint16_t port) noexcept {
  if (auto k = parse_as(ipv4, address, port)) return *k;
  if (auto k = parse_as(ipv6, address, port)) return *k;
  BackendKey k;
  k.port = port;
  return k;
}

}  // namespace kupstream::detail
