#include "upstream/request_scheduler.h"

#include <uv.h>

#include "upstream/upstream_impl.h"

namespace kupstream::detail {

struct RequestScheduler::Handles {
  uv_timer_t start_timer;
  uv_timer_t deadline_timer;
  RequestScheduler* owner;  // null once the scheduler is gone
  int open = 2;
};

RequestScheduler::RequestScheduler(uv_loop_t& loop) : loop_(loop), handles_(new Handles{}) {
  handles_->owner = this;
  uv_timer_init(&loop_, &handles_->start_timer);
  uv_timer_init(&loop_, &handles_->deadline_timer);
  handles_->start_timer.data = handles_;
  handles_->deadline_timer.data = handles_;
}

RequestScheduler::~RequestScheduler() {
  while (first_ != nullptr) remove_deadline(*first_);
  handles_->owner = nullptr;
  auto closed = [](uv_handle_t* h) {
    auto* hs = static_cast<Handles*>(h->data);
    if (--hs->open == 0) delete hs;
  };
  uv_close(reinterpret_cast<uv_handle_t*>(&handles_->start_timer), closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&handles_->deadline_timer), closed);
}

void RequestScheduler::defer_attempt(const std::shared_ptr<UpstreamRequest::Impl>& r) {
  if (starts_.empty()) {
    uv_timer_start(&handles_->start_timer, [](uv_timer_t* t) {
      if (auto* owner = static_cast<Handles*>(t->data)->owner) owner->run_starts();
    }, 0, 0);
  }
  starts_.emplace_back(r);
}

void RequestScheduler::run_starts() {
  Handles* handles = handles_;
  running_.swap(starts_);  // both keep their capacity from turn to turn
  for (std::size_t i = 0; i < running_.size(); ++i) {
    auto r = running_[i].lock();
    running_[i].reset();
    if (!r || r->done || r->canceled) continue;
    r->run_deferred();
    if (handles->owner == nullptr) return;  // the Upstream went away inside a callback
  }
  running_.clear();
}

void RequestScheduler::add_deadline(UpstreamRequest::Impl& r, std::uint64_t delay_ms) {
  remove_deadline(r);
  r.deadline_ms = uv_now(&loop_) + delay_ms;
  // From the end: with one timeout per Upstream the new request is the latest.
  UpstreamRequest::Impl* after = last_;
  while (after != nullptr && after->deadline_ms > r.deadline_ms) after = after->deadline_prev;
  r.deadline_prev = after;
  r.deadline_next = after != nullptr ? after->deadline_next : first_;
  if (r.deadline_next != nullptr) r.deadline_next->deadline_prev = &r;
  else last_ = &r;
  if (after != nullptr) after->deadline_next = &r;
  else first_ = &r;
  r.deadline_listed = true;
  if (armed_due_ == 0 || r.deadline_ms < armed_due_) arm_deadline_timer();
}

void RequestScheduler::remove_deadline(UpstreamRequest::Impl& r) noexcept {
  if (!r.deadline_listed) return;
  if (r.deadline_prev != nullptr) r.deadline_prev->deadline_next = r.deadline_next;
  else first_ = r.deadline_next;
  if (r.deadline_next != nullptr) r.deadline_next->deadline_prev = r.deadline_prev;
  else last_ = r.deadline_prev;
  r.deadline_prev = r.deadline_next = nullptr;
  r.deadline_listed = false;
  if (first_ == nullptr && armed_due_ != 0) {
    // Nothing left to time: do not keep the loop alive for nothing.
    uv_timer_stop(&handles_->deadline_timer);
    armed_due_ = 0;
  }
}

void RequestScheduler::arm_deadline_timer() {
  const std::uint64_t now = uv_now(&loop_);
  armed_due_ = first_->deadline_ms;
  uv_timer_start(&handles_->deadline_timer, [](uv_timer_t* t) {
    if (auto* owner = static_cast<Handles*>(t->data)->owner) owner->run_deadlines();
  }, armed_due_ > now ? armed_due_ - now : 0, 0);
}

void RequestScheduler::run_deadlines() {
  Handles* handles = handles_;
  armed_due_ = 0;
  const std::uint64_t now = uv_now(&loop_);
  while (first_ != nullptr && first_->deadline_ms <= now) {
    UpstreamRequest::Impl& r = *first_;
    remove_deadline(r);
    auto keep = r.shared_from_this();
    r.on_total_timeout();
    if (handles->owner == nullptr) return;  // the Upstream went away inside a callback
  }
  if (first_ != nullptr && armed_due_ == 0) arm_deadline_timer();
}

}  // namespace kupstream::detail
