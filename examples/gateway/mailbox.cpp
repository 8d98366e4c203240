#include "mailbox.h"

#include <uv.h>

#include <mutex>
#include <vector>

namespace kupgw {

struct Mailbox::State {
  uv_async_t async;
  std::shared_ptr<State> self;  // held by the open handle; released in its close callback
  std::mutex mutex;
  std::vector<std::function<void()>> queue;  // guarded by mutex
  bool closed = false;                       // guarded by mutex
  std::vector<std::function<void()>> running;  // loop thread only

  void run() {
    {
      std::lock_guard lock(mutex);
      if (closed) return;
      running.swap(queue);
    }
    for (std::size_t i = 0; i < running.size(); ++i) {
      running[i]();
      if (is_closed()) break;  // a closure closed the mailbox: the rest never runs
    }
    running.clear();
  }
  bool is_closed() {
    std::lock_guard lock(mutex);
    return closed;
  }
};

Mailbox::Mailbox(uv_loop_t& loop) : state_(std::make_shared<State>()) {
  uv_async_init(&loop, &state_->async, [](uv_async_t* a) { static_cast<State*>(a->data)->run(); });
  state_->async.data = state_.get();
  state_->self = state_;
}

Mailbox::~Mailbox() { close(); }

bool Mailbox::post(std::function<void()> fn) {
  std::lock_guard lock(state_->mutex);
  if (state_->closed) return false;
  state_->queue.push_back(std::move(fn));
  // Under the mutex: close() cannot close the handle between the check and the send.
  uv_async_send(&state_->async);
  return true;
}

void Mailbox::close() {
  std::vector<std::function<void()>> dropped;
  {
    std::lock_guard lock(state_->mutex);
    if (state_->closed) return;
    state_->closed = true;
    dropped.swap(state_->queue);
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&state_->async), [](uv_handle_t* h) {
    auto* st = static_cast<State*>(h->data);
    auto keep = std::move(st->self);  // may free the state, after this callback returns
  });
  // `dropped` is destroyed here, outside the lock: its closures' captures may post elsewhere.
}

}  // namespace kupgw
