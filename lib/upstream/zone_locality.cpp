#include "upstream/zone_locality.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>

namespace kupstream {

const char* to_string(LocalityMode m) noexcept {
  switch (m) {
    case LocalityMode::off: return "off";
    case LocalityMode::local: return "local";
    case LocalityMode::spill: return "spill";
    case LocalityMode::everywhere: return "everywhere";
  }
  return "off";
}

Status validate_zone_aware_routing(const ZoneAwareRouting& l, std::string_view path) {
  auto fail = [&](std::string_view field, const std::string& why) {
    return Status{Errc::invalid_config, fmt::format("{}.{}: {}", path, field, why)};
  };
  if (l.enabled && l.zone.empty()) return fail("zone", "is required when zone-aware routing is enabled");
  auto label_value = [](std::string_view v) {
    auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
    if (v.empty()) return true;
    if (v.size() > 63 || !alnum(v.front()) || !alnum(v.back())) return false;
    return std::all_of(v.begin(), v.end(), [&](char c) { return alnum(c) || c == '-' || c == '_' || c == '.'; });
  };
  if (!label_value(l.zone))
    return fail("zone", fmt::format("\"{}\" is not a Kubernetes label value (topology.kubernetes.io/zone)", l.zone));
  if (l.min_local_percent > 100) return fail("min_local_percent", fmt::format("{} is over 100", l.min_local_percent));
  std::set<std::string, std::less<>> seen;
  double local = 0;
  for (std::size_t i = 0; i < l.zone_traffic.size(); ++i) {
    const auto& [zone, share] = l.zone_traffic[i];
    const std::string at = fmt::format("zone_traffic[{}]", i);
    if (zone.empty()) return fail(at, "the zone name is empty");
    if (!seen.insert(zone).second) return fail(at, fmt::format("zone \"{}\" is listed twice", zone));
    if (!std::isfinite(share) || share < 0) return fail(at, fmt::format("zone \"{}\": share {} is not a finite number >= 0", zone, share));
    if (zone == l.zone) local = share;
  }
  if (l.enabled && !l.zone_traffic.empty() && !(local > 0))
    return fail("zone_traffic", fmt::format("the local zone \"{}\" needs a share > 0", l.zone));
  return {};
}

namespace detail {
namespace {

bool hinted_for(const Endpoint& e, const std::string& zone) {
  return std::find(e.hint_zones.begin(), e.hint_zones.end(), zone) != e.hint_zones.end();
}

struct Group {
  std::string name;
  std::size_t endpoints = 0, healthy = 0;
  double weight = 0, healthy_weight = 0;  // of every candidate / of the healthy ones
  double start = 0, capacity = 0;         // traffic share starting here, healthy-weight share
  double routed = 0;
};

std::string plural(std::size_t n, const char* what) { return fmt::format("{} {}{}", n, what, n == 1 ? "" : "s"); }

}  // namespace

ZonePlan plan_zones(const ZoneAwareRouting& o, std::span<const ZoneCandidate> cands, bool panic) {
  ZonePlan plan;
  const std::size_t n = cands.size();
  plan.weights.assign(n, 0);
  plan.local.assign(n, false);
  for (std::size_t i = 0; i < n; ++i) plan.weights[i] = cands[i].healthy ? cands[i].weight : 0;
  if (!o.enabled) return plan;

  // kube-proxy's rules (pkg/proxy/topology.go): hints count only when every ready endpoint has
  // one and at least one is hinted for this zone; otherwise they are all ignored.
  std::string hint_note;
  if (o.use_hints && n > 0) {
    std::size_t without = 0, for_us = 0;
    for (const auto& c : cands) {
      if (c.endpoint->hint_zones.empty()) ++without;
      else if (hinted_for(*c.endpoint, o.zone)) ++for_us;
    }
    plan.hints = without == 0 && for_us > 0;
    if (!plan.hints && without < n)
      hint_note = without > 0 ? fmt::format("; hints ignored: {} without hints", plural(without, "endpoint"))
                              : fmt::format("; hints ignored: none for zone \"{}\"", o.zone);
  }

  // Groups: the local zone first (even when empty), then the others as met.
  std::vector<Group> groups(1);
  groups[0].name = o.zone;
  std::vector<std::uint32_t> group_of(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    const Endpoint& e = *cands[i].endpoint;
    const std::string_view zone = !plan.hints                ? e.zone.view()
                                  : hinted_for(e, o.zone) ? std::string_view(o.zone)
                                                          : e.hint_zones.front().view();
    std::uint32_t g = 0;
    while (g < groups.size() && groups[g].name != zone) ++g;
    if (g == groups.size()) groups.push_back(Group{std::string(zone)});
    group_of[i] = g;
    plan.local[i] = g == 0;
    Group& gr = groups[g];
    ++gr.endpoints;
    gr.weight += cands[i].weight;
    if (cands[i].healthy) {
      ++gr.healthy;
      gr.healthy_weight += cands[i].weight;
    }
  }
  double all_weight = 0, healthy_weight = 0;
  std::size_t healthy = 0;
  for (const auto& g : groups) {
    all_weight += g.weight;
    healthy_weight += g.healthy_weight;
    healthy += g.healthy;
  }
  for (auto& g : groups) g.capacity = healthy_weight > 0 ? g.healthy_weight / healthy_weight : 0;

  // Where the fleet's traffic starts (Envoy's originating-cluster shares). With hints: the
  // EndpointSlice controller sized each zone's set for that zone's share, so the share is the
  // set's listed weight. Else the configured shares, or an even split over the known zones.
  if (plan.hints) {
    for (auto& g : groups) g.start = all_weight > 0 ? g.weight / all_weight : 0;
  } else if (!o.zone_traffic.empty()) {
    double total = 0;
    for (const auto& [zone, share] : o.zone_traffic) total += share;
    for (auto& g : groups)
      for (const auto& [zone, share] : o.zone_traffic)
        if (zone == g.name && total > 0) g.start = share / total;
  } else {
    std::size_t known = 0;
    for (std::size_t g = 0; g < groups.size(); ++g) known += (g == 0 || !groups[g].name.empty()) ? 1 : 0;
    for (std::size_t g = 0; g < groups.size(); ++g)
      groups[g].start = (g == 0 || !groups[g].name.empty()) ? 1.0 / static_cast<double>(known) : 0;
  }

  Group& local = groups[0];
  const double keep = local.start > 0 ? local.capacity / local.start : 1.0;  // of the local traffic
  plan.mode = LocalityMode::everywhere;
  if (panic) {
    plan.reason = "panic: every Pod is used";
  } else if (healthy < o.min_endpoints) {
    plan.reason = fmt::format("{} < min_endpoints {}", plural(healthy, "healthy endpoint"), o.min_endpoints);
  } else if (local.healthy == 0 || local.healthy < o.min_local_endpoints) {
    plan.reason = fmt::format("{} in zone \"{}\" < min_local_endpoints {}", plural(local.healthy, "healthy endpoint"),
                              o.zone, std::max<std::uint32_t>(o.min_local_endpoints, 1));
  } else if (keep >= 1.0 - 1e-9) {
    plan.mode = LocalityMode::local;
    plan.reason = fmt::format("zone \"{}\" has {:.1f}% of the healthy capacity for {:.1f}% of the traffic", o.zone,
                              100 * local.capacity, 100 * local.start);
  } else if (keep * 100 + 1e-9 < o.min_local_percent) {
    plan.reason = fmt::format("zone \"{}\" could keep {:.1f}% of its traffic < min_local_percent {}", o.zone, 100 * keep,
                              o.min_local_percent);
  } else {
    plan.mode = LocalityMode::spill;
    plan.reason = fmt::format("zone \"{}\" keeps {:.1f}% of its traffic ({:.1f}% of the healthy capacity for {:.1f}%)",
                              o.zone, 100 * keep, 100 * local.capacity, 100 * local.start);
  }
  plan.reason += hint_note;

  if (plan.mode == LocalityMode::local) {
    for (std::size_t i = 0; i < n; ++i)
      if (!plan.local[i]) plan.weights[i] = 0;
  } else if (plan.mode == LocalityMode::spill) {
    // Envoy's residual capacity: the other zones take the spill in proportion to what they
    // have beyond their own traffic; when none has any, in proportion to their capacity.
    std::vector<double> residual(groups.size(), 0);
    double total_residual = 0;
    for (std::size_t g = 1; g < groups.size(); ++g)
      total_residual += residual[g] = std::max(0.0, groups[g].capacity - groups[g].start);
    if (total_residual <= 1e-12) {
      total_residual = 0;
      for (std::size_t g = 1; g < groups.size(); ++g) total_residual += residual[g] = groups[g].capacity;
    }
    std::vector<double> share(n, 0);
    double smallest = 1;
    for (std::size_t i = 0; i < n; ++i) {
      if (!cands[i].healthy || cands[i].weight == 0) continue;
      const std::uint32_t g = group_of[i];
      const double of_group = cands[i].weight / groups[g].healthy_weight;
      share[i] = g == 0 ? keep * of_group : (1 - keep) * residual[g] / total_residual * of_group;
      if (share[i] > 0) smallest = std::min(smallest, share[i]);
    }
    // Integer weights out of kSpillWeightTotal, or more so that the smallest share still gets
    // 100 units (proportions then hold within 1%), capped where the WRR cycle would be scaled.
    const double total = std::clamp(100.0 / smallest, double{kSpillWeightTotal}, double{1u << 22});
    for (std::size_t i = 0; i < n; ++i)
      plan.weights[i] = share[i] > 0 ? std::max<std::uint32_t>(1, static_cast<std::uint32_t>(std::llround(share[i] * total))) : 0;
  }

  // What the weights route where, for stats.
  double routed_total = 0;
  for (std::size_t i = 0; i < n; ++i) {
    groups[group_of[i]].routed += plan.weights[i];
    routed_total += plan.weights[i];
  }
  for (auto& g : groups) g.routed = routed_total > 0 ? g.routed / routed_total : 0;
  plan.local_share = local.routed;
  std::sort(groups.begin() + 1, groups.end(), [](const Group& a, const Group& b) { return a.name < b.name; });
  plan.zones.reserve(groups.size());
  for (const auto& g : groups) plan.zones.push_back(ZoneStats{g.name, g.endpoints, g.healthy, g.start, g.capacity, g.routed});
  return plan;
}

}  // namespace detail
}  // namespace kupstream
