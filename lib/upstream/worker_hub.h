// ControlHub and WorkerLink: the two uv_async channels between an Upstream's control loop and its
// UpstreamWorkers (upstream_worker.cpp).
//
// - Workers → control (ControlHub): a worker appends its batch (detail::Tally: attempt outcomes
//   and counts) under the hub's mutex; the control loop takes every batch at once and applies it
//   (Upstream::Impl::apply_batch). A worker hands over at the end of a loop turn that saw a
//   failed attempt, else at most every few milliseconds (upstream_worker.cpp). The control loop
//   is woken (uv_async) for a batch with a failure, and for the first batch after a quiet spell;
//   then a timer on the control loop drains every kDrainMs while batches keep coming, and stops
//   after a tick that found none. So a busy worker makes no system call to hand over, and the
//   control thread wakes kDrainMs apart instead of once per hand-over (each uv_async wake-up
//   also made it spin in libuv until the sender's eventfd write returned).
// - Control → a worker (WorkerLink): ids of the Pods the Upstream forgot; the worker closes
//   their pools on its loop (ForwardingContext::pod_removed).
//
// The mutexes guard the batch lists and the `closed` flags that make uv_async_send safe against
// the other side closing its handle: they are taken once per hand-over and per removed Pod,
// never per request.
// Lifetime: shared by the Upstream (control loop) and its workers; each side closes its own uv
// handle on its own loop (ControlHub::close on the control loop, WorkerLink in the worker).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "kupstream/upstream.h"
#include "upstream/forwarding_context.h"

typedef struct uv_async_s uv_async_t;
typedef struct uv_timer_s uv_timer_t;

namespace kupstream::detail {

struct WorkerLink {
  std::mutex mutex;
  bool closed = false;           // the worker is gone: no more sends
  uv_async_t* async = nullptr;   // on the worker's loop
  std::vector<std::uint64_t> removed;  // Pod ids, for the worker's loop
};

class ControlHub {
 public:
  // Control loop thread: an unreferenced uv_async on `loop` (it does not keep the loop alive).
  ControlHub(uv_loop_t& loop, Upstream::Impl& owner);
  ~ControlHub();
  ControlHub(const ControlHub&) = delete;
  ControlHub& operator=(const ControlHub&) = delete;

  // Control loop thread: no batch is applied afterwards, workers are detached, the handle closes.
  void close();
  // Control loop thread: every worker is told that the Pod is gone.
  void pod_removed(std::uint64_t pod_id);

  // Worker threads. attach(): false when the hub is closed. submit(): the batch is dropped when
  // the hub is closed (the Upstream is gone); `urgent` (a failed attempt) wakes the control loop
  // now, else it is applied within kDrainMs.
  bool attach(const std::shared_ptr<WorkerLink>& link);
  void detach(const WorkerLink* link);
  void submit(Tally&& batch, bool urgent);

  // The control loop's drain period while batches keep coming.
  static constexpr std::uint64_t kDrainMs = 5;

 private:
  bool drain();  // control loop: applies every batch submitted so far; false when there was none
  void on_wake();  // control loop (uv_async): drains, and starts the timer
  void on_tick();  // control loop (timer): drains, and stops the timer after an empty tick

  std::mutex mutex_;
  bool closed_ = false;
  bool woken_ = false;    // a wake-up is on its way (guarded by mutex_)
  bool ticking_ = false;  // the drain timer runs (guarded by mutex_; changed on the control loop)
  uv_async_t* async_ = nullptr;
  uv_timer_t* timer_ = nullptr;  // unreferenced: it does not keep the control loop alive
  Upstream::Impl* owner_;  // control loop only
  std::vector<Tally> inbox_, applying_;
  std::vector<std::shared_ptr<WorkerLink>> links_;
};

}  // namespace kupstream::detail
