// Small lock-free helpers shared by the pickers: per-thread shard ids, fast modulo and a
// per-thread random stream.
#pragma once

#include <atomic>
#include <cstdint>

namespace kupstream::detail {

__extension__ using u128 = unsigned __int128;

// A slot number per thread, handed out once, so that threads touch different cache lines.
inline std::atomic<std::uint32_t> g_next_thread_slot{0};
inline std::uint32_t thread_slot() noexcept {
  thread_local const std::uint32_t slot = g_next_thread_slot.fetch_add(1, std::memory_order_relaxed);
  return slot;
}

inline std::uint64_t splitmix64(std::uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A per-thread xorshift-style stream (wyrand), seeded from the slot and the stack address so
// threads and processes differ. Callers mix in their own per-instance seed.
inline std::uint64_t thread_random() noexcept {
  thread_local std::uint64_t state =
      splitmix64(reinterpret_cast<std::uintptr_t>(&state) ^ (std::uint64_t{thread_slot()} << 32));
  state += 0xa0761d6478bd642fULL;
  u128 m = u128{state} * (state ^ 0xe7037ed1a0b428dbULL);
  return static_cast<std::uint64_t>(m >> 64) ^ static_cast<std::uint64_t>(m);
}

// a % d for 32-bit a without a division (Lemire, "Faster remainder by direct computation").
class FastMod {
 public:
  FastMod() = default;
  explicit FastMod(std::uint32_t d) : d_(d), m_(~std::uint64_t{0} / d + 1) {}
  std::uint32_t operator()(std::uint32_t a) const noexcept {
    std::uint64_t low = m_ * a;
    return static_cast<std::uint32_t>((u128{low} * d_) >> 64);
  }
  std::uint32_t divisor() const noexcept { return d_; }

 private:
  std::uint32_t d_ = 1;
  std::uint64_t m_ = 0;
};

// Maps a uniform 64-bit value onto [0, n) without a division.
inline std::uint32_t scale_to(std::uint64_t x, std::uint32_t n) noexcept {
  return static_cast<std::uint32_t>((u128{x} * n) >> 64);
}

}  // namespace kupstream::detail
