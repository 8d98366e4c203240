#include "discovery/access_preflight.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <map>

namespace kupstream::detail {
namespace {

constexpr std::string_view kReviewPath = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";

std::string json_quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;  // names never hold control characters
    out += c;
  }
  return out + "\"";
}

std::string review_body(const AccessCheck& c) {
  std::string attrs = fmt::format("\"verb\":{},\"group\":{},\"resource\":{}", json_quote(c.verb), json_quote(c.group),
                                  json_quote(c.resource));
  if (!c.namespace_name.empty()) attrs += fmt::format(",\"namespace\":{}", json_quote(c.namespace_name));
  return fmt::format(R"({{"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectAccessReview","spec":{{"resourceAttributes":{{{}}}}}}})",
                     attrs);
}

std::string quoted_list(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += fmt::format("{}\"{}\"", out.empty() ? "" : ", ", i);
  return "[" + out + "]";
}

}  // namespace

std::vector<AccessCheck> service_access_checks(const std::string& ns) {
  return {{"list", "discovery.k8s.io", "endpointslices", ns},
          {"watch", "discovery.k8s.io", "endpointslices", ns},
          {"get", "", "services", ns},
          {"list", "", "services", ns},
          {"watch", "", "services", ns}};
}

std::vector<AccessCheck> node_access_checks() { return {{"list", "", "nodes", ""}, {"watch", "", "nodes", ""}}; }

std::string rbac_rule(const std::vector<AccessCheck>& denied) {
  if (denied.empty()) return "";
  std::vector<std::string> verbs;
  for (const auto& d : denied) verbs.push_back(d.verb);
  return fmt::format("{{apiGroups: [\"{}\"], resources: [\"{}\"], verbs: {}}}", denied.front().group,
                     denied.front().resource, quoted_list(verbs));
}

std::string denial_reason(const std::string& cluster, const std::vector<AccessCheck>& denied) {
  // Group by resource so that each gets one sentence and one rule.
  std::map<std::pair<std::string, std::string>, std::vector<AccessCheck>> by_resource;
  for (const auto& d : denied) by_resource[{d.resource, d.namespace_name}].push_back(d);
  std::string out = fmt::format("cluster \"{}\": RBAC preflight (SelfSubjectAccessReview):", cluster);
  bool first = true;
  for (const auto& [key, checks] : by_resource) {
    std::vector<std::string> verbs;
    for (const auto& c : checks) verbs.push_back(c.verb);
    std::string verb_text;
    for (std::size_t i = 0; i < verbs.size(); ++i)
      verb_text += (i == 0 ? "" : i + 1 == verbs.size() ? " and " : ", ") + verbs[i];
    const auto& c = checks.front();
    const std::string group = c.group.empty() ? "core API group" : fmt::format("apiGroup {}", c.group);
    if (c.namespace_name.empty())
      out += fmt::format("{} may not {} {} ({}) at the cluster scope; add the rule {} to a ClusterRole bound to this user",
                         first ? "" : ";", verb_text, c.resource, group, rbac_rule(checks));
    else
      out += fmt::format("{} may not {} {} ({}) in namespace \"{}\"; add the rule {} to a Role in namespace \"{}\" "
                         "bound to this user",
                         first ? "" : ";", verb_text, c.resource, group, c.namespace_name, rbac_rule(checks),
                         c.namespace_name);
    first = false;
  }
  return out + " (see docs/rbac.yaml)";
}

Result<bool> parse_access_review(std::string_view json) {
  simdjson::padded_string padded(json);
  simdjson::ondemand::parser parser;
  simdjson::ondemand::document doc;
  if (parser.iterate(padded).get(doc)) return Error{Errc::decode_error, "SelfSubjectAccessReview: not JSON"};
  simdjson::ondemand::object status;
  if (doc["status"].get_object().get(status)) return Error{Errc::decode_error, "SelfSubjectAccessReview: no status"};
  bool allowed = false;
  auto field = status.find_field_unordered("allowed");
  if (field.error() == simdjson::NO_SUCH_FIELD) return false;
  if (field.get_bool().get(allowed)) return Error{Errc::decode_error, "SelfSubjectAccessReview: status.allowed is not a boolean"};
  return allowed;
}

struct AccessPreflight::Impl : std::enable_shared_from_this<AccessPreflight::Impl> {
  kube::ApiClient& client;
  std::vector<AccessCheck> checks;
  Callback cb;
  LogFn log;
  bool cancelled = false;
  std::vector<std::unique_ptr<kube::ApiCall>> calls;
  std::vector<std::string> bodies;
  std::vector<int> statuses;
  std::size_t outstanding = 0;
  std::vector<AccessCheck> denied;
  std::optional<Error> unavailable;  // the review API itself failed

  Impl(kube::ApiClient& c, std::vector<AccessCheck> ch, Callback f, LogFn l)
      : client(c), checks(std::move(ch)), cb(std::move(f)), log(std::move(l)) {}

  void start() {
    bodies.resize(checks.size());
    statuses.resize(checks.size());
    outstanding = checks.size();
    std::weak_ptr<Impl> weak = shared_from_this();
    for (std::size_t i = 0; i < checks.size(); ++i) {
      kube::ApiHandlers h;
      h.on_head = [weak, i](const net::HttpResponseHead& head) {
        if (auto self = weak.lock(); self && !self->cancelled) self->statuses[i] = head.status;
      };
      h.on_body = [weak, i](std::string_view bytes) {
        auto self = weak.lock();
        if (self && !self->cancelled && self->bodies[i].size() < 65536) self->bodies[i].append(bytes);
      };
      h.on_complete = [weak, i](Status s) {
        if (auto self = weak.lock(); self && !self->cancelled) self->done(i, std::move(s));
      };
      auto call = client.post(std::string(kReviewPath), review_body(checks[i]), std::move(h));
      if (!call) {
        // Only a bad path fails here, which cannot happen with a constant path; count it as
        // "cannot review" so the callback still runs once.
        unavailable = call.error();
        --outstanding;
        continue;
      }
      calls.push_back(std::move(*call));
    }
  }

  void done(std::size_t i, Status s) {
    auto keep = shared_from_this();
    if (!s) {
      unavailable = s.error();
    } else if (statuses[i] != 200 && statuses[i] != 201) {
      unavailable = Error{Errc::server_error, fmt::format("SelfSubjectAccessReview answered HTTP {}", statuses[i])};
    } else if (auto allowed = parse_access_review(bodies[i]); !allowed) {
      unavailable = allowed.error();
    } else if (!*allowed) {
      denied.push_back(checks[i]);
    }
    if (--outstanding > 0) return;
    // Answers arrive in any order; report in the order of the checks.
    std::vector<AccessCheck> ordered;
    for (const auto& c : checks)
      for (const auto& d : denied)
        if (d.verb == c.verb && d.resource == c.resource && d.namespace_name == c.namespace_name) ordered.push_back(d);
    denied = std::move(ordered);
    if (!denied.empty()) return finish(Error{Errc::forbidden, denial_reason(client.cluster_name(), denied)});
    if (unavailable && log)
      log(LogLevel::warning, fmt::format("cluster \"{}\": RBAC preflight skipped: {}", client.cluster_name(),
                                         unavailable->reason));
    finish(Status{});
  }

  void finish(Status s) {
    cancelled = true;
    auto f = std::move(cb);
    if (f) f(std::move(s));
  }
};

AccessPreflight::AccessPreflight(kube::ApiClient& client, std::vector<AccessCheck> checks, Callback cb, LogFn log)
    : impl_(std::make_shared<Impl>(client, std::move(checks), std::move(cb), std::move(log))) {
  impl_->start();
}

AccessPreflight::~AccessPreflight() {
  impl_->cancelled = true;
  // The calls go with the Impl; a running handler keeps it alive until it returns.
  auto calls = std::move(impl_->calls);
  calls.clear();
}

}  // namespace kupstream::detail
