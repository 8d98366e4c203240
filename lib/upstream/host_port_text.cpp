#include "upstream/host_port_text.h"

#include <cstring>
#include <limits>
#include <stdexcept>

namespace kupstream::detail {

HostPortText& HostPortText::operator=(const HostPortText& other) {
  if (this != &other) {
    HostPortText copy(other);
    release();
    take(copy);
  }
  return *this;
}

void HostPortText::take(HostPortText& other) noexcept {
  std::memcpy(buf_, other.buf_, kSize);  // the text, or the heap block's pointer and length
  other.set_inline_size(0);
}

std::string_view HostPortText::view() const noexcept {
  if (is_inline()) return std::string_view(buf_, static_cast<unsigned char>(buf_[kTag]));
  const char* heap = nullptr;
  std::uint32_t size = 0;
  std::memcpy(&heap, buf_, sizeof heap);
  std::memcpy(&size, buf_ + sizeof heap, sizeof size);
  return std::string_view(heap, size);
}

void HostPortText::assign(std::string_view text) {
  if (text.size() <= kInline) {
    std::memcpy(buf_, text.data(), text.size());
    set_inline_size(text.size());
    return;
  }
  if (text.size() > std::numeric_limits<std::uint32_t>::max()) throw std::length_error("HostPortText: text over 4 GiB");
  char* heap = new char[text.size()];
  std::memcpy(heap, text.data(), text.size());
  const auto size = static_cast<std::uint32_t>(text.size());
  std::memcpy(buf_, &heap, sizeof heap);
  std::memcpy(buf_ + sizeof heap, &size, sizeof size);
  buf_[kTag] = static_cast<char>(kHeap);
}

void HostPortText::release() noexcept {
  if (is_inline()) return;
  char* heap = nullptr;
  std::memcpy(&heap, buf_, sizeof heap);
  delete[] heap;
  set_inline_size(0);
}

}  // namespace kupstream::detail
