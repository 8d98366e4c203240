#include "kupstream/service_ref.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

namespace kupstream {
namespace {

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_alnum(char c) { return is_lower_alnum(c) || (c >= 'A' && c <= 'Z'); }

// Kubernetes' label name part: [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, at most 63.
std::string check_label_name(std::string_view v, std::string_view what) {
  if (v.empty()) return fmt::format("{} must not be empty", what);
  if (v.size() > 63) return fmt::format("\"{}\" is longer than 63 characters", v);
  if (!is_alnum(v.front()) || !is_alnum(v.back()))
    return fmt::format("\"{}\" must start and end with a letter or digit", v);
  for (char c : v)
    if (!is_alnum(c) && c != '-' && c != '_' && c != '.')
      return fmt::format("\"{}\" may contain only letters, digits, '-', '_' and '.'", v);
  return {};
}

}  // namespace

std::string check_dns1123_label(std::string_view v) {
  bool ok = !v.empty() && v.size() <= 63 && is_lower_alnum(v.front()) && is_lower_alnum(v.back()) &&
            std::all_of(v.begin(), v.end(), [](char c) { return is_lower_alnum(c) || c == '-'; });
  return ok ? std::string{} : fmt::format("\"{}\" is not a DNS-1123 label", v);
}

std::string check_dns1123_subdomain(std::string_view v) {
  if (v.empty() || v.size() > 253) return fmt::format("\"{}\" is not a DNS-1123 subdomain", v);
  std::size_t start = 0;
  while (start <= v.size()) {
    std::size_t dot = v.find('.', start);
    std::string_view part = v.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!check_dns1123_label(part).empty()) return fmt::format("\"{}\" is not a DNS-1123 subdomain", v);
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return {};
}

// IANA service name as Kubernetes validates port names: 1-15 of [a-z0-9-], at least one
// letter, no leading, trailing or doubled '-'.
std::string check_port_name(std::string_view v) {
  bool ok = !v.empty() && v.size() <= 15 && v.front() != '-' && v.back() != '-' &&
            v.find("--") == std::string_view::npos &&
            std::all_of(v.begin(), v.end(), [](char c) { return is_lower_alnum(c) || c == '-'; }) &&
            std::any_of(v.begin(), v.end(), [](char c) { return c >= 'a' && c <= 'z'; });
  return ok ? std::string{} : fmt::format("\"{}\" is not a port number 1..65535 or an IANA service name", v);
}

std::string check_label_key(std::string_view v) {
  std::size_t slash = v.find('/');
  if (slash != std::string_view::npos) {
    std::string_view prefix = v.substr(0, slash);
    if (!check_dns1123_subdomain(prefix).empty())
      return fmt::format("label key \"{}\": prefix \"{}\" is not a DNS-1123 subdomain", v, prefix);
    v = v.substr(slash + 1);
  }
  std::string why = check_label_name(v, "label key name");
  return why.empty() ? why : "label key " + why;
}

std::string check_label_value(std::string_view v) {
  if (v.empty()) return {};
  std::string why = check_label_name(v, "label value");
  return why.empty() ? why : "label value " + why;
}

PortRef PortRef::parse(std::string_view text) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc{} && end == text.data() + text.size() && !text.empty() && value >= 1 && value <= 65535)
    return number(static_cast<std::uint16_t>(value));
  return name(std::string(text));
}

std::string PortRef::to_string() const { return is_number() ? std::to_string(number_) : name_; }

std::string ServiceRef::to_string() const {
  return fmt::format("{}/{}/{}:{}", cluster, namespace_name, service, port.to_string());
}

Status validate_service_ref(const ServiceRef& ref, std::string_view path) {
  auto fail = [&](std::string_view field, const std::string& why) {
    return Status{Errc::invalid_config, fmt::format("{}.{}: {}", path, field, why)};
  };
  if (ref.cluster.empty()) return fail("cluster", "must not be empty");
  for (char c : ref.cluster)
    if (c <= ' ' || c == 0x7f) return fail("cluster", fmt::format("\"{}\" contains whitespace or a control character", ref.cluster));
  if (auto why = check_dns1123_label(ref.namespace_name); !why.empty()) return fail("namespace", why);
  if (auto why = check_dns1123_label(ref.service); !why.empty()) return fail("service", why);
  if (ref.port.is_number()) {
    if (ref.port.as_number() == 0) return fail("port", "0 is not a port number 1..65535 or an IANA service name");
  } else if (auto why = check_port_name(ref.port.as_name()); !why.empty()) {
    return fail("port", why);
  }
  if (ref.weight > kMaxServiceWeight)
    return fail("weight", fmt::format("{} is outside 0..{}", ref.weight, kMaxServiceWeight));
  for (const auto& [key, value] : ref.node_labels) {
    if (auto why = check_label_key(key); !why.empty()) return fail("node_labels", why);
    if (auto why = check_label_value(value); !why.empty()) return fail(fmt::format("node_labels[{}]", key), why);
  }
  return {};
}

}  // namespace kupstream
