// The request and response headers a proxy sends on: hop-by-hop headers removed, Host
// replaced, X-Forwarded-* added.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "kupstream/upstream.h"

namespace kupstream::detail {

// RFC 9110 §7.6.1: Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding,
// Upgrade, plus every header named in Connection.
bool is_hop_by_hop(std::string_view name, const std::vector<std::string>& connection_tokens);
std::vector<std::string> connection_tokens(const std::vector<Header>& headers);
std::vector<Header> end_to_end(const std::vector<Header>& headers);

// Headers for the Pod: end-to-end client headers without Host, Content-Length and the
// X-Forwarded-* we set; then Host (the override, else the client's), X-Forwarded-For (the
// client's chain plus client_address), X-Forwarded-Proto and X-Forwarded-Host.
std::vector<Header> upstream_request_headers(const ForwardRequest& request, const std::string* host_override);

bool iequals(std::string_view a, std::string_view b) noexcept;

}  // namespace kupstream::detail
