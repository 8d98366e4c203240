#include "router.h"

#include <algorithm>

namespace kupgw {

Router::Router(std::vector<RouteEntry> routes) : routes_(std::move(routes)) {
  std::stable_sort(routes_.begin(), routes_.end(), [](const RouteEntry& a, const RouteEntry& b) {
    return a.path_prefix.size() > b.path_prefix.size();
  });
}

std::string Router::normalize_host(std::string_view h) {
  std::string_view host = h;
  if (!host.empty() && host.front() == '[') {
    auto close = host.find(']');
    if (close != std::string_view::npos) host = host.substr(0, close + 1);
  } else if (auto colon = host.find(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  std::string out(host);
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + ('a' - 'A'));
  return out;
}

bool Router::prefix_matches(std::string_view prefix, std::string_view path) {
  if (path.substr(0, prefix.size()) != prefix) return false;
  if (prefix.empty() || prefix.back() == '/' || path.size() == prefix.size()) return true;
  char next = path[prefix.size()];
  return next == '/' || next == '?' || next == '#';
}

std::string_view Router::match(std::string_view host_header, std::string_view target) const {
  std::string host = normalize_host(host_header);
  const RouteEntry* wildcard = nullptr;
  for (const auto& r : routes_) {  // longest prefix first
    if (!prefix_matches(r.path_prefix, target)) continue;
    if (r.host == host) return r.upstream;
    if (r.host == "*" && wildcard == nullptr) wildcard = &r;
  }
  return wildcard != nullptr ? std::string_view(wildcard->upstream) : std::string_view{};
}

}  // namespace kupgw
