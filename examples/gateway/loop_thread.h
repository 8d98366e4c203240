// LoopThread: a libuv loop of its own, run on a thread of its own, with a Mailbox to reach it.
//
// The gateway's worker loops are LoopThreads. Handles may be opened on loop() from the
// creating thread before start() (thread start orders them); after start() only the loop's
// own thread touches them, and other threads reach it through post().
//
// The loop runs until it has no active handle left: whoever owns the handles closes them on
// the loop thread (close_mailbox() closes the mailbox's own). Then the thread runs the loop
// once more to finish the close callbacks, calls uv_loop_close, and calls `on_exit(closed)`
// on that thread (closed = uv_loop_close returned 0), as its last act.
//
// Thread: construct, start(), join() and the destructor on one owning thread; post() from any
// thread; close_mailbox() on the loop thread (or before start()). Lifetime: the destructor
// joins the thread; the loop must have been started and have ended, or never started (then
// the destructor closes the mailbox and runs the loop to the end itself).
#pragma once

#include <uv.h>

#include <functional>
#include <optional>
#include <thread>

#include "mailbox.h"

namespace kupgw {

class LoopThread {
 public:
  LoopThread();
  ~LoopThread();
  LoopThread(const LoopThread&) = delete;
  LoopThread& operator=(const LoopThread&) = delete;

  uv_loop_t& loop() { return loop_; }
  // Runs the loop on a new thread. `on_exit` runs on it once the loop has ended and closed.
  void start(std::function<void(bool closed)> on_exit);
  // Queues `fn` to run on the loop thread. False once the mailbox is closed.
  bool post(std::function<void()> fn) { return mailbox_->post(std::move(fn)); }
  void close_mailbox() { mailbox_->close(); }
  // Waits for the thread to end (after its loop ended). No-op when it never started.
  void join();

 private:
  uv_loop_t loop_;
  std::optional<Mailbox> mailbox_;
  std::thread thread_;
  bool started_ = false;
};

}  // namespace kupgw
