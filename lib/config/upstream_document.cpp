#include "kupstream/upstream_document.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <map>
#include <vector>

#include "config/document_reader.h"

namespace kupstream {
namespace {

using detail::DocumentReader;

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::optional<ServiceRef> read_service(DocumentReader& r, const YAML::Node& n, const std::string& path) {
  if (!r.check_map(n, path, {"cluster", "namespace", "service", "port", "weight", "node_labels"})) return std::nullopt;
  ServiceRef ref;
  auto cluster = r.string(n, path, "cluster", true);
  auto ns = r.string(n, path, "namespace");
  auto svc = r.string(n, path, "service", true);
  auto port = r.string(n, path, "port", true);
  bool ok = cluster && svc && port;
  ref.cluster = cluster.value_or("");
  ref.namespace_name = ns.value_or("default");
  ref.service = svc.value_or("");
  ref.port = PortRef::parse(port.value_or(""));
  if (auto w = r.number<std::uint32_t>(n, path, "weight", 0, kMaxServiceWeight)) {
    ref.weight = *w;
  } else if (n["weight"].IsDefined()) {
    ok = false;
  }
  if (n["node_labels"].IsDefined()) {
    r.string_map(n["node_labels"], path + ".node_labels",
                 [&](const std::string& k, const std::string& v) { ref.node_labels[k] = v; });
  }
  if (!ok) return std::nullopt;
  // The library's own checks name the field after the path we give ("x.namespace: ...").
  if (auto st = validate_service_ref(ref, "x"); !st) {
    std::string reason = st.error().reason;
    if (reason.rfind("x.", 0) == 0) reason = reason.substr(2);
    else if (reason.rfind("x", 0) == 0) reason = reason.substr(1);
    r.validator_error(path, reason);
    return std::nullopt;
  }
  return ref;
}

void read_tls(DocumentReader& r, const YAML::Node& t, const std::string& tp, UpstreamTls& tls) {
  if (!r.check_map(t, tp, {"ca_file", "insecure_skip_verify", "server_name"})) return;
  if (auto v = r.string(t, tp, "ca_file")) tls.ca_file = r.resolve(*v);
  if (auto v = r.boolean(t, tp, "insecure_skip_verify")) tls.insecure_skip_verify = *v;
  if (auto v = r.string(t, tp, "server_name")) tls.server_name = *v;
  if (tls.insecure_skip_verify && !tls.ca_file.empty())
    r.error(t, tp, "ca_file and insecure_skip_verify: true contradict each other");
}

void read_timeouts(DocumentReader& r, const YAML::Node& t, const std::string& tp, UpstreamTimeouts& o) {
  if (!r.check_map(t, tp, {"connect_ms", "response_header_ms", "total_ms", "idle_connection_ms"})) return;
  if (auto v = r.millis(t, tp, "connect_ms")) o.connect = *v;
  if (auto v = r.millis(t, tp, "response_header_ms")) o.response_header = *v;
  if (auto v = r.millis(t, tp, "total_ms")) o.total = *v;
  if (auto v = r.millis(t, tp, "idle_connection_ms")) o.idle_connection = *v;
}

void read_retries(DocumentReader& r, const YAML::Node& t, const std::string& tp, RetryPolicy& o) {
  if (!r.check_map(t, tp, {"max", "on_status", "on_connect_failure", "budget_ratio", "min_concurrent"})) return;
  if (auto v = r.number<std::uint32_t>(t, tp, "max", 0, 10)) o.max_retries = *v;
  if (auto v = r.boolean(t, tp, "on_connect_failure")) o.on_connect_failure = *v;
  if (auto v = r.number<std::uint32_t>(t, tp, "min_concurrent", 0, 1'000'000)) o.min_concurrent = *v;
  if (auto v = r.number<std::uint32_t>(t, tp, "budget_ratio", 0, 100)) o.budget_ratio = *v / 100.0;
  if (YAML::Node s = t["on_status"]; s.IsDefined() && r.sequence(s, tp + ".on_status")) {
    o.on_status.clear();
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (auto v = r.number_value<int>(s[i], fmt::format("{}.on_status[{}]", tp, i), 100, 599)) o.on_status.push_back(*v);
    }
  }
}

void read_outlier(DocumentReader& r, const YAML::Node& t, const std::string& tp, OutlierDetection& o) {
  if (!r.check_map(t, tp, {"consecutive_failures", "base_ejection_ms", "max_ejection_ms", "max_ejected_percent"})) return;
  if (auto v = r.number<std::uint32_t>(t, tp, "consecutive_failures", 0, 1'000'000)) o.consecutive_failures = *v;
  if (auto v = r.millis(t, tp, "base_ejection_ms")) o.base_ejection = *v;
  if (auto v = r.millis(t, tp, "max_ejection_ms")) o.max_ejection = *v;
  if (auto v = r.number<std::uint32_t>(t, tp, "max_ejected_percent", 0, 100)) o.max_ejected_percent = *v;
}

void read_health_check(DocumentReader& r, const YAML::Node& t, const std::string& tp, ActiveHealthCheck& o) {
  if (!r.check_map(t, tp, {"enabled", "path", "interval_ms", "timeout_ms", "unhealthy_threshold", "healthy_threshold"}))
    return;
  o.enabled = true;
  if (auto v = r.boolean(t, tp, "enabled")) o.enabled = *v;
  if (auto v = r.string(t, tp, "path")) {
    if (v->empty() || (*v)[0] != '/' || v->find_first_of(" \r\n") != std::string::npos)
      r.error(t["path"], tp + ".path", fmt::format("{} is not an absolute path", detail::quote(*v)));
    else o.path = *v;
  }
  if (auto v = r.millis(t, tp, "interval_ms")) o.interval = *v;
  if (auto v = r.millis(t, tp, "timeout_ms")) o.timeout = *v;
  if (auto v = r.number<std::uint32_t>(t, tp, "unhealthy_threshold", 1, 100)) o.unhealthy_threshold = *v;
  if (auto v = r.number<std::uint32_t>(t, tp, "healthy_threshold", 1, 100)) o.healthy_threshold = *v;
}

void read_locality(DocumentReader& r, const YAML::Node& t, const std::string& tp, ZoneAwareRouting& o) {
  if (!r.check_map(t, tp, {"enabled", "zone", "zone_from_env", "hints", "zone_traffic", "min_endpoints",
                           "min_local_endpoints", "min_local_percent"}))
    return;
  o.enabled = true;  // as health_check: the block turns it on unless it says enabled: false
  if (auto v = r.boolean(t, tp, "enabled")) o.enabled = *v;
  if (auto v = r.string(t, tp, "zone")) o.zone = *v;
  // One file for replicas in every zone: each reads its own zone from its environment (e.g. the
  // Downward API), at parse time.
  if (auto v = r.string(t, tp, "zone_from_env")) {
    const char* value = std::getenv(v->c_str());
    if (t["zone"].IsDefined())
      r.error(t["zone_from_env"], tp + ".zone_from_env", "contradicts zone: give one of them");
    else if (value == nullptr || *value == '\0')
      r.error(t["zone_from_env"], tp + ".zone_from_env", fmt::format("environment variable {} is not set", detail::quote(*v)));
    else
      o.zone = value;
  }
  if (auto v = r.boolean(t, tp, "hints")) o.use_hints = *v;
  if (YAML::Node z = t["zone_traffic"]; z.IsDefined()) {
    const std::string zp = tp + ".zone_traffic";
    if (!z.IsMap()) {
      r.error(z, zp, "expected a map of zone name to traffic share");
    } else {
      for (auto it = z.begin(); it != z.end(); ++it) {
        const std::string zone = it->first.Scalar();
        if (auto share = r.number_value<double>(it->second, DocumentReader::join(zp, zone), 0.0, 1e9))
          o.zone_traffic.emplace_back(zone, *share);
      }
    }
  }
  if (auto v = r.number<std::uint32_t>(t, tp, "min_endpoints", 0, 1'000'000)) o.min_endpoints = *v;
  if (auto v = r.number<std::uint32_t>(t, tp, "min_local_endpoints", 0, 1'000'000)) o.min_local_endpoints = *v;
  if (auto v = r.number<std::uint32_t>(t, tp, "min_local_percent", 0, 100)) o.min_local_percent = *v;
  if (!r.errors().empty()) return;
  // The library's checks name the field under "locality." and the value at fault.
  if (auto st = validate_zone_aware_routing(o, "x"); !st) {
    std::string reason = st.error().reason;
    if (reason.rfind("x.", 0) == 0) reason = reason.substr(2);
    YAML::Node at = t["zone"].IsDefined() && reason.rfind("zone:", 0) == 0 ? t["zone"] : t;
    r.error(at, DocumentReader::join(tp, reason.substr(0, reason.find(':'))), reason.substr(reason.find(':') + 2));
  }
}

void read_upstream(DocumentReader& r, const YAML::Node& n, const std::string& path, UpstreamDocument& doc) {
  if (!r.check_map(n, path, {"name", "backend", "host", "policy", "hash_header", "weight_mode", "tags", "tls",
                             "timeouts", "retries", "outlier", "health_check", "slow_start_ms",
                             "panic_threshold_percent", "max_connections_per_pod", "max_idle_per_pod", "max_services",
                             "seed", "pod_metrics_limit", "locality", "services"}))
    return;
  auto& c = doc.config;
  auto& o = doc.options;
  auto at = [&](std::string_view key) { return DocumentReader::join(path, key); };
  if (auto v = r.string(n, path, "name", true)) c.name = *v;
  if (auto v = r.string(n, path, "backend")) {
    if (auto s = parse_scheme(lower(*v))) c.scheme = *s;
    else r.error(n["backend"], at("backend"), fmt::format("{} is not HTTP or HTTPS", detail::quote(*v)));
  }
  if (auto v = r.string(n, path, "host")) {
    if (auto why = check_host_header(*v); !why.empty()) r.error(n["host"], at("host"), why);
    else c.host_header = *v;
  }
  if (auto v = r.string(n, path, "policy")) {
    if (auto s = parse_balancer_policy(*v)) c.policy = *s;
    else
      r.error(n["policy"], at("policy"),
              fmt::format("{} is not weighted_round_robin, least_request, consistent_hash or random", detail::quote(*v)));
  }
  if (auto v = r.string(n, path, "hash_header")) doc.hash_header = *v;
  if (c.policy == BalancerPolicy::consistent_hash && doc.hash_header.empty())
    r.error(n, at("hash_header"), "is required with policy consistent_hash");
  if (auto v = r.string(n, path, "weight_mode")) {
    if (auto s = parse_weight_mode(*v)) c.weight_mode = *s;
    else r.error(n["weight_mode"], at("weight_mode"), fmt::format("{} is not per_pod or per_service", detail::quote(*v)));
  }
  if (n["tags"].IsDefined())
    r.string_map(n["tags"], at("tags"), [&](const std::string& k, const std::string& v) { c.tags.emplace_back(k, v); });
  if (YAML::Node t = n["tls"]; t.IsDefined()) read_tls(r, t, at("tls"), o.tls);
  if (YAML::Node t = n["timeouts"]; t.IsDefined()) read_timeouts(r, t, at("timeouts"), o.timeouts);
  if (YAML::Node t = n["retries"]; t.IsDefined()) read_retries(r, t, at("retries"), o.retries);
  if (YAML::Node t = n["outlier"]; t.IsDefined()) read_outlier(r, t, at("outlier"), o.outlier);
  if (YAML::Node t = n["health_check"]; t.IsDefined()) read_health_check(r, t, at("health_check"), o.health_check);
  if (YAML::Node t = n["locality"]; t.IsDefined()) read_locality(r, t, at("locality"), o.locality);
  if (auto v = r.millis(n, path, "slow_start_ms")) o.slow_start = *v;
  if (auto v = r.number<std::uint32_t>(n, path, "panic_threshold_percent", 0, 100)) o.panic_threshold_percent = *v;
  if (auto v = r.number<std::size_t>(n, path, "max_connections_per_pod", 1, 100'000)) o.max_connections_per_pod = *v;
  if (auto v = r.number<std::size_t>(n, path, "max_idle_per_pod", 0, 100'000)) o.max_idle_per_pod = *v;
  if (auto v = r.number<std::size_t>(n, path, "max_services", 1, 10'000)) c.max_services = *v;
  if (auto v = r.number<std::uint64_t>(n, path, "seed", 0, UINT64_MAX)) o.seed = *v;
  if (auto v = r.number<std::size_t>(n, path, "pod_metrics_limit", 0, SIZE_MAX)) o.pod_metrics_limit = *v;

  YAML::Node services = n["services"];
  if (!services.IsDefined()) {
    r.error(n, at("services"), "is required");
  } else if (r.sequence(services, at("services"))) {
    for (std::size_t i = 0; i < services.size(); ++i) {
      if (auto ref = read_service(r, services[i], fmt::format("{}[{}]", at("services"), i)))
        c.services.push_back(std::move(*ref));
    }
  }
  if (!r.errors().empty()) return;
  // Whole-upstream checks (name syntax, count, duplicates): `upstream "name": path: problem`.
  if (auto st = validate_upstream_config(c); !st) {
    std::string reason = st.error().reason;
    if (reason.rfind("upstream ", 0) == 0) {
      if (auto colon = reason.find("\": "); colon != std::string::npos) reason = reason.substr(colon + 3);
    }
    r.validator_error(path, reason);
  }
}

}  // namespace

Result<UpstreamDocument> parse_upstream_document(std::string_view text, const UpstreamDocumentOptions& options) {
  DocumentReader r(options.source, options.base_dir, options.line_numbers);
  YAML::Node root;
  if (auto st = r.load(text, root); !st) return st.error();
  YAML::Node n = r.descend(root, options.root);
  UpstreamDocument doc;
  if (n.IsDefined()) read_upstream(r, n, options.root, doc);
  if (!r.errors().empty()) return r.failure();
  return doc;
}

}  // namespace kupstream
