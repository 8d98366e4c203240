#include <cctype>

#include "addon.h"

namespace kupnode {

EnvState::EnvState(uv_loop_t* loop) : loop_(loop), keepalive_(new uv_async_t), reaper_(new uv_timer_t) {
  // An async handle is active from init until closed: ref'd, it keeps the loop alive.
  uv_async_init(loop_, keepalive_, nullptr);
  uv_unref(reinterpret_cast<uv_handle_t*>(keepalive_));
  uv_timer_init(loop_, reaper_);
  reaper_->data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(reaper_));
}

void EnvState::hold() {
  if (shut_down_) return;
  if (holds_++ == 0) uv_ref(reinterpret_cast<uv_handle_t*>(keepalive_));
}

void EnvState::release() {
  if (shut_down_ || holds_ == 0) return;
  if (--holds_ == 0) uv_unref(reinterpret_cast<uv_handle_t*>(keepalive_));
}

void EnvState::defer(std::function<void()> fn) {
  if (shut_down_) {
    fn();
    return;
  }
  ++deferred_destroys;
  pending_.push_back(std::move(fn));
  // Unref'd: a process with nothing else to do exits, and shutdown() runs what is left.
  if (pending_.size() == 1) uv_timer_start(reaper_, &EnvState::on_reap, 0, 0);
}

void EnvState::on_reap(uv_timer_t* timer) { static_cast<EnvState*>(timer->data)->reap(); }

void EnvState::reap() {
  // Destroying one object may defer another (a collected Upstream releasing its clusters).
  while (!pending_.empty()) {
    auto batch = std::move(pending_);
    pending_.clear();
    for (auto& fn : batch) fn();
  }
}

void EnvState::shutdown() {
  if (shut_down_) return;
  reap();
  shut_down_ = true;
  auto free_handle = [](uv_handle_t* h) {
    if (h->type == UV_ASYNC) delete reinterpret_cast<uv_async_t*>(h);
    else delete reinterpret_cast<uv_timer_t*>(h);
  };
  uv_close(reinterpret_cast<uv_handle_t*>(keepalive_), free_handle);
  uv_close(reinterpret_cast<uv_handle_t*>(reaper_), free_handle);
}

std::string error_code_name(const std::error_code& code) {
  std::string name = "KUP_";
  if (code.category() == kupstream::error_category()) {
    for (const char* p = kupstream::errc_name(static_cast<kupstream::Errc>(code.value())); *p; ++p)
      name += static_cast<char>(std::toupper(static_cast<unsigned char>(*p)));
  } else {
    name += "INTERNAL";
  }
  return name;
}

Napi::Error make_error(Napi::Env env, const kupstream::Error& error) {
  Napi::Error e = Napi::Error::New(env, error.reason.empty() ? error.code.message() : error.reason);
  e.Set("code", Napi::String::New(env, error_code_name(error.code)));
  return e;
}

void call_js(Napi::Env env, const Napi::Object& recv, const Napi::Function& fn, const std::vector<napi_value>& args,
             const Napi::AsyncContext& context) {
  fn.MakeCallback(recv, args, context);
  if (env.IsExceptionPending()) {
    Napi::Error e = env.GetAndClearPendingException();
    napi_fatal_exception(env, e.Value());
  }
}

}  // namespace kupnode
