// HeapTrimmer: hands the C library's unused heap pages back to the system, so that the gateway's
// resident memory follows what it holds rather than its peak.
//
// Why: a full sync, and every relist, decodes LISTs that are freed once their slices are stored.
// glibc keeps freed memory in its heap instead of returning it, so the peak of a sync stays
// resident. At 60,000 endpoints that was about a third of kup-gateway's RSS
// (docs/performance.md, "The allocator's share of the RSS").
//
// How: every `interval_ms` it reads the process's RSS. When the RSS has grown by at least
// `threshold_bytes` since the last trim (or since it started, or since the RSS last fell), it
// calls malloc_trim(0), which returns every whole free page of every arena (the worker threads'
// too) to the system, and takes the RSS after it as the new reference. A smaller growth, of at
// least an eighth of the threshold, gets one trim too once it has stopped (the RSS moved by less
// than 256 KiB between two checks): a sync that goes on after a trim frees what it decoded, and
// without it those pages would stay resident below the threshold. A gateway whose memory is
// steady never trims; one whose live memory grows for good trims at most once per eighth of the
// threshold of growth.
//
// A trim is a host's decision (it acts on the whole process), which is why it lives here and not
// in the library. Only with glibc and without a sanitizer (ASan and TSan bring their own
// allocator): elsewhere supported() is false and the trimmer never starts its timer.
//
// Thread: the loop's thread only. Lifetime: close() (or the destructor) before the loop ends; no
// callback runs after it.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>

namespace kupgw {

class HeapTrimmer {
 public:
  struct Stats {
    std::uint64_t trims = 0;           // malloc_trim calls
    std::uint64_t released_bytes = 0;  // sum of (RSS before - RSS after) over the trims, when it fell
    double seconds = 0;                // wall time spent in the trims
  };
  // Hooks for tests; empty ones mean the real RSS and the real malloc_trim.
  struct Hooks {
    std::function<std::size_t()> resident_bytes;
    std::function<void()> trim;
  };

  // `threshold_bytes` 0 = off: start() does nothing. `log` (may be empty) gets one line per trim.
  HeapTrimmer(uv_loop_t& loop, std::size_t threshold_bytes, std::uint64_t interval_ms = 1000,
              std::function<void(std::string_view)> log = {}, Hooks hooks = {});
  ~HeapTrimmer();
  HeapTrimmer(const HeapTrimmer&) = delete;
  HeapTrimmer& operator=(const HeapTrimmer&) = delete;

  // True when this build can trim (glibc, no sanitizer allocator).
  static bool supported() noexcept;
  // The process's resident set in bytes (/proc/self/statm), 0 when it cannot be read.
  static std::size_t process_resident_bytes() noexcept;

  // Takes the current RSS as the reference and starts the timer (an unreferenced handle: it does
  // not keep the loop alive). Does nothing when off, or unsupported without a trim hook.
  void start();
  // One check, as the timer does it: trims when the RSS has grown by the threshold.
  void check();
  // Trims now: returns the bytes released (RSS before - after; 0 when it did not fall).
  std::size_t trim_now();
  // Stops the timer and closes its handle.
  void close();

  const Stats& stats() const noexcept { return stats_; }
  std::size_t reference_bytes() const noexcept { return reference_; }

 private:
  std::size_t resident() const;

  uv_loop_t& loop_;
  std::size_t threshold_;
  std::uint64_t interval_ms_;
  std::function<void(std::string_view)> log_;
  Hooks hooks_;
  uv_timer_t* timer_ = nullptr;  // owned; freed by its close callback
  std::size_t reference_ = 0;
  std::size_t last_ = 0;  // the RSS at the last check (or after the last trim)
  Stats stats_;
};

}  // namespace kupgw
