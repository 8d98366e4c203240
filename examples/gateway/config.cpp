#include "config.h"

#include "kupstream/upstream_document.h"

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

// Walks the YAML tree of the sections the gateway reads itself (listeners, admin, server,
// clusters, routes) and collects every problem as "file:line: path: problem".
class Parser {
 public:
  Parser(std::string_view filename, std::string_view base_dir) : filename_(filename), base_dir_(base_dir) {}

  void error_at(int line, const std::string& path, const std::string& problem) {
    errors_.push_back(fmt::format("{}:{}: {}: {}", filename_, line, printable(path), printable(problem)));
  }
  void error(const YAML::Node& node, const std::string& path, const std::string& problem) {
    error_at(line_of(node), path, problem);
  }
  // Problems the library already located (one per line).
  void add_errors(const std::string& lines) {
    std::istringstream in(lines);
    for (std::string line; std::getline(in, line);) errors_.push_back(line);
  }
  static int line_of(const YAML::Node& node) { return node.IsDefined() ? node.Mark().line + 1 : 0; }

  // Reports keys of `node` that are not in `allowed`. False when `node` is not a map.
  bool check_map(const YAML::Node& node, const std::string& path, std::initializer_list<std::string_view> allowed) {
    if (!node.IsMap()) {
      error(node, path, "expected a mapping");
      return false;
    }
    for (auto it = node.begin(); it != node.end(); ++it) {
      std::string key = it->first.IsScalar() ? it->first.Scalar() : "?";
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        std::string known;
        for (auto k : allowed) known += (known.empty() ? "" : ", ") + std::string(k);
        error(it->first, path.empty() ? key : path + "." + key, fmt::format("unknown key {} (known: {})", quote(key), known));
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
    T v{};
    const std::string s = n.IsScalar() ? n.Scalar() : "";
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (!n.IsScalar() || ec != std::errc{} || end != s.data() + s.size()) {
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
    if (!n.IsDefined() || n.IsNull()) return std::nullopt;
    if (n.IsScalar() && (n.Scalar() == "true" || n.Scalar() == "false")) return n.Scalar() == "true";
    error(n, join(path, key), fmt::format("{} is not true or false", quote(n.IsScalar() ? n.Scalar() : "?")));
    return std::nullopt;
  }

  // False (after an error) when present but not a sequence.
  bool sequence(const YAML::Node& n, const std::string& path) {
    if (!n.IsSequence()) {
      error(n, path, "expected a list");
      return false;
    }
    return true;
  }

  std::string resolve(const std::string& file) const {
    if (file.empty() || file[0] == '/' || base_dir_.empty()) return file;
    return base_dir_ + "/" + file;
  }

  const std::string& filename() const { return filename_; }
  const std::string& base_dir() const { return base_dir_; }
  const std::vector<std::string>& errors() const { return errors_; }
  // Upstream names seen, valid or not: a route to a broken upstream is not a second error.
  std::set<std::string> declared_upstreams;

 private:
  std::string filename_, base_dir_;
  std::vector<std::string> errors_;
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
  if (!p.check_map(n, path, {"max_header_bytes", "max_body_bytes", "header_timeout_ms", "idle_timeout_ms", "drain_timeout_ms",
                                "workers", "heap_trim_mib"}))
    return;
  if (auto v = p.number<std::size_t>(n, path, "max_header_bytes", 1024, 1024 * 1024)) s.max_header_bytes = *v;
  if (auto v = p.number<std::uint64_t>(n, path, "max_body_bytes", 0, std::uint64_t{1} << 50)) s.max_body_bytes = *v;
  if (auto v = p.number<std::uint32_t>(n, path, "header_timeout_ms", 1, 3'600'000)) s.header_timeout_ms = *v;
  if (auto v = p.number<std::uint32_t>(n, path, "idle_timeout_ms", 1, 3'600'000)) s.idle_timeout_ms = *v;
  if (auto v = p.number<std::uint32_t>(n, path, "drain_timeout_ms", 0, 3'600'000)) s.drain_timeout_ms = *v;
  if (auto v = p.number<std::uint32_t>(n, path, "workers", 1, ServerSettings::max_workers)) s.workers = *v;
  if (auto v = p.number<std::uint32_t>(n, path, "heap_trim_mib", 0, 65'536)) s.heap_trim_mib = *v;
}

void parse_cluster(Parser& p, const YAML::Node& n, const std::string& path, GatewayConfig& cfg) {
  if (!p.check_map(n, path, {"name", "kubeconfig", "context", "in_cluster", "slice_watch"})) return;
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
  if (auto v = p.string(n, path, "slice_watch")) {
    if (*v == "per_namespace") {
      c.slice_watch = SliceWatchMode::per_namespace;
    } else if (*v == "per_service") {
      c.slice_watch = SliceWatchMode::per_service;
    } else {
      p.error(n["slice_watch"], path + ".slice_watch",
              fmt::format("{} is not per_namespace or per_service", quote(*v)));
      return;
    }
  }
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

// An upstream is read by the library (kupstream/upstream_document.h) from the file's text, so
// kup-gateway, the C ABI and the Node.js addon share one format and one set of messages; the
// gateway adds what only it knows: the declared clusters and the other upstreams' names.
void parse_upstream(Parser& p, std::string_view text, const YAML::Node& n, const std::string& path,
                    GatewayConfig& cfg) {
  // (yaml-cpp throws when a missing key or a non-mapping is asked more than IsDefined(); the
  // library reports those shapes.)
  if (n.IsMap())
    if (YAML::Node name = n["name"]; name.IsDefined() && name.IsScalar()) p.declared_upstreams.insert(name.Scalar());
  UpstreamDocumentOptions opts;
  opts.source = p.filename();
  opts.root = path;
  opts.base_dir = p.base_dir();
  auto doc = parse_upstream_document(text, opts);
  if (!doc) {
    p.add_errors(doc.error().reason);
    return;
  }
  UpstreamEntry u;
  u.line = Parser::line_of(n);
  u.fingerprint = YAML::Dump(n);
  u.config = std::move(doc->config);
  u.options = std::move(doc->options);
  u.hash_header = std::move(doc->hash_header);
  for (std::size_t i = 0; i < u.config.services.size(); ++i) {
    const std::string& cluster = u.config.services[i].cluster;
    bool known = std::any_of(cfg.clusters.begin(), cfg.clusters.end(),
                             [&](const ClusterEntry& e) { return e.name == cluster; });
    if (!known)
      p.error(n["services"][i]["cluster"], fmt::format("{}.services[{}].cluster", path, i),
              fmt::format("{} is not in clusters", quote(cluster)));
  }
  for (const auto& other : cfg.upstreams) {
    if (other.config.name == u.config.name) {
      p.error(n["name"], path + ".name", fmt::format("{} is already defined on line {}", quote(u.config.name), other.line));
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
    for (std::size_t i = 0; i < u.size(); ++i) parse_upstream(p, text, u[i], fmt::format("upstreams[{}]", i), cfg);
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
