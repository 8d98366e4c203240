#include "kupstream/cluster_client.h"

#include <fmt/format.h>
#include <uv.h>

#include <map>
#include <set>

#include "core/defer.h"
#include "discovery/access_preflight.h"
#include "discovery/namespace_slice_watch.h"
#include "discovery/rfc3339.h"
#include "discovery/shared_node_watch.h"
#include "discovery/slice_merge.h"
#include "discovery/slice_store.h"
#include "kube/api_client.h"
#include "kube/credential_auth.h"
#include "kube/reflector.h"

namespace kupstream {
namespace {

using Clock = std::chrono::system_clock;

std::string label_selector(const std::map<std::string, std::string>& labels) {
  std::string out;
  for (const auto& [k, v] : labels) out += fmt::format("{}{}={}", out.empty() ? "" : ",", k, v);
  return out;
}

}  // namespace

const char* to_string(SliceWatchMode mode) noexcept {
  return mode == SliceWatchMode::per_namespace ? "per_namespace" : "per_service";
}

const char* to_string(WatchPhase phase) noexcept {
  switch (phase) {
    case WatchPhase::syncing: return "syncing";
    case WatchPhase::synced: return "synced";
    case WatchPhase::stale: return "stale";
    case WatchPhase::forbidden: return "forbidden";
    case WatchPhase::not_found: return "not_found";
  }
  return "?";
}

struct ClusterClient::Impl {
  uv_loop_t& loop;
  ClusterConfig config;
  ClusterClientOptions options;
  std::unique_ptr<kube::ApiClient> api;
  std::map<std::pair<std::string, std::string>, std::weak_ptr<struct ServiceCache>> services;
  // Fan-in mode (SliceWatchMode::per_namespace): one shared EndpointSlice watch per namespace.
  std::map<std::string, std::weak_ptr<detail::NamespaceSliceWatch>, std::less<>> namespace_watches;
  // Which resources skip watch-list for a while (slow or refused), shared by every Reflector here.
  std::shared_ptr<kube::WatchListMemory> watch_list_memory;
  // The running RBAC preflight of each namespace: its checks are the same for every Service
  // of the namespace, so Services that start together share one (5 reviews, not 5 per Service:
  // each review is a request of its own, a TLS handshake on a fresh connection).
  std::map<std::string, std::weak_ptr<struct SharedPreflight>> preflights;
  // One Node watch per label selector, shared by every view that filters on those labels.
  std::map<std::string, std::weak_ptr<detail::SharedNodeWatch>> node_watches;

  Impl(uv_loop_t& l, ClusterConfig c, ClusterClientOptions o)
      : loop(l), config(std::move(c)), options(std::move(o)),
        watch_list_memory(std::make_shared<kube::WatchListMemory>(options.watch_list_retry)) {}

  kube::ReflectorOptions reflector_options(std::string path, std::string what) const {
    kube::ReflectorOptions r;
    r.path = std::move(path);
    r.what = std::move(what);
    r.watch_timeout = options.watch_timeout;
    r.idle_timeout = options.idle_timeout;
    r.backoff_initial = options.backoff_initial;
    r.backoff_max = options.backoff_max;
    r.watch_list = options.watch_list;
    r.watch_list_bookmark_timeout = options.watch_list_bookmark_timeout;
    r.watch_list_memory = watch_list_memory;
    r.max_response_bytes = options.max_response_bytes;
    r.max_event_bytes = options.max_event_bytes;
    r.log = options.log;
    return r;
  }
};

// One namespace's running preflight and the Services waiting for its answer. Each waiter holds
// it; when the last one goes, the reviews are cancelled. The answer goes to every waiter once.
struct SharedPreflight {
  std::unique_ptr<detail::AccessPreflight> run;
  std::vector<std::weak_ptr<struct ServiceCache>> waiters;
};

// The EndpointSlices and the Service object of one (namespace, service), shared by every view.
// Its slices come from its own Reflector, or (fan-in mode) from its namespace's shared watch.
struct ServiceCache : std::enable_shared_from_this<ServiceCache>, detail::SliceSink {
  std::shared_ptr<ClusterClient::Impl> cluster;
  std::string ns, name;
  detail::SliceStore slices;  // compact: only what the merge reads (slice_store.h)
  std::optional<kube::Service> service;
  bool slices_synced = false, service_synced = false;
  Status slices_health, service_health;
  std::string slices_waiting, service_waiting;  // a watch-list waiting for its bookmark (reflector's text)
  std::string slices_note, service_note;        // why the reflector lists instead of watch-list
  std::string resource_version;
  std::optional<Clock::time_point> trigger_time;  // of the slice change being processed
  std::map<std::string, std::weak_ptr<EndpointWatcher::Impl>> views;
  std::unique_ptr<kube::Reflector<kube::EndpointSlice>> slice_reflector;
  std::unique_ptr<detail::NamespaceSliceWatch::Membership> slice_membership;  // fan-in mode instead
  std::unique_ptr<kube::Reflector<kube::Service>> service_reflector;
  std::shared_ptr<SharedPreflight> preflight;  // until its answer arrives
  Status preflight_status;  // forbidden (with the rules to add) when the preflight found a denial

  // Synced and healthy: a preflight denial is then out of date (the rights were granted).
  bool flowing() const { return slices_synced && service_synced && slices_health.ok() && service_health.ok(); }

  void start();
  void start_slices();
  void changed();

  // detail::SliceSink: the slices' list+watch, from either source.
  void on_slices_replace(std::vector<kube::EndpointSlice> items, const std::string& rv) override;
  void on_slice_event(kube::EventType type, kube::EndpointSlice s, const std::string& rv) override;
  void on_slices_health(const Status& s) override { set_and_report(slices_health, s); }
  void on_slices_waiting(const std::string& text) override { set_and_report(slices_waiting, text); }
  void on_slices_note(const std::string& text) override { set_and_report(slices_note, text); }
  void on_preflight(const Status& result) override { set_and_report(preflight_status, result); }
  // Stores what the shared watch or the preflight said and re-derives every view's state (the
  // views' callbacks may drop this cache: it is kept alive until done).
  template <class T>
  void set_and_report(T& field, const T& value) {
    auto keep = shared_from_this();
    field = value;
    changed();
  }
};

struct EndpointWatcher::Impl : std::enable_shared_from_this<EndpointWatcher::Impl>, detail::NodeSink {
  std::shared_ptr<ServiceCache> cache;
  PortRef port;
  std::map<std::string, std::string> node_labels;
  // With node labels: the cluster's watch of the Nodes carrying them, shared with every view
  // that filters on the same labels (null without node labels).
  std::shared_ptr<detail::SharedNodeWatch> node_watch;
  detail::SnapshotBuilder builder;

  EndpointSetPtr current;
  WatchState state;
  std::vector<std::string> reflector_notes;  // the watch-list notes in state.notes
  struct Subscriber {
    EndpointWatcherCallbacks callbacks;
    std::uint64_t delivered = 0;  // generation of the last snapshot given to it
    std::uint64_t state_seen = 0;  // state_seq of the last state given to it
  };
  // shared_ptr: a callback running for a subscriber keeps it (and its std::function) alive
  // even if that subscriber's handle is dropped inside the callback.
  std::map<std::uint64_t, std::shared_ptr<Subscriber>> subscribers;
  std::uint64_t state_seq = 0;  // counts notify_state calls; a subscriber remembers the last it saw
  std::uint64_t next_subscriber = 1;

  std::string service_name() const { return fmt::format("service {}/{}", cache->ns, cache->name); }

  void start_nodes() {
    if (node_labels.empty()) return;
    auto& cl = *cache->cluster;
    const std::string selector = label_selector(node_labels);
    node_watch = cl.node_watches[selector].lock();
    if (!node_watch) {
      auto ro = cl.reflector_options("/api/v1/nodes", fmt::format("nodes with labels {}", selector));
      ro.label_selector = selector;
      node_watch = std::make_shared<detail::SharedNodeWatch>(*cl.api, std::move(ro), cl.options.log);
      cl.node_watches[selector] = node_watch;
      node_watch->start();
    }
    node_watch->add(weak_from_this());
  }
  void on_nodes_changed() override { recompute(); }

  // The Node watch's inputs, or what they are without node labels.
  static const Status& ok_status() {
    static const Status ok;
    return ok;
  }
  static const std::string& no_text() {
    static const std::string none;
    return none;
  }
  const Status& node_preflight_status() const { return node_watch ? node_watch->preflight() : ok_status(); }
  const Status& nodes_health() const { return node_watch ? node_watch->health() : ok_status(); }
  bool nodes_synced() const { return !node_watch || node_watch->synced(); }
  const std::string& nodes_waiting() const { return node_watch ? node_watch->waiting() : no_text(); }
  const std::string& nodes_note() const { return node_watch ? node_watch->note() : no_text(); }

  // The phase and reason from the health of every input, worst first.
  std::pair<WatchPhase, std::string> health_phase() const {
    // A preflight denial names the missing rules; it stands until the watches flow.
    if (!cache->preflight_status.ok() && !cache->flowing())
      return {WatchPhase::forbidden, cache->preflight_status.error().reason};
    if (!node_preflight_status().ok() && !(nodes_synced() && nodes_health().ok()))
      return {WatchPhase::forbidden, node_preflight_status().error().reason};
    const Status* inputs[] = {&cache->slices_health, &cache->service_health, &nodes_health()};
    for (const Status* s : inputs)
      if (!s->ok() && s->error().code == Errc::forbidden)
        return {WatchPhase::forbidden,
                fmt::format("{}; grant get/list/watch on services, list/watch on endpointslices (apiGroup "
                            "discovery.k8s.io) in namespace \"{}\"{} (see docs/rbac.yaml)",
                            s->error().reason, cache->ns, node_labels.empty() ? "" : " and list/watch on nodes")};
    for (const Status* s : inputs)
      if (!s->ok()) return {WatchPhase::stale, s->error().reason};
    return {WatchPhase::synced, ""};
  }

  void set_phase(WatchPhase phase, std::string reason, bool notes_changed = false) {
    if (phase == state.phase && reason == state.reason && !notes_changed) return;
    // A new reason within the same phase (each failed reconnect says why) does not restart the
    // phase: "stale since" stays the time it became stale, so staleness keeps growing.
    if (phase != state.phase || state.since == Clock::time_point{}) state.since = Clock::now();
    state.phase = phase;
    state.reason = std::move(reason);
    notify_state();
  }

  void recompute() {
    auto keep = shared_from_this();
    auto [phase, reason] = health_phase();
    const bool inputs_synced = cache->slices_synced && cache->service_synced && nodes_synced();
    if (!inputs_synced) {
      // Before the first sync there is nothing to publish; failures still say why, and so does
      // a watch-list waiting for its initial-events-end bookmark.
      if (phase == WatchPhase::synced) {
        phase = WatchPhase::syncing;
        for (const std::string* w : std::initializer_list<const std::string*>{&cache->slices_waiting, &cache->service_waiting, &nodes_waiting()})
          if (!w->empty()) {
            reason = *w;
            break;
          }
      }
      return set_phase(phase, std::move(reason));
    }
    detail::SliceMergeInput in;
    in.slices = &cache->slices;
    in.service = cache->service ? &*cache->service : nullptr;
    in.port = port;
    in.allowed_nodes = node_watch ? &node_watch->names() : nullptr;
    in.nodes_epoch = node_watch ? node_watch->epoch() : 0;
    auto step = builder.build(in, current, cache->resource_version);
    // The reflectors' watch-list notes follow the merge's; a change of them is a state change.
    std::vector<std::string> list_notes;
    for (const std::string* n : std::initializer_list<const std::string*>{&cache->slices_note, &cache->service_note, &nodes_note()})
      if (!n->empty()) list_notes.push_back(*n);
    const bool notes_changed = list_notes != reflector_notes;
    if (notes_changed) reflector_notes = list_notes;
    state.notes = std::move(step.notes);
    state.notes.insert(state.notes.end(), list_notes.begin(), list_notes.end());
    if (step.problem != detail::PortProblem::none && phase == WatchPhase::synced) {
      phase = WatchPhase::not_found;
      reason = step.problem == detail::PortProblem::service_not_found
                   ? fmt::format("cluster \"{}\": {} not found", cache->cluster->config.name, service_name())
                   : fmt::format("cluster \"{}\": {} has no port \"{}\"", cache->cluster->config.name, service_name(),
                                 port.to_string());
    }
    const bool changed = step.changed;
    // The previous snapshot is released after the subscribers have the new one (freeing a
    // large set is not on the publish path).
    EndpointSetPtr previous;
    if (changed) {
      previous = std::move(current);
      current = std::move(step.next);
      state.generation = current->generation;
      state.resource_version = current->resource_version;
      state.snapshot_time = Clock::now();
      // The lag belongs to the snapshot that carried the triggered change; others have none.
      state.propagation_lag.reset();
      if (cache->trigger_time)
        state.propagation_lag = std::chrono::duration_cast<std::chrono::microseconds>(state.snapshot_time - *cache->trigger_time);
    }
    set_phase(phase, std::move(reason), notes_changed);
    if (changed) notify_update();
  }

  template <class F>
  void for_each_subscriber(F&& f) {
    auto keep = shared_from_this();
    std::vector<std::uint64_t> ids;
    for (const auto& [id, cb] : subscribers) ids.push_back(id);
    for (auto id : ids) {
      auto it = subscribers.find(id);
      if (it == subscribers.end()) continue;  // dropped by an earlier callback
      std::shared_ptr<Subscriber> sub = it->second;
      f(*sub);
    }
  }
  void notify_update() {
    auto snapshot = current;
    for_each_subscriber([&](Subscriber& s) {
      if (s.delivered >= snapshot->generation) return;
      s.delivered = snapshot->generation;
      if (s.callbacks.on_update) s.callbacks.on_update(snapshot);
    });
  }
  void notify_state() {
    ++state_seq;
    auto copy = state;
    const auto seq = state_seq;
    for_each_subscriber([&](Subscriber& s) {
      s.state_seen = seq;
      if (s.callbacks.on_state) s.callbacks.on_state(copy);
    });
  }
};

void ServiceCache::on_slices_replace(std::vector<kube::EndpointSlice> items, const std::string& rv) {
  auto keep = shared_from_this();
  slices.replace(std::move(items));  // (the decoded slices are freed there, before the merge)
  slices_synced = true;
  resource_version = rv;
  changed();
}

void ServiceCache::on_slice_event(kube::EventType type, kube::EndpointSlice s, const std::string& rv) {
  auto keep = shared_from_this();
  resource_version = rv;
  if (auto t = s.metadata.annotation(kube::kLastChangeTriggerTimeAnnotation); !t.empty())
    trigger_time = detail::parse_rfc3339(t);
  if (type == kube::EventType::deleted)
    slices.erase(s.metadata.name);
  else
    slices.put(s);
  changed();
  trigger_time.reset();
}

// Per service: a Reflector with `kubernetes.io/service-name=NAME`. Fan-in: a membership in the
// namespace's shared watch (created here when this is its first service).
void ServiceCache::start_slices() {
  auto& cl = *cluster;
  if (cl.options.slice_watch == SliceWatchMode::per_namespace) {
    auto watch = cl.namespace_watches[ns].lock();
    if (!watch) {
      std::weak_ptr<ClusterClient::Impl> weak_cluster = cluster;
      const std::string path = fmt::format("/apis/discovery.k8s.io/v1/namespaces/{}/endpointslices", ns);
      watch = std::make_shared<detail::NamespaceSliceWatch>(
          cl.loop, *cl.api, ns,
          [weak_cluster, path](std::string selector, std::string what) {
            auto c = weak_cluster.lock();
            kube::ReflectorOptions ro = c ? c->reflector_options(path, std::move(what)) : kube::ReflectorOptions{};
            ro.label_selector = std::move(selector);
            return ro;
          },
          cl.options.log);
      cl.namespace_watches[ns] = watch;
    }
    slice_membership = detail::NamespaceSliceWatch::join(watch, name, std::weak_ptr<detail::SliceSink>(shared_from_this()));
    return;
  }
  auto ro = cl.reflector_options(fmt::format("/apis/discovery.k8s.io/v1/namespaces/{}/endpointslices", ns),
                                 fmt::format("endpointslices of service {}/{}", ns, name));
  ro.label_selector = fmt::format("{}={}", detail::kServiceNameLabel, name);
  kube::ReflectorCallbacks<kube::EndpointSlice> scb;
  // Each callback keeps the cache alive until it returns: a subscriber may drop the last
  // handle from inside the update it triggers, which would destroy the cache under our feet.
  scb.on_replace = [this](std::vector<kube::EndpointSlice> items, const std::string& rv) {
    on_slices_replace(std::move(items), rv);
  };
  scb.on_event = [this](kube::EventType type, kube::EndpointSlice s, const std::string& rv) {
    on_slice_event(type, std::move(s), rv);
  };
  scb.on_health = [this](const Status& s) { on_slices_health(s); };
  scb.on_waiting = [this](const std::string& text) { on_slices_waiting(text); };
  scb.on_note = [this](const std::string& text) { on_slices_note(text); };
  slice_reflector = std::make_unique<kube::Reflector<kube::EndpointSlice>>(*cl.api, std::move(ro), std::move(scb));
  slice_reflector->start();
}

void ServiceCache::start() {
  auto& cl = *cluster;
  auto so = cl.reflector_options(fmt::format("/api/v1/namespaces/{}/services", ns), fmt::format("service {}/{}", ns, name));
  so.field_selector = fmt::format("metadata.name={}", name);
  kube::ReflectorCallbacks<kube::Service> vcb;
  vcb.on_replace = [this](std::vector<kube::Service> items, const std::string&) {
    auto keep = shared_from_this();
    service.reset();
    for (auto& s : items)
      if (s.metadata.name == name) service = std::move(s);
    service_synced = true;
    changed();
  };
  vcb.on_event = [this](kube::EventType type, kube::Service s, const std::string&) {
    if (s.metadata.name != name) return;
    auto keep = shared_from_this();
    if (type == kube::EventType::deleted)
      service.reset();
    else
      service = std::move(s);
    changed();
  };
  vcb.on_health = [this](const Status& s) {
    auto keep = shared_from_this();
    service_health = s;
    changed();
  };
  vcb.on_waiting = [this](const std::string& text) {
    auto keep = shared_from_this();
    service_waiting = text;
    changed();
  };
  vcb.on_note = [this](const std::string& text) {
    auto keep = shared_from_this();
    service_note = text;
    changed();
  };
  service_reflector = std::make_unique<kube::Reflector<kube::Service>>(*cl.api, std::move(so), std::move(vcb));
  start_slices();
  service_reflector->start();
  // Fan-in: the namespace's shared watch runs the preflight once and tells every member.
  if (slice_membership) return;
  // The permissions preflight runs beside the first LIST: it only adds a clearer reason (the
  // verb, resource, namespace and the rule to add) when the watches are refused.
  preflight = cl.preflights[ns].lock();
  if (!preflight) {
    preflight = std::make_shared<SharedPreflight>();
    cl.preflights[ns] = preflight;
    std::weak_ptr<SharedPreflight> weak = preflight;
    preflight->run = std::make_unique<detail::AccessPreflight>(
        *cl.api, detail::service_access_checks(ns),
        [weak, weak_cluster = std::weak_ptr<ClusterClient::Impl>(cluster), ns = ns](Status s) {
          auto shared = weak.lock();
          if (!shared) return;
          // Later Services of the namespace start a preflight of their own (rights change).
          if (auto owner = weak_cluster.lock())
            if (auto it = owner->preflights.find(ns); it != owner->preflights.end() && it->second.lock() == shared)
              owner->preflights.erase(it);
          for (const auto& w : std::vector<std::weak_ptr<ServiceCache>>(std::move(shared->waiters))) {
            auto cache = w.lock();
            if (!cache || cache->preflight != shared) continue;
            cache->preflight.reset();
            cache->on_preflight(s);
          }
        },
        cl.options.log);
  }
  preflight->waiters.push_back(weak_from_this());
}

void ServiceCache::changed() {
  auto keep = shared_from_this();
  std::vector<std::shared_ptr<EndpointWatcher::Impl>> live;
  for (auto& [key, weak] : views)
    if (auto v = weak.lock()) live.push_back(std::move(v));
  for (auto& v : live) v->recompute();
}

EndpointWatcher::EndpointWatcher(std::shared_ptr<Impl> impl, std::uint64_t subscription)
    : impl_(std::move(impl)), subscription_(subscription) {}

EndpointWatcher::~EndpointWatcher() {
  if (impl_) impl_->subscribers.erase(subscription_);
}

EndpointSetPtr EndpointWatcher::current() const { return impl_->current; }
WatchState EndpointWatcher::state() const { return impl_->state; }

Result<std::unique_ptr<ClusterClient>> ClusterClient::create(uv_loop_t& loop, const ClusterConfig& config,
                                                             ClusterClientOptions options) {
  if (Status s = validate_cluster_config(config); !s) return s.error();
  auto auth = kube::make_auth_provider(loop, config, options.log);
  if (!auth) return auth.error();
  auto api = kube::make_api_client(loop, config, std::move(*auth), options.log, options.max_header_bytes);
  if (!api) return api.error();
  auto impl = std::make_shared<Impl>(loop, config, std::move(options));
  impl->api = std::move(*api);
  return std::unique_ptr<ClusterClient>(new ClusterClient(std::move(impl)));
}

ClusterClient::~ClusterClient() = default;

const std::string& ClusterClient::name() const noexcept { return impl_->config.name; }

Result<std::unique_ptr<EndpointWatcher>> ClusterClient::watch(const ServiceRef& ref, EndpointWatcherCallbacks callbacks) {
  if (Status s = validate_service_ref(ref, "service"); !s) return s.error();
  // Forget caches and views whose last handle is gone (their entries are only weak).
  std::erase_if(impl_->services, [](const auto& kv) { return kv.second.expired(); });
  std::erase_if(impl_->namespace_watches, [](const auto& kv) { return kv.second.expired(); });
  std::erase_if(impl_->node_watches, [](const auto& kv) { return kv.second.expired(); });
  auto key = std::make_pair(ref.namespace_name, ref.service);
  auto cache = impl_->services[key].lock();
  if (!cache) {
    cache = std::make_shared<ServiceCache>();
    cache->cluster = impl_;
    cache->ns = ref.namespace_name;
    cache->name = ref.service;
    impl_->services[key] = cache;
    cache->start();
  }
  std::erase_if(cache->views, [](const auto& kv) { return kv.second.expired(); });
  const std::string view_key = fmt::format("{}|{}", ref.port.to_string(), label_selector(ref.node_labels));
  auto view = cache->views[view_key].lock();
  if (!view) {
    view = std::make_shared<EndpointWatcher::Impl>();
    view->cache = cache;
    view->port = ref.port;
    view->node_labels = ref.node_labels;
    view->state.since = Clock::now();
    cache->views[view_key] = view;
    view->start_nodes();
    // A view joining a cache that is already synced computes at once (on a later turn).
    detail::defer(impl_->loop, [weak = std::weak_ptr<EndpointWatcher::Impl>(view)] {
      if (auto v = weak.lock()) v->recompute();
    });
  }
  const std::uint64_t id = view->next_subscriber++;
  view->subscribers[id] = std::make_shared<EndpointWatcher::Impl::Subscriber>(
      EndpointWatcher::Impl::Subscriber{std::move(callbacks), 0, 0});
  // Tell a late subscriber what the others already know (the state, then the snapshot), on a
  // later loop turn.
  detail::defer(impl_->loop, [weak = std::weak_ptr<EndpointWatcher::Impl>(view), id] {
    auto v = weak.lock();
    if (!v) return;
    auto it = v->subscribers.find(id);
    if (it == v->subscribers.end()) return;
    std::shared_ptr<EndpointWatcher::Impl::Subscriber> sub = it->second;
    if (sub->state_seen < v->state_seq) {
      sub->state_seen = v->state_seq;
      if (sub->callbacks.on_state) sub->callbacks.on_state(v->state);
      if (!v->subscribers.count(id)) return;
    }
    if (!v->current || sub->delivered >= v->current->generation) return;
    sub->delivered = v->current->generation;
    if (sub->callbacks.on_update) sub->callbacks.on_update(v->current);
  });
  return std::make_unique<EndpointWatcher>(view, id);
}

}  // namespace kupstream
