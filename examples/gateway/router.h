// Router: host + longest path prefix → upstream name.
//
// A route whose host equals the request's Host (case-insensitive, port removed) beats any "*"
// route; among the routes of the chosen host, the longest path_prefix that matches wins. A
// prefix matches at a segment boundary: "/api" matches "/api", "/api/x" and "/api?q" but not
// "/apix"; "/" matches everything.
//
// Thread: immutable after construction; any thread may call match().
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config.h"

namespace kupgw {

class Router {
 public:
  Router() = default;
  explicit Router(std::vector<RouteEntry> routes);

  // The upstream for this request, or "" when no route matches.
  std::string_view match(std::string_view host_header, std::string_view target) const;

  // "Host: example.com:8080" → "example.com"; "[::1]:80" → "[::1]"; lower case.
  static std::string normalize_host(std::string_view host_header);
  static bool prefix_matches(std::string_view prefix, std::string_view path);

 private:
  std::vector<RouteEntry> routes_;  // sorted by descending prefix length
};

}  // namespace kupgw
