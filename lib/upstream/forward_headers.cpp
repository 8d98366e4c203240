#include "upstream/forward_headers.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace kupstream::detail {

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::vector<std::string> connection_tokens(const std::vector<Header>& headers) {
  std::vector<std::string> tokens;
  for (const auto& [name, value] : headers) {
    if (!iequals(name, "Connection")) continue;
    std::size_t start = 0;
    while (start <= value.size()) {
      std::size_t comma = value.find(',', start);
      std::string token = value.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      token.erase(0, token.find_first_not_of(" \t"));
      token.erase(token.find_last_not_of(" \t") + 1);
      if (!token.empty()) tokens.push_back(token);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  return tokens;
}

bool is_hop_by_hop(std::string_view name, const std::vector<std::string>& tokens) {
  static constexpr std::array<std::string_view, 7> kHopByHop{"Connection", "Keep-Alive",        "Proxy-Connection",
                                                             "TE",         "Trailer",           "Transfer-Encoding",
                                                             "Upgrade"};
  for (auto h : kHopByHop)
    if (iequals(name, h)) return true;
  for (const auto& t : tokens)
    if (iequals(name, t)) return true;
  return false;
}

std::vector<Header> end_to_end(const std::vector<Header>& headers) {
  const auto tokens = connection_tokens(headers);
  std::vector<Header> out;
  for (const auto& h : headers)
    if (!is_hop_by_hop(h.first, tokens)) out.push_back(h);
  return out;
}

std::vector<Header> upstream_request_headers(const ForwardRequest& request, const std::string* host_override) {
  std::vector<Header> out;
  std::string forwarded_for;
  for (auto& h : end_to_end(request.headers)) {
    if (iequals(h.first, "Host") || iequals(h.first, "Content-Length") || iequals(h.first, "X-Forwarded-Proto") ||
        iequals(h.first, "X-Forwarded-Host"))
      continue;
    if (iequals(h.first, "X-Forwarded-For")) {
      forwarded_for += (forwarded_for.empty() ? "" : ", ") + h.second;
      continue;
    }
    out.push_back(std::move(h));
  }
  const std::string& host = host_override ? *host_override : request.client_host;
  if (!host.empty()) out.emplace_back("Host", host);
  if (!request.client_address.empty())
    forwarded_for += (forwarded_for.empty() ? "" : ", ") + request.client_address;
  if (!forwarded_for.empty()) out.emplace_back("X-Forwarded-For", forwarded_for);
  if (!request.client_scheme.empty()) out.emplace_back("X-Forwarded-Proto", request.client_scheme);
  if (!request.client_host.empty()) out.emplace_back("X-Forwarded-Host", request.client_host);
  return out;
}

}  // namespace kupstream::detail
