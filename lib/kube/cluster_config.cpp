// validate_cluster_config(), parse_server_url() and load_in_cluster_config().
#include <cstdlib>

#include "kube/file_util.h"
#include "kupstream/cluster.h"

namespace kupstream {

Result<ServerUrl> parse_server_url(std::string_view s) {
  ServerUrl u;
  auto bad = [&](const std::string& why) {
    return Error{Errc::invalid_config, "server \"" + std::string(s) + "\": " + why};
  };
  std::string_view rest = s;
  if (rest.starts_with("https://")) {
    rest.remove_prefix(8);
  } else if (rest.starts_with("http://")) {
    u.tls = false;
    u.port = 80;
    rest.remove_prefix(7);
  } else {
    return bad("the scheme must be https:// or http://");
  }
  std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
  if (authority.find('@') != std::string_view::npos) return bad("user information in the URL is not supported");
  if (path.find_first_of("?#") != std::string_view::npos) return bad("a query or fragment is not allowed");
  std::string_view port;
  if (authority.starts_with("[")) {
    std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("unterminated IPv6 literal");
    u.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return bad("unexpected text after the IPv6 literal");
      port = after.substr(1);
      if (port.empty()) return bad("empty port");
    }
  } else {
    std::size_t colon = authority.rfind(':');
    if (colon != std::string_view::npos) {
      if (authority.find(':') != colon) return bad("an IPv6 address must be in brackets");
      port = authority.substr(colon + 1);
      if (port.empty()) return bad("empty port");
      authority = authority.substr(0, colon);
    }
    u.host = std::string(authority);
  }
  if (u.host.empty()) return bad("the host is missing");
  if (!port.empty()) {
    unsigned v = 0;
    for (char c : port) {
      if (c < '0' || c > '9' || v > 65535) return bad("the port is not a number in 1..65535");
      v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v == 0 || v > 65535) return bad("the port is not a number in 1..65535");
    u.port = static_cast<std::uint16_t>(v);
  }
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  u.base_path = std::string(path);
  return u;
}

Status validate_cluster_config(const ClusterConfig& c) {
  std::string who = c.name.empty() ? "cluster" : "cluster \"" + c.name + "\"";
  if (c.server.empty()) return Status(Errc::invalid_config, who + ": server is missing");
  if (auto u = parse_server_url(c.server); !u) return Status(Errc::invalid_config, who + ": " + u.error().reason);
  bool has_ca = !c.certificate_authority_file.empty() || !c.certificate_authority_data.empty();
  if (has_ca && c.insecure_skip_tls_verify)
    return Status(Errc::invalid_config,
                  who + ": insecure-skip-tls-verify cannot be combined with a certificate authority");
  const auto& k = c.credentials;
  bool has_cert = !k.client_certificate_file.empty() || !k.client_certificate_data.empty();
  bool has_key = !k.client_key_file.empty() || !k.client_key_data.empty();
  if (has_cert != has_key)
    return Status(Errc::invalid_config, who + (has_cert ? ": client-certificate is set without client-key"
                                                        : ": client-key is set without client-certificate"));
  if (k.exec) {
    if (k.exec->command.empty()) return Status(Errc::invalid_config, who + ": exec.command is missing");
    if (k.exec->api_version != "client.authentication.k8s.io/v1" &&
        k.exec->api_version != "client.authentication.k8s.io/v1beta1")
      return Status(Errc::unsupported, who + ": exec.apiVersion \"" + k.exec->api_version + "\" is not supported");
    if (k.exec->interactive_mode == ExecInteractiveMode::always)
      return Status(Errc::unsupported, who + ": exec.interactiveMode Always is not supported");
  }
  return {};
}

Result<ClusterConfig> load_in_cluster_config(const InClusterOptions& o) {
  auto env = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    return v ? v : "";
  };
  std::string host = o.service_host ? *o.service_host : env("KUBERNETES_SERVICE_HOST");
  std::string port = o.service_port ? *o.service_port : env("KUBERNETES_SERVICE_PORT");
  if (host.empty() || port.empty())
    return Error{Errc::invalid_config,
                 "in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set (not running in a Pod?)"};
  ClusterConfig c;
  c.name = "in-cluster";
  bool v6 = host.find(':') != std::string::npos;
  c.server = "https://" + (v6 ? "[" + host + "]" : host) + ":" + port;
  std::string dir = o.service_account_dir;
  c.credentials.token_file = dir + "/token";
  auto token = kube::read_whole_file(c.credentials.token_file);
  if (!token) return Error{Errc::io_error, "in-cluster: service account token: " + token.error().reason};
  if (kube::trim(*token).empty())
    return Error{Errc::invalid_config, "in-cluster: service account token " + c.credentials.token_file + " is empty"};
  std::string ca = dir + "/ca.crt";
  if (!kube::file_exists(ca))
    return Error{Errc::io_error, "in-cluster: service account CA " + ca + " does not exist"};
  c.certificate_authority_file = ca;
  if (auto ns = kube::read_whole_file(dir + "/namespace"); ns && !kube::trim(*ns).empty())
    c.default_namespace = kube::trim(*ns);
  if (auto s = validate_cluster_config(c); !s) return std::move(s).error();
  return c;
}

}  // namespace kupstream
