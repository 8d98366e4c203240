/// @file
/// SharedName: an immutable string that copies share instead of duplicating; SharedNameList: an
/// immutable list of them, shared the same way.
///
/// Endpoints carry names that thousands of them repeat: the node a Pod runs on, its zone, the
/// zones its hints name. A SharedName is one pointer; its copies point at the same buffer (with a
/// reference count), so 60,000 endpoints on 50 nodes hold 50 node names, not 60,000. The library
/// hands out the endpoints of a service with their names already shared.
///
/// The text lives in the same heap block as the count (one block of 8 bytes plus the text and a
/// NUL per distinct name). Blocks up to 128 bytes come from the library's slabs in sizes that
/// are multiples of 8 (no allocator header, no rounding up to 16: a 23-character Pod name costs
/// 32 bytes), larger ones from operator new.
///
/// It reads like a const std::string: str(), c_str(), view(), size(), empty(), comparison with
/// strings, string views and C strings, and an implicit conversion to std::string_view (so fmt
/// and functions taking a string_view take it as it is). It is built implicitly from those types,
/// so `endpoint.zone = "zone-a"` and `Endpoint{.zone = "zone-a"}` work. Equal text compares equal,
/// shared or not.
///
/// Thread: immutable; any thread may read, copy and drop SharedNames (the count is atomic).
/// Lifetime: pointers and views from c_str() and view() stay valid while this SharedName, or
/// any copy of it, lives; str() returns a copy. Errors: building one may throw std::bad_alloc; nothing else throws.
#pragma once

#include <algorithm>
#include <atomic>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kupstream/export.h"

namespace kupstream {

namespace detail {
// The reference counting of SharedName and SharedNameList: one pointer to a heap block that
// starts with an atomic count (`refs`) and is freed by `Block::destroy` with the last reference.
// Copies share the block, moves take it (the source becomes empty), null is the empty value.
template <class Block>
class SharedRef {
 public:
  SharedRef() noexcept = default;
  explicit SharedRef(Block* block) noexcept : block_(block) {}  // takes over a count of 1
  SharedRef(const SharedRef& other) noexcept : block_(other.block_) {
    if (block_) block_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  SharedRef(SharedRef&& other) noexcept : block_(std::exchange(other.block_, nullptr)) {}
  SharedRef& operator=(const SharedRef& other) noexcept {
    SharedRef(other).swap(*this);
    return *this;
  }
  SharedRef& operator=(SharedRef&& other) noexcept {
    SharedRef(std::move(other)).swap(*this);
    return *this;
  }
  ~SharedRef() {
    if (block_ && block_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) Block::destroy(block_);
  }
  const Block* get() const noexcept { return block_; }
  void swap(SharedRef& other) noexcept { std::swap(block_, other.block_); }

 private:
  Block* block_ = nullptr;
};
}  // namespace detail

/// An immutable string that copies share (one pointer and a reference count); see the file
/// comment for its contract. Copies share the buffer; a moved-from name is empty.
class SharedName {
 public:
  /// The empty name (no allocation).
  SharedName() noexcept = default;
  /// A name that owns a copy of `text` (empty text: no allocation).
  KUPSTREAM_API SharedName(std::string_view text);
  /// A name that owns a copy of `text`.
  SharedName(const std::string& text) : SharedName(std::string_view(text)) {}
  /// A name that owns a copy of `text` (a NUL-terminated string, not null).
  SharedName(const char* text) : SharedName(std::string_view(text)) {}

  /// A copy of the text, as a std::string (may throw std::bad_alloc).
  std::string str() const { return std::string(view()); }
  /// The text, NUL-terminated.
  const char* c_str() const noexcept { return block() ? block()->text() : ""; }
  /// The text as a view.
  std::string_view view() const noexcept { return block() ? std::string_view(block()->text(), block()->size) : std::string_view(); }
  /// The text as a view (implicit: a SharedName goes where a string_view does).
  operator std::string_view() const noexcept { return view(); }
  /// Length in bytes.
  std::size_t size() const noexcept { return block() ? block()->size : 0; }
  /// True for "".
  bool empty() const noexcept { return block() == nullptr; }
  /// True when both hold the same buffer (not only equal text).
  bool shares_buffer_with(const SharedName& other) const noexcept { return block() == other.block(); }
  /// Swaps the two buffers.
  void swap(SharedName& other) noexcept { ref_.swap(other.ref_); }

  /// Equal text.
  friend bool operator==(const SharedName& a, const SharedName& b) noexcept {
    return a.block() == b.block() || a.view() == b.view();
  }
  /// Equal text.
  friend bool operator==(const SharedName& a, std::string_view b) noexcept { return a.view() == b; }
  /// Equal text.
  friend bool operator==(const SharedName& a, const std::string& b) noexcept { return a.view() == b; }
  /// Equal text.
  friend bool operator==(const SharedName& a, const char* b) noexcept { return a.view() == b; }
  /// Orders by text, as std::string does.
  friend std::strong_ordering operator<=>(const SharedName& a, const SharedName& b) noexcept {
    return a.view() <=> b.view();
  }
  /// Orders by text, as std::string does.
  friend std::strong_ordering operator<=>(const SharedName& a, std::string_view b) noexcept { return a.view() <=> b; }
  /// Orders by text, as std::string does.
  friend std::strong_ordering operator<=>(const SharedName& a, const std::string& b) noexcept {
    return a.view() <=> std::string_view(b);
  }
  /// Orders by text, as std::string does.
  friend std::strong_ordering operator<=>(const SharedName& a, const char* b) noexcept {
    return a.view() <=> std::string_view(b);
  }

 private:
  // One allocation: the count and the length, then the text and a NUL right after them.
  struct Block {
    std::atomic<std::uint32_t> refs;
    std::uint32_t size;
    const char* text() const noexcept { return reinterpret_cast<const char*>(this + 1); }
    KUPSTREAM_API static void destroy(Block* block) noexcept;
  };
  const Block* block() const noexcept { return ref_.get(); }

  detail::SharedRef<Block> ref_;
};

/// An immutable list of SharedNames that copies share (one pointer and a reference count), such
/// as an endpoint's hint zones: the endpoints of a service that carry the same hints hold one
/// list. It reads like a const std::vector<SharedName>: begin(), end(), size(), empty(),
/// operator[], front(), back(), and equality with another list or a vector of strings. It is
/// built from an initializer list (`endpoint.hint_zones = {"zone-a"}`) or a range (assign()).
///
/// Thread: immutable; any thread may read, copy and drop lists (the count is atomic). Lifetime:
/// iterators and references stay valid while this list, or any copy of it, lives. Errors:
/// building one may throw std::bad_alloc; nothing else throws. Copies share the list; a
/// moved-from list is empty.
class SharedNameList {
 public:
  using value_type = SharedName;            ///< the element type
  using const_iterator = const SharedName*;  ///< contiguous, const
  using iterator = const_iterator;           ///< the list is immutable: iterators are const
  using size_type = std::size_t;             ///< the type of size()

  /// The empty list (no allocation).
  SharedNameList() noexcept = default;
  /// A list of these names, in order (an empty one: no allocation).
  SharedNameList(std::initializer_list<SharedName> names) { assign(names.begin(), names.end()); }

  /// Replaces the list with the names in [first, last): anything a SharedName is built from.
  template <class It>
  void assign(It first, It last) {
    std::vector<SharedName> names;
    for (; first != last; ++first) names.emplace_back(*first);
    SharedNameList(make(names)).swap(*this);
  }

  /// Number of names.
  std::size_t size() const noexcept { return block() ? block()->size : 0; }
  /// True when it holds no name.
  bool empty() const noexcept { return block() == nullptr; }
  /// Iterator at the first name.
  const_iterator begin() const noexcept { return block() ? block()->items() : nullptr; }
  /// Iterator past the last name.
  const_iterator end() const noexcept { return begin() + size(); }
  /// The name at `i` (< size(); not checked).
  const SharedName& operator[](std::size_t i) const noexcept { return begin()[i]; }
  /// The first name (the list must not be empty).
  const SharedName& front() const noexcept { return begin()[0]; }
  /// The last name (the list must not be empty).
  const SharedName& back() const noexcept { return begin()[size() - 1]; }
  /// True when both are the same list (copies of one another), not merely equal.
  bool shares_buffer_with(const SharedNameList& other) const noexcept { return block() == other.block(); }
  /// Exchanges the two lists.
  void swap(SharedNameList& other) noexcept { ref_.swap(other.ref_); }

  /// Same names in the same order.
  friend bool operator==(const SharedNameList& a, const SharedNameList& b) noexcept {
    return a.block() == b.block() || std::equal(a.begin(), a.end(), b.begin(), b.end());
  }
  /// Same names in the same order as the strings.
  friend bool operator==(const SharedNameList& a, const std::vector<std::string>& b) noexcept {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                      [](const SharedName& x, const std::string& y) { return x == y; });
  }

 private:
  // One allocation: the count and the size, then the names right after them.
  struct alignas(SharedName) Block {
    std::atomic<std::uint32_t> refs;
    std::uint32_t size;
    const SharedName* items() const noexcept { return reinterpret_cast<const SharedName*>(this + 1); }
    KUPSTREAM_API static void destroy(Block* block) noexcept;
  };
  // A list of `names` (copies of them); none for an empty one.
  KUPSTREAM_API static Block* make(const std::vector<SharedName>& names);
  explicit SharedNameList(Block* block) noexcept : ref_(block) {}
  const Block* block() const noexcept { return ref_.get(); }

  detail::SharedRef<Block> ref_;
};

}  // namespace kupstream

namespace std {
/// Hashes a SharedName's text, as std::hash<std::string_view> does (equal text, equal hash).
template <>
struct hash<kupstream::SharedName> {
  /// The hash of `n`'s text.
  size_t operator()(const kupstream::SharedName& n) const noexcept { return hash<string_view>{}(n.view()); }
};
}  // namespace std
