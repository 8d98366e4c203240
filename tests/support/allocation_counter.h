// A global count of operator new calls in a test binary that links allocation_counter.cpp.
#pragma once

#include <atomic>
#include <cstdint>

namespace kupstream::test {
extern std::atomic<std::uint64_t> g_allocations;
}
