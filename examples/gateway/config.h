// kup-gateway's configuration file (YAML): listeners, admin listener, clusters, upstreams and
// routes. Loading checks everything and reports every bad line as
//   gateway.yaml:14: upstreams[0].services[1].namespace: "Default" is not a DNS-1123 label
// Unknown keys are errors, so a typo never passes silently. Reference: docs/gateway.md.
//
// Thread: plain values and synchronous functions (they read files); any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kupstream/cluster_client.h"
#include "kupstream/error.h"
#include "kupstream/upstream.h"
#include "kupstream/upstream_config.h"

namespace kupgw {

struct ListenAddress {
  std::string address = "127.0.0.1";  // IPv4 or IPv6 literal
  std::uint16_t port = 0;
  friend bool operator==(const ListenAddress&, const ListenAddress&) = default;
};

// Limits and timeouts of the gateway's own HTTP server.
struct ServerSettings {
  std::size_t max_header_bytes = 64 * 1024;  // request line + headers; larger → 431
  std::uint64_t max_body_bytes = 0;          // request body; larger → 413 (0 = no limit)
  std::uint32_t header_timeout_ms = 10'000;  // a request head must arrive within this
  std::uint32_t idle_timeout_ms = 60'000;    // keep-alive connection with no request
  std::uint32_t drain_timeout_ms = 10'000;   // on SIGTERM, in-flight requests get this long
  // Worker threads, each with its own loop and listener (SO_REUSEPORT) when above 1; 1 = the
  // requests are served on the control loop itself. `--workers N` overrides it.
  std::uint32_t workers = 1;
  static constexpr std::uint32_t max_workers = 64;
  // Give free heap pages back to the system once the RSS has grown by this many MiB since the
  // last trim (heap_trimmer.h); 0 = never.
  std::uint32_t heap_trim_mib = 8;
  friend bool operator==(const ServerSettings&, const ServerSettings&) = default;
};

struct ClusterEntry {
  std::string name;
  std::string kubeconfig;  // "" = $KUBECONFIG or ~/.kube/config (unless in_cluster)
  std::string context;     // "" = the kubeconfig's current-context
  bool in_cluster = false;
  // EndpointSlice watches: one per namespace shared by its Services (the default), or one per Service.
  kupstream::SliceWatchMode slice_watch = kupstream::SliceWatchMode::per_namespace;
  int line = 0;            // where it was defined (1-based), for messages
  friend bool operator==(const ClusterEntry&, const ClusterEntry&) = default;
};

struct UpstreamEntry {
  kupstream::UpstreamConfig config;
  kupstream::UpstreamOptions options;  // options.log is left empty; the gateway sets it
  std::string hash_header;             // consistent_hash: the request header hashed
  std::string fingerprint;             // canonical text of its YAML: unchanged on reload → reused
  int line = 0;
};

struct RouteEntry {
  std::string host = "*";  // exact Host (without port, case-insensitive) or "*"
  std::string path_prefix = "/";
  std::string upstream;
  friend bool operator==(const RouteEntry&, const RouteEntry&) = default;
};

struct GatewayConfig {
  std::string source;  // file name used in messages
  std::vector<ListenAddress> listeners;
  std::optional<ListenAddress> admin;
  ServerSettings server;
  std::vector<ClusterEntry> clusters;
  std::vector<UpstreamEntry> upstreams;
  std::vector<RouteEntry> routes;
};

// Parses `text` (named `filename` in messages; relative file paths in it resolve against
// `base_dir`). Errors: invalid_config whose reason holds one line per problem, each
// "filename:line: path: problem".
kupstream::Result<GatewayConfig> parse_config(std::string_view text, std::string_view filename,
                                              std::string_view base_dir = ".");
// Reads and parses a file. Errors: io_error (unreadable), invalid_config (as above).
kupstream::Result<GatewayConfig> load_config_file(const std::string& path);

}  // namespace kupgw
