// Cluster: the JS class over one kupstream::ClusterClient (one Kubernetes API server).
//
// Thread: the environment's loop thread. Lifetime: open (and ref'd) it keeps the process alive
// and is itself kept from garbage collection, like a listening net.Server. close() releases the
// client once every Upstream using it has closed (they share it). An unref'd Cluster with no JS
// reference left is collected: its finalizer defers the client's destruction to a later loop turn.
#pragma once

#include <memory>
#include <string>

#include "addon.h"
#include "kupstream/cluster_client.h"

namespace kupnode {

class ClusterWrap : public Napi::ObjectWrap<ClusterWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  explicit ClusterWrap(const Napi::CallbackInfo& info);
  ~ClusterWrap() override;

  // Null once closed.
  const std::shared_ptr<kupstream::ClusterClient>& client() const noexcept { return client_; }
  const std::string& name() const noexcept { return name_; }

  // Where log lines go: the Cluster's 'log' event while it is open; nothing afterwards.
  struct LogSink {
    ClusterWrap* wrap = nullptr;
  };

 private:
  Napi::Value close(const Napi::CallbackInfo& info);
  Napi::Value ref_js(const Napi::CallbackInfo& info);
  Napi::Value unref_js(const Napi::CallbackInfo& info);
  Napi::Value get_name(const Napi::CallbackInfo& info);
  Napi::Value get_closed(const Napi::CallbackInfo& info);
  void emit_log(kupstream::LogLevel level, std::string_view message);
  void set_held(bool held);

  std::shared_ptr<EnvState> env_;
  std::shared_ptr<kupstream::ClusterClient> client_;
  std::shared_ptr<LogSink> sink_ = std::make_shared<LogSink>();
  std::unique_ptr<Napi::AsyncContext> context_;
  std::string name_;
  bool refd_ = true;
  bool held_ = false;  // holds the keep-alive and a strong reference to the JS object
};

}  // namespace kupnode
