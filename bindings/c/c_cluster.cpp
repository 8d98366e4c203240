// The C ABI's clusters, watchers and snapshots (kupstream_c.h) over ClusterClient and
// EndpointWatcher.
#include <chrono>
#include <cstddef>
#include <cstring>

#include "c_abi.h"
#include "kupstream/cluster.h"
#include "kupstream/endpoint_watcher.h"

using namespace kupstream;
using kupstream::capi::fail;
using kupstream::capi::guard;

struct kup_watcher {
  std::unique_ptr<EndpointWatcher> watcher;
  kup_watcher_callbacks callbacks{};
};

namespace {

const EndpointList* list_of(const kup_snapshot* s, kup_endpoint_list which) noexcept {
  if (s == nullptr || !s->set) return nullptr;
  if (which == KUP_ENDPOINTS_READY) return &s->set->ready;
  if (which == KUP_ENDPOINTS_DRAINING) return &s->set->draining;
  return nullptr;
}

// "k=v,k2=v2" → labels; the reason names the entry at fault.
Status parse_node_labels(std::string_view text, std::map<std::string, std::string>& out) {
  std::size_t i = 0;
  while (!text.empty()) {
    auto comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    auto eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0)
      return Error{Errc::invalid_config,
                   "node_labels[" + std::to_string(i) + "]: \"" + std::string(item) + "\" is not key=value"};
    out[std::string(item.substr(0, eq))] = std::string(item.substr(eq + 1));
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
    ++i;
  }
  return {};
}

}  // namespace

extern "C" {

KUP_API void kup_cluster_options_init(kup_cluster_options* options) {
  if (options == nullptr) return;
  *options = kup_cluster_options{};
  options->size = sizeof(kup_cluster_options);
  ClusterClientOptions d;
  options->watch_timeout_s = static_cast<uint32_t>(d.watch_timeout.count());
  options->idle_timeout_ms = static_cast<uint32_t>(d.idle_timeout.count());
  options->backoff_initial_ms = static_cast<uint32_t>(d.backoff_initial.count());
  options->backoff_max_ms = static_cast<uint32_t>(d.backoff_max.count());
  options->watch_list = d.watch_list ? 1 : 0;
  options->slice_watch_per_service = d.slice_watch == SliceWatchMode::per_service ? 1 : 0;
}

KUP_API int kup_cluster_create(uv_loop_t* loop, const kup_cluster_options* options, kup_cluster** out,
                               kup_error* err) {
  if (out != nullptr) *out = nullptr;
  if (loop == nullptr || options == nullptr || out == nullptr)
    return fail(err, KUP_INVALID_ARGUMENT, "kup_cluster_create: loop, options and out must not be NULL");
  // Older callers pass a shorter struct: the fields they do not know keep their defaults.
  constexpr std::size_t min_size = offsetof(kup_cluster_options, watch_timeout_s);
  if (options->size < min_size || options->size > sizeof(kup_cluster_options))
    return fail(err, KUP_INVALID_ARGUMENT,
                "kup_cluster_create: options.size " + std::to_string(options->size) +
                    " is not a kup_cluster_options size (call kup_cluster_options_init)");
  return guard(err, [&]() -> int {
    kup_cluster_options o;
    kup_cluster_options_init(&o);
    std::memcpy(&o, options, options->size);

    Result<ClusterConfig> cc = [&]() -> Result<ClusterConfig> {
      if (o.in_cluster != 0) return load_in_cluster_config();
      KubeconfigOptions ko;
      if (o.kubeconfig != nullptr && *o.kubeconfig != '\0') ko.paths = {o.kubeconfig};
      if (o.context != nullptr) ko.context = o.context;
      ko.log = capi::make_log(o.log, o.log_data);
      return load_kubeconfig(ko);
    }();
    if (!cc) return fail(err, cc.error());
    if (o.name != nullptr && *o.name != '\0') cc->name = o.name;

    ClusterClientOptions co;
    co.log = capi::make_log(o.log, o.log_data, "cluster " + cc->name + ": ");
    co.watch_timeout = std::chrono::seconds{o.watch_timeout_s};
    co.idle_timeout = std::chrono::milliseconds{o.idle_timeout_ms};
    co.backoff_initial = std::chrono::milliseconds{o.backoff_initial_ms};
    co.backoff_max = std::chrono::milliseconds{o.backoff_max_ms};
    co.watch_list = o.watch_list != 0;
    co.slice_watch = o.slice_watch_per_service != 0 ? SliceWatchMode::per_service : SliceWatchMode::per_namespace;
    auto client = ClusterClient::create(*loop, *cc, std::move(co));
    if (!client) return fail(err, client.error());
    auto handle = std::make_unique<kup_cluster>();
    handle->client = std::move(*client);
    *out = handle.release();
    return KUP_OK;
  });
}

KUP_API void kup_cluster_destroy(kup_cluster* cluster) { delete cluster; }

KUP_API const char* kup_cluster_name(const kup_cluster* cluster) {
  return cluster != nullptr ? cluster->client->name().c_str() : "";
}

// ---- snapshots

KUP_API kup_snapshot* kup_snapshot_copy(const kup_snapshot* snapshot) {
  if (snapshot == nullptr) return nullptr;
  return new (std::nothrow) kup_snapshot{snapshot->set};
}

KUP_API void kup_snapshot_destroy(kup_snapshot* snapshot) { delete snapshot; }

KUP_API uint64_t kup_snapshot_generation(const kup_snapshot* snapshot) {
  return snapshot != nullptr && snapshot->set ? snapshot->set->generation : 0;
}

KUP_API const char* kup_snapshot_resource_version(const kup_snapshot* snapshot) {
  return snapshot != nullptr && snapshot->set ? snapshot->set->resource_version.c_str() : "";
}

KUP_API size_t kup_snapshot_count(const kup_snapshot* snapshot, kup_endpoint_list list) {
  const EndpointList* l = list_of(snapshot, list);
  return l != nullptr ? l->size() : 0;
}

KUP_API int kup_snapshot_endpoint(const kup_snapshot* snapshot, kup_endpoint_list list, size_t index,
                                  kup_endpoint* out) {
  const EndpointList* l = list_of(snapshot, list);
  if (l == nullptr || out == nullptr || index >= l->size()) return KUP_INVALID_ARGUMENT;
  capi::fill_endpoint((*l)[index], out);
  return KUP_OK;
}

// ---- watchers

KUP_API int kup_watch(kup_cluster* cluster, const char* namespace_name, const char* service, const char* port,
                      const char* node_labels, const kup_watcher_callbacks* callbacks, kup_watcher** out,
                      kup_error* err) {
  if (out != nullptr) *out = nullptr;
  if (cluster == nullptr || namespace_name == nullptr || service == nullptr || port == nullptr || out == nullptr)
    return fail(err, KUP_INVALID_ARGUMENT, "kup_watch: cluster, namespace, service, port and out must not be NULL");
  return guard(err, [&]() -> int {
    ServiceRef ref;
    ref.cluster = cluster->client->name();
    ref.namespace_name = namespace_name;
    ref.service = service;
    ref.port = PortRef::parse(port);
    if (node_labels != nullptr) {
      if (auto st = parse_node_labels(node_labels, ref.node_labels); !st)
        return fail(err, KUP_INVALID_CONFIG, "cluster \"" + ref.cluster + "\": " + st.error().reason);
    }
    auto handle = std::make_unique<kup_watcher>();
    if (callbacks != nullptr) handle->callbacks = *callbacks;
    kup_watcher* w = handle.get();
    EndpointWatcherCallbacks cb;
    // The handlers touch nothing after the host's callback returns: it may have destroyed w.
    cb.on_update = [w](const EndpointSetPtr& set) {
      if (w->callbacks.on_change == nullptr) return;
      kup_snapshot snap{set};
      w->callbacks.on_change(w, &snap, w->callbacks.data);
    };
    cb.on_state = [w](const WatchState& s) {
      if (w->callbacks.on_state == nullptr) return;
      kup_watch_state st{};
      st.phase = static_cast<kup_watch_phase>(static_cast<int>(s.phase));
      st.phase_name = to_string(s.phase);
      st.reason = s.reason.c_str();
      st.since_unix_ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(s.since.time_since_epoch()).count();
      st.generation = s.generation;
      st.resource_version = s.resource_version.c_str();
      w->callbacks.on_state(w, &st, w->callbacks.data);
    };
    auto watcher = cluster->client->watch(ref, std::move(cb));
    if (!watcher) return fail(err, watcher.error());
    handle->watcher = std::move(*watcher);
    *out = handle.release();
    return KUP_OK;
  });
}

KUP_API void kup_watcher_destroy(kup_watcher* watcher) { delete watcher; }

KUP_API kup_snapshot* kup_watcher_snapshot(const kup_watcher* watcher) {
  if (watcher == nullptr) return nullptr;
  EndpointSetPtr set = watcher->watcher->current();
  if (!set) return nullptr;
  return new (std::nothrow) kup_snapshot{std::move(set)};
}

KUP_API kup_watch_phase kup_watcher_phase(const kup_watcher* watcher, char** reason_out) {
  if (reason_out != nullptr) *reason_out = nullptr;
  if (watcher == nullptr) return KUP_WATCH_SYNCING;
  try {
    WatchState s = watcher->watcher->state();
    if (reason_out != nullptr) *reason_out = capi::dup_string(s.reason);
    return static_cast<kup_watch_phase>(static_cast<int>(s.phase));
  } catch (...) {
    return KUP_WATCH_SYNCING;
  }
}

}  // extern "C"
