// Upstream: the JS class over one kupstream::Upstream, plus one EndpointWatcher per ServiceRef
// (shared with the Upstream's own through the ClusterClient: no extra API traffic) that turns
// discovery into 'change' and 'state' events.
//
// Thread: the environment's loop thread; pick() is synchronous and cheap (the Upstream's Picker).
// Lifetime: open (and ref'd) it keeps the process alive and is kept from garbage collection.
// close() cancels its requests (their callbacks get KUP_OPERATION_CANCELED) and releases its
// clusters; it may be called inside any of its own event handlers. Library callbacks hold the
// shared UpstreamCore, never the wrap: a collected (unref'd, unreferenced) Upstream only clears
// core->wrap, and its native objects are destroyed on a later loop turn (EnvState::defer).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "addon.h"
#include "kupstream/upstream.h"

namespace kupnode {

class UpstreamWrap;

// One request in flight. Buffered: the head and body are kept here and handed to JS once, at
// completion (one crossing into JS per request). Streamed: head, chunks and end go to JS as they
// come, with pause/resume for backpressure.
struct PendingRequest {
  std::unique_ptr<kupstream::UpstreamRequest> request;
  Napi::FunctionReference callback;
  bool streamed = false;
  int status = 0;
  std::vector<std::string> raw_headers;  // name, value, name, value...
  std::string pod;
  std::uint32_t attempts = 0;
  std::string body;
};

struct UpstreamCore : std::enable_shared_from_this<UpstreamCore> {
  std::shared_ptr<EnvState> env;
  UpstreamWrap* wrap = nullptr;  // null once closed or collected: no JS runs after that
  // Destroyed in reverse order: requests, watchers, the Upstream, then the clusters it needs.
  std::vector<std::shared_ptr<kupstream::ClusterClient>> clusters;
  std::unique_ptr<kupstream::Upstream> upstream;
  std::vector<std::unique_ptr<kupstream::EndpointWatcher>> watchers;
  std::unordered_map<std::uint64_t, std::unique_ptr<PendingRequest>> requests;
  std::uint64_t next_request = 1;
  std::string name;
  std::string hash_header;
  std::vector<std::string> services;  // ServiceRef::to_string() per index

  // Which service each of a Picker's endpoints came from (rebuilt when the Picker changes).
  kupstream::PickerPtr table_picker;
  std::vector<std::uint32_t> table_service;
  const std::string& service_of(const kupstream::PickerPtr& picker, std::uint32_t index);

  // Drops everything without calling back; returns the requests it canceled.
  std::vector<std::unique_ptr<PendingRequest>> shutdown();
};

class UpstreamWrap : public Napi::ObjectWrap<UpstreamWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  explicit UpstreamWrap(const Napi::CallbackInfo& info);
  ~UpstreamWrap() override;

  void emit(const char* event, napi_value payload);
  void complete(std::unique_ptr<PendingRequest> pending, const kupstream::Status& status);
  void deliver_head(PendingRequest& pending);
  void deliver_chunk(PendingRequest& pending, std::string_view chunk);
  const Napi::AsyncContext& context() const { return *context_; }

 private:
  Napi::Value close(const Napi::CallbackInfo& info);
  Napi::Value ref_js(const Napi::CallbackInfo& info);
  Napi::Value unref_js(const Napi::CallbackInfo& info);
  Napi::Value pick(const Napi::CallbackInfo& info);
  Napi::Value request(const Napi::CallbackInfo& info);
  Napi::Value control(const Napi::CallbackInfo& info);
  Napi::Value stats(const Napi::CallbackInfo& info);
  Napi::Value metrics(const Napi::CallbackInfo& info);
  Napi::Value snapshot(const Napi::CallbackInfo& info);
  Napi::Value get_name(const Napi::CallbackInfo& info);
  Napi::Value get_ready(const Napi::CallbackInfo& info);
  Napi::Value get_closed(const Napi::CallbackInfo& info);
  Napi::Value get_hash_header(const Napi::CallbackInfo& info);
  void set_held(bool held);

  std::shared_ptr<EnvState> env_;
  std::shared_ptr<UpstreamCore> core_;
  std::unique_ptr<Napi::AsyncContext> context_;
  bool open_ = false;
  bool refd_ = true;
  bool held_ = false;
};

}  // namespace kupnode
