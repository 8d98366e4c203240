// HeapTrimmer: when it trims (RSS growth against its reference), that its timer runs on the loop
// and closes, and, with glibc, that a trim really gives freed heap pages back to the system.
#include "heap_trimmer.h"

#include <doctest/doctest.h>
#include <uv.h>

#include <cstdlib>
#include <cstring>
#include <vector>

using namespace kupgw;

namespace {

constexpr std::size_t MiB = std::size_t{1} << 20;

struct Loop {
  uv_loop_t loop;
  Loop() { uv_loop_init(&loop); }
  ~Loop() {
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
  }
  int handles() {
    int n = 0;
    uv_walk(&loop, [](uv_handle_t* h, void* arg) { *static_cast<int*>(arg) += uv_is_closing(h) ? 0 : 1; }, &n);
    return n;
  }
};

// A process whose RSS the test sets, and whose trim brings it down to `after_trim`.
struct FakeProcess {
  std::size_t rss = 100 * MiB;
  std::size_t after_trim = 0;
  int trims = 0;
  HeapTrimmer::Hooks hooks() {
    return {[this] { return rss; }, [this] {
              ++trims;
              rss = after_trim;
            }};
  }
};

// A started trimmer (8 MiB threshold) over a FakeProcess at 100 MiB.
struct FakeTrimmer {
  Loop l;
  FakeProcess p;
  HeapTrimmer t{l.loop, 8 * MiB, 1000, {}, p.hooks()};
  FakeTrimmer() { t.start(); }
  // Sets the RSS (and what a trim would leave, in MiB), runs one check as the timer does, and
  // returns the trims so far.
  int check_at(std::size_t rss_mib, std::size_t after_trim_mib = 0) {
    p.rss = rss_mib * MiB;
    p.after_trim = after_trim_mib * MiB;
    t.check();
    return p.trims;
  }
};

}  // namespace

TEST_SUITE("heap_trimmer") {
  TEST_CASE("trims once the RSS has grown by the threshold, then measures from the RSS after") {
    FakeTrimmer f;
    auto& t = f.t;
    CHECK(t.reference_bytes() == 100 * MiB);
    CHECK(f.check_at(107) == 0);
    CHECK(f.check_at(108, 101) == 1);
    CHECK(t.stats().trims == 1);
    CHECK(t.stats().released_bytes == 7 * MiB);
    CHECK(t.reference_bytes() == 101 * MiB);
    // Growth is now counted from 101 MiB.
    CHECK(f.check_at(108) == 1);
    // A trim that releases nothing (the memory is live) still moves the reference up, so the
    // next one waits for another threshold of growth.
    CHECK(f.check_at(109, 109) == 2);
    CHECK(t.stats().released_bytes == 7 * MiB);
    CHECK(f.check_at(116) == 2);
    t.close();
  }

  TEST_CASE("a smaller growth (an eighth of the threshold or more) gets one trim once it has stopped") {
    FakeTrimmer f;
    auto& t = f.t;
    CHECK(f.check_at(102) == 0);       // still growing since the last check
    CHECK(f.check_at(102, 100) == 1);  // stopped: trimmed, back to 100
    CHECK(t.reference_bytes() == 100 * MiB);
    CHECK(t.stats().released_bytes == 2 * MiB);
    CHECK(f.check_at(100) == 1);       // no growth
    CHECK(f.check_at(101) == 1);       // growing again
    CHECK(f.check_at(101, 101) == 2);  // stopped: trimmed, but it is live memory
    CHECK(t.reference_bytes() == 101 * MiB);
    CHECK(f.check_at(101) == 2);       // and not trimmed again until it grows
    CHECK(f.check_at(101) == 2);
  }

  TEST_CASE("growth below an eighth of the threshold is never trimmed, however quiet") {
    Loop l;
    FakeProcess p;
    HeapTrimmer t(l.loop, 16 * MiB, 1000, {}, p.hooks());
    t.start();
    p.rss = 101 * MiB;  // 1 MiB < 16 / 8
    t.check();
    t.check();
    t.check();
    CHECK(p.trims == 0);
    p.rss = 102 * MiB;  // 2 MiB: the next quiet check trims
    t.check();
    CHECK(p.trims == 0);
    t.check();
    CHECK(p.trims == 1);
    t.close();
  }

  TEST_CASE("the reference follows the RSS down") {
    FakeTrimmer f;
    auto& t = f.t;
    CHECK(f.check_at(90) == 0);
    CHECK(t.reference_bytes() == 90 * MiB);
    CHECK(f.check_at(98, 92) == 1);
  }

  TEST_CASE("an unreadable RSS never trims") {
    FakeTrimmer f;
    auto& t = f.t;
    CHECK(f.check_at(0) == 0);
    CHECK(t.reference_bytes() == 100 * MiB);
  }

  TEST_CASE("its timer checks on the loop, does not keep the loop alive, and closes") {
    Loop l;
    FakeProcess p;
    std::vector<std::string> lines;
    HeapTrimmer t(l.loop, 8 * MiB, 5, [&](std::string_view s) { lines.emplace_back(s); }, p.hooks());
    t.start();
    CHECK(l.handles() == 1);
    CHECK(uv_loop_alive(&l.loop) == 0);  // unreferenced: a host's loop can end with it running
    p.rss = 120 * MiB;
    p.after_trim = 100 * MiB;
    // A referenced timer keeps the loop running for a while.
    uv_timer_t hold;
    uv_timer_init(&l.loop, &hold);
    uv_timer_start(&hold, [](uv_timer_t*) {}, 200, 0);
    uv_run(&l.loop, UV_RUN_DEFAULT);
    CHECK(p.trims == 1);
    REQUIRE(lines.size() == 1);
    CHECK(lines[0] == "heap trim: RSS 120.0 -> 100.0 MiB in " + lines[0].substr(lines[0].find(" in ") + 4));
    uv_close(reinterpret_cast<uv_handle_t*>(&hold), nullptr);
    t.close();
    CHECK(l.handles() == 0);
  }

  TEST_CASE("a threshold of 0 is off: no timer") {
    Loop l;
    FakeProcess p;
    HeapTrimmer t(l.loop, 0, 5, {}, p.hooks());
    t.start();
    CHECK(l.handles() == 0);
  }

  TEST_CASE("with glibc, a trim gives freed heap pages back") {
    if (!HeapTrimmer::supported()) {
      MESSAGE("not glibc, or a sanitizer's allocator: nothing to measure");
      return;
    }
    REQUIRE(HeapTrimmer::process_resident_bytes() > 0);
    // 48 MiB in blocks below glibc's mmap threshold, so they come from the heap, written so
    // that their pages are resident; a small block after them keeps the space from being the
    // top of the heap (which free() would give back by itself).
    std::vector<void*> blocks;
    bool allocated = true;
    for (int i = 0; i < 2048; ++i) {
      void* b = std::malloc(24 * 1024);
      if (b == nullptr) allocated = false;
      else std::memset(b, 0x5a, 24 * 1024);
      blocks.push_back(b);
    }
    REQUIRE(allocated);
    void* pin = std::malloc(64);
    for (void* b : blocks) std::free(b);
    Loop l;
    // The counter-check: glibc keeps the freed pages while nothing trims (a no-op trim hook).
    HeapTrimmer idle(l.loop, 8 * MiB, 1000, {}, {{}, [] {}});
    CHECK(idle.trim_now() < 24 * MiB);
    HeapTrimmer t(l.loop, 8 * MiB);
    const std::size_t released = t.trim_now();
    std::free(pin);
    CHECK(t.stats().trims == 1);
    CHECK(released >= 24 * MiB);
  }
}
