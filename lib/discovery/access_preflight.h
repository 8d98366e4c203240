// AccessPreflight: asks the API server, with SelfSubjectAccessReviews, whether the client's
// credentials may do what an EndpointWatcher needs, so that a missing RBAC rule is reported
// up front with the rule to add, instead of as a bare 403 from a LIST.
//
// Thread: loop thread only. Lifetime: dropping the AccessPreflight at any time (even inside
// its callback) cancels it; the callback then never runs.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kube/api_client.h"

namespace kupstream::detail {

struct AccessCheck {
  std::string verb;       // list, watch, get
  std::string group;      // "" for the core group
  std::string resource;   // endpointslices, services, nodes
  std::string namespace_name;  // "" for cluster-scoped resources
};

// What an EndpointWatcher of `ns` needs: list/watch on endpointslices (discovery.k8s.io) and
// get/list/watch on services in the namespace; with node labels also list/watch on nodes.
std::vector<AccessCheck> service_access_checks(const std::string& ns);
std::vector<AccessCheck> node_access_checks();

// The RBAC rule that grants the denied checks (all of one resource), as YAML flow text, e.g.
// {apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: ["list", "watch"]}.
std::string rbac_rule(const std::vector<AccessCheck>& denied);

// The text of a denial: which verbs on which resource in which namespace are refused, and the
// rule to add to a Role (namespaced) or ClusterRole (nodes). `cluster` names the cluster.
std::string denial_reason(const std::string& cluster, const std::vector<AccessCheck>& denied);

// Parses a SelfSubjectAccessReview response body: status.allowed (absent means false).
Result<bool> parse_access_review(std::string_view json);

class AccessPreflight {
 public:
  // Result: ok when every check is allowed or the server cannot answer reviews (then the
  // reason is logged and the watch's own requests will tell); Errc::forbidden with
  // denial_reason(...) when any is denied. Runs the reviews in parallel; answers once, later.
  using Callback = std::function<void(Status)>;

  AccessPreflight(kube::ApiClient& client, std::vector<AccessCheck> checks, Callback cb, LogFn log);
  ~AccessPreflight();
  AccessPreflight(const AccessPreflight&) = delete;
  AccessPreflight& operator=(const AccessPreflight&) = delete;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace kupstream::detail
