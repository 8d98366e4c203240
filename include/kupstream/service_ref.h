/// @file
/// ServiceRef: one Kubernetes Service port that an Upstream sends traffic to.
///
/// Thread: a regular value type; any thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "kupstream/error.h"
#include "kupstream/export.h"

namespace kupstream {

/// A Service port, by number (1..65535) or by name (an IANA service name such as "http").
class PortRef {
 public:
  /// Port number 0: invalid until set (validate_service_ref() rejects it).
  PortRef() = default;
  /// A port by number.
  static PortRef number(std::uint16_t n) { return PortRef(n, {}); }
  /// A port by name (the Service's ports[].name).
  static PortRef name(std::string name) { return PortRef(0, std::move(name)); }
  /// "8000" → number 8000; anything else → a name. Validation happens in validate_service_ref().
  KUPSTREAM_API static PortRef parse(std::string_view text);

  /// True when it is a number (no name).
  bool is_number() const noexcept { return name_.empty(); }
  /// The number; 0 when it is a name.
  std::uint16_t as_number() const noexcept { return number_; }
  /// The name; "" when it is a number.
  const std::string& as_name() const noexcept { return name_; }
  /// The number in decimal ("8000") or the name ("http"); parse() reads it back.
  KUPSTREAM_API std::string to_string() const;

  /// Same number and name.
  friend bool operator==(const PortRef&, const PortRef&) = default;

 private:
  PortRef(std::uint16_t n, std::string s) : number_(n), name_(std::move(s)) {}
  std::uint16_t number_ = 0;
  std::string name_;
};

/// Weights are 0..kMaxServiceWeight. 0 means "no new traffic" (the service stays watched and
/// in-flight requests finish); the default is 1.
inline constexpr std::uint32_t kMaxServiceWeight = 10000;

/// One port of one Kubernetes Service in one cluster, with its weight and node filter.
struct ServiceRef {
  std::string cluster;         ///< a name in the host's cluster registry
  std::string namespace_name;  ///< DNS-1123 label
  std::string service;         ///< DNS-1123 label
  PortRef port;                ///< Service port, number or name
  std::uint32_t weight = 1;    ///< 0..kMaxServiceWeight
  std::map<std::string, std::string> node_labels;  ///< a Pod's node must carry all of them

  /// "tke-a/default/httpbin:http".
  KUPSTREAM_API std::string to_string() const;
  /// Field-wise equality.
  friend bool operator==(const ServiceRef&, const ServiceRef&) = default;
};

/// Checks every field. The reason starts with `path` and names the field and value, e.g.
/// `services[3].namespace: "Default" is not a DNS-1123 label`. Errc::invalid_config.
KUPSTREAM_API Status validate_service_ref(const ServiceRef& ref, std::string_view path);

/// Syntax checks shared by the configuration code (Kubernetes rules). Each returns "" when
/// the value is valid, else why not, e.g. `"Default" is not a DNS-1123 label`.
/// This one: 1..63 of [a-z0-9-], starting and ending with a letter or digit (namespaces, services).
KUPSTREAM_API std::string check_dns1123_label(std::string_view value);
/// "" or why not: 1..253 characters of dot-separated DNS-1123 labels.
KUPSTREAM_API std::string check_dns1123_subdomain(std::string_view value);
/// "" or why not: an IANA service name as Kubernetes checks port names (1..15 of [a-z0-9-], at
/// least one letter, no leading, trailing or doubled '-').
KUPSTREAM_API std::string check_port_name(std::string_view value);
/// "" or why not: a label key, `[prefix/]name`: the prefix a DNS-1123 subdomain, the name 1..63
/// letters, digits, '-', '_' and '.', starting and ending with a letter or digit.
KUPSTREAM_API std::string check_label_key(std::string_view value);
/// "" or why not: a label value, empty or a name like a label key's.
KUPSTREAM_API std::string check_label_value(std::string_view value);

}  // namespace kupstream
