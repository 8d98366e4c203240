// Internal state of Upstream and UpstreamRequest, shared by upstream.cpp (membership, weights,
// health), upstream_request.cpp (the request path, against a ForwardingContext),
// upstream_worker.cpp (worker loops) and upstream_metrics.cpp.
#pragma once

#include <atomic>
#include <memory>
#include <set>  // upstream.cpp
#include <unordered_map>
#include <vector>

#include "kupstream/upstream.h"
#include "net/connection_pool.h"
#include "upstream/forwarding_context.h"
#include "upstream/latency_histogram.h"
#include "upstream/pod_health.h"
#include "upstream/request_scheduler.h"
#include "upstream/zone_locality.h"

typedef struct uv_timer_s uv_timer_t;

namespace kupstream::net {
class TlsContext;
}

namespace kupstream {

namespace detail {
class ControlHub;
}

using SteadyClock = std::chrono::steady_clock;

// One Pod of one service, as long as it is listed or still has requests in flight: one 64-byte
// block from a SlabPool (make_pod()) for the PodTarget that every loop's request path reads (its
// base) and the control loop's state (the other fields, the control loop's alone). Counted in
// place (detail::PodRef): held by its service's Pod array, which the Pickers built from it keep,
// and by every loop's LoopPod; pod_slots and the rebuild hold plain pointers, valid while the Pod
// is in the array.
struct UpstreamPod : detail::PodTarget {
  std::uint32_t first_seen = 0;     // detail::stamp_ms() of its first listing (slow start), until `ramped`
  // The Pod's entry in a snapshot of its service, shared rather than copied: while listed, the
  // service's current `set` (which keeps it alive); once unlisted, the snapshot that listed it
  // last, kept alive by the service's `retired` until the Pod is released.
  const Endpoint* endpoint = nullptr;
  std::uint64_t requests = 0, failures = 0;
  detail::PodHealth health;
  std::uint32_t weight = 0;         // in the current Picker (0 = not in it)
  std::uint16_t active_streak = 0;  // consecutive results contradicting active_ok (thresholds are small)
  bool listed : 1 = false;    // in the service's current snapshot (ready or draining)
  bool ready : 1 = false;     // listed as ready (else draining)
  bool active_ok : 1 = true;  // active health check verdict
  bool local : 1 = false;     // zone-aware routing counts it in the local zone
  bool ramped : 1 = false;    // its slow start is over (or it came with the first snapshot): first_seen is not read

  // How long it has been listed, for slow start (count_pods() sets `ramped` once that is past
  // the slow start, so the 4-byte stamp is never read across its wrap); max once ramped.
  std::chrono::milliseconds age(SteadyClock::time_point now) const noexcept {
    if (ramped) return std::chrono::milliseconds::max();
    return std::chrono::milliseconds{detail::stamp_ms(now) - first_seen};
  }

  // Index in UpstreamConfig::services (kept once, in the target).
  std::uint32_t service() const noexcept { return PodTarget::service; }
  // Its "address:port" ("[v6]:port") text, made from its snapshot entry (stats, logs).
  std::string name() const { return endpoint->host_port(); }
};
// make_pod() takes it from a SlabPool (core/slab_pool.h), which adds nothing per block: 64 bytes
// per Pod (the memory per endpoint, docs/performance.md).
static_assert(sizeof(std::size_t) != 8 || sizeof(UpstreamPod) <= 64, "UpstreamPod grew: the memory per endpoint grows with it");
using UpstreamPodRef = detail::PodRef<UpstreamPod>;

// A service's Pods, copied on write: a Picker built from the array keeps the array (and so its
// Pods) alive by one shared pointer, with no reference per Pod, while the control loop moves on to
// a new array. Control loop only; the shared arrays are immutable.
class PodArray {
 public:
  using Items = std::vector<UpstreamPodRef>;
  PodArray() : items_(none()) {}
  std::size_t size() const noexcept { return items_->size(); }
  bool empty() const noexcept { return items_->empty(); }
  Items::const_iterator begin() const noexcept { return items_->begin(); }
  Items::const_iterator end() const noexcept { return items_->end(); }
  const UpstreamPodRef& operator[](std::size_t i) const noexcept { return (*items_)[i]; }
  const UpstreamPodRef& back() const noexcept { return items_->back(); }
  // The array as it is now, for a Picker to keep.
  const std::shared_ptr<const Items>& share() const noexcept { return items_; }
  // Replaces the array (earlier shares keep theirs).
  void assign(Items items) { items_ = std::make_shared<const Items>(std::move(items)); }
  // Drops the Pods `drop(pod)` selects (called once per Pod, in order), in a new array when any
  // is dropped; when none is, the array stays as it is and nothing is copied.
  template <class F>
  void erase_if(F&& drop) {
    const Items& items = *items_;
    std::size_t i = 0;
    while (i < items.size() && !drop(*items[i])) ++i;
    if (i == items.size()) return;
    Items kept;
    kept.reserve(items.size() - 1);
    kept.insert(kept.end(), items.begin(), items.begin() + static_cast<std::ptrdiff_t>(i));
    for (++i; i < items.size(); ++i)
      if (!drop(*items[i])) kept.push_back(items[i]);
    assign(std::move(kept));
  }

 private:
  static const std::shared_ptr<const Items>& none() {
    static const auto none = std::make_shared<const Items>();
    return none;
  }
  std::shared_ptr<const Items> items_;
};

struct Upstream::Impl : std::enable_shared_from_this<Upstream::Impl> {
  struct Service {
    ServiceRef ref;
    std::unique_ptr<EndpointWatcher> watch;
    EndpointSetPtr set;
    WatchState state;
    bool seen_first_snapshot = false;
    std::shared_ptr<net::TlsContext> tls;  // for https upstreams
    std::string authority;                 // Host when neither override nor client host is known
    // This service's Pods, listed or not, in the order of its snapshots (BackendKey, then the
    // address text): on_snapshot() merges the next snapshot into it in one walk. The rebuild,
    // the timer, the ejection cap, stats() and the health checks walk these arrays.
    PodArray pods;
    // Snapshots that unlisted Pods (gone, requests still in flight) point into; dropped once
    // the service has no unlisted Pod left.
    std::vector<EndpointSetPtr> retired;
    std::uint64_t requests = 0, failures = 0, ejections = 0;  // for the per-service series

    // The rebuild's cache of this service (rebuild()), so that a change of one service walks
    // only that service's Pods. Counted by count_pods() at its last walk of `pods`; `dirty`
    // asks the next rebuild to walk them again (a new snapshot, a health verdict, an ejection;
    // an ejection end and slow start are found from `ejection_end` and `ramping`).
    bool dirty = true;
    std::size_t ready_pods = 0, draining_pods = 0;      // listed Pods, ready / draining
    std::size_t ready_healthy = 0, draining_healthy = 0;  // of those, neither ejected nor failing checks
    std::size_t ready_ejected = 0, draining_ejected = 0;  // of those, ejected (the ejection cap's count)
    SteadyClock::time_point ejection_end = SteadyClock::time_point::max();  // earliest, of its listed Pods
    bool ramping = false;  // a listed Pod was in slow start at the walk
    // Its Picker in the last two-level Picker (weighted_round_robin without zone-aware routing);
    // null when it had no Pod to offer. Kept while the service is clean and the global mode
    // (draining fallback, panic) is what it was built for.
    PickerPtr picker;
    bool picker_draining = false, picker_panic = false, picker_built = false;
  };

  Impl(uv_loop_t& l, UpstreamConfig c, UpstreamOptions o);
  // Tests and benchmarks: an Impl with one Service per ServiceRef and no watch, whose snapshots
  // the caller feeds through on_snapshot().
  static std::shared_ptr<Impl> unwatched(uv_loop_t& l, UpstreamConfig c, UpstreamOptions o) {
    auto impl = std::make_shared<Impl>(l, std::move(c), std::move(o));
    for (const auto& ref : impl->config.services) {
      Service s;
      s.ref = ref;
      impl->services.push_back(std::move(s));
    }
    return impl;
  }
  ~Impl();  // closes the timer if shutdown() never ran (create() failed half-way)

  uv_loop_t& loop;
  UpstreamConfig config;
  UpstreamOptions options;
  Balancer balancer;
  std::vector<Service> services;
  // The Picker and its Pods, as every loop and thread reads them (publish()).
  std::shared_ptr<detail::Publication> publication;
  bool panic = false, using_draining = false, stopped = false;
  uv_timer_t* timer = nullptr;  // slow start ramps, ejection ends, health checks
  SteadyClock::time_point next_health_check{};
  SteadyClock::time_point last_rebuild{};  // when the current Picker was built
  // Active health probes in flight; a probe past its deadline counts as a failure.
  struct Probe {
    std::uint64_t pod_id;  // the Pod's PodTarget id
    SteadyClock::time_point deadline;
    std::unique_ptr<net::HttpExchange> exchange;
  };
  std::vector<Probe> health_probes;

  // Zone-aware routing: the plan of the current Picker (zones and reason for stats) and the
  // attempts sent to local / other-zone Pods, counted as attempts reach the control loop
  // (zone_locality.h).
  detail::ZonePlan zone_plan;
  std::uint64_t local_requests = 0, cross_zone_requests = 0;
  // The request path (upstream_worker.cpp, forwarding_context.cpp): made by init_forwarding()
  // from the Upstream's constructor. `local` forwards on this loop; workers have their own
  // contexts, reach this loop through `hub`, and their counts add up in `worker_totals`.
  std::shared_ptr<const detail::ForwardSettings> forward_settings;
  std::shared_ptr<ForwardingContext> local;
  std::shared_ptr<detail::ControlHub> hub;
  detail::Tally worker_totals;
  // Every Pod by its PodTarget id, 8 B per Pod. An id's low kPodSlotBits bits are the Pod's
  // slot in pod_slots, the bits above a serial number that only grows: slots are reused (a
  // forgotten Pod's slot is null and waits in free_pod_slots), ids never are, so an attempt or
  // probe that names a forgotten Pod finds nothing. 2^24 slots: more Pods than 20 ServiceRefs can
  // name (Kubernetes supports 150,000 Pods per cluster).
  static constexpr unsigned kPodSlotBits = 24;
  static std::uint32_t slot_of(std::uint64_t id) noexcept {
    return static_cast<std::uint32_t>(id & ((std::uint64_t{1} << kPodSlotBits) - 1));
  }
  std::vector<UpstreamPod*> pod_slots;
  std::vector<std::uint32_t> free_pod_slots;
  std::uint64_t next_pod_serial = 1;

  void log(LogLevel level, const std::string& text) const {
    if (options.log) options.log(level, text);
  }
  void subscribe(const ClusterMap& clusters);
  void init_forwarding();
  // Publishes `picker` for every loop and thread (each endpoint's `load` is its Pod's PodTarget).
  void publish(PickerPtr picker);
  // A new Pod of service `service` for `e`, with its PodTarget and id, listed in pod_slots.
  UpstreamPodRef make_pod(std::uint32_t service, const Endpoint& e);
  UpstreamPod* pod_by_id(std::uint64_t id) const;
  std::size_t pod_count() const;
  // An attempt's outcome from any loop's context (on this loop): counts and passive health.
  void apply_attempt(const detail::AttemptRecord& attempt);
  // The Pod leaves pod_slots (its owner erases it next): every loop closes its pool to it.
  void forget_pod(UpstreamPod& pod);
  // The control loop's share of a worker's batch (upstream_worker.cpp).
  void apply_batch(detail::Tally& batch);
  // The counts of every loop: this one's and the workers' so far.
  detail::Tally totals() const;
  void on_snapshot(std::size_t service, const EndpointSetPtr& set);
  // Rebuilds and publishes the Picker. The default policy (weighted_round_robin, no zone-aware
  // routing) rebuilds only the dirty services' Pickers and groups them (Balancer::build_grouped);
  // the other policies and zone-aware routing build one flat Picker over every Pod.
  void rebuild();
  void rebuild_flat(SteadyClock::time_point now);
  // Walks the service's Pods: its counts, ejection_end and ramping; clears `dirty`. Forgets
  // ended ejections and marks Pods whose slow start is over (their 4-byte stamps, pod_health.h).
  void count_pods(Service& service, SteadyClock::time_point now);
  // The Picker of service i's candidates (ready, or draining in the fallback) with their weights
  // (set on its Pods); null when none takes traffic. Needs using_draining and panic set.
  PickerPtr service_picker(std::size_t i, SteadyClock::time_point now);
  std::uint64_t rebuilds = 0;  // varies the start of successive grouped Pickers
  void schedule_timer(SteadyClock::time_point now, SteadyClock::time_point next);
  void on_timer();
  void run_health_checks();
  void expire_probes(SteadyClock::time_point now);
  void health_verdict(std::uint64_t pod_id, bool ok);
  net::ConnectionPool* pool_for(const UpstreamPod& pod);
  void record_result(UpstreamPod& pod, bool failure);
  PickerPtr current_picker() const { return publication->load()->picker; }
  // Drops the Pod if it is unlisted and idle (the last request on a gone Pod ended); `pod` is
  // dangling afterwards when it was dropped.
  void release_pod_if_gone(UpstreamPod& pod);
  // Drops the service's unlisted Pods that have no request in flight.
  void release_gone_pods(Service& service);
  // Calls f(UpstreamPod&) for every Pod, service by service.
  template <class F>
  void for_each_pod(F&& f) const {
    for (const auto& service : services)
      for (const auto& pod : service.pods) f(*pod);
  }
  void shutdown();
  // Ends this loop's requests, stops hearing from workers, publishes the last (empty) Routing.
  void close_forwarding();
  UpstreamStats stats() const;         // upstream_metrics.cpp
  std::string prometheus_text() const;
};

struct UpstreamRequest::Impl : std::enable_shared_from_this<UpstreamRequest::Impl> {
  Impl(ForwardRequest&& r, ForwardHandlers&& h) : request(std::move(r)), handlers(std::move(h)) {}
  std::weak_ptr<ForwardingContext> context;  // the loop it runs on (the Upstream's or a worker's)
  ForwardRequest request;
  ForwardHandlers handlers;
  std::shared_ptr<detail::LoopPod> pod;
  std::unique_ptr<net::HttpExchange> exchange;
  std::vector<std::uint64_t> tried;  // PodTarget ids of earlier attempts (not the current one)
  std::string last_pod;            // address:port of the latest failed attempt, for error reasons
  std::uint32_t attempts = 0;
  bool head_delivered = false, done = false, canceled = false, counted_retry = false;
  int calling = 0;  // depth of user handler calls: cancel() inside one must not destroy it
  bool body_written = false, body_ended = false;
  std::string early_body;  // streamed body written before the first attempt was sent
  bool early_blocked = false;  // write_body returned false while buffering early_body
  int status = 0;
  SteadyClock::time_point start;
  // Place in LiveRequests, and in the RequestScheduler's deadline list (total timeout).
  std::size_t live_index = static_cast<std::size_t>(-1);
  Impl* deadline_prev = nullptr;
  Impl* deadline_next = nullptr;
  std::uint64_t deadline_ms = 0;
  bool deadline_listed = false;

  // Set while forward() runs the first attempt itself: complete() then keeps the outcome in
  // deferred_outcome for the scheduler to deliver on a later turn (never inside forward()).
  bool in_forward = false;
  std::optional<Status> deferred_outcome;

  void attempt();
  // The scheduler's call on a later turn: the first attempt, or the outcome kept by complete().
  void run_deferred();
  void on_total_timeout();
  // Ends the current attempt's hold on its Pod; `outcome`: failure, success, or neither
  // (canceled by the caller: says nothing about the Pod's health).
  using Outcome = detail::AttemptOutcome;
  void finish_attempt(Outcome outcome);
  void finish_attempt(bool pod_failure) { finish_attempt(pod_failure ? Outcome::failure : Outcome::success); }
  template <class Fn, class... Args>
  void call(Fn ForwardHandlers::*handler, Args&&... args) {
    if (done || !(handlers.*handler)) return;
    auto keep = shared_from_this();
    ++calling;
    (handlers.*handler)(std::forward<Args>(args)...);
    if (--calling == 0 && (canceled || done)) drop_handlers();
  }
  // Drops every handler (and what it captured); cheaper than assigning ForwardHandlers{}.
  void drop_handlers() noexcept {
    static_assert(sizeof(ForwardHandlers) == 4 * sizeof(std::function<void()>), "drop_handlers: a handler was added");
    handlers.on_head = nullptr;
    handlers.on_body = nullptr;
    handlers.on_writable = nullptr;
    handlers.on_complete = nullptr;
  }
  bool may_retry(const ForwardingContext& ctx, bool connect_phase) const;
  void retry(ForwardingContext& ctx);
  void complete(Status status);
  void cancel();
  void close_timer();
};

}  // namespace kupstream
