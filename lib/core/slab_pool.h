// SlabPool and SlabAllocator: blocks of one size carved from 32-KiB slabs, for records a process
// keeps by the tens of thousands: the Upstream's Pods (std::allocate_shared) and the names'
// blocks (SharedName, SharedNameList, through allocate_sized()). A block costs its size and
// nothing more: no allocator header and no rounding up to 16 (a Pod record with its shared_ptr
// control block is 80 bytes, which glibc would serve as a 96-byte chunk; a 23-character
// Pod name's block is 32 bytes, which glibc would serve as a 48-byte chunk).
//
// Freed blocks go back to their slab (found by address among the pool's slabs, sorted); a slab
// whose blocks are all free is released, except one kept empty so that blocks made and dropped
// in turn do not allocate and free a slab each time.
//
// Thread: any thread may allocate and free (one mutex per pool: Pods and names come and go at
// the pace of endpoint changes, not of requests; the last owner of a Pod or of a name may be a
// worker loop). Lifetime: the process-wide pools live as long as the process (never destroyed,
// so blocks freed by other threads or static destructors at exit stay valid). Under
// AddressSanitizer every block of SlabAllocator and allocate_sized() is its own operator new
// allocation, so use-after-free stays detectable. Errors: allocate() throws std::bad_alloc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

// KUPSTREAM_SLAB_POOLING: 0 under AddressSanitizer (every block its own operator new).
#if defined(__SANITIZE_ADDRESS__)
#define KUPSTREAM_SLAB_POOLING 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KUPSTREAM_SLAB_POOLING 0
#endif
#endif
#ifndef KUPSTREAM_SLAB_POOLING
#define KUPSTREAM_SLAB_POOLING 1
#endif

namespace kupstream::detail {

class SlabPool {
 public:
  static constexpr std::size_t kSlabBytes = 32 * 1024;

  // Blocks of `size` bytes aligned to `align` (at most alignof(std::max_align_t)).
  SlabPool(std::size_t size, std::size_t align);
  SlabPool(const SlabPool&) = delete;
  SlabPool& operator=(const SlabPool&) = delete;
  ~SlabPool();  // (only for tests' own pools: frees the slabs, whose blocks must all be free)

  void* allocate();
  void deallocate(void* p) noexcept;

  std::size_t block_size() const noexcept { return block_; }
  std::size_t blocks_per_slab() const noexcept { return capacity_; }
  // Slabs held and blocks handed out, for tests and benchmarks.
  std::size_t slabs() const;
  std::size_t blocks_in_use() const;

 private:
  struct Slab {
    char* base;            // the slab's memory (kSlabBytes)
    void* free = nullptr;  // freed blocks, linked through their first bytes
    std::uint32_t used = 0;     // blocks handed out
    std::uint32_t carved = 0;   // blocks taken from the untouched end so far
  };
  Slab* slab_of(const void* p) noexcept;  // by address, among slabs_

  std::size_t block_;
  std::size_t capacity_;  // blocks per slab
  mutable std::mutex mutex_;
  std::vector<Slab*> slabs_;      // sorted by base address
  std::vector<Slab*> available_;  // slabs with a free block, most recently freed into last
  Slab* empty_ = nullptr;         // the one slab kept with no block in use
  std::size_t in_use_ = 0;
};

// The process-wide pool for blocks of `Size` bytes aligned to `Align` (made on first use, never
// destroyed).
template <std::size_t Size, std::size_t Align>
SlabPool& slab_pool() {
  static SlabPool* pool = new SlabPool(Size, Align);
  return *pool;
}

// Blocks of any size, for records whose size is known again when they are freed (a name's block
// knows its length). Up to kMaxSizedBlock bytes, a block comes from the process-wide pool of its
// size class (the size rounded up to kSizeClassStep, aligned to kSizeClassStep); larger ones
// from operator new (16-aligned). deallocate_sized() must get the size allocate_sized() got
// (it picks the pool by it). Under AddressSanitizer every block is operator new's, freed with
// the sized operator delete where the compiler has it (GCC), so a wrong size is reported.
inline constexpr std::size_t kSizeClassStep = 8;
inline constexpr std::size_t kMaxSizedBlock = 128;
void* allocate_sized(std::size_t bytes);
void deallocate_sized(void* p, std::size_t bytes) noexcept;
// The pool that serves blocks of `bytes`, or nullptr when operator new does (larger than
// kMaxSizedBlock, or under AddressSanitizer). For tests and benchmarks.
SlabPool* size_class_pool(std::size_t bytes) noexcept;

// An allocator for std::allocate_shared (stateless: the control block gains no bytes). Single
// objects come from the process-wide pool of their size; arrays from std::allocator.
template <class T>
struct SlabAllocator {
  using value_type = T;
  SlabAllocator() noexcept = default;
  template <class U>
  SlabAllocator(const SlabAllocator<U>&) noexcept {}  // NOLINT: rebinding

  T* allocate(std::size_t n) {
#if KUPSTREAM_SLAB_POOLING
    if (n == 1) return static_cast<T*>(slab_pool<sizeof(T), alignof(T)>().allocate());
#endif
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, std::size_t n) noexcept {
#if KUPSTREAM_SLAB_POOLING
    if (n == 1) return slab_pool<sizeof(T), alignof(T)>().deallocate(p);
#endif
    std::allocator<T>().deallocate(p, n);
  }
  template <class U>
  bool operator==(const SlabAllocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace kupstream::detail
