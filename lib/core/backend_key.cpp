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

BackendKey BackendKey::from_bytes(Family family, const unsigned char* bytes, std::uint16_t port) noexcept {
  BackendKey k;
  k.family = family;
  k.port = port;
  if (family == ipv4) {
    k.lo = big_endian(bytes, 4);
  } else if (family == ipv6) {
    k.hi = big_endian(bytes, 8);
    k.lo = big_endian(bytes + 8, 8);
  }
  return k;
}

BackendKey BackendKey::parse(const std::string& address, std::uint16_t port) noexcept {
  unsigned char buf[16];
  if (inet_pton(AF_INET, address.c_str(), buf) == 1) return from_bytes(ipv4, buf, port);
  if (inet_pton(AF_INET6, address.c_str(), buf) == 1) return from_bytes(ipv6, buf, port);
  BackendKey k;
  k.port = port;
  return k;
}

}  // namespace kupstream::detail
