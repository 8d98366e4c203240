// HostPortText: a Pod's "address:port" text ("[v6]:port" for IPv6) as its PodTarget keeps it,
// in 24 bytes. Every IPv4 form (at most 21 characters: "255.255.255.255:65535") is kept inline;
// longer text (IPv6) goes to one heap block. A std::string would take 32 bytes and, for the
// usual Pod address longer than 15 characters ("10.244.123.45:8080"), a 32-byte heap block too.
//
// Thread: immutable once made; any thread may read it while it lives. Errors: making one may
// throw std::bad_alloc (long text only).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kupstream::detail {

class HostPortText {
 public:
  HostPortText() noexcept { set_inline_size(0); }
  explicit HostPortText(std::string_view text) { assign(text); }
  HostPortText(const HostPortText& other) { assign(other.view()); }
  // Moving takes the heap block, if any; `other` becomes empty.
  HostPortText(HostPortText&& other) noexcept { take(other); }
  HostPortText& operator=(const HostPortText& other);
  HostPortText& operator=(HostPortText&& other) noexcept {
    if (this != &other) {
      release();
      take(other);
    }
    return *this;
  }
  ~HostPortText() { release(); }

  std::string_view view() const noexcept;
  operator std::string_view() const noexcept { return view(); }  // NOLINT: reads as its text
  std::string str() const { return std::string(view()); }
  // True when the text lives in the object itself (no heap block).
  bool is_inline() const noexcept { return static_cast<unsigned char>(buf_[kTag]) != kHeap; }

  friend bool operator==(const HostPortText& a, std::string_view b) noexcept { return a.view() == b; }

  static constexpr std::size_t kInline = 22;  // characters kept inline (plus a NUL)

 private:
  static constexpr std::size_t kSize = 24, kTag = kSize - 1;
  static constexpr unsigned char kHeap = 0xFF;  // tag of heap text; else the tag is the length

  void assign(std::string_view text);
  void release() noexcept;
  void take(HostPortText& other) noexcept;
  void set_inline_size(std::size_t n) noexcept {
    buf_[n] = '\0';
    buf_[kTag] = static_cast<char>(n);
  }

  // Inline: the text, a NUL, and its length in the last byte. Heap: the block's pointer and
  // the length (32 bits) at the start, kHeap in the last byte.
  alignas(8) char buf_[kSize];
};

}  // namespace kupstream::detail
