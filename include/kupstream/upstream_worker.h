/// @file
/// UpstreamWorker: forwarding on another loop (one per thread) for an Upstream whose discovery,
/// weights, health decisions and Picker publishing stay on the Upstream's own (control) loop.
///
/// A multi-core host runs one Upstream on its control loop and, on every worker loop (one per
/// thread), an UpstreamWorker from Upstream::worker(). Workers share the Upstream's discovery
/// (one set of watches, however many loops), its Picker, its health verdicts and its in-flight
/// counts per Pod (EndpointLoad, atomic: least_request sees every worker's load). Each worker
/// has its own connection pools per Pod, request timers, retry budget and live requests.
///
/// What flows where (docs/upstream.md, "Worker loops"):
/// - control → workers: the current Picker, through an atomic generation counter; each worker
///   (and each thread calling pick()) keeps the Picker of the generation it last saw and reloads
///   it only when the generation changed, so the request path takes no lock and does not touch
///   the mutex-guarded shared_ptr the control loop swaps (busy readers on it would slow the
///   publisher). What a Picker cannot carry goes by
///   uv_async: Pods removed, whose pools the worker then closes on its own loop.
/// - workers → control: attempt outcomes (per Pod: success, failure, canceled), request,
///   failure, retry and no-endpoint counts, in-flight deltas and latencies, collected in a batch
///   on the worker's loop and handed over (a short mutex-guarded append, never per request, with
///   a uv_async wake-up) at the end of the loop turn that saw a failed attempt, else within 5 ms
///   of the first news since the last hand-over. The control loop applies them: outlier ejection
///   is decided there, once, so every worker sees the same verdict in the next Picker;
///   Upstream::stats() and prometheus_text() include the workers' requests (up to 5 ms late).
///
/// Thread: forward() and the destructor on the worker's loop thread; pick(), picker(), ready()
/// and config() on any thread. The log callback of UpstreamOptions may be called on the worker's
/// thread (for its pools' events).
///
/// Lifetime: dropping the worker on its loop thread at any time, also inside a handler of one of
/// its requests, cancels its requests (no handler runs afterwards), closes its pools and handles
/// (the worker loop then drains: uv_loop_close succeeds) and hands its last counts to the
/// Upstream. Dropping the Upstream first is safe: the worker's requests in flight finish on the
/// worker's loop (a retry, or a first attempt still waiting for a Pod, then ends with
/// operation_canceled naming the upstream), later forward() calls fail with
/// operation_canceled naming the upstream, pick() finds no Pod and ready() is false; nothing
/// the worker does touches the dropped Upstream. The worker still has to be dropped on its loop.
#pragma once

#include <cstdint>
#include <memory>

#include "kupstream/balancer.h"
#include "kupstream/error.h"
#include "kupstream/export.h"
#include "kupstream/upstream.h"
#include "kupstream/upstream_config.h"

namespace kupstream {

/// A handle that forwards an Upstream's requests on a worker loop, from Upstream::worker().
/// See the file comment for what is shared, the thread and the lifetime rules.
class KUPSTREAM_API UpstreamWorker {
 public:
  struct Impl;
  /// Used by Upstream::worker(); hosts get UpstreamWorkers from there, never build one.
  explicit UpstreamWorker(std::shared_ptr<Impl> impl);
  /// Worker loop thread, at any time (also inside a handler of one of its requests): cancels its
  /// requests (no handler runs afterwards), closes its pools and handles.
  ~UpstreamWorker();
  UpstreamWorker(const UpstreamWorker&) = delete;
  UpstreamWorker& operator=(const UpstreamWorker&) = delete;

  /// Worker loop thread. The same contract as Upstream::forward(): handlers run on the worker's
  /// loop thread, never inside forward(). Errors returned (no handler runs): invalid_argument
  /// (bad method/target/header), operation_canceled (the Upstream has been dropped; the reason
  /// names it).
  Result<std::unique_ptr<UpstreamRequest>> forward(ForwardRequest request, ForwardHandlers handlers);

  /// Any thread. The current Picker (never null; empty before sync and after the Upstream is gone).
  PickerPtr picker() const;
  /// Any thread. A Pod for the host's own transport; the result points into a Picker this thread
  /// keeps alive until its next pick() (as Upstream::pick()).
  PickResult pick(std::uint64_t hash = 0) const;
  /// Any thread. True once every service has synced and some Pod can take traffic; false once
  /// the Upstream is gone.
  bool ready() const;
  /// Any thread. The Upstream's config (a copy the worker keeps, valid as long as the worker).
  const UpstreamConfig& config() const noexcept;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace kupstream
