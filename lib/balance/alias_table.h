// Walker/Vose alias table: O(1) weighted sampling.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace kupstream::detail {

class AliasTable {
 public:
  AliasTable() = default;
  // `weights` may contain zeros; those indices are never sampled. At least one must be > 0.
  explicit AliasTable(std::span<const std::uint32_t> weights);

  // Maps a uniform 64-bit random value to an index, with probability weight/total.
  std::uint32_t sample(std::uint64_t random) const noexcept {
    const std::uint32_t column = static_cast<std::uint32_t>((static_cast<std::uint64_t>(random >> 32) * size_) >> 32);
    const Entry& e = entries_[column];
    return static_cast<std::uint32_t>(random) < e.threshold ? column : e.alias;
  }

 private:
  struct Entry {
    std::uint32_t threshold;  // keep `column` when the low 32 random bits are below this
    std::uint32_t alias;
  };
  std::vector<Entry> entries_;
  std::uint32_t size_ = 0;
};

}  // namespace kupstream::detail
