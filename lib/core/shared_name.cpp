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
  block_ = ::new (raw) Block{{1}, static_cast<std::uint32_t>(text.size())};
  char* chars = static_cast<char*>(raw) + sizeof(Block);
  std::memcpy(chars, text.data(), text.size());
  chars[text.size()] = '\0';
}

void SharedName::free_block(Block* block) noexcept {
  block->~Block();
  ::operator delete(block);
}

}  // namespace kupstream
