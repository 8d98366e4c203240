// The client.authentication.k8s.io ExecCredential protocol, without the process part:
// the KUBERNETES_EXEC_INFO input and the parsing of a plugin's stdout.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "kupstream/cluster.h"
#include "kupstream/error.h"

namespace kupstream::kube {

// What a credential source hands to the API client.
struct Credential {
  std::string authorization;           // "Bearer <token>", "" when no bearer token is used
  std::string client_certificate_pem;  // from an exec plugin only; static certs stay in ClusterConfig
  std::string client_key_pem;
  std::optional<std::chrono::system_clock::time_point> expiry;  // exec plugins only
  friend bool operator==(const Credential&, const Credential&) = default;
};

// The value of KUBERNETES_EXEC_INFO for a plugin run. `ca_pem` is the cluster's CA (used
// only when exec.provide_cluster_info is set).
std::string exec_info_json(const ClusterConfig& cluster, const ExecConfig& exec, std::string_view ca_pem);

// Parses a plugin's stdout (an ExecCredential). Errors are Errc::credential_error and say
// what is wrong with the output; the caller prefixes the plugin's name.
Result<Credential> parse_exec_credential(std::string_view json, std::string_view expected_api_version);

// RFC 3339 date-time ("2026-11-27T05:38:15Z", fractions and offsets allowed).
std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view s);

// Escapes a string for a JSON string literal (without the quotes).
std::string json_escape(std::string_view s);

}  // namespace kupstream::kube
