// Builders for weighted endpoint lists on loopback addresses (127.0.1.x, 127.0.2.x, ...).
#pragma once

#include <fmt/format.h>

#include <string>
#include <vector>

#include "kupstream/balancer.h"

namespace kupstream::test {

inline Endpoint loopback_endpoint(std::size_t i, std::uint16_t port = 80) {
  Endpoint e;
  e.address = fmt::format("127.0.{}.{}", 1 + i / 250, 1 + i % 250);
  e.port = port;
  e.pod_name = fmt::format("pod-{}", i);
  return e;
}

inline std::vector<WeightedEndpoint> weighted(const std::vector<std::uint32_t>& weights) {
  std::vector<WeightedEndpoint> out;
  for (std::size_t i = 0; i < weights.size(); ++i) out.push_back(WeightedEndpoint::make(loopback_endpoint(i), weights[i]));
  return out;
}

// A Balancer of `policy` with a fixed seed, so that a test picks the same sequence every run.
inline Balancer seeded_balancer(std::uint64_t seed, BalancerPolicy policy = BalancerPolicy::weighted_round_robin) {
  BalancerOptions o;
  o.policy = policy;
  o.seed = seed;
  return Balancer(o);
}

// Counts picks per endpoint index.
inline std::vector<std::uint64_t> count_picks(const Picker& picker, std::uint64_t picks, std::uint64_t hash = 0) {
  std::vector<std::uint64_t> counts(picker.size());
  for (std::uint64_t i = 0; i < picks; ++i) ++counts[picker.pick(hash).index];
  return counts;
}

}  // namespace kupstream::test
