// Shared pieces of the Node.js addon: the per-environment state (Node's loop, the one keep-alive
// handle, deferred destruction) and the error conversion.
//
// Thread: everything here runs on the thread of one Node.js environment (its loop thread). The
// addon starts no thread and creates no loop: it uses the loop napi_get_uv_event_loop() returns.
#pragma once

#include <napi.h>
#include <uv.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kupstream/error.h"

namespace kupnode {

// One per Node.js environment (main thread or worker), shared by every wrap of that
// environment (they hold a shared_ptr, so it outlives the last of them).
class EnvState {
 public:
  // Creates the handles on `loop`; both are closed by shutdown().
  explicit EnvState(uv_loop_t* loop);
  EnvState(const EnvState&) = delete;
  EnvState& operator=(const EnvState&) = delete;

  uv_loop_t* loop() const noexcept { return loop_; }

  // Open, ref'd objects keep the process alive through one ref'd handle (a server's semantics):
  // hold() when one opens (or is ref'd again), release() when it closes, is unref'd or collected.
  void hold();
  void release();

  // Runs `fn` on a later loop turn, outside any JS call and any library callback: how a
  // finalizer (which may run during garbage collection) gets its native object destroyed.
  // After shutdown() it runs `fn` at once.
  void defer(std::function<void()> fn);

  // Environment teardown: runs what was deferred and closes the handles.
  void shutdown();
  bool shut_down() const noexcept { return shut_down_; }

  // Live native objects, for the tests' leak checks (never used for control).
  std::size_t live_clusters = 0, live_upstreams = 0, live_requests = 0, deferred_destroys = 0;
  std::size_t holds() const noexcept { return holds_; }

 private:
  static void on_reap(uv_timer_t* timer);
  void reap();

  uv_loop_t* loop_;
  uv_async_t* keepalive_;  // heap: freed in its close callback
  uv_timer_t* reaper_;     // unref'd; runs deferred destruction
  std::size_t holds_ = 0;
  std::vector<std::function<void()>> pending_;
  bool shut_down_ = false;
};

std::shared_ptr<EnvState> env_state(Napi::Env env);
// The Cluster constructor, to check what is passed as a cluster.
Napi::Function env_cluster_ctor(Napi::Env env);
// The module's exports (NODE_API_MODULE).
Napi::Object init(Napi::Env env, Napi::Object exports);

// "KUP_NO_ENDPOINT" for Errc::no_endpoint; codes of other categories become "KUP_INTERNAL".
std::string error_code_name(const std::error_code& code);
// An Error whose message is the reason and whose `code` is error_code_name().
Napi::Error make_error(Napi::Env env, const kupstream::Error& error);
// Calls fn(args) from a libuv callback (or anywhere): a handle scope, Node's callback scope
// (microtasks and promise reactions run when it closes), and an exception thrown by fn is
// reported as uncaught, exactly as it would be from a listener of a net.Socket.
void call_js(Napi::Env env, const Napi::Object& recv, const Napi::Function& fn,
             const std::vector<napi_value>& args, const Napi::AsyncContext& context);

}  // namespace kupnode
