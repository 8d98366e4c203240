#include "balance/random_pickers.h"

#include "balance/pick_support.h"

namespace kupstream::detail {
namespace {

AliasTable alias_for(const std::vector<WeightedEndpoint>& endpoints) {
  std::vector<std::uint32_t> weights;
  weights.reserve(endpoints.size());
  for (const auto& e : endpoints) weights.push_back(e.weight);
  return AliasTable(weights);
}

// The thread's stream, made distinct per Picker instance by its seed.
std::uint64_t draw(std::uint64_t seed) noexcept { return splitmix64(thread_random() ^ seed); }

}  // namespace

RandomPicker::RandomPicker(std::vector<WeightedEndpoint> endpoints, std::uint64_t seed)
    : Picker(BalancerPolicy::random, std::move(endpoints)), table_(alias_for(endpoints_)), seed_(seed) {}

PickResult RandomPicker::pick(std::uint64_t) const noexcept {
  const std::uint32_t i = table_.sample(draw(seed_));
  return view(i);
}

LeastRequestPicker::LeastRequestPicker(std::vector<WeightedEndpoint> endpoints, std::uint64_t seed)
    : Picker(BalancerPolicy::least_request, std::move(endpoints)), table_(alias_for(endpoints_)), seed_(seed) {
  for (auto& e : endpoints_)
    if (!e.load) e.load = std::make_shared<EndpointLoad>();
}

PickResult LeastRequestPicker::pick(std::uint64_t) const noexcept {
  const std::uint32_t a = table_.sample(draw(seed_));
  std::uint32_t b = table_.sample(draw(seed_));
  // Two distinct candidates when there are two: a few bounded redraws (a dominant weight may
  // still yield the same endpoint twice, which is then the right answer anyway).
  for (int retry = 0; retry < 4 && b == a && pickable_ > 1; ++retry) b = table_.sample(draw(seed_));
  const auto load_a = endpoints_[a].load->in_flight.load(std::memory_order_relaxed);
  const auto load_b = endpoints_[b].load->in_flight.load(std::memory_order_relaxed);
  const std::uint32_t i = load_b < load_a ? b : a;
  return view(i);
}

}  // namespace kupstream::detail
