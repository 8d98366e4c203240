// Zone-aware routing as a pure computation: from the endpoints that could take traffic (their
// zone metadata, the weight each would get without locality, their health) to the weight each
// gets in the next Picker. Run by Upstream::Impl::rebuild(), never on the request path, so
// pick() costs what it costs without locality. Rules: docs/upstream.md, "Zone-aware routing".
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kupstream/endpoint.h"
#include "kupstream/upstream.h"

namespace kupstream::detail {

struct ZoneCandidate {
  const Endpoint* endpoint = nullptr;  // zone and hints.forZones are read; must outlive the call
  std::uint32_t weight = 0;            // what it would get without locality (weights, slow start)
  bool healthy = true;                 // may take traffic now (in panic: every candidate)
};

struct ZonePlan {
  LocalityMode mode = LocalityMode::off;
  bool hints = false;   // groups come from hints.forZones
  std::string reason;   // why this mode
  double local_share = 0;  // share of the weight given to the local group
  std::vector<std::uint32_t> weights;  // parallel to the candidates; 0 = left out of the Picker
  std::vector<bool> local;             // parallel: counted in the local group
  std::vector<ZoneStats> zones;        // the local group first, then by name
};

// Total weight of a plan that spills (shares are turned into integers out of this many, or
// more when one share would be under 100 units; see zone_locality.cpp).
inline constexpr std::uint32_t kSpillWeightTotal = 100'000;

// The plan for `candidates` (usually the ready endpoints of the services with a weight).
// `panic`: the Upstream uses every Pod whatever its health; zone preference is then off too.
// Off (mode off, weights = healthy weights) unless options.enabled.
ZonePlan plan_zones(const ZoneAwareRouting& options, std::span<const ZoneCandidate> candidates, bool panic);

}  // namespace kupstream::detail
