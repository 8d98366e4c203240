// An Upstream::Impl with no cluster behind it (Upstream::Impl::unwatched), on a loop of its
// own: a test publishes its services' snapshots itself (on_snapshot) and reads the Pods and
// Pickers the Upstream makes of them. The services are in cluster "one", namespace "default",
// port "http"; the balancer seed is 1. The destructor shuts the Upstream down, drains the loop
// and checks that it closes.
#pragma once

#include <doctest/doctest.h>
#include <uv.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "upstream/upstream_impl.h"

namespace kupstream::test {

struct UnwatchedWorld {
  uv_loop_t loop;
  std::shared_ptr<Upstream::Impl> impl;
  std::uint64_t generation = 1;

  // `services`: name and weight of each ServiceRef, in order.
  UnwatchedWorld(const std::string& upstream, const std::vector<std::pair<std::string, std::uint32_t>>& services,
                 UpstreamOptions options = {}, WeightMode mode = WeightMode::per_pod) {
    REQUIRE(uv_loop_init(&loop) == 0);
    UpstreamConfig c;
    c.name = upstream;
    c.weight_mode = mode;
    for (const auto& [name, weight] : services) {
      ServiceRef r;
      r.cluster = "one";
      r.namespace_name = "default";
      r.service = name;
      r.port = PortRef::name("http");
      r.weight = weight;
      c.services.push_back(r);
    }
    options.seed = 1;
    impl = Upstream::Impl::unwatched(loop, c, options);
  }
  ~UnwatchedWorld() {
    impl->shutdown();
    impl.reset();
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
  }
  UnwatchedWorld(const UnwatchedWorld&) = delete;
  UnwatchedWorld& operator=(const UnwatchedWorld&) = delete;

  // Publishes `endpoints` as the next snapshot of service `service` (its index); returns it.
  EndpointSetPtr publish(std::size_t service, std::vector<Endpoint> endpoints) {
    auto set = EndpointSet::make(generation++, "", std::move(endpoints));
    impl->on_snapshot(service, set);
    return set;
  }
};

}  // namespace kupstream::test
