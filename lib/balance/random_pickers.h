// Weighted random and power-of-two-choices least-request pickers.
#pragma once

#include "balance/alias_table.h"
#include "kupstream/balancer.h"

namespace kupstream::detail {

class RandomPicker final : public Picker {
 public:
  RandomPicker(std::vector<WeightedEndpoint> endpoints, std::uint64_t seed);
  PickResult pick(std::uint64_t hash) const noexcept override;

 private:
  AliasTable table_;
  std::uint64_t seed_;
};

// Draws two candidates by weight and returns the one with fewer requests in flight
// (EndpointLoad::in_flight); on a tie, the first draw.
class LeastRequestPicker final : public Picker {
 public:
  LeastRequestPicker(std::vector<WeightedEndpoint> endpoints, std::uint64_t seed);
  PickResult pick(std::uint64_t hash) const noexcept override;

 private:
  AliasTable table_;
  std::uint64_t seed_;
};

}  // namespace kupstream::detail
