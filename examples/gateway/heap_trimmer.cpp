#include "heap_trimmer.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <utility>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define KUPGW_SANITIZED_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define KUPGW_SANITIZED_ALLOCATOR 1
#endif
#endif

namespace kupgw {

namespace {

void trim_heap() {
#if defined(__GLIBC__) && !defined(KUPGW_SANITIZED_ALLOCATOR)
  malloc_trim(0);
#endif
}

}  // namespace

HeapTrimmer::HeapTrimmer(uv_loop_t& loop, std::size_t threshold_bytes, std::uint64_t interval_ms,
                         std::function<void(std::string_view)> log, Hooks hooks)
    : loop_(loop), threshold_(threshold_bytes), interval_ms_(interval_ms), log_(std::move(log)), hooks_(std::move(hooks)) {}

HeapTrimmer::~HeapTrimmer() { close(); }

bool HeapTrimmer::supported() noexcept {
#if defined(__GLIBC__) && !defined(KUPGW_SANITIZED_ALLOCATOR)
  return true;
#else
  return false;
#endif
}

std::size_t HeapTrimmer::process_resident_bytes() noexcept {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  const int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  if (n != 2) return 0;
  return static_cast<std::size_t>(resident) * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

std::size_t HeapTrimmer::resident() const {
  return hooks_.resident_bytes ? hooks_.resident_bytes() : process_resident_bytes();
}

void HeapTrimmer::start() {
  if (threshold_ == 0 || timer_ != nullptr) return;
  if (!hooks_.trim && !supported()) return;
  reference_ = resident();
  last_ = reference_;
  timer_ = new uv_timer_t;
  uv_timer_init(&loop_, timer_);
  timer_->data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(timer_));
  uv_timer_start(timer_, [](uv_timer_t* t) { static_cast<HeapTrimmer*>(t->data)->check(); }, interval_ms_, interval_ms_);
}

void HeapTrimmer::check() {
  const std::size_t rss = resident();
  if (rss == 0) return;
  const std::size_t previous = std::exchange(last_, rss);
  if (rss < reference_) {
    // Memory was given back some other way (freed mappings): follow it down, so that growth is
    // measured from what the process holds now.
    reference_ = rss;
    return;
  }
  const std::size_t growth = rss - reference_;
  if (growth >= threshold_) {
    trim_now();
    return;
  }
  // A smaller growth that has stopped: one trim (see the header). A trim that gives nothing
  // back still moves the reference up, so live memory is not trimmed again until it grows.
  constexpr std::size_t kQuietBytes = 256 * 1024;
  const bool quiet = (rss > previous ? rss - previous : previous - rss) < kQuietBytes;
  if (quiet && growth >= threshold_ / 8) trim_now();
}

std::size_t HeapTrimmer::trim_now() {
  const std::size_t before = resident();
  const auto t0 = std::chrono::steady_clock::now();
  if (hooks_.trim) hooks_.trim();
  else trim_heap();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::size_t after = resident();
  const std::size_t released = before > after ? before - after : 0;
  ++stats_.trims;
  stats_.released_bytes += released;
  stats_.seconds += seconds;
  reference_ = after;
  last_ = after;
  if (log_)
    log_(fmt::format("heap trim: RSS {:.1f} -> {:.1f} MiB in {:.2f} ms", static_cast<double>(before) / (1 << 20),
                     static_cast<double>(after) / (1 << 20), seconds * 1e3));
  return released;
}

void HeapTrimmer::close() {
  if (timer_ == nullptr) return;
  uv_timer_stop(timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  timer_ = nullptr;
}

}  // namespace kupgw
