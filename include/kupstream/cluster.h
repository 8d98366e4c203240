/// @file
/// Cluster configuration: where a Kubernetes API server is and how to authenticate to it.
///
/// Three sources fill the same ClusterConfig:
///   load_kubeconfig()         a kubeconfig file (or several, merged as kubectl does);
///   load_in_cluster_config()  the Pod's service account (KUBERNETES_SERVICE_HOST/PORT and
///                             /var/run/secrets/kubernetes.io/serviceaccount);
///   explicit fields           the host fills a ClusterConfig itself; check it with
///                             validate_cluster_config().
///
/// Thread: plain values and synchronous functions; safe on any thread. The loaders read
/// files synchronously (call them at start-up or reconfiguration, not per request).
/// Errors: Result/Status with Errc::invalid_config (bad or missing values), Errc::unsupported
/// (a kubeconfig feature kupstream does not implement), Errc::io_error (unreadable file);
/// reasons name the file, the context/cluster/user entry and the field.
/// Docs: docs/kube.md ("Cluster configuration").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kupstream/error.h"
#include "kupstream/export.h"
#include "kupstream/log.h"

namespace kupstream {

/// An exec plugin's interactiveMode (kubeconfig Never, IfAvailable, Always): `never`, the plugin
/// never needs stdin; `if_available`, it may use stdin if there is one (kupstream gives it none);
/// `always`, it needs a terminal, which kupstream rejects with Errc::unsupported.
enum class ExecInteractiveMode { never, if_available, always };

/// One environment variable given to an exec plugin (kubeconfig exec.env[]).
struct ExecEnvVar {
  std::string name;   ///< the variable's name
  std::string value;  ///< its value
  /// Field-wise equality.
  friend bool operator==(const ExecEnvVar&, const ExecEnvVar&) = default;
};

/// A client-go exec credential plugin (kubeconfig users[].user.exec).
struct ExecConfig {
  std::string command;  ///< a PATH name, or a path (kubeconfig: relative to the file's directory)
  std::vector<std::string> args;  ///< arguments after the command
  std::vector<ExecEnvVar> env;  ///< added to the library's environment for the plugin
  std::string api_version;      ///< client.authentication.k8s.io/v1 or .../v1beta1
  std::string install_hint;     ///< shown in errors when the plugin cannot run
  /// kupstream never has a terminal: never and if_available run the plugin without stdin;
  /// always is rejected.
  ExecInteractiveMode interactive_mode = ExecInteractiveMode::if_available;
  bool provide_cluster_info = false;  ///< pass server/CA in KUBERNETES_EXEC_INFO
  /// Field-wise equality.
  friend bool operator==(const ExecConfig&, const ExecConfig&) = default;
};

/// How to authenticate. Bearer sources, in order of precedence: exec plugin, token_file,
/// token. A client certificate may be combined with any of them. *_data fields hold PEM
/// bytes (already base64-decoded when they came from a kubeconfig) and win over *_file.
struct ClusterCredentials {
  std::string token;       ///< a static bearer token
  std::string token_file;  ///< re-read when it changes (projected service-account tokens rotate)
  std::string client_certificate_file;  ///< PEM client certificate file; needs a key
  std::string client_certificate_data;  ///< PEM client certificate; wins over the file
  std::string client_key_file;          ///< PEM private key file of the client certificate
  std::string client_key_data;          ///< PEM private key; wins over the file
  std::optional<ExecConfig> exec;       ///< an exec credential plugin; wins over the tokens
  /// Field-wise equality.
  friend bool operator==(const ClusterCredentials&, const ClusterCredentials&) = default;
};

/// One Kubernetes API server and how to reach and authenticate to it. Check a hand-filled
/// one with validate_cluster_config(); ClusterClient::create() checks it too.
struct ClusterConfig {
  std::string name;    ///< used in messages: the kubeconfig context, "in-cluster", or the host's name
  std::string server;  ///< "https://host[:port][/path]"
  std::string certificate_authority_file;   ///< PEM file of the CAs that sign the server's certificate
  std::string certificate_authority_data;  ///< PEM; wins over the file
  std::string tls_server_name;              ///< SNI and the name to verify, "" = server's host
  bool insecure_skip_tls_verify = false;  ///< no certificate check; cannot be combined with a CA
  std::string default_namespace = "default";  ///< context namespace / service account namespace
  ClusterCredentials credentials;  ///< how to authenticate
  /// Field-wise equality.
  friend bool operator==(const ClusterConfig&, const ClusterConfig&) = default;
};

/// Checks the combination of fields (server URL parses, CA not combined with
/// insecure-skip-tls-verify, certificate and key come together, exec plugin complete).
KUPSTREAM_API Status validate_cluster_config(const ClusterConfig& config);

/// The parts of ClusterConfig::server.
struct ServerUrl {
  bool tls = true;            ///< https
  std::string host;           ///< without brackets for IPv6
  std::uint16_t port = 443;   ///< default 443 (https) or 80 (http)
  std::string base_path;      ///< "" or "/prefix" without a trailing '/'
  /// Field-wise equality.
  friend bool operator==(const ServerUrl&, const ServerUrl&) = default;
};
/// Splits a server URL ("https://host[:port][/path]", https:// or http://). Errors:
/// invalid_config naming the server and what is wrong (scheme, user information, query or
/// fragment, IPv6 brackets, port).
KUPSTREAM_API Result<ServerUrl> parse_server_url(std::string_view server);

/// Which kubeconfig files and context load_kubeconfig() reads.
struct KubeconfigOptions {
  /// Files to merge. Empty: the KUBECONFIG list (':'-separated; files that do not exist are
  /// skipped), else $HOME/.kube/config. Files named here explicitly must exist.
  std::vector<std::string> paths = {};
  /// Overrides the KUBECONFIG environment variable when set (tests, hosts with their own flag).
  std::optional<std::string> kubeconfig_env = std::nullopt;
  std::string context = {};  ///< "" = current-context (from the first file that sets it)
  LogFn log = {};       ///< warnings about ignored fields; may be empty
};

/// Loads the cluster, user and namespace of one context. Merging follows kubectl: for each
/// of clusters/users/contexts, the first file that defines a name wins; relative paths
/// resolve against the directory of the file that defined the entry.
KUPSTREAM_API Result<ClusterConfig> load_kubeconfig(const KubeconfigOptions& options);

/// Where load_in_cluster_config() looks; the defaults are a Pod's. Tests point them elsewhere.
struct InClusterOptions {
  /// Holds the files token, ca.crt and namespace.
  std::string service_account_dir = "/var/run/secrets/kubernetes.io/serviceaccount";
  std::optional<std::string> service_host = std::nullopt;  ///< nullopt: $KUBERNETES_SERVICE_HOST
  std::optional<std::string> service_port = std::nullopt;  ///< nullopt: $KUBERNETES_SERVICE_PORT
};

/// The config of a Pod's service account: server https://HOST:PORT, CA file ca.crt, token
/// file token (re-read when it rotates), namespace from the namespace file. Fails with
/// invalid_config when the environment variables are not set (not running in a cluster) and
/// io_error when the token file cannot be read.
KUPSTREAM_API Result<ClusterConfig> load_in_cluster_config(const InClusterOptions& options = {});

}  // namespace kupstream
