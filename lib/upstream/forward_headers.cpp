#include "upstream/forward_headers.h"

#include <array>
#include <cstdint>
#include <cstring>

namespace kupstream::detail {
namespace {

// What the request path does with a client header's name (one size switch, then at most two
// comparisons: this runs for every header of every request).
enum class NameKind { other, hop_by_hop, replaced, forwarded_for };

NameKind kind_of(std::string_view name) noexcept {
  switch (name.size()) {
    case 2: return iequals(name, "TE") ? NameKind::hop_by_hop : NameKind::other;
    case 4: return iequals(name, "Host") ? NameKind::replaced : NameKind::other;
    case 7: return iequals(name, "Trailer") || iequals(name, "Upgrade") ? NameKind::hop_by_hop : NameKind::other;
    case 10:
      return iequals(name, "Connection") || iequals(name, "Keep-Alive") ? NameKind::hop_by_hop : NameKind::other;
    case 14: return iequals(name, "Content-Length") ? NameKind::replaced : NameKind::other;
    case 15: return iequals(name, "X-Forwarded-For") ? NameKind::forwarded_for : NameKind::other;
    case 16:
      return iequals(name, "Proxy-Connection") ? NameKind::hop_by_hop
             : iequals(name, "X-Forwarded-Host") ? NameKind::replaced
                                                 : NameKind::other;
    case 17:
      return iequals(name, "Transfer-Encoding") ? NameKind::hop_by_hop
             : iequals(name, "X-Forwarded-Proto") ? NameKind::replaced
                                                  : NameKind::other;
    default: return NameKind::other;
  }
}

// Calls emit(name, value) for each header to send to the Pod, in order.
template <class H, class Emit>
void for_upstream_request(const std::vector<H>& headers, const ForwardRequest& request, const std::string* host_override,
                          Emit emit) {
  const ConnectionTokens tokens(headers);
  // X-Forwarded-For: the client's values, then client_address, joined by ", " (none before the
  // first non-empty piece). A view of the one piece there usually is; a string once two are joined.
  std::string joined;
  std::string_view chain;
  auto add = [&](std::string_view piece) {
    if (chain.empty()) {
      chain = piece;
      return;
    }
    if (chain.data() != joined.data()) joined.assign(chain);
    joined += ", ";
    joined += piece;
    chain = joined;
  };
  for (const auto& h : headers) {
    const auto [name, value] = view_of(h);
    const NameKind kind = kind_of(name);
    if (kind == NameKind::hop_by_hop || kind == NameKind::replaced || tokens.contains(name)) continue;
    if (kind == NameKind::forwarded_for) {
      add(value);
      continue;
    }
    emit(name, value);
  }
  const std::string& host = host_override ? *host_override : request.client_host;
  if (!host.empty()) emit("Host", host);
  if (!request.client_address.empty()) add(request.client_address);
  if (!chain.empty()) emit("X-Forwarded-For", chain);
  if (!request.client_scheme.empty()) emit("X-Forwarded-Proto", request.client_scheme);
  if (!request.client_host.empty()) emit("X-Forwarded-Host", request.client_host);
}

// Whether s holds CR, LF or NUL. Eight bytes at a time: a byte below 14 is rare in a header
// value, and only then are the bytes looked at one by one.
bool has_cr_lf_nul(std::string_view s) noexcept {
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL, kHigh = 0x8080808080808080ULL;
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    if (((w - 14 * kOnes) & ~w & kHigh) != 0) break;  // some byte of w is below 14
  }
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '\r' || c == '\n' || c == '\0') return true;
  }
  return false;
}

}  // namespace

bool ConnectionTokens::is_connection(std::string_view name) noexcept { return iequals(name, "Connection"); }

// Splits one Connection value ("close, X-Foo") into its comma-separated names.
void ConnectionTokens::add(std::string_view value) {
  std::size_t start = 0;
  while (start <= value.size()) {
    const std::size_t comma = value.find(',', start);
    std::string_view token = value.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    const auto first = token.find_first_not_of(" \t");
    token = first == std::string_view::npos ? std::string_view{} : token.substr(first);
    token = token.substr(0, token.find_last_not_of(" \t") + 1);
    if (!token.empty()) {
      if (count_ < kInline) inline_[count_++] = token;
      else more_.push_back(token);
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
}

bool ConnectionTokens::contains(std::string_view name) const noexcept {
  for (std::size_t i = 0; i < count_; ++i)
    if (iequals(name, inline_[i])) return true;
  for (auto t : more_)
    if (iequals(name, t)) return true;
  return false;
}

bool is_hop_by_hop(std::string_view name, const ConnectionTokens& tokens) {
  return kind_of(name) == NameKind::hop_by_hop || tokens.contains(name);
}

std::vector<Header> end_to_end(const std::vector<Header>& headers) {
  std::vector<Header> out;
  for_each_end_to_end(headers, [&](HeaderView h) { out.emplace_back(h.first, h.second); });
  return out;
}

std::vector<Header> upstream_request_headers(const ForwardRequest& request, const std::string* host_override) {
  std::vector<Header> out;
  for_upstream_request(request.headers, request, host_override, [&](std::string_view n, std::string_view v) {
    out.emplace_back(std::string(n), std::string(v));
  });
  return out;
}

void append_upstream_request_headers(const ForwardRequest& request, const std::string* host_override,
                                     std::vector<net::HttpHeader>& out) {
  out.reserve(out.size() + request.headers.size() + 4);
  for_upstream_request(request.headers, request, host_override, [&](std::string_view n, std::string_view v) {
    out.push_back(net::HttpHeader{std::string(n), std::string(v)});
  });
}

bool append_upstream_header_lines(const ForwardRequest& request, const std::string* host_override, std::string& out,
                                  bool& has_host) {
  has_host = false;
  bool clean = true;
  std::size_t size = out.size() + 96 + request.client_address.size() + 2 * request.client_host.size() +
                     request.client_scheme.size() + (host_override ? host_override->size() : 0);
  for (const auto& [n, v] : request.headers) size += n.size() + v.size() + 4;
  out.reserve(size);
  for_upstream_request(request.headers, request, host_override, [&](std::string_view n, std::string_view v) {
    if (has_cr_lf_nul(v)) clean = false;
    if (n.size() == 4 && iequals(n, "Host")) has_host = true;
    // One append of the whole line where it fits a small buffer (each append is a call).
    char line[256];
    const std::size_t len = n.size() + v.size() + 4;
    if (len <= sizeof line) {
      std::memcpy(line, n.data(), n.size());
      line[n.size()] = ':';
      line[n.size() + 1] = ' ';
      std::memcpy(line + n.size() + 2, v.data(), v.size());
      line[len - 2] = '\r';
      line[len - 1] = '\n';
      out.append(line, len);
    } else {
      out.append(n).append(": ", 2).append(v).append("\r\n", 2);
    }
  });
  return clean;
}

}  // namespace kupstream::detail
