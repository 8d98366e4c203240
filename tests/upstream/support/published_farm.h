// PublishedFarm: the usual setup of an Upstream integration test in one object. A PodFarm whose
// Pods are all published on cluster "tke-a" as one Service (and its one EndpointSlice), and the
// UpstreamEnv that reaches them; start() creates the Upstream of that one Service.
// Members are built in the order service, dir, farm, env and dropped in reverse (the env, with
// its loop check, before nginx stops).
#pragma once

#include <string>
#include <utility>

#include "upstream/support/pod_farm.h"
#include "upstream/support/upstream_env.h"

namespace kupstream::test {

struct PublishedFarm {
  // `pods` Pods named "<prefix>-<i>" on 127.0.<subnet>.<i+1>, published as `service`.
  PublishedFarm(std::string service_name, int pods, const std::string& prefix, int subnet)
      : service(std::move(service_name)), farm(dir.path(), pods, prefix, subnet) {
    env.publish("tke-a", service, farm.port(), pods_of(farm));
  }
  // Pods named after the Service.
  PublishedFarm(const std::string& service_name, int pods, int subnet)
      : PublishedFarm(service_name, pods, service_name, subnet) {}

  // Creates the Upstream of `service` alone and waits until it is ready.
  void start(UpstreamOptions options = {}) { env.start(UpstreamEnv::config_for("tke-a", service), std::move(options)); }

  std::string service;
  TempDir dir;
  PodFarm farm;
  UpstreamEnv env;
};

}  // namespace kupstream::test
