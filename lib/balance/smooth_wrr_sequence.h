// The smooth weighted round-robin cycle behind WrrPicker.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace kupstream::detail {

// Returns one full cycle of indices into `weights` in which index i appears exactly
// weights[i] / g times (g = gcd of the non-zero weights), spread as evenly as possible.
// Zero weights never appear. If that total exceeds `max_cycle`, weights are first scaled
// down proportionally (each non-zero weight keeps at least 1).
//
// Method: every pick of every endpoint gets a virtual deadline, and the cycle lists the picks
// in deadline order (earliest deadline first). Endpoint i's k-th pick is due at
// (k + phase) * W / w_i; endpoints with equal weights get phases (j + 0.5) / n_equal, so a group
// of equal endpoints behaves like one endpoint of their combined weight served round robin.
// The picks are ordered with a counting sort over W slots of virtual time: O(W + n).
std::vector<std::uint32_t> smooth_wrr_sequence(std::span<const std::uint32_t> weights, std::uint32_t max_cycle);

}  // namespace kupstream::detail
