// load_kubeconfig(): kubeconfig files (yaml-cpp) into a ClusterConfig, merged as kubectl does.
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <map>
#include <set>

#include "kube/base64.h"
#include "kube/file_util.h"
#include "kupstream/cluster.h"

namespace kupstream {

namespace {

using kube::base64_decode;
using kube::resolve_path;

// A named entry (clusters[], users[], contexts[]) with the file that defined it.
struct Entry {
  std::string file;
  std::string dir;  // absolute directory of `file`
  YAML::Node body;  // the inner "cluster"/"user"/"context" map
};

struct Merged {
  std::map<std::string, Entry> clusters, users, contexts;
  std::string current_context;
  std::string current_context_file;
  std::vector<std::string> files;
};

void warn(const LogFn& log, const std::string& msg) {
  if (log) log(LogLevel::warning, msg);
}

std::string absolute_dir(const std::string& file) {
  std::string dir = kube::dir_of(file);
  if (!dir.empty() && dir[0] == '/') return dir;
  char buf[4096];
  if (::getcwd(buf, sizeof buf) == nullptr) return dir;
  return dir == "." ? std::string(buf) : std::string(buf) + "/" + dir;
}

// Reads one file's named lists into `m`, keeping entries already present (first file wins).
Status merge_file(const std::string& path, Merged& m, const LogFn& log) {
  auto text = kube::read_whole_file(path);
  if (!text) return Error{Errc::io_error, "kubeconfig " + text.error().reason};
  YAML::Node root;
  try {
    root = YAML::Load(*text);
  } catch (const YAML::Exception& e) {
    return Error{Errc::invalid_config, "kubeconfig " + path + ": not valid YAML: " + e.what()};
  }
  if (root.IsNull()) return {};  // an empty file contributes nothing, as in kubectl
  if (!root.IsMap()) return Error{Errc::invalid_config, "kubeconfig " + path + ": the document is not a map"};
  std::string dir = absolute_dir(path);
  static const std::pair<const char*, const char*> kLists[] = {
      {"clusters", "cluster"}, {"users", "user"}, {"contexts", "context"}};
  for (auto [list, inner] : kLists) {
    const YAML::Node items = root[list];
    if (!items || items.IsNull()) continue;
    if (!items.IsSequence())
      return Error{Errc::invalid_config, "kubeconfig " + path + ": " + list + " is not a list"};
    auto& target = list[0] == 'c' ? (list[1] == 'l' ? m.clusters : m.contexts) : m.users;
    std::size_t i = 0;
    for (const YAML::Node& item : items) {
      std::string where = "kubeconfig " + path + ": " + list + "[" + std::to_string(i++) + "]";
      if (!item.IsMap()) return Error{Errc::invalid_config, where + " is not a map"};
      const YAML::Node name = item["name"];
      if (!name || !name.IsScalar() || name.Scalar().empty())
        return Error{Errc::invalid_config, where + ".name is missing"};
      const YAML::Node body = item[inner];
      if (body && !body.IsNull() && !body.IsMap())
        return Error{Errc::invalid_config, where + "." + inner + " is not a map"};
      if (target.count(name.Scalar())) {
        if (target[name.Scalar()].file == path)
          warn(log, where + ": duplicate " + inner + " \"" + name.Scalar() + "\", the first one is used");
        continue;
      }
      target.emplace(name.Scalar(), Entry{path, dir, body ? body : YAML::Node(YAML::NodeType::Map)});
    }
  }
  const YAML::Node cc = root["current-context"];
  if (m.current_context.empty() && cc && cc.IsScalar() && !cc.Scalar().empty()) {
    m.current_context = cc.Scalar();
    m.current_context_file = path;
  }
  return {};
}

// Field access with errors that name the entry and field.
struct Reader {
  const Entry& entry;
  std::string what;  // `kubeconfig FILE: user "alice"`

  Error bad(const std::string& field, const std::string& problem) const {
    return Error{Errc::invalid_config, what + ": " + field + " " + problem};
  }

  Status string(const char* field, std::string& out) const {
    const YAML::Node n = entry.body[field];
    if (!n || n.IsNull()) return {};
    if (!n.IsScalar()) return bad(field, "is not a string");
    out = n.Scalar();
    return {};
  }

  Status boolean(const char* field, bool& out) const {
    const YAML::Node n = entry.body[field];
    if (!n || n.IsNull()) return {};
    bool v = false;
    if (!n.IsScalar() || !YAML::convert<bool>::decode(n, v)) return bad(field, "is not a boolean");
    out = v;
    return {};
  }

  Status path(const char* field, std::string& out) const {
    if (auto s = string(field, out); !s) return s;
    out = resolve_path(entry.dir, out);
    return {};
  }

  Status data(const char* field, std::string& out) const {
    std::string b64;
    if (auto s = string(field, b64); !s) return s;
    if (b64.empty()) return {};
    auto d = base64_decode(b64);
    if (!d) return bad(field, "is not valid base64");
    out = std::move(*d);
    return {};
  }
};

#define KUP_TRY(expr)          \
  do {                         \
    if (auto s_ = (expr); !s_) \
      return std::move(s_).error(); \
  } while (0)

// Rejects fields whose meaning kupstream does not implement, warns about ignored ones.
Status check_keys(const Reader& r, const std::set<std::string>& known, const std::map<std::string, std::string>& unsupported,
                  const std::set<std::string>& ignored_warn, const LogFn& log) {
  for (const auto& kv : r.entry.body) {
    std::string key = kv.first.Scalar();
    if (auto it = unsupported.find(key); it != unsupported.end())
      return Error{Errc::unsupported, r.what + ": " + key + " is not supported (" + it->second + ")"};
    if (ignored_warn.count(key)) {
      warn(log, r.what + ": " + key + " is ignored");
      continue;
    }
    if (!known.count(key) && key != "extensions") warn(log, r.what + ": unknown field " + key + " is ignored");
  }
  return {};
}

Status read_cluster(const Reader& r, ClusterConfig& c, const LogFn& log) {
  static const std::set<std::string> kKnown = {"server", "certificate-authority", "certificate-authority-data",
                                               "tls-server-name", "insecure-skip-tls-verify"};
  static const std::map<std::string, std::string> kUnsupported = {
      {"proxy-url", "kupstream connects to the API server directly"}};
  static const std::set<std::string> kIgnored = {"disable-compression"};
  KUP_TRY(check_keys(r, kKnown, kUnsupported, kIgnored, log));
  KUP_TRY(r.string("server", c.server));
  if (c.server.empty()) return r.bad("server", "is missing");
  KUP_TRY(r.path("certificate-authority", c.certificate_authority_file));
  KUP_TRY(r.data("certificate-authority-data", c.certificate_authority_data));
  KUP_TRY(r.string("tls-server-name", c.tls_server_name));
  KUP_TRY(r.boolean("insecure-skip-tls-verify", c.insecure_skip_tls_verify));
  return {};
}

Status read_exec(const Reader& user, ExecConfig& e) {
  const YAML::Node n = user.entry.body["exec"];
  if (!n.IsMap()) return user.bad("exec", "is not a map");
  Entry sub{user.entry.file, user.entry.dir, n};
  Reader r{sub, user.what};
  auto field = [](const char* f) { return std::string("exec.") + f; };
  auto str = [&](const char* f, std::string& out) -> Status {
    const YAML::Node v = n[f];
    if (!v || v.IsNull()) return {};
    if (!v.IsScalar()) return user.bad(field(f), "is not a string");
    out = v.Scalar();
    return {};
  };
  KUP_TRY(str("command", e.command));
  if (e.command.empty()) return user.bad("exec.command", "is missing");
  // As client-go: a command with a '/' is a path relative to the kubeconfig, else a PATH name.
  if (e.command.find('/') != std::string::npos) e.command = resolve_path(user.entry.dir, e.command);
  KUP_TRY(str("apiVersion", e.api_version));
  if (e.api_version.empty()) return user.bad("exec.apiVersion", "is missing");
  if (e.api_version != "client.authentication.k8s.io/v1" && e.api_version != "client.authentication.k8s.io/v1beta1")
    return Error{Errc::unsupported, user.what + ": exec.apiVersion \"" + e.api_version +
                                        "\" is not supported (use client.authentication.k8s.io/v1 or v1beta1)"};
  KUP_TRY(str("installHint", e.install_hint));
  if (const YAML::Node a = n["args"]; a && !a.IsNull()) {
    if (!a.IsSequence()) return user.bad("exec.args", "is not a list");
    for (const auto& x : a) {
      if (!x.IsScalar()) return user.bad("exec.args", "has an entry that is not a string");
      e.args.push_back(x.Scalar());
    }
  }
  if (const YAML::Node env = n["env"]; env && !env.IsNull()) {
    if (!env.IsSequence()) return user.bad("exec.env", "is not a list");
    std::size_t i = 0;
    for (const auto& x : env) {
      std::string f = "exec.env[" + std::to_string(i++) + "]";
      if (!x.IsMap() || !x["name"] || !x["name"].IsScalar() || x["name"].Scalar().empty())
        return user.bad(f + ".name", "is missing");
      const YAML::Node v = x["value"];
      if (v && !v.IsNull() && !v.IsScalar()) return user.bad(f + ".value", "is not a string");
      e.env.push_back({x["name"].Scalar(), v && v.IsScalar() ? v.Scalar() : ""});
    }
  }
  bool provide = false;
  if (const YAML::Node p = n["provideClusterInfo"]; p && !p.IsNull()) {
    if (!p.IsScalar() || !YAML::convert<bool>::decode(p, provide)) return user.bad("exec.provideClusterInfo", "is not a boolean");
  }
  e.provide_cluster_info = provide;
  std::string mode;
  KUP_TRY(str("interactiveMode", mode));
  if (mode.empty()) {
    if (e.api_version == "client.authentication.k8s.io/v1")
      return user.bad("exec.interactiveMode", "is missing (required by client.authentication.k8s.io/v1)");
    e.interactive_mode = ExecInteractiveMode::if_available;
  } else if (mode == "Never") {
    e.interactive_mode = ExecInteractiveMode::never;
  } else if (mode == "IfAvailable") {
    e.interactive_mode = ExecInteractiveMode::if_available;
  } else if (mode == "Always") {
    return Error{Errc::unsupported, user.what + ": exec.interactiveMode Always is not supported "
                                                "(kupstream runs plugins without a terminal)"};
  } else {
    return user.bad("exec.interactiveMode", "\"" + mode + "\" is not Never, IfAvailable or Always");
  }
  return {};
}

Status read_user(const Reader& r, ClusterCredentials& c, const LogFn& log) {
  static const std::set<std::string> kKnown = {"token", "tokenFile", "client-certificate", "client-certificate-data",
                                               "client-key", "client-key-data", "exec"};
  static const std::map<std::string, std::string> kUnsupported = {
      {"auth-provider", "use an exec credential plugin instead"},
      {"username", "basic authentication; use a token, a client certificate or an exec plugin"},
      {"password", "basic authentication; use a token, a client certificate or an exec plugin"},
      {"as", "impersonation"},
      {"as-uid", "impersonation"},
      {"as-groups", "impersonation"},
      {"as-user-extra", "impersonation"}};
  KUP_TRY(check_keys(r, kKnown, kUnsupported, {}, log));
  KUP_TRY(r.string("token", c.token));
  KUP_TRY(r.path("tokenFile", c.token_file));
  KUP_TRY(r.path("client-certificate", c.client_certificate_file));
  KUP_TRY(r.data("client-certificate-data", c.client_certificate_data));
  KUP_TRY(r.path("client-key", c.client_key_file));
  KUP_TRY(r.data("client-key-data", c.client_key_data));
  if (const YAML::Node e = r.entry.body["exec"]; e && !e.IsNull()) {
    c.exec.emplace();
    KUP_TRY(read_exec(r, *c.exec));
  }
  if (!c.token.empty() && !c.token_file.empty())
    warn(log, r.what + ": both token and tokenFile are set; tokenFile is used");
  return {};
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::size_t from = 0;
  while (from <= s.size()) {
    std::size_t colon = s.find(':', from);
    if (colon == std::string::npos) colon = s.size();
    if (colon > from) out.push_back(s.substr(from, colon - from));
    from = colon + 1;
  }
  return out;
}

Result<ClusterConfig> load(const KubeconfigOptions& o) {
  std::vector<std::string> files;
  bool must_exist = true;
  if (!o.paths.empty()) {
    files = o.paths;
  } else {
    std::string env;
    if (o.kubeconfig_env) env = *o.kubeconfig_env;
    else if (const char* e = std::getenv("KUBECONFIG")) env = e;
    if (!env.empty()) {
      files = split_list(env);
      must_exist = false;
    } else {
      const char* home = std::getenv("HOME");
      if (!home || !*home) return Error{Errc::invalid_config, "kubeconfig: no path given, KUBECONFIG and HOME are not set"};
      files.push_back(std::string(home) + "/.kube/config");
    }
  }
  Merged m;
  std::set<std::string> seen;
  for (const auto& f : files) {
    if (!seen.insert(f).second) continue;  // kubectl reads a repeated file once
    if (!must_exist && !kube::file_exists(f)) continue;
    KUP_TRY(merge_file(f, m, o.log));
    m.files.push_back(f);
  }
  std::string all_files;
  for (const auto& f : m.files) all_files += (all_files.empty() ? "" : ":") + f;
  if (m.files.empty())
    return Error{Errc::invalid_config, "kubeconfig: none of the KUBECONFIG files exist (" + (o.kubeconfig_env ? *o.kubeconfig_env : std::string(std::getenv("KUBECONFIG") ? std::getenv("KUBECONFIG") : "")) + ")"};

  std::string ctx_name = o.context.empty() ? m.current_context : o.context;
  if (ctx_name.empty())
    return Error{Errc::invalid_config, "kubeconfig " + all_files + ": no context given and current-context is not set"};
  auto ctx = m.contexts.find(ctx_name);
  if (ctx == m.contexts.end())
    return Error{Errc::invalid_config, "kubeconfig " + all_files + ": context \"" + ctx_name + "\" is not defined"};
  Reader cr{ctx->second, "kubeconfig " + ctx->second.file + ": context \"" + ctx_name + "\""};
  std::string cluster_name, user_name, ns;
  KUP_TRY(cr.string("cluster", cluster_name));
  KUP_TRY(cr.string("user", user_name));
  KUP_TRY(cr.string("namespace", ns));
  if (cluster_name.empty()) return cr.bad("cluster", "is missing");

  ClusterConfig cfg;
  cfg.name = ctx_name;
  if (!ns.empty()) cfg.default_namespace = ns;
  auto cl = m.clusters.find(cluster_name);
  if (cl == m.clusters.end())
    return Error{Errc::invalid_config, cr.what + ": cluster \"" + cluster_name + "\" is not defined in " + all_files};
  KUP_TRY(read_cluster(Reader{cl->second, "kubeconfig " + cl->second.file + ": cluster \"" + cluster_name + "\""}, cfg,
                       o.log));
  if (!user_name.empty()) {
    auto us = m.users.find(user_name);
    if (us == m.users.end())
      return Error{Errc::invalid_config, cr.what + ": user \"" + user_name + "\" is not defined in " + all_files};
    KUP_TRY(read_user(Reader{us->second, "kubeconfig " + us->second.file + ": user \"" + user_name + "\""},
                      cfg.credentials, o.log));
  }
  if (auto s = validate_cluster_config(cfg); !s)
    return Error{s.error().code, "kubeconfig " + all_files + ": context \"" + ctx_name + "\": " + s.error().reason};
  return cfg;
}

}  // namespace

Result<ClusterConfig> load_kubeconfig(const KubeconfigOptions& options) {
  try {
    return load(options);
  } catch (const std::exception& e) {
    // yaml-cpp throws on conversions we did not guard; never let it cross the API.
    return Error{Errc::invalid_config, std::string("kubeconfig: ") + e.what()};
  }
}

}  // namespace kupstream
