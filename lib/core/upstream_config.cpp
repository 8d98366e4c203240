#include "kupstream/upstream_config.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <set>

namespace kupstream {
namespace {

template <class E, std::size_t N>
Result<E> parse_enum(std::string_view text, const std::array<E, N>& values, std::string_view what) {
  std::string known;
  for (E v : values) {
    if (text == to_string(v)) return v;
    known += known.empty() ? "" : ", ";
    known += to_string(v);
  }
  return Result<E>{Errc::invalid_config, fmt::format("{} \"{}\" is not one of: {}", what, text, known)};
}

bool is_dns_name(std::string_view v) {
  if (v.empty() || v.size() > 253) return false;
  std::size_t start = 0;
  for (;;) {
    std::size_t dot = v.find('.', start);
    std::string_view label = v.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
    if (label.empty() || label.size() > 63 || !alnum(label.front()) || !alnum(label.back()) ||
        !std::all_of(label.begin(), label.end(), [&](char c) { return alnum(c) || c == '-'; }))
      return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

}  // namespace

const char* to_string(Scheme s) noexcept { return s == Scheme::https ? "https" : "http"; }

const char* to_string(BalancerPolicy p) noexcept {
  switch (p) {
    case BalancerPolicy::weighted_round_robin: return "weighted_round_robin";
    case BalancerPolicy::least_request: return "least_request";
    case BalancerPolicy::consistent_hash: return "consistent_hash";
    case BalancerPolicy::random: return "random";
  }
  return "?";
}

const char* to_string(WeightMode m) noexcept { return m == WeightMode::per_service ? "per_service" : "per_pod"; }

Result<Scheme> parse_scheme(std::string_view text) {
  return parse_enum(text, std::array{Scheme::http, Scheme::https}, "scheme");
}
Result<BalancerPolicy> parse_balancer_policy(std::string_view text) {
  return parse_enum(text,
                    std::array{BalancerPolicy::weighted_round_robin, BalancerPolicy::least_request,
                               BalancerPolicy::consistent_hash, BalancerPolicy::random},
                    "balancer policy");
}
Result<WeightMode> parse_weight_mode(std::string_view text) {
  return parse_enum(text, std::array{WeightMode::per_pod, WeightMode::per_service}, "weight mode");
}

std::string check_host_header(std::string_view value) {
  if (value.empty()) return "must not be empty";
  for (char c : value)
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f)
      return fmt::format("{:?} contains whitespace, CR, LF or another control character", value);
  std::string_view host = value;
  std::string_view port;
  bool has_port = false;
  if (value.front() == '[') {
    std::size_t close = value.find(']');
    if (close == std::string_view::npos) return fmt::format("\"{}\" has an unclosed '['", value);
    host = value.substr(1, close - 1);
    std::string_view rest = value.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return fmt::format("\"{}\": unexpected text after ']'", value);
      port = rest.substr(1);
      has_port = true;
    }
    unsigned char buf[16];
    if (inet_pton(AF_INET6, std::string(host).c_str(), buf) != 1)
      return fmt::format("\"{}\" is not an IPv6 literal", host);
  } else {
    std::size_t colon = value.find(':');
    if (colon != std::string_view::npos) {
      host = value.substr(0, colon);
      port = value.substr(colon + 1);
      has_port = true;
    }
    if (!is_dns_name(host)) return fmt::format("\"{}\" is not a valid host name or IPv4 address", host);
  }
  if (has_port) {
    unsigned n = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
    if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || n < 1 || n > 65535)
      return fmt::format("port \"{}\" is not 1..65535", port);
  }
  return {};
}

Status validate_upstream_config(const UpstreamConfig& c) {
  auto fail = [&](const std::string& why) {
    return Status{Errc::invalid_config, fmt::format("upstream \"{}\": {}", c.name, why)};
  };
  if (c.name.empty() || c.name.size() > 253 ||
      !std::all_of(c.name.begin(), c.name.end(), [](char ch) {
        return std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-';
      }))
    return fail(fmt::format("name: \"{}\" must be 1..253 of letters, digits, '.', '_' and '-'", c.name));
  if (c.max_services == 0) return fail("max_services: must be at least 1");
  if (c.services.empty()) return fail("services: at least one service is required");
  if (c.services.size() > c.max_services)
    return fail(fmt::format("services: {} entries exceed the limit of {}", c.services.size(), c.max_services));
  for (std::size_t i = 0; i < c.services.size(); ++i) {
    Status s = validate_service_ref(c.services[i], fmt::format("services[{}]", i));
    if (!s) return fail(s.error().reason);
    for (std::size_t j = 0; j < i; ++j) {
      const ServiceRef& a = c.services[j];
      const ServiceRef& b = c.services[i];
      if (a.cluster == b.cluster && a.namespace_name == b.namespace_name && a.service == b.service &&
          a.port == b.port && a.node_labels == b.node_labels)
        return fail(fmt::format("services[{}]: \"{}\" repeats services[{}]", i, b.to_string(), j));
    }
  }
  if (c.host_header) {
    if (auto why = check_host_header(*c.host_header); !why.empty()) return fail("host_header: " + why);
  }
  std::set<std::string_view> keys;
  for (std::size_t i = 0; i < c.tags.size(); ++i) {
    const auto& [key, value] = c.tags[i];
    if (key.empty()) return fail(fmt::format("tags[{}]: key must not be empty", i));
    auto has_control = [](const std::string& s) {
      return std::any_of(s.begin(), s.end(), [](char ch) { return static_cast<unsigned char>(ch) < ' ' || ch == 0x7f; });
    };
    if (has_control(key) || has_control(value))
      return fail(fmt::format("tags[{}]: \"{}\" contains a control character", i, key));
    if (!keys.insert(key).second) return fail(fmt::format("tags[{}]: key \"{}\" repeats", i, key));
  }
  return {};
}

}  // namespace kupstream
