// Where SharedName and SharedNameList blocks come from: the size-class pools of core/slab_pool.h
// up to kMaxSizedBlock bytes (a name's block is 8 bytes of count and length, its text and a NUL;
// a list's is 8 bytes and 8 per name), operator new beyond. Each block goes back to the pool it
// came from when the last copy is dropped, on whichever thread drops it.
#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "core/slab_pool.h"
#include "kupstream/shared_name.h"

using kupstream::SharedName;
using kupstream::SharedNameList;
using namespace kupstream::detail;

namespace {
constexpr std::size_t kHeader = 8;  // the count and the length (or the number of names)

std::size_t name_bytes(std::size_t length) { return kHeader + length + 1; }
std::size_t list_bytes(std::size_t count) { return kHeader + count * sizeof(SharedName); }

// Blocks in use in every size-class pool (0 when pooling is off).
std::vector<std::size_t> in_use_per_class() {
  std::vector<std::size_t> counts;
  for (std::size_t bytes = kSizeClassStep; bytes <= kMaxSizedBlock; bytes += kSizeClassStep) {
    SlabPool* pool = size_class_pool(bytes);
    counts.push_back(pool ? pool->blocks_in_use() : 0);
  }
  return counts;
}

std::string text_of(std::size_t length, char c) {
  std::string s(length, c);
  for (std::size_t i = 0; i < length; i += 7) s[i] = static_cast<char>('a' + i % 26);
  return s;
}
}  // namespace

TEST_SUITE("SharedName blocks") {
  TEST_CASE("a name of every length takes one block of its size class and gives back that one") {
    CHECK(sizeof(SharedName) == sizeof(void*));
    // Every length whose block fits a class, and a few past the largest one.
    for (std::size_t length = 1; name_bytes(length) <= kMaxSizedBlock + 3 * kSizeClassStep; ++length) {
      CAPTURE(length);
      const std::vector<std::size_t> before = in_use_per_class();
      SlabPool* pool = size_class_pool(name_bytes(length));
      {
        const std::string text = text_of(length, 'x');
        SharedName name(text);
        SharedName copy = name;
        CHECK(copy.shares_buffer_with(name));
        CHECK(copy.view() == text);
        CHECK(copy.c_str()[length] == '\0');
        CHECK(reinterpret_cast<std::uintptr_t>(copy.c_str()) % alignof(std::uint32_t) == 0);
        std::vector<std::size_t> expected = before;
        if (pool != nullptr) {
          CHECK(pool->block_size() == (name_bytes(length) + kSizeClassStep - 1) / kSizeClassStep * kSizeClassStep);
          ++expected[pool->block_size() / kSizeClassStep - 1];
        }
        CHECK(in_use_per_class() == expected);
      }
      // The last copy gone, the block is back in the pool it came from (a wrong size at free
      // would give it to another class, or crash looking for its slab there).
      CHECK(in_use_per_class() == before);
    }
  }

  TEST_CASE("a long name comes from operator new and keeps its text") {
    const std::vector<std::size_t> before = in_use_per_class();
    for (std::size_t length : {kMaxSizedBlock, std::size_t{253}, std::size_t{4096}}) {
      CHECK(size_class_pool(name_bytes(length)) == nullptr);
      const std::string text = text_of(length, 'q');
      SharedName name(text);
      CHECK(in_use_per_class() == before);
      SharedName copy = name;
      name = SharedName();
      CHECK(copy == text);
      CHECK(copy.size() == length);
    }
    CHECK(in_use_per_class() == before);
  }

  TEST_CASE("blocks of each size class are reused: churn adds no slab beyond one per class") {
    std::vector<std::size_t> slabs_before;
    for (std::size_t bytes = kSizeClassStep; bytes <= kMaxSizedBlock; bytes += kSizeClassStep) {
      SlabPool* pool = size_class_pool(bytes);
      slabs_before.push_back(pool ? pool->slabs() : 0);
    }
    for (int round = 0; round < 200; ++round) {
      std::vector<SharedName> names;
      for (std::size_t length = 1; name_bytes(length) <= kMaxSizedBlock; ++length) {
        names.emplace_back(text_of(length, static_cast<char>('A' + round % 26)));
      }
      for (std::size_t i = 0; i < names.size(); ++i) CHECK(names[i].size() == i + 1);
    }
    std::size_t i = 0;
    for (std::size_t bytes = kSizeClassStep; bytes <= kMaxSizedBlock; bytes += kSizeClassStep, ++i) {
      SlabPool* pool = size_class_pool(bytes);
      if (pool == nullptr) continue;  // pooling off (AddressSanitizer)
      CAPTURE(bytes);
      CHECK(pool->slabs() <= slabs_before[i] + 1);
    }
    // A freed block is the next one of its class handed out.
    if (SlabPool* pool = size_class_pool(name_bytes(23))) {
      const void* first;
      {
        SharedName a("pod-7f9c8d6b5-abcde-x12");
        first = a.c_str();
      }
      SharedName b("pod-7f9c8d6b5-fghij-y34");
      CHECK(b.c_str() == first);
      CHECK(pool->block_size() == 32);  // a 23-character Pod name: 32 bytes, not glibc's 48
    }
  }

  TEST_CASE("a list of every length takes one block of its size class and gives back that one") {
    const SharedName zone("zone-a");
    for (std::size_t count = 1; list_bytes(count) <= kMaxSizedBlock + 2 * kSizeClassStep; ++count) {
      CAPTURE(count);
      const std::vector<std::size_t> before = in_use_per_class();
      SlabPool* pool = size_class_pool(list_bytes(count));
      {
        std::vector<SharedName> names(count, zone);
        SharedNameList list;
        list.assign(names.begin(), names.end());
        SharedNameList copy = list;
        list = SharedNameList();
        CHECK(copy.size() == count);
        CHECK(copy.back() == "zone-a");
        CHECK(copy.back().shares_buffer_with(zone));
        std::vector<std::size_t> expected = before;
        if (pool != nullptr) ++expected[pool->block_size() / kSizeClassStep - 1];
        CHECK(in_use_per_class() == expected);
      }
      CHECK(in_use_per_class() == before);
    }
  }

  TEST_CASE("names and lists whose last copies are dropped on two threads go back to their pools") {
    const std::vector<std::size_t> before = in_use_per_class();
    std::vector<SharedName> a_names, b_names;
    std::vector<SharedNameList> a_lists, b_lists;
    for (int i = 0; i < 20000; ++i) {
      SharedName name(text_of(1 + i % 150, static_cast<char>('a' + i % 26)));
      SharedNameList list{name, SharedName("zone-" + std::to_string(i % 3))};
      // Both threads hold a copy of every third one: either may drop the last copy.
      if (i % 3 == 0) {
        a_names.push_back(name);
        b_names.push_back(name);
        a_lists.push_back(list);
        b_lists.push_back(list);
      } else if (i % 3 == 1) {
        a_names.push_back(name);
        a_lists.push_back(list);
      } else {
        b_names.push_back(name);
        b_lists.push_back(list);
      }
    }
    auto drop = [](std::vector<SharedName>& names, std::vector<SharedNameList>& lists, bool& intact) {
      for (std::size_t i = 0; i < names.size(); ++i) {
        const std::size_t length = names[i].size();
        intact = intact && names[i].c_str()[length] == '\0' && lists[i].size() == 2 && lists[i][0] == names[i];
        // While the other thread drops its copies: make and drop blocks of the same classes.
        SharedName churn(names[i].view());
        intact = intact && churn == names[i];
        names[i] = SharedName();
        lists[i] = SharedNameList();
      }
    };
    bool a_intact = true, b_intact = true;
    std::thread a([&] { drop(a_names, a_lists, a_intact); });
    std::thread b([&] { drop(b_names, b_lists, b_intact); });
    a.join();
    b.join();
    CHECK(a_intact);
    CHECK(b_intact);
    CHECK(in_use_per_class() == before);
  }
}
