#include "upstream/forward_headers.h"

#include <array>

namespace kupstream::detail {
namespace {

// Calls emit(name, value) for each header to send to the Pod, in order.
template <class H, class Emit>
void for_upstream_request(const std::vector<H>& headers, const ForwardRequest& request, const std::string* host_override,
                          Emit emit) {
  const ConnectionTokens tokens(headers);
  std::string forwarded_for;
  for (const auto& h : headers) {
    const auto [name, value] = view_of(h);
    if (is_hop_by_hop(name, tokens)) continue;
    if (iequals(name, "Host") || iequals(name, "Content-Length") || iequals(name, "X-Forwarded-Proto") ||
        iequals(name, "X-Forwarded-Host"))
      continue;
    if (iequals(name, "X-Forwarded-For")) {
      if (!forwarded_for.empty()) forwarded_for += ", ";
      forwarded_for += value;
      continue;
    }
    emit(name, value);
  }
  const std::string& host = host_override ? *host_override : request.client_host;
  if (!host.empty()) emit("Host", host);
  if (!request.client_address.empty()) {
    if (!forwarded_for.empty()) forwarded_for += ", ";
    forwarded_for += request.client_address;
  }
  if (!forwarded_for.empty()) emit("X-Forwarded-For", forwarded_for);
  if (!request.client_scheme.empty()) emit("X-Forwarded-Proto", request.client_scheme);
  if (!request.client_host.empty()) emit("X-Forwarded-Host", request.client_host);
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
  static constexpr std::array<std::string_view, 7> kHopByHop{"Connection", "Keep-Alive",        "Proxy-Connection",
                                                             "TE",         "Trailer",           "Transfer-Encoding",
                                                             "Upgrade"};
  for (auto h : kHopByHop)
    if (iequals(name, h)) return true;
  return tokens.contains(name);
}

std::vector<Header> end_to_end(const std::vector<Header>& headers) {
  std::vector<Header> out;
  for_each_end_to_end(headers, [&](HeaderView h) { out.emplace_back(h.first, h.second); });
  return out;
}

std::vector<Header> upstream_request_headers(const ForwardRequest& request, const std::string* host_override) {
  std::vector<Header> out;
  for_upstream_request(request.headers, request, host_override,
                       [&](std::string_view n, std::string_view v) { out.emplace_back(std::string(n), std::string(v)); });
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
    for (char c : v)  // (find_first_of would call memchr once per character)
      if (c == '\r' || c == '\n' || c == '\0') clean = false;
    if (n.size() == 4 && iequals(n, "Host")) has_host = true;
    out += n;
    out += ": ";
    out += v;
    out += "\r\n";
  });
  return clean;
}

}  // namespace kupstream::detail
