#include "kupstream/balancer.h"

#include <fmt/format.h>

#include <chrono>
#include <random>

#include "balance/grouped_wrr_picker.h"
#include "balance/maglev_picker.h"
#include "balance/pick_support.h"
#include "balance/random_pickers.h"
#include "balance/wrr_picker.h"

namespace kupstream {
namespace {

// A Picker with nothing to pick; pick() always comes back empty.
class EmptyPicker final : public Picker {
 public:
  EmptyPicker(BalancerPolicy policy, std::vector<WeightedEndpoint> endpoints) : Picker(policy, std::move(endpoints)) {}
  PickResult pick(std::uint64_t) const noexcept override { return {}; }
};

std::uint64_t fresh_seed() {
  std::random_device device;
  const auto now = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  return detail::splitmix64((std::uint64_t{device()} << 32) ^ device() ^ now);
}

}  // namespace

Picker::Picker(BalancerPolicy policy, std::vector<WeightedEndpoint> endpoints)
    : policy_(policy), endpoints_(std::move(endpoints)), size_(endpoints_.size()) {
  for (auto& e : endpoints_) {
    if (!e.endpoint) e.weight = 0;  // nothing to return: kept in the list, never picked
    pickable_ += e.weight > 0 ? 1 : 0;
    total_weight_ += e.weight;
  }
  set_reason();
}

Picker::Picker(BalancerPolicy policy, std::size_t size, std::size_t pickable, std::uint64_t total_weight)
    : policy_(policy), size_(size), pickable_(pickable), total_weight_(total_weight), lazy_(true) {
  set_reason();
}

void Picker::set_reason() {
  no_endpoint_reason_.clear();
  if (size_ == 0)
    no_endpoint_reason_ = "no endpoints";
  else if (pickable_ == 0)
    no_endpoint_reason_ = fmt::format("all {} endpoint{} have weight 0", size_, size_ == 1 ? "" : "s");
}

const std::vector<WeightedEndpoint>& Picker::endpoints() const {
  if (lazy_) std::call_once(assembled_, [this] { assemble(endpoints_); });
  return endpoints_;
}

void Picker::assemble(std::vector<WeightedEndpoint>&) const {}

Picker::~Picker() = default;

Balancer::Balancer(BalancerOptions options) : options_(options), seed_(options.seed ? *options.seed : fresh_seed()) {}

PickerPtr Balancer::build(std::vector<WeightedEndpoint> endpoints) const {
  bool any = false;
  for (const auto& e : endpoints) any = any || (e.weight > 0 && e.endpoint);
  if (!any) return std::make_shared<EmptyPicker>(options_.policy, std::move(endpoints));
  switch (options_.policy) {
    case BalancerPolicy::weighted_round_robin:
      return std::make_shared<detail::WrrPicker>(std::move(endpoints), seed_, options_.max_wrr_cycle);
    case BalancerPolicy::least_request:
      return std::make_shared<detail::LeastRequestPicker>(std::move(endpoints), seed_);
    case BalancerPolicy::consistent_hash:
      return std::make_shared<detail::MaglevPicker>(std::move(endpoints), options_.maglev_table_size);
    case BalancerPolicy::random:
      return std::make_shared<detail::RandomPicker>(std::move(endpoints), seed_);
  }
  return std::make_shared<EmptyPicker>(options_.policy, std::move(endpoints));
}

PickerPtr Balancer::build_grouped(std::vector<PickerPtr> groups, std::uint64_t round) const {
  std::size_t with_endpoints = 0, last = 0;
  for (std::size_t g = 0; g < groups.size(); ++g)
    if (groups[g] && groups[g]->size() > 0) {
      ++with_endpoints;
      last = g;
    }
  if (with_endpoints == 0) return std::make_shared<EmptyPicker>(BalancerPolicy::weighted_round_robin, std::vector<WeightedEndpoint>{});
  if (with_endpoints == 1) return std::move(groups[last]);
  return std::make_shared<detail::GroupedWrrPicker>(std::move(groups), detail::splitmix64(seed_ + round));
}

std::uint64_t hash_key(std::string_view key) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a, then a finalizer to spread the bits
  for (unsigned char c : key) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return detail::splitmix64(h);
}

}  // namespace kupstream
