// Replaces the global operator new/delete to count allocations (see allocation_counter.h).
#include "support/allocation_counter.h"

#include <cstdlib>
#include <new>

#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace kupstream::test {
std::atomic<std::uint64_t> g_allocations{0};
}

void* operator new(std::size_t size) {
  kupstream::test::g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
