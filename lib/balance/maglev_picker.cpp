#include "balance/maglev_picker.h"

#include <algorithm>
#include <tuple>

#include "balance/pick_support.h"

namespace kupstream::detail {
namespace {

bool is_prime(std::uint64_t n) {
  if (n < 2) return false;
  for (std::uint64_t d = 2; d * d <= n; ++d)
    if (n % d == 0) return false;
  return true;
}

std::uint64_t next_prime(std::uint64_t n) {
  while (!is_prime(n)) ++n;
  return n;
}

// Maglev moves fewer keys needlessly the larger the table is per endpoint (about 1.2/N of
// keys move when one of N leaves at 2000 entries per endpoint, 1.6/N at 650).
constexpr std::uint64_t kEntriesPerEndpoint = 2000;
constexpr std::uint64_t kMaxTable = 1u << 21;

}  // namespace

MaglevPicker::MaglevPicker(std::vector<WeightedEndpoint> endpoints, std::uint32_t min_table_size)
    : Picker(BalancerPolicy::consistent_hash, std::move(endpoints)) {
  // The size comes from a fixed ladder (the first prime above each power of two) so that one
  // endpoint more or less rarely changes it: a new size remaps every key.
  const std::uint64_t wanted = std::max<std::uint64_t>(min_table_size, std::min<std::uint64_t>(kEntriesPerEndpoint * pickable_, kMaxTable));
  std::uint64_t rung = 2;
  while (rung + 1 < wanted) rung *= 2;
  const std::uint64_t size = next_prime(rung + 1);
  table_.assign(size, UINT32_MAX);

  struct Walk {
    std::uint32_t index;
    std::uint64_t position;  // current slot of this endpoint's permutation
    std::uint64_t skip;
    double step;    // weight / max weight: table entries earned per round
    double credit;
  };
  std::uint32_t max_weight = 0;
  for (const auto& e : endpoints_) max_weight = std::max(max_weight, e.weight);
  std::vector<Walk> walks;
  for (std::uint32_t i = 0; i < endpoints_.size(); ++i) {
    const auto& e = endpoints_[i];
    if (e.weight == 0) continue;
    const std::uint64_t h = hash_key(e.endpoint->host_port());
    walks.push_back({i, h % size, splitmix64(h) % (size - 1) + 1,
                     static_cast<double>(e.weight) / max_weight, 0.0});
  }
  // Walks go in identity order, so the table depends only
  // on the set of endpoints and not on the order they were given in.
  std::sort(walks.begin(), walks.end(), [&](const Walk& a, const Walk& b) {
    const Endpoint& ea = *endpoints_[a.index].endpoint;
    const Endpoint& eb = *endpoints_[b.index].endpoint;
    return std::tie(ea.address, ea.port) < std::tie(eb.address, eb.port);
  });
  // Most of the fill is probing taken slots (about ln(size) probes per slot): they test a
  // bitmap of taken slots (size / 8 bytes, cache-resident) instead of the 4-byte table entries.
  std::vector<std::uint64_t> taken((size + 63) / 64, 0);
  std::uint64_t filled = 0;
  while (filled < size) {
    for (auto& w : walks) {
      w.credit += w.step;
      if (w.credit < 1.0) continue;
      w.credit -= 1.0;
      while (taken[w.position >> 6] >> (w.position & 63) & 1) {
        w.position += w.skip;
        if (w.position >= size) w.position -= size;
      }
      taken[w.position >> 6] |= std::uint64_t{1} << (w.position & 63);
      table_[w.position] = w.index;
      if (++filled == size) break;
    }
  }
}

PickResult MaglevPicker::pick(std::uint64_t hash) const noexcept {
  const std::uint32_t i = table_[static_cast<std::size_t>((u128{splitmix64(hash)} * table_.size()) >> 64)];
  return view(i);
}

}  // namespace kupstream::detail
