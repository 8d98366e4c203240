#include "core/slab_pool.h"

#include <algorithm>
#include <array>
#include <cstdlib>

namespace kupstream::detail {

SlabPool::SlabPool(std::size_t size, std::size_t align) {
  // A block holds the free list's link while it is free, and every block stays aligned.
  align = std::max(align, alignof(void*));
  block_ = (std::max(size, sizeof(void*)) + align - 1) / align * align;
  capacity_ = kSlabBytes / block_;
}

SlabPool::~SlabPool() {
  for (Slab* s : slabs_) {
    std::free(s->base);
    delete s;
  }
}

SlabPool::Slab* SlabPool::slab_of(const void* p) noexcept {
  const auto at = reinterpret_cast<std::uintptr_t>(p);
  auto it = std::upper_bound(slabs_.begin(), slabs_.end(), at,
                             [](std::uintptr_t a, const Slab* s) { return a < reinterpret_cast<std::uintptr_t>(s->base); });
  return it == slabs_.begin() ? nullptr : *(it - 1);
}

void* SlabPool::allocate() {
  std::lock_guard lock(mutex_);
  if (available_.empty()) {
    // Room first (what may throw leaves the pool as it was): available_ then never grows past
    // its capacity, which deallocate() relies on (it may not throw).
    slabs_.reserve(slabs_.size() + 1);
    available_.reserve(slabs_.size() + 1);
    // malloc's alignment (16 on 64-bit glibc) covers every block alignment the constructor takes.
    char* base = static_cast<char*>(std::malloc(kSlabBytes));
    if (base == nullptr) throw std::bad_alloc();
    Slab* slab = new (std::nothrow) Slab{base};
    if (slab == nullptr) {
      std::free(base);
      throw std::bad_alloc();
    }
    slabs_.insert(std::upper_bound(slabs_.begin(), slabs_.end(), base, [](const char* a, const Slab* x) { return a < x->base; }),
                  slab);
    available_.push_back(slab);
  }
  Slab* s = available_.back();
  void* p;
  if (s->free != nullptr) {
    p = s->free;
    s->free = *static_cast<void**>(p);
  } else {
    p = s->base + s->carved++ * block_;
  }
  if (++s->used == capacity_) available_.pop_back();
  if (s == empty_) empty_ = nullptr;
  ++in_use_;
  return p;
}

void SlabPool::deallocate(void* p) noexcept {
  std::lock_guard lock(mutex_);
  Slab* s = slab_of(p);
  *static_cast<void**>(p) = s->free;
  s->free = p;
  --in_use_;
  if (s->used-- == capacity_) {
    // It was full, so off the list: it has a free block again. (No reallocation: available_
    // has room for every slab, see allocate().)
    available_.push_back(s);
  }
  if (s->used != 0) return;
  if (empty_ == nullptr) {
    empty_ = s;  // kept for the next allocations
    return;
  }
  available_.erase(std::find(available_.begin(), available_.end(), s));
  slabs_.erase(std::find(slabs_.begin(), slabs_.end(), s));
  std::free(s->base);
  delete s;
}

std::size_t SlabPool::slabs() const {
  std::lock_guard lock(mutex_);
  return slabs_.size();
}

std::size_t SlabPool::blocks_in_use() const {
  std::lock_guard lock(mutex_);
  return in_use_;
}

#if KUPSTREAM_SLAB_POOLING
namespace {
constexpr std::size_t kSizeClasses = kMaxSizedBlock / kSizeClassStep;
static_assert(kMaxSizedBlock % kSizeClassStep == 0);

// Class i serves blocks of (i + 1) * kSizeClassStep bytes. All pools are made on first use (a
// pool holds no slab until its first block) and never destroyed.
const std::array<SlabPool*, kSizeClasses>& size_class_pools() {
  static const std::array<SlabPool*, kSizeClasses> pools = [] {
    std::array<SlabPool*, kSizeClasses> made{};
    for (std::size_t i = 0; i < kSizeClasses; ++i) made[i] = new SlabPool((i + 1) * kSizeClassStep, kSizeClassStep);
    return made;
  }();
  return pools;
}
}  // namespace
#endif

SlabPool* size_class_pool(std::size_t bytes) noexcept {
#if KUPSTREAM_SLAB_POOLING
  if (bytes != 0 && bytes <= kMaxSizedBlock) return size_class_pools()[(bytes - 1) / kSizeClassStep];
#else
  (void)bytes;
#endif
  return nullptr;
}

void* allocate_sized(std::size_t bytes) {
  if (SlabPool* pool = size_class_pool(bytes)) return pool->allocate();
  return ::operator new(bytes);
}

void deallocate_sized(void* p, std::size_t bytes) noexcept {
  if (SlabPool* pool = size_class_pool(bytes)) return pool->deallocate(p);
#if defined(__cpp_sized_deallocation)
  ::operator delete(p, bytes);  // AddressSanitizer checks the size
#else
  ::operator delete(p);  // (Clang before 19 leaves sized deallocation off by default)
#endif
}

}  // namespace kupstream::detail
