#include "loop_thread.h"

namespace kupgw {

LoopThread::LoopThread() {
  uv_loop_init(&loop_);
  mailbox_.emplace(loop_);
}

LoopThread::~LoopThread() {
  if (!started_) {
    mailbox_.reset();  // closes it
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
    return;
  }
  join();
}

void LoopThread::start(std::function<void(bool closed)> on_exit) {
  started_ = true;
  thread_ = std::thread([this, on_exit = std::move(on_exit)] {
    // The loop ends once every handle, the mailbox's included, is closed. The Mailbox object
    // stays (closed: posts from other threads are refused) until the LoopThread is destroyed.
    uv_run(&loop_, UV_RUN_DEFAULT);
    bool closed = uv_loop_close(&loop_) == 0;
    if (on_exit) on_exit(closed);
  });
}

void LoopThread::join() {
  if (thread_.joinable()) thread_.join();
}

}  // namespace kupgw
