// ForwardingContext: the request path of one loop. The Upstream's own (control) loop has one,
// and every UpstreamWorker has one on its loop; UpstreamRequest::Impl (upstream_request.cpp)
// runs against it and never against Upstream::Impl, so the same code serves both.
//
// A context owns what must not cross threads: the connection pools per Pod of its loop, its
// live requests, its RequestScheduler, its retry budget and its counters. It shares, read-only,
// the Upstream's ForwardSettings and the Routing the control loop publishes (Publication). Its
// observations (attempt outcomes per Pod, counters) go to the control loop: at once when the
// context lives there (`control` set), else into `tally`, which the worker hands over at most
// every few milliseconds, and at the end of the loop turn that saw a failed attempt
// (upstream_worker.cpp).
//
// Thread: the context's loop thread only, except Publication and PodTarget (see each).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kupstream/upstream.h"
#include "net/connection_pool.h"
#include "net/tls_context.h"
#include "upstream/host_port_text.h"
#include "upstream/latency_histogram.h"
#include "upstream/request_scheduler.h"

namespace kupstream {

// The requests in flight of one loop's context (each holds its place: insert and erase are O(1)
// without an allocation per request). Iterates as shared_ptrs, in no particular order.
class LiveRequests {
 public:
  using Ptr = std::shared_ptr<UpstreamRequest::Impl>;
  void insert(Ptr r);
  void erase(UpstreamRequest::Impl& r) noexcept;
  void clear() noexcept;
  std::vector<Ptr>::const_iterator begin() const noexcept { return v_.begin(); }
  std::vector<Ptr>::const_iterator end() const noexcept { return v_.end(); }
  std::size_t size() const noexcept { return v_.size(); }
  bool empty() const noexcept { return v_.empty(); }

 private:
  std::vector<Ptr> v_;
};

namespace detail {

// What the request path needs of one Pod, the same for every loop. Made on the control loop with
// the Pod (it is the base of UpstreamPod, in the same slab block) and immutable afterwards, apart
// from its load counter and its reference count (both atomic): any thread may read it.
//
// It is the Pod's EndpointLoad: the Upstream's Pickers hand it out as PickResult::load, so a pick
// leads to its PodTarget (target_of()) without a parallel array. The Pod is counted in place
// (PodRef): the service's Pod array, the Pickers (through the arrays they keep) and every loop's
// LoopPod hold references, and the last one to go releases the Pod, on its thread.
struct PodTarget : EndpointLoad {
  // port and service fill the 4 bytes after EndpointLoad's counter. Its address is not kept
  // here: a loop takes it from the picked Endpoint when it makes the Pod's pool
  // (LoopPod::host_port), and the control loop from the Pod's snapshot entry.
  std::uint16_t port = 0;
  std::uint16_t service = 0;  // index in UpstreamConfig::services (at most 20 of them)
  std::uint64_t id = 0;       // unique within its Upstream, never reused
  // References (PodRef) held. Last: UpstreamPod places its first field in the 4 bytes of
  // padding after it, so a PodTarget costs 20 of the Pod's 64 bytes.
  mutable std::atomic<std::uint32_t> refs{0};

  // The load counter, shared by every loop (least_request sees all of them). Atomic; a PodTarget
  // is never created const, so counting through a const one is well-defined.
  EndpointLoad& load() const noexcept { return const_cast<PodTarget&>(*this); }
};

// Destroys the Pod whose last reference went (defined with UpstreamPod, upstream.cpp). Any thread.
void release_pod(const PodTarget& target) noexcept;

// A counted reference to a Pod: T is PodTarget (what loops hold) or UpstreamPod (the control
// loop's arrays), const or not. Copies count up, destruction counts down (atomic, any thread);
// the last release destroys the Pod. 8 bytes.
template <class T>
class PodRef {
 public:
  PodRef() noexcept = default;
  // A new reference to `pod` (null: none).
  explicit PodRef(T* pod) noexcept : pod_(pod) {
    if (pod_) pod_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  PodRef(const PodRef& other) noexcept : PodRef(other.pod_) {}
  PodRef(PodRef&& other) noexcept : pod_(std::exchange(other.pod_, nullptr)) {}
  // From a reference to a derived or non-const type (UpstreamPod to PodTarget).
  template <class U>
  PodRef(const PodRef<U>& other) noexcept : PodRef(other.get()) {}  // NOLINT: implicit, as for pointers
  PodRef& operator=(PodRef other) noexcept {
    std::swap(pod_, other.pod_);
    return *this;
  }
  ~PodRef() {
    // acq_rel: the release orders this holder's reads before the destruction, the acquire orders
    // the destruction after every other holder's.
    if (pod_ && pod_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) release_pod(*pod_);
  }
  T* get() const noexcept { return pod_; }
  T* operator->() const noexcept { return pod_; }
  T& operator*() const noexcept { return *pod_; }
  explicit operator bool() const noexcept { return pod_ != nullptr; }

 private:
  T* pod_ = nullptr;
};
using TargetRef = PodRef<const PodTarget>;

// The Pod behind a pick of an Upstream's Picker (its `load` is the Pod's PodTarget).
inline const PodTarget& target_of(const PickResult& r) noexcept { return static_cast<const PodTarget&>(*r.load); }

// A published Picker. Immutable. The Pod behind each endpoint is target_of(endpoint).
struct Routing {
  PickerPtr picker;
  bool synced = false;  // every service had its first snapshot when this was published
};
using RoutingPtr = std::shared_ptr<const Routing>;

// Where an Upstream publishes its Routing for every loop and thread. publish() on the control
// loop: it stores the new Routing, then bumps the generation (release). Readers compare the
// generation (one acquire load, no lock, no shared write) with the one of the Routing they
// hold and take the mutex-guarded shared_ptr only when it changed (RoutingCache).
// A mutex, not std::atomic<std::shared_ptr>: GCC 12's releases its spin lock with a relaxed
// store after a load, which orders nothing for ThreadSanitizer (a reported race between a
// worker's load and the next publish once nothing else synchronized the two threads).
class Publication {
 public:
  explicit Publication(RoutingPtr first) : routing_(std::move(first)) {}
  void publish(RoutingPtr routing) {
    {
      std::lock_guard lock(mutex_);
      routing_.swap(routing);
    }
    generation_.fetch_add(1, std::memory_order_release);
    // The old Routing (in `routing`) is released here, outside the lock.
  }
  // The slow path, about once per publish per reader.
  RoutingPtr load() const {
    std::lock_guard lock(mutex_);
    return routing_;
  }
  std::uint64_t generation() const noexcept { return generation_.load(std::memory_order_acquire); }
  // Set once the Upstream has been dropped (after its last, empty, Routing was published).
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }
  void close() noexcept { closed_.store(true, std::memory_order_release); }

 private:
  std::atomic<std::uint64_t> generation_{1};
  mutable std::mutex mutex_;
  RoutingPtr routing_;  // guarded by mutex_
  std::atomic<bool> closed_{false};
};

// One reader's Routing: reloaded only when the Publication's generation has moved. If a publish
// lands between the generation load and the Routing load, the newer Routing is kept under the
// older generation and reloaded once more on the next call: never older than what was seen.
struct RoutingCache {
  std::uint64_t generation = 0;
  RoutingPtr routing;
  const Routing& get(const Publication& p) {
    const std::uint64_t g = p.generation();
    if (g != generation) {
      routing = p.load();
      generation = g;
    }
    return *routing;
  }
};

// The calling thread's Routing of `p`, cached per thread (a few Upstreams at once); valid until
// this thread's next call. For pick() and picker() on any thread. The cache lets go of the
// Routings of Upstreams that are gone at the thread's next call for an Upstream it does not hold.
const Routing& thread_routing(const std::shared_ptr<const Publication>& p);

enum class AttemptOutcome : std::uint8_t { neutral, success, failure };

// One attempt on one Pod, as the control loop applies it: counts, passive health.
struct AttemptRecord {
  std::uint64_t pod_id;
  std::uint32_t service;  // counted for the service even when the Pod is forgotten meanwhile
  AttemptOutcome outcome;
};

// A loop's counts since they were last handed to the control loop (a worker), or ever (the
// control loop's own context).
struct Tally {
  std::uint64_t requests = 0, failures = 0, retries = 0, no_endpoint = 0;
  std::int64_t in_flight = 0;  // a worker's batch: the change since the last batch
  LatencyHistogram latency;
  std::vector<AttemptRecord> attempts;  // a worker's batch only
  bool failed_attempt = false;  // `attempts` holds a failure: the worker hands it over at once
  // Anything to hand over, apart from an in-flight change (which the worker computes).
  bool has_news() const noexcept {
    return requests != 0 || failures != 0 || retries != 0 || no_endpoint != 0 || !attempts.empty();
  }
  // Adds the counts of `o` (not its attempts).
  void add_counts(const Tally& o) noexcept {
    requests += o.requests;
    failures += o.failures;
    retries += o.retries;
    no_endpoint += o.no_endpoint;
    in_flight += o.in_flight;
    latency.merge(o.latency);
  }
};

// What every context of one Upstream reads, immutable once made (by the Upstream's constructor).
struct ForwardSettings {
  UpstreamConfig config;
  UpstreamOptions options;
  std::vector<std::string> authorities;  // per service: Host when no override nor client host
  // Per service, the TLS settings a worker makes its own TlsContext from (nullopt: http).
  std::vector<std::optional<net::TlsConfig>> tls;
};

// One Pod as one loop's context sees it: its pool on that loop.
struct LoopPod {
  TargetRef target;
  // "address:port" ("[v6]:port") of the Endpoint the pool was made for, as error reasons and
  // ForwardResponseHead::pod name the Pod (one copy per loop that uses the Pod, not one per Pod).
  HostPortText host_port;
  std::unique_ptr<net::ConnectionPool> pool;
  std::uint32_t in_flight = 0;  // attempts of this loop on it
  bool removed = false;         // the Upstream forgot it: the pool goes when in_flight is 0
};

}  // namespace detail


class ForwardingContext : public std::enable_shared_from_this<ForwardingContext> {
 public:
  // `tls`: per service, this loop's TLS context (null for http). A TlsContext keeps a session
  // cache that is not thread-safe: every loop has its own.
  ForwardingContext(uv_loop_t& loop, std::shared_ptr<const detail::ForwardSettings> settings,
                    std::shared_ptr<const detail::Publication> publication,
                    std::vector<std::shared_ptr<net::TlsContext>> tls);
  ~ForwardingContext();
  ForwardingContext(const ForwardingContext&) = delete;
  ForwardingContext& operator=(const ForwardingContext&) = delete;

  // Validates and starts a request (Upstream::forward and UpstreamWorker::forward). Takes the
  // request and handlers only when it succeeds (by reference: one move fewer per request).
  Result<std::unique_ptr<UpstreamRequest>> forward(ForwardRequest&& request, ForwardHandlers&& handlers);

  const detail::Routing& routing() { return routing_cache_.get(*publication); }
  const std::string& name() const noexcept { return settings->config.name; }
  const UpstreamOptions& options() const noexcept { return settings->options; }
  void log(LogLevel level, const std::string& text) const {
    if (settings->options.log) settings->options.log(level, text);
  }

  // This loop's pool for the Pod (made on first use, which takes a reference to `target`); null
  // (logged) when it cannot be made. `target` must be alive during the call (a Picker or Pod
  // array holds it); `endpoint` is the Pod's Endpoint (its address and port), read only while
  // the call runs.
  std::shared_ptr<detail::LoopPod> pod_for(const detail::PodTarget& target, const Endpoint& endpoint);
  // An attempt on `pod` ended (its EndpointLoad already released): counted, reported to the
  // control loop, and the pool closed if the Pod was removed and this was its last attempt.
  void attempt_done(const std::shared_ptr<detail::LoopPod>& pod, detail::AttemptOutcome outcome);
  // A request ended (complete or canceled): in-flight counts, failures and latency.
  void request_done(UpstreamRequest::Impl& r, bool failed, bool completed);
  // The control loop forgot the Pod: its pool closes now, or after this loop's last attempt on it.
  void pod_removed(std::uint64_t pod_id);
  // Cancels every request (no handler runs) and closes every pool. Idempotent.
  void shutdown();

  uv_loop_t& loop;
  const std::shared_ptr<const detail::ForwardSettings> settings;
  const std::shared_ptr<const detail::Publication> publication;
  std::vector<std::shared_ptr<net::TlsContext>> tls;
  Upstream::Impl* control = nullptr;  // set on the Upstream's own loop: observations apply at once
  bool stopped = false;
  std::uint32_t in_flight = 0, retries_in_flight = 0;  // this loop's (the retry budget is per loop)
  std::int64_t in_flight_reported = 0;  // what the control loop has been told (workers)
  detail::Tally tally;
  LiveRequests live_requests;
  std::unordered_map<std::uint64_t, std::shared_ptr<detail::LoopPod>> pods;
  // Deferred first attempts and total timeouts; created by the first forward(). Declared
  // last: destroyed first, after shutdown() has ended every request.
  std::unique_ptr<detail::RequestScheduler> scheduler;

 private:
  detail::RoutingCache routing_cache_;
  bool shutting_down_ = false;
};

}  // namespace kupstream
