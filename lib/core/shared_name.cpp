#include "kupstream/shared_name.h"

#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>

namespace kupstream {

SharedName::SharedName(std::string_view text) {
  if (text.empty()) return;
  if (text.size() > std::numeric_limits<std::uint32_t>::max()) throw std::length_error("SharedName: text over 4 GiB");
  void* raw = ::operator new(sizeof(Block) + text.size() + 1);
  ref_ = detail::SharedRef<Block>(::new (raw) Block{{1}, static_cast<std::uint32_t>(text.size())});
  char* chars = static_cast<char*>(raw) + sizeof(Block);
  std::memcpy(chars, text.data(), text.size());
  chars[text.size()] = '\0';
}

void SharedName::Block::destroy(Block* block) noexcept {
  block->~Block();
  ::operator delete(block);
}

SharedNameList::Block* SharedNameList::make(const std::vector<SharedName>& names) {
  if (names.empty()) return nullptr;
  if (names.size() > std::numeric_limits<std::uint32_t>::max()) throw std::length_error("SharedNameList: too many names");
  void* raw = ::operator new(sizeof(Block) + names.size() * sizeof(SharedName));
  auto* block = ::new (raw) Block{{1}, static_cast<std::uint32_t>(names.size())};
  auto* items = reinterpret_cast<SharedName*>(block + 1);
  for (std::size_t i = 0; i < names.size(); ++i) ::new (items + i) SharedName(names[i]);  // copies: noexcept
  return block;
}

void SharedNameList::Block::destroy(Block* block) noexcept {
  auto* items = reinterpret_cast<SharedName*>(block + 1);
  for (std::uint32_t i = 0; i < block->size; ++i) items[i].~SharedName();
  block->~Block();
  ::operator delete(block);
}

}  // namespace kupstream
