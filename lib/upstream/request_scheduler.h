// RequestScheduler: the timing of one Upstream's requests without a uv handle per request.
//
// - defer_attempt(): the first attempt of a forwarded request that could not be sent at once
//   (no Pod yet), or the outcome of one that failed inside forward(), runs on a later loop
//   turn (a callback never runs inside forward()); requests deferred in the same turn share
//   one zero-delay timer and run in the order they were forwarded.
// - add_deadline()/remove_deadline(): the total timeout. Requests are kept in a list ordered by
//   deadline (every request of an Upstream has the same timeout, so a new one goes at the end)
//   under one uv timer armed for the earliest. Removing the first one does not re-arm it: it
//   fires, finds nothing due and re-arms for the new first one.
//
// Thread: loop thread only. Lifetime: owned by Upstream::Impl; its destructor closes the two
// timers (their memory is freed in the close callbacks) and unlinks any request still listed.
// A request callback that destroys the owner while the scheduler is calling it is safe: the
// scheduler stops at once.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kupstream/upstream.h"

typedef struct uv_loop_s uv_loop_t;

namespace kupstream::detail {

class RequestScheduler {
 public:
  explicit RequestScheduler(uv_loop_t& loop);
  ~RequestScheduler();
  RequestScheduler(const RequestScheduler&) = delete;
  RequestScheduler& operator=(const RequestScheduler&) = delete;

  // Calls r->run_deferred() on a later loop turn unless r is gone, done or canceled by then.
  void defer_attempt(const std::shared_ptr<UpstreamRequest::Impl>& r);
  // Calls r.on_total_timeout() once `delay_ms` have passed, unless removed before.
  void add_deadline(UpstreamRequest::Impl& r, std::uint64_t delay_ms);
  void remove_deadline(UpstreamRequest::Impl& r) noexcept;

 private:
  struct Handles;
  void run_starts();
  void run_deadlines();
  void arm_deadline_timer();

  uv_loop_t& loop_;
  Handles* handles_;
  std::vector<std::weak_ptr<UpstreamRequest::Impl>> starts_, running_;
  UpstreamRequest::Impl* first_ = nullptr;
  UpstreamRequest::Impl* last_ = nullptr;
  std::uint64_t armed_due_ = 0;  // loop time the deadline timer fires; 0 = not armed
};

}  // namespace kupstream::detail
