// BlockAllocator: an allocator that keeps freed blocks of one size in a per-thread list for
// the next allocation of that size. For the few objects the request path creates and drops
// once per request (ExchangeCore, UpstreamRequest::Impl, through std::allocate_shared): with
// dozens of requests in flight, glibc's per-thread cache (7 blocks per size) overflows and
// each allocation takes malloc's slow path.
//
// Thread: each thread has its own lists (a block may be freed on another thread: it then
// joins that thread's list). At most kMaxCached blocks per size are kept; the rest, and all
// of them at thread exit, go back to operator delete (and so do blocks freed on that thread
// after its list is gone). Under AddressSanitizer blocks are not kept (use-after-free stays
// detectable).
#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <vector>

#include "core/slab_pool.h"  // KUPSTREAM_SLAB_POOLING

namespace kupstream::detail {

// Off under AddressSanitizer, as the slab pools are (one detection, in core/slab_pool.h).
#define KUPSTREAM_BLOCK_CACHE KUPSTREAM_SLAB_POOLING

// operator new/delete for one block, aligned only when the type needs more than the default.
template <std::size_t Size, std::size_t Align>
struct Blocks {
  static void* allocate() {
    if constexpr (Align > __STDCPP_DEFAULT_NEW_ALIGNMENT__) return ::operator new(Size, std::align_val_t{Align});
    else return ::operator new(Size);
  }
  static void release(void* p) noexcept {
    if constexpr (Align > __STDCPP_DEFAULT_NEW_ALIGNMENT__) ::operator delete(p, std::align_val_t{Align});
    else ::operator delete(p);
  }
};

template <std::size_t Size, std::size_t Align>
class BlockCache {
 public:
  static constexpr std::size_t kMaxCached = 1024;

  static void* get() {
#if KUPSTREAM_BLOCK_CACHE
    if (gone()) return Blocks<Size, Align>::allocate();
    auto& l = list();
    if (!l.blocks.empty()) {
      void* p = l.blocks.back();
      l.blocks.pop_back();
      return p;
    }
#endif
    return Blocks<Size, Align>::allocate();
  }

  static void put(void* p) noexcept {
#if KUPSTREAM_BLOCK_CACHE
    if (gone()) return Blocks<Size, Align>::release(p);
    auto& l = list();
    if (l.blocks.size() < kMaxCached && l.reserve()) {
      l.blocks.push_back(p);
      return;
    }
#endif
    Blocks<Size, Align>::release(p);
  }

 private:
  struct List {
    std::vector<void*> blocks;
    bool reserve() noexcept {
      if (blocks.capacity() > blocks.size()) return true;
      try {
        blocks.reserve(blocks.empty() ? 64 : blocks.size() * 2);
        return true;
      } catch (...) {
        return false;
      }
    }
    ~List() {
      for (void* p : blocks) Blocks<Size, Align>::release(p);
      gone() = true;
    }
  };
  // Set once this thread's list is destroyed: a block freed later on the same thread (by a
  // host's static destructor, which runs after the main thread's thread_locals) bypasses it.
  // A trivially destructible thread_local stays usable until the thread is gone.
  static bool& gone() noexcept {
    thread_local bool g = false;
    return g;
  }
  static List& list() {
    thread_local List l;
    return l;
  }
};

template <class T>
struct BlockAllocator {
  using value_type = T;
  BlockAllocator() noexcept = default;
  template <class U>
  BlockAllocator(const BlockAllocator<U>&) noexcept {}  // NOLINT: rebinding

  T* allocate(std::size_t n) {
    if (n == 1) return static_cast<T*>(BlockCache<sizeof(T), alignof(T)>::get());
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, std::size_t n) noexcept {
    if (n == 1) return BlockCache<sizeof(T), alignof(T)>::put(p);
    std::allocator<T>().deallocate(p, n);
  }
  template <class U>
  bool operator==(const BlockAllocator<U>&) const noexcept {
    return true;
  }
};

// For a class-specific operator new/delete of T: blocks of exactly sizeof(T) come from the
// cache (a derived class, being larger, gets its own operator new's memory).
template <class T>
void* cached_new(std::size_t size) {
  if (size == sizeof(T)) return BlockCache<sizeof(T), alignof(T)>::get();
  return ::operator new(size);
}
template <class T>
void cached_delete(void* p, std::size_t size) noexcept {
  if (size == sizeof(T)) return BlockCache<sizeof(T), alignof(T)>::put(p);
  ::operator delete(p);
}

}  // namespace kupstream::detail
