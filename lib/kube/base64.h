// Standard base64 (RFC 4648 with padding), as kubeconfig *-data fields and exec plugin
// outputs use it. Whitespace is skipped.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kupstream::kube {

std::optional<std::string> base64_decode(std::string_view in);
std::string base64_encode(std::string_view in);

}  // namespace kupstream::kube
