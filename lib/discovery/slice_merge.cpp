#include "discovery/slice_merge.h"

#include <arpa/inet.h>
#include <fmt/format.h>

namespace kupstream::detail {
namespace {

const kube::ServicePort* find_service_port(const kube::Service& service, const PortRef& port) {
  for (const auto& p : service.ports) {
    if (port.is_number() ? p.port == port.as_number() : p.name == port.as_name()) return &p;
  }
  return nullptr;
}

bool valid_address(const std::string& address, kube::AddressType type) {
  unsigned char buf[16];
  return inet_pton(type == kube::AddressType::ipv6 ? AF_INET6 : AF_INET, address.c_str(), buf) == 1;
}

std::string plural(std::size_t n, const char* what) { return fmt::format("{} {}{}", n, what, n == 1 ? "" : "s"); }

}  // namespace

SliceMergeResult merge_slices(const SliceMergeInput& in) {
  SliceMergeResult out;
  if (in.service == nullptr) {
    out.problem = PortProblem::service_not_found;
    return out;
  }
  const kube::ServicePort* service_port = find_service_port(*in.service, in.port);
  if (service_port == nullptr) {
    out.problem = PortProblem::port_not_found;
    return out;
  }
  out.port_name = service_port->name;

  std::size_t fqdn = 0, without_port = 0, bad_address = 0, unknown_node = 0;
  for (const auto& [name, slice] : *in.slices) {
    if (slice.address_type == kube::AddressType::fqdn) {
      ++fqdn;
      continue;
    }
    if (slice.address_type != kube::AddressType::ipv4 && slice.address_type != kube::AddressType::ipv6) continue;
    std::optional<std::int32_t> number;
    for (const auto& p : slice.ports)
      if (p.name == out.port_name && p.port && *p.port > 0 && *p.port <= 65535) number = p.port;
    if (!number) {
      ++without_port;
      continue;
    }
    for (const auto& e : slice.endpoints) {
      if (e.addresses.empty()) continue;
      if (!valid_address(e.addresses[0], slice.address_type)) {
        ++bad_address;
        continue;
      }
      if (in.allowed_nodes && !in.allowed_nodes->contains(e.node_name)) {
        unknown_node += e.node_name.empty() ? 1 : 0;
        continue;
      }
      Endpoint ep;
      ep.address = e.addresses[0];
      ep.port = static_cast<std::uint16_t>(*number);
      if (e.target_ref && e.target_ref->kind == "Pod") ep.pod_name = e.target_ref->name;
      ep.node_name = e.node_name;
      ep.zone = e.zone;
      ep.hint_zones = e.hint_zones;
      ep.conditions = e.conditions.defaulted();
      out.endpoints.push_back(std::move(ep));
    }
  }
  if (fqdn) out.notes.push_back(plural(fqdn, "FQDN slice") + " ignored");
  if (without_port)
    out.notes.push_back(fmt::format("{} without port \"{}\" ignored", plural(without_port, "slice"), out.port_name));
  if (bad_address) out.notes.push_back(plural(bad_address, "endpoint") + " with an invalid address ignored");
  if (unknown_node) out.notes.push_back(plural(unknown_node, "endpoint") + " without nodeName left out by the node filter");
  return out;
}

}  // namespace kupstream::detail
