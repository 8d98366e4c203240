// Consistent hashing with a weighted Maglev lookup table (Eisenbud et al., NSDI 2016).
#pragma once

#include "kupstream/balancer.h"

namespace kupstream::detail {

// Each endpoint's place in the table depends only on its address and port, never on a
// seed, so every gateway maps a key to the same endpoint, and removing one of N endpoints
// moves about 1/N of the keys.
class MaglevPicker final : public Picker {
 public:
  MaglevPicker(std::vector<WeightedEndpoint> endpoints, std::uint32_t min_table_size);
  PickResult pick(std::uint64_t hash) const noexcept override;
  std::uint32_t table_size() const noexcept { return static_cast<std::uint32_t>(table_.size()); }

 private:
  std::vector<std::uint32_t> table_;
};

}  // namespace kupstream::detail
