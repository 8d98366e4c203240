// Objects of kubesim's "demo" namespace for the discovery tests, as admin /objects operations,
// and a ClusterClient logged in as kubesim's admin. Addresses are whatever the test passes
// (loopback only).
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kubesim/kubesim_process.h"
#include "kupstream/cluster_client.h"

namespace kupstream::test {

// One ready endpoint: its address and, when not empty, its nodeName.
struct DemoEndpoint {
  std::string address;
  std::string node;
  DemoEndpoint(std::string a, std::string n = {}) : address(std::move(a)), node(std::move(n)) {}  // NOLINT: implicit from an address
};

// Applies the EndpointSlice `slice` of `service` (port "http" 8080) with these endpoints.
inline std::string demo_slice_op(const std::string& service, const std::string& slice, const std::vector<DemoEndpoint>& endpoints) {
  std::string eps;
  for (const auto& e : endpoints)
    eps += (eps.empty() ? "" : ",") + std::string(R"({"addresses":[")") + e.address + "\"]" +
           (e.node.empty() ? "" : R"(,"nodeName":")" + e.node + "\"") + R"(,"conditions":{"ready":true}})";
  return R"({"op":"apply","object":{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice",)"
         R"("metadata":{"name":")" + slice + R"(","namespace":"demo","labels":{"kubernetes.io/service-name":")" +
         service + R"("}},"addressType":"IPv4","ports":[{"name":"http","port":8080,"protocol":"TCP"}],"endpoints":[)" +
         eps + "]}}";
}

// Applies the Service `name` (port "http" 80 -> 8080).
inline std::string demo_service_op(const std::string& name) {
  return R"({"op":"apply","object":{"apiVersion":"v1","kind":"Service","metadata":{"name":")" + name +
         R"(","namespace":"demo"},"spec":{"ports":[{"name":"http","port":80,"targetPort":8080}]}}})";
}

// Several operations in one admin call (each still one write, one event): every call runs a process.
inline std::string demo_batch(const std::vector<std::string>& ops) {
  std::string out = R"({"items":[)";
  for (std::size_t i = 0; i < ops.size(); ++i) out += (i ? "," : "") + ops[i];
  return out + "]}";
}

// A ClusterClient on `loop` for kubesim's admin user, retrying after 100 ms.
inline std::unique_ptr<ClusterClient> demo_admin_client(uv_loop_t& loop, const KubesimProcess& sim, ClusterClientOptions co = {}) {
  KubeconfigOptions kc;
  kc.paths = {sim.info().users.at("admin").kubeconfig};
  auto config = load_kubeconfig(kc);
  REQUIRE(config.ok());
  co.backoff_initial = std::chrono::milliseconds{100};
  auto c = ClusterClient::create(loop, *config, co);
  REQUIRE(c.ok());
  return std::move(*c);
}

// cluster.watch(ref, callbacks), which must succeed.
inline std::unique_ptr<EndpointWatcher> demo_watch(ClusterClient& cluster, const ServiceRef& ref, EndpointWatcherCallbacks callbacks) {
  auto w = cluster.watch(ref, std::move(callbacks));
  REQUIRE(w.ok());
  return std::move(*w);
}

}  // namespace kupstream::test
