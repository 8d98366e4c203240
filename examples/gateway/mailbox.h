// Mailbox: closures posted from any thread, run in order on one loop's thread (uv_async).
//
// This is how the gateway's loops talk: the control loop tells a worker to swap its routes or
// to drain, a worker tells the control loop that it let go of a configuration generation or
// that it stopped. It is never on the request path; its mutex guards only the queue.
//
// Thread: post() from any thread; the constructor, close() and the destructor on the loop's
// thread (or before the loop runs). Lifetime: close() (or the destructor) stops it; closures
// posted afterwards are dropped (post returns false) and never run; closures still queued when
// it closes are dropped without running, on the closing thread. The uv_async handle is
// released in its close callback, so the loop drains.
#pragma once

#include <functional>
#include <memory>

typedef struct uv_loop_s uv_loop_t;

namespace kupgw {

class Mailbox {
 public:
  explicit Mailbox(uv_loop_t& loop);
  ~Mailbox();
  Mailbox(const Mailbox&) = delete;
  Mailbox& operator=(const Mailbox&) = delete;

  // Queues `fn` to run on the loop's thread on a later loop turn. False (and `fn` is dropped
  // at once) when the mailbox is closed.
  bool post(std::function<void()> fn);
  // Loop thread: no closure runs after this returns; the handle closes on a later turn.
  void close();

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace kupgw
