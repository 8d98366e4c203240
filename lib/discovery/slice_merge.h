// Joins a Service's EndpointSlices, its Service object and an optional node filter into the
// endpoint list of one Service port. Pure function: no I/O, no state.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "kube/objects.h"
#include "kupstream/endpoint.h"
#include "kupstream/service_ref.h"

namespace kupstream::detail {

enum class PortProblem {
  none,
  service_not_found,  // no Service object with that name
  port_not_found,     // the Service has no port with that number or name
};

struct SliceMergeInput {
  const std::map<std::string, kube::EndpointSlice, std::less<>>* slices = nullptr;  // by slice name
  const kube::Service* service = nullptr;  // null: the Service does not exist
  PortRef port;                             // the ServiceRef's port: number or name
  // Names of the nodes that carry the required labels; null when there is no node filter.
  const std::set<std::string, std::less<>>* allowed_nodes = nullptr;
};

struct SliceMergeResult {
  std::vector<Endpoint> endpoints;  // may repeat a backend across slices: EndpointSet::make de-duplicates
  PortProblem problem = PortProblem::none;
  std::string port_name;  // the Service port's name ("" for an unnamed single port)
  // Human notes for the watcher's state, e.g. "1 FQDN slice ignored".
  std::vector<std::string> notes;
};

// Maps the Service port (by number or name) to its name, then takes each slice's number for
// that name (slices may disagree). Uses addresses[0] of each endpoint, as kube-proxy does.
// Skips FQDN slices and bad addresses (with a note). With a node filter, endpoints whose node
// is unknown or not allowed are left out.
SliceMergeResult merge_slices(const SliceMergeInput& input);

}  // namespace kupstream::detail
