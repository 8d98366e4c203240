#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "core/slab_pool.h"

using namespace kupstream::detail;

TEST_SUITE("SlabPool") {
  TEST_CASE("blocks are distinct, aligned and exactly the asked size apart; freed slabs go, but one") {
    SlabPool pool(112, 8);
    CHECK(pool.block_size() == 112);
    const std::size_t per_slab = pool.blocks_per_slab();
    CHECK(per_slab == SlabPool::kSlabBytes / 112);
    const std::size_t n = per_slab * 3 + 7;  // four slabs, the last one partly used
    std::vector<void*> blocks;
    for (std::size_t i = 0; i < n; ++i) {
      void* p = pool.allocate();
      CHECK(reinterpret_cast<std::uintptr_t>(p) % 8 == 0);
      std::memset(p, static_cast<int>(i & 0xff), 112);  // the whole block is usable
      blocks.push_back(p);
    }
    CHECK(pool.slabs() == 4);
    CHECK(pool.blocks_in_use() == n);
    // No two blocks overlap, and each keeps what was written into it.
    std::vector<char*> sorted;
    for (void* p : blocks) sorted.push_back(static_cast<char*>(p));
    std::sort(sorted.begin(), sorted.end());
    for (std::size_t i = 1; i < sorted.size(); ++i) CHECK(sorted[i] - sorted[i - 1] >= 112);
    for (std::size_t i = 0; i < n; ++i) CHECK(static_cast<unsigned char*>(blocks[i])[111] == (i & 0xff));

    // A freed block is the next one handed out (no new slab for it).
    pool.deallocate(blocks[5]);
    void* again = pool.allocate();
    CHECK(again == blocks[5]);
    CHECK(pool.slabs() == 4);

    // Everything freed: one empty slab is kept, the others are released.
    for (void* p : blocks) pool.deallocate(p);
    CHECK(pool.blocks_in_use() == 0);
    CHECK(pool.slabs() == 1);
    // The kept slab serves the next allocations.
    void* p = pool.allocate();
    CHECK(pool.slabs() == 1);
    pool.deallocate(p);
  }

  TEST_CASE("a full slab that gets a block back serves again, in any order of frees") {
    SlabPool pool(40, 8);
    const std::size_t per_slab = pool.blocks_per_slab();
    std::vector<void*> blocks;
    for (std::size_t i = 0; i < 2 * per_slab; ++i) blocks.push_back(pool.allocate());
    CHECK(pool.slabs() == 2);
    // Free every other block of both (full) slabs, then take as many again: no third slab.
    std::set<void*> freed;
    for (std::size_t i = 0; i < blocks.size(); i += 2) {
      pool.deallocate(blocks[i]);
      freed.insert(blocks[i]);
    }
    for (std::size_t i = 0; i < blocks.size(); i += 2) {
      void* p = pool.allocate();
      CHECK(freed.erase(p) == 1);
      blocks[i] = p;
    }
    CHECK(freed.empty());
    CHECK(pool.slabs() == 2);
    for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) pool.deallocate(*it);
    CHECK(pool.slabs() == 1);
  }

  TEST_CASE("blocks freed on other threads go back to the pool") {
    SlabPool pool(64, 16);
    std::vector<void*> blocks;
    for (int i = 0; i < 5000; ++i) blocks.push_back(pool.allocate());
    const auto half = blocks.begin() + 2500;
    std::thread a([&] { for (auto it = blocks.begin(); it != half; ++it) pool.deallocate(*it); });
    std::thread b([&] {
      for (auto it = half; it != blocks.end(); ++it) pool.deallocate(*it);
      for (int i = 0; i < 1000; ++i) pool.deallocate(pool.allocate());
    });
    a.join();
    b.join();
    CHECK(pool.blocks_in_use() == 0);
    CHECK(pool.slabs() == 1);
  }

  TEST_CASE("allocate_shared through SlabAllocator makes and destroys objects as make_shared does") {
    struct Record {
      explicit Record(int* d) : destroyed(d) {}
      Record(const Record&) = delete;
      Record& operator=(const Record&) = delete;
      ~Record() { ++*destroyed; }
      int* destroyed;
      char payload[80] = {};
    };
    int destroyed = 0;
    {
      std::vector<std::shared_ptr<Record>> records;
      for (int i = 0; i < 1000; ++i) {
        records.push_back(std::allocate_shared<Record>(SlabAllocator<Record>(), &destroyed));
        records.back()->payload[79] = static_cast<char>(i);
      }
      std::shared_ptr<char> alias(records[10], &records[10]->payload[79]);  // aliasing keeps it alive
      records.clear();
      CHECK(destroyed == 999);
      CHECK(*alias == 10);
    }
    CHECK(destroyed == 1000);
  }
}
