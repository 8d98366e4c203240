#include "config.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

using namespace kupstream;

namespace kupgw {
namespace {

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// Control bytes shown as \xNN. A path built from YAML keys, or a problem quoting a value (also
// the library's validation reasons), may hold any byte (a quoted "a\nb"); a reason must stay one
// line per problem.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) out += fmt::format("\\x{:02x}", static_cast<unsigned>(u));
    else out += c;
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Walks the YAML tree, remembering where every path was defined so that problems found later
// (by the library's validators, which report paths) still point at a line.
class Parser {
 public:
  Parser(std::string_view filename, std::string_view base_dir) : filename_(filename), base_dir_(base_dir) {}

  void error_at(int line, const std::string& path, const std::string& problem) {
    errors_.push_back(fmt::format("{}:{}: {}: {}", filename_, line, printable(path), printable(problem)));
  }
  void error(const YAML::Node& node, const std::string& path, const std::string& problem) {
    error_at(line_of(node), path, problem);
  }
  static int line_of(const YAML::Node& node) { return node.IsDefined() ? node.Mark().line + 1 : 0; }

  void remember(const std::string& path, const YAML::Node& node) {
    if (node.IsDefined()) lines_.emplace(path, line_of(node));
  }
  // Best line for a path reported by a validator: the longest remembered prefix.
  int line_for(std::string path) const {
    while (true) {
      if (auto it = lines_.find(path); it != lines_.end()) return it->second;
      auto cut = path.find_last_of(".[");
      if (cut == std::string::npos || cut == 0) return 0;
      path.resize(cut);
    }
  }
  // A validator's reason "path: problem" (relative to `prefix`) becomes a located error.
  void validator_error(const std::string& prefix, const std::string& reason) {
    auto colon = reason.find(": ");
    std::string rel = colon == std::string::npos ? "" : reason.substr(0, colon);
    bool looks_like_path = !rel.empty() && rel.find(' ') == std::string::npos;
    std::string full = looks_like_path ? prefix + "." + rel : prefix;
    std::string problem = looks_like_path ? reason.substr(colon + 2) : reason;
    error_at(line_for(full), full, problem);
  }

  // Reports keys of `node` that are not in `allowed`. False when `node` is not a map.
  bool check_map(const YAML::Node& node, const std::string& path, std::initializer_list<std::string_view> allowed) {
    if (!node.IsMap()) {
      error(node, path, "expected a mapping");
      return false;
    }
    remember(path, node);
    for (auto it = node.begin(); it != node.end(); ++it) {
      std::string key = it->first.IsScalar() ? it->first.Scalar() : "?";
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        std::string known;
        for (auto k : allowed) known += (known.empty() ? "" : ", ") + std::string(k);
        error(it->first, path.empty() ? key : path + "." + key, fmt::format("unknown key {} (known: {})", quote(key), known));
      } else {
        remember(path.empty() ? key : path + "." + key, it->second);
      }
    }
    return true;
  }

  static std::string join(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }

  std::optional<std::string> string(const YAML::Node& parent, const std::string& path, std::string_view key,
                                    bool required = false) {
    YAML::Node n = parent[std::string(key)];
    std::string p = join(path, key);
    if (!n.IsDefined() || n.IsNull()) {
      if (required) error(parent, p, "is required");
      return std::nullopt;
    }
    if (!n.IsScalar()) {
      error(n, p, "expected a string");
      return std::nullopt;
    }
    return n.Scalar();
  }

  template <class T>
  std::optional<T> number(const YAML::Node& parent, const std::string& path, std::string_view key, T min, T max,
                          bool required = false) {
    YAML::Node n = parent[std::string(key)];
    std::string p = join(path, key);
    if (!n.IsDefined() || n.IsNull()) {
      if (required) error(parent, p, "is required");
      return std::nullopt;
    }
    return number_value<T>(n, p, min, max);
  }

  template <class T>
  std::optional<T> number_value(const YAML::Node& n, const std::string& p, T min, T max) {
    if (!n.IsScalar()) {
      error(n, p, "expected a number");
      return std::nullopt;
    }
    const std::string& s = n.Scalar();
    T v{};
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size()) {
      error(n, p, fmt::format("{} is not a number", quote(s)));
      return std::nullopt;
    }
    if (v < min || v > max) {
      error(n, p, fmt::format("{} is out of range {}..{}", s, min, max));
      return std::nullopt;
    }
    return v;
  }

  std::optional<bool> boolean(const YAML::Node& parent, const std::string& path, std::string_view key) {
    YAML::Node n = parent[std::string(key)];
    std::string p = join(path, key);
    if (!n.IsDefined() || n.IsNull()) return std::nullopt;
    if (n.IsScalar() && (n.Scalar() == "true" || n.Scalar() == "false")) return n.Scalar() == "true";
    error(n, p, fmt::format("{} is not true or false", quote(n.IsScalar() ? n.Scalar() : "?")));
    return std::nullopt;
  }

  std::optional<std::chrono::milliseconds> millis(const YAML::Node& parent, const std::string& path,
                                                  std::string_view key) {
    auto v = number<std::uint64_t>(parent, path, key, 0, 24ULL * 3600 * 1000);
    if (!v) return std::nullopt;
    return std::chrono::milliseconds{*v};
  }

  // A list; nullopt (after an error) when present but not a sequence.
  bool sequence(const YAML::Node& n, const std::string& path) {
    if (!n.IsSequence()) {
      error(n, path, "expected a list");
      return false;
    }
    remember(path, n);
    return true;
  }

  std::string resolve(const std::string& file) const {
    if (file.empty() || file[0] == '/' || base_dir_.empty()) return file;
    return base_dir_ + "/" + file;
  }

  const std::vector<std::string>& errors() const { return errors_; }
  // Upstream names seen, valid or not: a route to a broken upstream is not a second error.
  std::set<std::string> declared_upstreams;

 private:
  std::string filename_, base_dir_;
  std::vector<std::string> errors_;
  std::map<std::string, int> lines_;
};

bool valid_ip(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

std::optional<ListenAddress> parse_address(Parser& p, const YAML::Node& n, const std::string& path) {
  if (!p.check_map(n, path, {"address", "port"})) return std::nullopt;
  ListenAddress a;
  if (auto s = p.string(n, path, "address")) {
    if (!valid_ip(*s)) {
      p.error(n["address"], path + ".address", fmt::format("{} is not an IPv4 or IPv6 address", quote(*s)));
      return std::nullopt;
    }
    a.address = *s;
  }
  auto port = p.number<std::uint32_t>(n, path, "port", 0, 65535, true);
  if (!port) return std::nullopt;
  a.port = static_cast<std::uint16_t>(*port);
  return a;
}

void parse_server(Parser& p, const YAML::Node& n, ServerSettings& s) {
  const std::string path = "server";
  if (!p.check_map(n, path, {"max_header_bytes", "header_timeout_ms", "idle_timeout_ms", "drain_timeout_ms"})) return;
  if (auto v = p.number<std::size_t>(n, path, "max_header_bytes", 1024, 1024 * 1024)) s.max_header_bytes = *v;
  if (auto v = p.number<std::uint32_t>(n, path, "header_timeout_ms", 1, 3'600'000)) s.header_timeout_ms = *v;
  if (auto v = p.number<std::uint32_t>(n, path, "idle_timeout_ms", 1, 3'600'000)) s.idle_timeout_ms = *v;
  if (auto v = p.number<std::uint32_t>(n, path, "drain_timeout_ms", 0, 3'600'000)) s.drain_timeout_ms = *v;
}

void parse_cluster(Parser& p, const YAML::Node& n, const std::string& path, GatewayConfig& cfg) {
  if (!p.check_map(n, path, {"name", "kubeconfig", "context", "in_cluster"})) return;
  ClusterEntry c;
  c.line = Parser::line_of(n);
  auto name = p.string(n, path, "name", true);
  if (!name) return;
  if (auto why = check_dns1123_subdomain(*name); !why.empty()) {
    p.error(n["name"], path + ".name", why);
    return;
  }
  c.name = *name;
  if (auto v = p.string(n, path, "kubeconfig")) c.kubeconfig = p.resolve(*v);
  if (auto v = p.string(n, path, "context")) c.context = *v;
  if (auto v = p.boolean(n, path, "in_cluster")) c.in_cluster = *v;
  if (c.in_cluster && (!c.kubeconfig.empty() || !c.context.empty())) {
    p.error(n, path, "in_cluster: true cannot be combined with kubeconfig or context");
    return;
  }
  for (const auto& other : cfg.clusters) {
    if (other.name == c.name) {
      p.error(n["name"], path + ".name", fmt::format("{} is already defined on line {}", quote(c.name), other.line));
      return;
    }
  }
  cfg.clusters.push_back(std::move(c));
}

void parse_string_map(Parser& p, const YAML::Node& n, const std::string& path,
                      const std::function<void(const std::string&, const std::string&, const YAML::Node&)>& add) {
  if (!n.IsMap()) {
    p.error(n, path, "expected a mapping");
    return;
  }
  p.remember(path, n);
  for (auto it = n.begin(); it != n.end(); ++it) {
    std::string key = it->first.IsScalar() ? it->first.Scalar() : "";
    std::string kp = path + "." + key;
    p.remember(kp, it->second);
    if (!it->second.IsScalar()) {
      p.error(it->second, kp, "expected a string");
      continue;
    }
    add(key, it->second.Scalar(), it->second);
  }
}

std::optional<ServiceRef> parse_service(Parser& p, const YAML::Node& n, const std::string& path) {
  if (!p.check_map(n, path, {"cluster", "namespace", "service", "port", "weight", "node_labels"})) return std::nullopt;
  ServiceRef ref;
  auto cluster = p.string(n, path, "cluster", true);
  auto ns = p.string(n, path, "namespace");
  auto svc = p.string(n, path, "service", true);
  auto port = p.string(n, path, "port", true);
  bool ok = cluster && svc && port;
  ref.cluster = cluster.value_or("");
  ref.namespace_name = ns.value_or("default");
  ref.service = svc.value_or("");
  ref.port = PortRef::parse(port.value_or(""));
  if (auto w = p.number<std::uint32_t>(n, path, "weight", 0, kMaxServiceWeight)) {
    ref.weight = *w;
  } else if (n["weight"].IsDefined()) {
    ok = false;
  }
  if (n["node_labels"].IsDefined()) {
    parse_string_map(p, n["node_labels"], path + ".node_labels",
                     [&](const std::string& k, const std::string& v, const YAML::Node&) { ref.node_labels[k] = v; });
  }
  if (!ok) return std::nullopt;
  // The library's own checks: reasons start with the path we give.
  if (auto st = validate_service_ref(ref, "x"); !st) {
    std::string reason = st.error().reason;
    if (reason.rfind("x.", 0) == 0) reason = reason.substr(2);
    else if (reason.rfind("x", 0) == 0) reason = reason.substr(1);
    // validate_service_ref names the field as in ServiceRef; the YAML key for namespace_name
    // is "namespace" already in its messages.
    p.validator_error(path, reason);
    return std::nullopt;
  }
  return ref;
}

void parse_upstream(Parser& p, const YAML::Node& n, const std::string& path, GatewayConfig& cfg) {
  if (!p.check_map(n, path, {"name", "backend", "host", "policy", "hash_header", "weight_mode", "tags", "tls",
                             "timeouts", "retries", "outlier", "health_check", "slow_start_ms",
                             "panic_threshold_percent", "max_connections_per_pod", "max_idle_per_pod", "services"}))
    return;
  UpstreamEntry u;
  u.line = Parser::line_of(n);
  u.fingerprint = YAML::Dump(n);
  std::size_t errors_before = p.errors().size();
  auto& c = u.config;
  auto& o = u.options;
  if (auto v = p.string(n, path, "name", true)) {
    c.name = *v;
    p.declared_upstreams.insert(c.name);
  }
  if (auto v = p.string(n, path, "backend")) {
    if (auto s = parse_scheme(lower(*v))) c.scheme = *s;
    else p.error(n["backend"], path + ".backend", fmt::format("{} is not HTTP or HTTPS", quote(*v)));
  }
  if (auto v = p.string(n, path, "host")) {
    if (auto why = check_host_header(*v); !why.empty()) p.error(n["host"], path + ".host", why);
    else c.host_header = *v;
  }
  if (auto v = p.string(n, path, "policy")) {
    if (auto s = parse_balancer_policy(*v)) c.policy = *s;
    else
      p.error(n["policy"], path + ".policy",
              fmt::format("{} is not weighted_round_robin, least_request, consistent_hash or random", quote(*v)));
  }
  if (auto v = p.string(n, path, "hash_header")) u.hash_header = *v;
  if (c.policy == BalancerPolicy::consistent_hash && u.hash_header.empty())
    p.error(n, path + ".hash_header", "is required with policy consistent_hash");
  if (auto v = p.string(n, path, "weight_mode")) {
    if (auto s = parse_weight_mode(*v)) c.weight_mode = *s;
    else p.error(n["weight_mode"], path + ".weight_mode", fmt::format("{} is not per_pod or per_service", quote(*v)));
  }
  if (n["tags"].IsDefined()) {
    parse_string_map(p, n["tags"], path + ".tags",
                     [&](const std::string& k, const std::string& v, const YAML::Node&) { c.tags.emplace_back(k, v); });
  }
  if (YAML::Node t = n["tls"]; t.IsDefined()) {
    std::string tp = path + ".tls";
    if (p.check_map(t, tp, {"ca_file", "insecure_skip_verify", "server_name"})) {
      if (auto v = p.string(t, tp, "ca_file")) o.tls.ca_file = p.resolve(*v);
      if (auto v = p.boolean(t, tp, "insecure_skip_verify")) o.tls.insecure_skip_verify = *v;
      if (auto v = p.string(t, tp, "server_name")) o.tls.server_name = *v;
      if (o.tls.insecure_skip_verify && !o.tls.ca_file.empty())
        p.error(t, tp, "ca_file and insecure_skip_verify: true contradict each other");
    }
  }
  if (YAML::Node t = n["timeouts"]; t.IsDefined()) {
    std::string tp = path + ".timeouts";
    if (p.check_map(t, tp, {"connect_ms", "response_header_ms", "total_ms", "idle_connection_ms"})) {
      if (auto v = p.millis(t, tp, "connect_ms")) o.timeouts.connect = *v;
      if (auto v = p.millis(t, tp, "response_header_ms")) o.timeouts.response_header = *v;
      if (auto v = p.millis(t, tp, "total_ms")) o.timeouts.total = *v;
      if (auto v = p.millis(t, tp, "idle_connection_ms")) o.timeouts.idle_connection = *v;
    }
  }
  if (YAML::Node t = n["retries"]; t.IsDefined()) {
    std::string tp = path + ".retries";
    if (p.check_map(t, tp, {"max", "on_status", "on_connect_failure", "budget_ratio", "min_concurrent"})) {
      if (auto v = p.number<std::uint32_t>(t, tp, "max", 0, 10)) o.retries.max_retries = *v;
      if (auto v = p.boolean(t, tp, "on_connect_failure")) o.retries.on_connect_failure = *v;
      if (auto v = p.number<std::uint32_t>(t, tp, "min_concurrent", 0, 1'000'000)) o.retries.min_concurrent = *v;
      if (auto v = p.number<std::uint32_t>(t, tp, "budget_ratio", 0, 100)) o.retries.budget_ratio = *v / 100.0;
      if (YAML::Node s = t["on_status"]; s.IsDefined() && p.sequence(s, tp + ".on_status")) {
        o.retries.on_status.clear();
        for (std::size_t i = 0; i < s.size(); ++i) {
          if (auto v = p.number_value<int>(s[i], fmt::format("{}.on_status[{}]", tp, i), 100, 599))
            o.retries.on_status.push_back(*v);
        }
      }
    }
  }
  if (YAML::Node t = n["outlier"]; t.IsDefined()) {
    std::string tp = path + ".outlier";
    if (p.check_map(t, tp, {"consecutive_failures", "base_ejection_ms", "max_ejection_ms", "max_ejected_percent"})) {
      if (auto v = p.number<std::uint32_t>(t, tp, "consecutive_failures", 0, 1'000'000)) o.outlier.consecutive_failures = *v;
      if (auto v = p.millis(t, tp, "base_ejection_ms")) o.outlier.base_ejection = *v;
      if (auto v = p.millis(t, tp, "max_ejection_ms")) o.outlier.max_ejection = *v;
      if (auto v = p.number<std::uint32_t>(t, tp, "max_ejected_percent", 0, 100)) o.outlier.max_ejected_percent = *v;
    }
  }
  if (YAML::Node t = n["health_check"]; t.IsDefined()) {
    std::string tp = path + ".health_check";
    if (p.check_map(t, tp, {"enabled", "path", "interval_ms", "timeout_ms", "unhealthy_threshold", "healthy_threshold"})) {
      o.health_check.enabled = true;
      if (auto v = p.boolean(t, tp, "enabled")) o.health_check.enabled = *v;
      if (auto v = p.string(t, tp, "path")) {
        if (v->empty() || (*v)[0] != '/' || v->find_first_of(" \r\n") != std::string::npos)
          p.error(t["path"], tp + ".path", fmt::format("{} is not an absolute path", quote(*v)));
        else o.health_check.path = *v;
      }
      if (auto v = p.millis(t, tp, "interval_ms")) o.health_check.interval = *v;
      if (auto v = p.millis(t, tp, "timeout_ms")) o.health_check.timeout = *v;
      if (auto v = p.number<std::uint32_t>(t, tp, "unhealthy_threshold", 1, 100)) o.health_check.unhealthy_threshold = *v;
      if (auto v = p.number<std::uint32_t>(t, tp, "healthy_threshold", 1, 100)) o.health_check.healthy_threshold = *v;
    }
  }
  if (auto v = p.millis(n, path, "slow_start_ms")) o.slow_start = *v;
  if (auto v = p.number<std::uint32_t>(n, path, "panic_threshold_percent", 0, 100)) o.panic_threshold_percent = *v;
  if (auto v = p.number<std::size_t>(n, path, "max_connections_per_pod", 1, 100'000)) o.max_connections_per_pod = *v;
  if (auto v = p.number<std::size_t>(n, path, "max_idle_per_pod", 0, 100'000)) o.max_idle_per_pod = *v;

  YAML::Node services = n["services"];
  if (!services.IsDefined()) {
    p.error(n, path + ".services", "is required");
  } else if (p.sequence(services, path + ".services")) {
    for (std::size_t i = 0; i < services.size(); ++i) {
      std::string sp = fmt::format("{}.services[{}]", path, i);
      if (auto ref = parse_service(p, services[i], sp)) {
        bool known = std::any_of(cfg.clusters.begin(), cfg.clusters.end(),
                                 [&](const ClusterEntry& e) { return e.name == ref->cluster; });
        if (!known) p.error(services[i]["cluster"], sp + ".cluster", fmt::format("{} is not in clusters", quote(ref->cluster)));
        c.services.push_back(std::move(*ref));
      }
    }
  }
  if (p.errors().size() != errors_before) return;
  // Whole-upstream checks (name syntax, count, duplicates, host header...).
  if (auto st = validate_upstream_config(c); !st) {
    std::string reason = st.error().reason;
    // `upstream "name": services[3].namespace: ...` → drop the upstream's name.
    if (reason.rfind("upstream ", 0) == 0) {
      auto colon = reason.find("\": ");
      if (colon != std::string::npos) reason = reason.substr(colon + 3);
    }
    p.validator_error(path, reason);
    return;
  }
  for (const auto& other : cfg.upstreams) {
    if (other.config.name == c.name) {
      p.error(n["name"], path + ".name", fmt::format("{} is already defined on line {}", quote(c.name), other.line));
      return;
    }
  }
  cfg.upstreams.push_back(std::move(u));
}

void parse_route(Parser& p, const YAML::Node& n, const std::string& path, GatewayConfig& cfg) {
  if (!p.check_map(n, path, {"host", "path_prefix", "upstream"})) return;
  RouteEntry r;
  if (auto v = p.string(n, path, "host")) {
    std::string h = lower(*v);
    if (h != "*") {
      if (auto why = check_host_header(h); !why.empty() || h.find(':') != std::string::npos) {
        p.error(n["host"], path + ".host", why.empty() ? fmt::format("{} must not carry a port", quote(*v)) : why);
        return;
      }
    }
    r.host = h;
  }
  if (auto v = p.string(n, path, "path_prefix")) {
    if (v->empty() || (*v)[0] != '/') {
      p.error(n["path_prefix"], path + ".path_prefix", fmt::format("{} does not start with /", quote(*v)));
      return;
    }
    r.path_prefix = *v;
  }
  auto up = p.string(n, path, "upstream", true);
  if (!up) return;
  r.upstream = *up;
  if (p.declared_upstreams.count(r.upstream) == 0) {
    p.error(n["upstream"], path + ".upstream", fmt::format("{} is not a defined upstream", quote(r.upstream)));
    return;
  }
  for (const auto& other : cfg.routes) {
    if (other.host == r.host && other.path_prefix == r.path_prefix) {
      p.error(n, path, fmt::format("host {} path_prefix {} is routed twice", quote(r.host), quote(r.path_prefix)));
      return;
    }
  }
  cfg.routes.push_back(std::move(r));
}

}  // namespace

Result<GatewayConfig> parse_config(std::string_view text, std::string_view filename, std::string_view base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return Error{Errc::invalid_config, fmt::format("{}:{}: {}", filename, e.mark.line + 1, e.msg)};
  }
  Parser p(filename, base_dir);
  GatewayConfig cfg;
  cfg.source = std::string(filename);
  if (!root.IsMap()) {
    return Error{Errc::invalid_config, fmt::format("{}:1: the file must be a mapping with listeners, upstreams and routes", filename)};
  }
  p.check_map(root, "", {"listeners", "admin", "server", "clusters", "upstreams", "routes"});

  if (YAML::Node l = root["listeners"]; !l.IsDefined()) {
    p.error_at(1, "listeners", "is required");
  } else if (p.sequence(l, "listeners")) {
    if (l.size() == 0) p.error(l, "listeners", "needs at least one listener");
    for (std::size_t i = 0; i < l.size(); ++i) {
      if (auto a = parse_address(p, l[i], fmt::format("listeners[{}]", i))) cfg.listeners.push_back(*a);
    }
  }
  if (YAML::Node a = root["admin"]; a.IsDefined() && !a.IsNull()) cfg.admin = parse_address(p, a, "admin");
  if (YAML::Node s = root["server"]; s.IsDefined()) parse_server(p, s, cfg.server);

  if (YAML::Node c = root["clusters"]; !c.IsDefined()) {
    p.error_at(1, "clusters", "is required");
  } else if (p.sequence(c, "clusters")) {
    for (std::size_t i = 0; i < c.size(); ++i) parse_cluster(p, c[i], fmt::format("clusters[{}]", i), cfg);
  }
  if (YAML::Node u = root["upstreams"]; !u.IsDefined()) {
    p.error_at(1, "upstreams", "is required");
  } else if (p.sequence(u, "upstreams")) {
    for (std::size_t i = 0; i < u.size(); ++i) parse_upstream(p, u[i], fmt::format("upstreams[{}]", i), cfg);
  }
  if (YAML::Node r = root["routes"]; !r.IsDefined()) {
    p.error_at(1, "routes", "is required");
  } else if (p.sequence(r, "routes")) {
    for (std::size_t i = 0; i < r.size(); ++i) parse_route(p, r[i], fmt::format("routes[{}]", i), cfg);
  }
  if (!p.errors().empty()) {
    std::string all;
    for (const auto& e : p.errors()) all += (all.empty() ? "" : "\n") + e;
    return Error{Errc::invalid_config, std::move(all)};
  }
  return cfg;
}

Result<GatewayConfig> load_config_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{Errc::io_error, fmt::format("{}: cannot be read", path)};
  std::stringstream ss;
  ss << in.rdbuf();
  std::string dir = ".";
  if (auto slash = path.rfind('/'); slash != std::string::npos) dir = slash == 0 ? "/" : path.substr(0, slash);
  return parse_config(ss.str(), path, dir);
}

}  // namespace kupgw
