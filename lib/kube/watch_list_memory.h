// WatchListMemory: which resources of one cluster should skip watch-list for a while.
//
// A Reflector that tries watch-list (sendInitialEvents) records here when the server refused it
// (422, servers before 1.27 or without the WatchList feature) or was slow (no
// k8s.io/initial-events-end bookmark within the bound: a v1.28 server holds that bookmark back
// until the next write to the resource type, so on a quiet type it may never come). Every
// Reflector of the same cluster and resource then goes straight to LIST until `retry_after` has
// passed since the record; the next (re)sync after that tries watch-list again, and a watch-list
// whose bookmark comes in time forgets the record.
//
// Resources are keyed by their plural name ("endpointslices", "services", "nodes"): the API
// server's watch cache is per type, so one namespace's experience holds for the others.
//
// Thread: loop thread only (shared by the Reflectors of one ClusterClient). Value-like, no
// callbacks.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace kupstream::kube {

class WatchListMemory {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Why { slow, refused };
  struct Entry {
    Why why = Why::slow;
    Clock::time_point when{};
    std::chrono::system_clock::time_point wall{};  // for messages
  };

  explicit WatchListMemory(std::chrono::milliseconds retry_after = std::chrono::minutes{30}) : retry_after_(retry_after) {}

  // The record that makes `resource` skip watch-list at `now`, or nullopt (then try watch-list).
  std::optional<Entry> skip(std::string_view resource, Clock::time_point now) const;
  void record(std::string_view resource, Why why, Clock::time_point now);
  // A watch-list of `resource` completed within the bound.
  void forget(std::string_view resource);

  std::chrono::milliseconds retry_after() const noexcept { return retry_after_; }

 private:
  std::chrono::milliseconds retry_after_;
  std::map<std::string, Entry, std::less<>> entries_;
};

// "endpointslices" from "/apis/discovery.k8s.io/v1/namespaces/ns/endpointslices".
std::string_view resource_of_path(std::string_view path) noexcept;

}  // namespace kupstream::kube
