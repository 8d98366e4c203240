#include "cluster_wrap.h"

#include <fmt/format.h>

#include "kupstream/cluster.h"

namespace kupnode {

using kupstream::Errc;

Napi::Function ClusterWrap::define(Napi::Env env) {
  return DefineClass(env, "Cluster",
                     {InstanceMethod<&ClusterWrap::close>("close"), InstanceMethod<&ClusterWrap::ref_js>("ref"),
                      InstanceMethod<&ClusterWrap::unref_js>("unref"),
                      InstanceAccessor<&ClusterWrap::get_name>("name"),
                      InstanceAccessor<&ClusterWrap::get_closed>("closed")});
}

namespace {

std::string string_option(const Napi::Object& o, const char* key, std::string& problem) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return {};
  if (!v.IsString()) {
    problem = fmt::format("{} must be a string", key);
    return {};
  }
  return v.As<Napi::String>().Utf8Value();
}

}  // namespace

ClusterWrap::ClusterWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ClusterWrap>(info) {
  Napi::Env env = info.Env();
  env_ = env_state(env);
  auto fail = [&](Errc code, const std::string& reason) {
    make_error(env, kupstream::Error{code, reason}).ThrowAsJavaScriptException();
  };
  if (info.Length() < 1 || !info[0].IsObject()) {
    {
    fail(Errc::invalid_argument, "new Cluster(options): options must be an object {name, kubeconfig, context} "
                                        "or {name, inCluster: true}");
    return;
  }
  }
  Napi::Object o = info[0].As<Napi::Object>();
  std::string problem;
  name_ = string_option(o, "name", problem);
  std::string kubeconfig = string_option(o, "kubeconfig", problem);
  std::string context = string_option(o, "context", problem);
  std::string sa_dir = string_option(o, "serviceAccountDir", problem);
  const bool in_cluster = o.Get("inCluster").ToBoolean().Value();
  const std::string who = fmt::format("cluster \"{}\"", name_);
  if (!problem.empty()) {
    fail(Errc::invalid_argument, fmt::format("{}: {}", who, problem));
    return;
  }
  if (name_.empty()) {
    fail(Errc::invalid_argument, "new Cluster(options): options.name is required");
    return;
  }

  kupstream::Result<kupstream::ClusterConfig> config = kupstream::Error{};
  if (in_cluster) {
    if (!kubeconfig.empty() || !context.empty())
      {
    fail(Errc::invalid_argument, fmt::format("{}: inCluster excludes kubeconfig and context", who));
    return;
  }
    kupstream::InClusterOptions ic;
    if (!sa_dir.empty()) ic.service_account_dir = sa_dir;
    config = kupstream::load_in_cluster_config(ic);
  } else {
    kupstream::KubeconfigOptions kc;
    if (!kubeconfig.empty()) kc.paths.push_back(kubeconfig);
    kc.context = context;
    kc.log = [sink = sink_](kupstream::LogLevel level, std::string_view message) {
      if (sink->wrap) sink->wrap->emit_log(level, message);
    };
    config = kupstream::load_kubeconfig(kc);
  }
  if (!config) {
    fail(static_cast<Errc>(config.error().code.value()), fmt::format("{}: {}", who, config.error().reason));
    return;
  }
  config->name = name_;

  kupstream::ClusterClientOptions options;
  options.log = [sink = sink_](kupstream::LogLevel level, std::string_view message) {
    if (sink->wrap) sink->wrap->emit_log(level, message);
  };
  auto client = kupstream::ClusterClient::create(*env_->loop(), *config, std::move(options));
  if (!client) {
    make_error(env, kupstream::Error{client.error().code, fmt::format("{}: {}", who, client.error().reason)})
        .ThrowAsJavaScriptException();
    return;
  }
  client_ = std::shared_ptr<kupstream::ClusterClient>(std::move(*client));
  context_ = std::make_unique<Napi::AsyncContext>(env, "kupstream.Cluster", info.This().As<Napi::Object>());
  sink_->wrap = this;
  ++env_->live_clusters;
  env_->hold();
  set_held(true);
}

ClusterWrap::~ClusterWrap() {
  sink_->wrap = nullptr;
  held_ = false;  // the reference is being finalized; only the keep-alive is left to release
  if (!client_) return;
  if (refd_) env_->release();
  // Collected while open: destroy the client on a later loop turn, never inside the collector.
  env_->defer([client = std::move(client_), env = env_] { --env->live_clusters; });
}

void ClusterWrap::set_held(bool held) {
  if (held == held_) return;
  held_ = held;
  if (held) {
    Ref();
  } else {
    Unref();
  }
}

void ClusterWrap::emit_log(kupstream::LogLevel level, std::string_view message) {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  Napi::Object self = Value();
  Napi::Value emit = self.Get("emit");
  if (!emit.IsFunction()) return;
  call_js(env, self, emit.As<Napi::Function>(),
          {Napi::String::New(env, "log"), Napi::String::New(env, kupstream::log_level_name(level)),
           Napi::String::New(env, message.data(), message.size())},
          *context_);
}

Napi::Value ClusterWrap::close(const Napi::CallbackInfo& info) {
  if (client_) {
    sink_->wrap = nullptr;
    client_.reset();  // Upstreams still using it hold their own share
    --env_->live_clusters;
    if (refd_) env_->release();
    set_held(false);
  }
  return info.Env().Undefined();
}

Napi::Value ClusterWrap::ref_js(const Napi::CallbackInfo& info) {
  if (client_ && !refd_) {
    refd_ = true;
    env_->hold();
    set_held(true);
  }
  return info.This();
}

Napi::Value ClusterWrap::unref_js(const Napi::CallbackInfo& info) {
  if (client_ && refd_) {
    refd_ = false;
    env_->release();
    set_held(false);
  }
  return info.This();
}

Napi::Value ClusterWrap::get_name(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), name_); }
Napi::Value ClusterWrap::get_closed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), client_ == nullptr);
}

}  // namespace kupnode
