// Module entry: the Cluster and Upstream classes, per-environment state, and the facts the tests
// check about which libuv and OpenSSL the addon runs on.
#include <dlfcn.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "addon.h"
#include "cluster_wrap.h"
#include "kupstream/error.h"
#include "upstream_wrap.h"

namespace kupnode {
namespace {

struct AddonData {
  std::shared_ptr<EnvState> state;
  Napi::FunctionReference cluster_ctor;
  Napi::FunctionReference upstream_ctor;
};

// Which shared object defines `symbol` as this addon resolved it: the node executable when the
// addon brings no libuv/OpenSSL of its own.
std::string provider_of(void* symbol) {
  Dl_info info{};
  if (dladdr(symbol, &info) == 0 || info.dli_fname == nullptr) return "";
  return info.dli_fname;
}

std::string address_of(const void* p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%p", p);
  return buf;
}

// _runtime(): {loop, defaultLoop, uvVersion, uvProvider, sslVersion, sslProvider, live...}.
Napi::Value runtime(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto state = env_state(env);
  Napi::Object o = Napi::Object::New(env);
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  o.Set("loop", address_of(loop));
  o.Set("stateLoop", address_of(state->loop()));
  o.Set("defaultLoop", address_of(uv_default_loop()));
  o.Set("uvVersion", uv_version_string());
  o.Set("uvProvider", provider_of(reinterpret_cast<void*>(&uv_run)));
  o.Set("sslVersion", OpenSSL_version(OPENSSL_VERSION));
  o.Set("sslProvider", provider_of(reinterpret_cast<void*>(&SSL_CTX_new)));
  // The object that provides Node-API: the node executable itself.
  o.Set("napiProvider", provider_of(reinterpret_cast<void*>(&napi_create_object)));
  o.Set("liveClusters", Napi::Number::New(env, static_cast<double>(state->live_clusters)));
  o.Set("liveUpstreams", Napi::Number::New(env, static_cast<double>(state->live_upstreams)));
  o.Set("liveRequests", Napi::Number::New(env, static_cast<double>(state->live_requests)));
  o.Set("holds", Napi::Number::New(env, static_cast<double>(state->holds())));
  o.Set("deferredDestroys", Napi::Number::New(env, static_cast<double>(state->deferred_destroys)));
  return o;
}

Napi::Value error_codes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
#define KUPNODE_ERRC(name, value, message) \
  o.Set(error_code_name(kupstream::make_error_code(kupstream::Errc::name)), Napi::String::New(env, message));
  KUPSTREAM_ERRC_MAP(KUPNODE_ERRC)
#undef KUPNODE_ERRC
  return o;
}

}  // namespace

Napi::Object init(Napi::Env env, Napi::Object exports) {
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    Napi::Error::New(env, "kupstream: no libuv loop in this environment").ThrowAsJavaScriptException();
    return exports;
  }
  auto* data = new AddonData{std::make_shared<EnvState>(loop), {}, {}};
  Napi::Function cluster = ClusterWrap::define(env);
  Napi::Function upstream = UpstreamWrap::define(env);
  data->cluster_ctor = Napi::Persistent(cluster);
  data->upstream_ctor = Napi::Persistent(upstream);
  env.SetInstanceData<AddonData>(data);
  // Teardown (process exit, worker termination): close the keep-alive and reaper handles and run
  // pending destruction; wraps finalized after this destroy their objects at once.
  napi_add_env_cleanup_hook(
      env, [](void* arg) { static_cast<EnvState*>(arg)->shutdown(); }, data->state.get());
  exports.Set("Cluster", cluster);
  exports.Set("Upstream", upstream);
  exports.Set("_runtime", Napi::Function::New<runtime>(env, "_runtime"));
  exports.Set("errorCodes", Napi::Function::New<error_codes>(env, "errorCodes"));
  return exports;
}

std::shared_ptr<EnvState> env_state(Napi::Env env) { return env.GetInstanceData<AddonData>()->state; }
Napi::Function env_cluster_ctor(Napi::Env env) { return env.GetInstanceData<AddonData>()->cluster_ctor.Value(); }

}  // namespace kupnode

static Napi::Object kupstream_init(Napi::Env env, Napi::Object exports) { return kupnode::init(env, exports); }
NODE_API_MODULE(kupstream, kupstream_init)
