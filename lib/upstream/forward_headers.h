// The request and response headers a proxy sends on: hop-by-hop headers removed, Host
// replaced, X-Forwarded-* added.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "kupstream/upstream.h"
#include "net/http_types.h"

namespace kupstream::detail {

// One header of either kind (the caller's std::pair, the connection's net::HttpHeader) as views.
inline HeaderView view_of(const Header& h) noexcept { return {h.first, h.second}; }
inline HeaderView view_of(const net::HttpHeader& h) noexcept { return {h.name, h.value}; }

// The header names listed in a head's Connection headers, as views into their values: the
// headers must outlive it. No allocation for up to kInline names.
class ConnectionTokens {
 public:
  template <class H>
  explicit ConnectionTokens(const std::vector<H>& headers) {
    for (const auto& h : headers)
      if (const HeaderView v = view_of(h); is_connection(v.first)) add(v.second);
  }
  bool contains(std::string_view name) const noexcept;  // ASCII case-insensitive

 private:
  static constexpr std::size_t kInline = 8;
  static bool is_connection(std::string_view name) noexcept;
  void add(std::string_view value);
  std::array<std::string_view, kInline> inline_{};
  std::size_t count_ = 0;
  std::vector<std::string_view> more_;
};

// RFC 9110 §7.6.1: Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding,
// Upgrade, plus every header named in Connection.
bool is_hop_by_hop(std::string_view name, const ConnectionTokens& connection_tokens);
// Calls keep(view) for each end-to-end header, in order (the request path filters the Pod's
// response head this way, without a copy).
template <class H, class Keep>
void for_each_end_to_end(const std::vector<H>& headers, Keep keep) {
  const ConnectionTokens tokens(headers);
  for (const auto& h : headers)
    if (const HeaderView v = view_of(h); !is_hop_by_hop(v.first, tokens)) keep(v);
}
// The same, copied (tests, hosts' own transports).
std::vector<Header> end_to_end(const std::vector<Header>& headers);

// Headers for the Pod: end-to-end client headers without Host, Content-Length and the
// X-Forwarded-* we set; then Host (the override, else the client's), X-Forwarded-For (the
// client's chain plus client_address), X-Forwarded-Proto and X-Forwarded-Host.
std::vector<Header> upstream_request_headers(const ForwardRequest& request, const std::string* host_override);
// The same, appended to `out` as the connection's header type (the request path).
void append_upstream_request_headers(const ForwardRequest& request, const std::string* host_override,
                                     std::vector<net::HttpHeader>& out);

// The same as serialized lines ("Name: value\r\n") appended to `out`; `has_host` tells
// whether a Host line is among them. False (out unspecified) when a value holds CR, LF or NUL:
// the caller then uses append_upstream_request_headers, whose serializer reports it.
// Header names must already be tokens (Upstream::forward checks them).
bool append_upstream_header_lines(const ForwardRequest& request, const std::string* host_override, std::string& out,
                                  bool& has_host);

// ASCII lower case of each byte (a table: one load per byte in the comparisons below).
inline constexpr auto kAsciiLower = [] {
  std::array<unsigned char, 256> t{};
  for (int c = 0; c < 256; ++c) t[c] = static_cast<unsigned char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  return t;
}();

// ASCII case-insensitive equality (header names).
inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (kAsciiLower[static_cast<unsigned char>(a[i])] != kAsciiLower[static_cast<unsigned char>(b[i])]) return false;
  return true;
}

}  // namespace kupstream::detail
