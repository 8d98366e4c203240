#include "kube/watch_list_memory.h"

namespace kupstream::kube {

std::optional<WatchListMemory::Entry> WatchListMemory::skip(std::string_view resource, Clock::time_point now) const {
  auto it = entries_.find(resource);
  if (it == entries_.end() || now - it->second.when >= retry_after_) return std::nullopt;
  return it->second;
}

void WatchListMemory::record(std::string_view resource, Why why, Clock::time_point now) {
  auto it = entries_.find(resource);
  if (it == entries_.end()) it = entries_.emplace(std::string(resource), Entry{}).first;
  it->second = Entry{why, now, std::chrono::system_clock::now()};
}

void WatchListMemory::forget(std::string_view resource) {
  if (auto it = entries_.find(resource); it != entries_.end()) entries_.erase(it);
}

std::string_view resource_of_path(std::string_view path) noexcept {
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  const auto slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

}  // namespace kupstream::kube
