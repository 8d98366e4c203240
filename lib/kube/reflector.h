// Reflector<T>: lists and watches one Kubernetes resource collection and keeps its owner's
// copy in step, in the spirit of client-go's reflector.
//
//  - LIST with paging (limit/continue), then WATCH from the list's resourceVersion with
//    allowWatchBookmarks and a randomized timeoutSeconds; a watch that ends (normally, or by a
//    connection error once established) after ≥ 1 s or with events in it is resumed at once
//    from the last seen resourceVersion (bookmarks advance it), without a health change; one
//    that ends at once with nothing in it counts as a failure. A LIST that fails part-way is
//    started over from its first page.
//  - 410 Gone (HTTP or an ERROR event with code 410) → relist; the owner's copy is replaced
//    atomically by the relist's result, never emptied first.
//  - Failures back off exponentially with jitter (0.8 s doubling to 30 s, reset after a quiet
//    period), honouring Retry-After on 429/503; every 401 invalidates the credentials, and the
//    first of a failure streak retries at once.
//  - A watch that receives no byte for `idle_timeout` is dropped and resumed.
//  - Optional watch-list (sendInitialEvents=true, resourceVersionMatch=NotOlderThan) ending at
//    the bookmark annotated k8s.io/initial-events-end. It never waits without bound: when that
//    bookmark has not come `watch_list_bookmark_timeout` after the stream's 200 (a v1.28 server
//    holds it back until the next write to the resource type), the stream is dropped and the
//    resource is LISTed and watched instead; a server that refuses watch-list (422, servers
//    before 1.27) gets a LIST at once. Either is recorded in the WatchListMemory (per cluster and
//    resource), so later syncs of that resource go straight to LIST until its retry time.
//    Every (re)sync (the first, a relist after 410, a retry before the first sync) chooses again.
//
// Thread: loop thread only. Lifetime: non-copyable; dropping the Reflector at any time (even
// inside one of its callbacks) stops it; no callback runs afterwards.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kube/api_client.h"
#include "kube/objects.h"
#include "kube/watch_list_memory.h"

namespace kupstream::kube {

struct ReflectorOptions {
  std::string path;            // collection path, e.g. /apis/discovery.k8s.io/v1/namespaces/ns/endpointslices
  std::string label_selector;  // "" = none
  std::string field_selector;  // "" = none
  std::string what;            // for messages, e.g. `endpointslices in "default" (kubernetes.io/service-name=web)`
  std::uint32_t page_size = 500;
  std::chrono::seconds watch_timeout{300};  // each watch asks for a random timeout in [t, 2t)
  std::chrono::milliseconds idle_timeout{0};  // 0: watch_timeout * 2 + 30 s
  std::chrono::milliseconds backoff_initial{800};
  std::chrono::milliseconds backoff_max{30'000};
  std::chrono::milliseconds backoff_reset_after{120'000};  // a healthy stretch this long resets it
  bool watch_list = false;  // try streaming the initial state first
  // watch-list: the longest wait for the initial-events-end bookmark, from the stream's 200 on;
  // then LIST + watch instead (what the stream delivered is dropped: the LIST replaces it).
  std::chrono::milliseconds watch_list_bookmark_timeout{3000};
  // Shared by a cluster's Reflectors: resources whose watch-list was slow or refused skip it for
  // a while. nullptr: this Reflector keeps its own.
  std::shared_ptr<WatchListMemory> watch_list_memory;
  std::uint64_t seed = 0;   // jitter; 0 = random
  std::size_t max_response_bytes = 512u << 20;  // a LIST (all pages), an error body, a watch-list's initial events
  std::size_t max_event_bytes = 64u << 20;      // one watch line
  LogFn log;
};

// What the owner hears. All callbacks run on the loop thread, never inside start().
template <class T>
struct ReflectorCallbacks {
  // A complete, consistent state (after a LIST or the initial events of a watch-list):
  // replace the copy with `items` wholesale.
  std::function<void(std::vector<T> items, const std::string& resource_version)> on_replace;
  // One change after the last replace. `type` is added, modified or deleted.
  std::function<void(EventType type, T object, const std::string& resource_version)> on_event;
  // Health: ok once a LIST or WATCH is flowing; otherwise the error that interrupted it
  // (Errc::unauthorized, forbidden, not_found, too_many_requests, server_error, timed_out,
  // decode_error, connection errors...). The owner keeps its copy either way.
  std::function<void(const Status& health)> on_health;
  // Optional, for state reporting. `waiting`: non-empty while a watch-list stream waits for its
  // initial-events-end bookmark (says how long before the LIST fallback), "" once that wait is
  // over (synced, failed or fell back).
  std::function<void(const std::string& waiting)> on_waiting;
  // Optional. Why this Reflector syncs by LIST although watch-list was asked for (it fell back
  // after the bound, the server refused it, or the cluster's memory said skip); "" once a
  // watch-list synced again. Called when it changes.
  std::function<void(const std::string& note)> on_note;
};

template <class T>
class Reflector {
 public:
  Reflector(ApiClient& client, ReflectorOptions options, ReflectorCallbacks<T> callbacks);
  ~Reflector();
  Reflector(const Reflector&) = delete;
  Reflector& operator=(const Reflector&) = delete;

  // Begins listing on the next loop turn.
  void start();

  // The resourceVersion the copy reflects (the last event, bookmark or list), "" before sync.
  const std::string& resource_version() const noexcept;
  // Counters for tests and state reporting.
  struct Counters {
    std::uint64_t lists = 0, watches = 0, relists_after_gone = 0, events = 0, bookmarks = 0, failures = 0;
    std::uint64_t watch_lists = 0, watch_list_fallbacks = 0;  // watch-list attempts, and those that timed out
  };
  Counters counters() const noexcept;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

extern template class Reflector<EndpointSlice>;
extern template class Reflector<Service>;
extern template class Reflector<Node>;

}  // namespace kupstream::kube
