/// @file
/// Upstream documents: one upstream described as YAML or JSON text, in the shape of an entry of
/// kup-gateway's `upstreams:` list (docs/gateway.md). It is the one configuration format shared
/// by kup-gateway, the C ABI (kupstream_c.h) and the Node.js addon, so that every binding reaches
/// every field of UpstreamConfig and UpstreamOptions, and reports problems the same way.
///
/// Thread: a synchronous function on values; any thread.
#pragma once

#include <string>
#include <string_view>

#include "kupstream/error.h"
#include "kupstream/export.h"
#include "kupstream/upstream.h"
#include "kupstream/upstream_config.h"

namespace kupstream {

/// An upstream as read from a document: what Upstream::create() takes, plus the request header
/// that a `consistent_hash` host hashes (the library does not read requests' headers itself).
struct UpstreamDocument {
  UpstreamConfig config;    ///< name, services, scheme, Host override, tags, policy, weight mode
  UpstreamOptions options;  ///< timeouts, retries, health, TLS, pools; `log` is left empty
  std::string hash_header;  ///< `hash_header`: required with policy consistent_hash, else ""
};

/// Where a document comes from and how its problems are named.
struct UpstreamDocumentOptions {
  /// Names the document in messages (a file name, "upstream config"); "" = no prefix.
  std::string source;
  /// Where the upstream is inside the document: "" = the document is the upstream itself;
  /// else a path of map keys and list indexes such as "upstreams[2]". Paths in messages start
  /// with it, so kup-gateway can parse its whole file and report `upstreams[2].services[0].port`.
  std::string root;
  /// Relative file names in the document (`tls.ca_file`) are resolved against this directory;
  /// "" = left as written.
  std::string base_dir;
  /// Prefix each problem with "source:line: " (true) or "source: " (false, e.g. for JSON
  /// produced by a program, where every line number is 1).
  bool line_numbers = true;
};

/// Parses and validates one upstream (every key of docs/gateway.md's `upstreams[]` table). Unknown keys are errors, so a typo never passes silently.
/// The cluster names in `services[].cluster` are not checked here: Upstream::create() checks
/// them against the clusters it is given.
/// Errors: invalid_config, whose reason holds one line per problem, each
///   `<source>:<line>: <path>: <problem>`, e.g.
///   `upstream.yaml:7: services[1].namespace: "Default" is not a DNS-1123 label`.
KUPSTREAM_API Result<UpstreamDocument> parse_upstream_document(std::string_view text,
                                                               const UpstreamDocumentOptions& options = {});

}  // namespace kupstream
