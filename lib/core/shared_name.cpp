#include "kupstream/shared_name.h"

#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>

#include "core/slab_pool.h"

namespace kupstream {

// A block's bytes, known again at free from what it holds: the pool of its size class takes it
// back (core/slab_pool.h). Size classes are 8-aligned, and so are both headers' needs.
namespace {
constexpr std::size_t name_block_bytes(std::size_t header, std::size_t length) noexcept { return header + length + 1; }
constexpr std::size_t list_block_bytes(std::size_t header, std::size_t count, std::size_t item) noexcept {
  return header + count * item;
}
}  // namespace

SharedName::SharedName(std::string_view text) {
  if (text.empty()) return;
  if (text.size() > std::numeric_limits<std::uint32_t>::max()) throw std::length_error("SharedName: text over 4 GiB");
  static_assert(alignof(Block) <= detail::kSizeClassStep && sizeof(Block) % alignof(Block) == 0);
  void* raw = detail::allocate_sized(name_block_bytes(sizeof(Block), text.size()));
  ref_ = detail::SharedRef<Block>(::new (raw) Block{{1}, static_cast<std::uint32_t>(text.size())});
  char* chars = static_cast<char*>(raw) + sizeof(Block);
  std::memcpy(chars, text.data(), text.size());
  chars[text.size()] = '\0';
}

void SharedName::Block::destroy(Block* block) noexcept {
  const std::size_t bytes = name_block_bytes(sizeof(Block), block->size);
  block->~Block();
  detail::deallocate_sized(block, bytes);
}

SharedNameList::Block* SharedNameList::make(const std::vector<SharedName>& names) {
  if (names.empty()) return nullptr;
  if (names.size() > std::numeric_limits<std::uint32_t>::max()) throw std::length_error("SharedNameList: too many names");
  static_assert(alignof(Block) <= detail::kSizeClassStep && sizeof(Block) % alignof(SharedName) == 0);
  void* raw = detail::allocate_sized(list_block_bytes(sizeof(Block), names.size(), sizeof(SharedName)));
  auto* block = ::new (raw) Block{{1}, static_cast<std::uint32_t>(names.size())};
  auto* items = reinterpret_cast<SharedName*>(block + 1);
  for (std::size_t i = 0; i < names.size(); ++i) ::new (items + i) SharedName(names[i]);  // copies: noexcept
  return block;
}

void SharedNameList::Block::destroy(Block* block) noexcept {
  auto* items = reinterpret_cast<SharedName*>(block + 1);
  const std::size_t bytes = list_block_bytes(sizeof(Block), block->size, sizeof(SharedName));
  for (std::uint32_t i = 0; i < block->size; ++i) items[i].~SharedName();
  block->~Block();
  detail::deallocate_sized(block, bytes);
}

}  // namespace kupstream
