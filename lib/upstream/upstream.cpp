#include "kupstream/upstream.h"

#include <fmt/format.h>
#include <uv.h>

#include <algorithm>
#include <iterator>
#include <stdexcept>
#include <tuple>

#include "balance/compact_wrr_picker.h"
#include "core/backend_key.h"
#include "net/tls_context.h"
#include "upstream/pod_weights.h"
#include "core/slab_pool.h"
#include "upstream/upstream_impl.h"

namespace kupstream {
namespace {

BalancerOptions balancer_options(const UpstreamConfig& c, const UpstreamOptions& o) {
  BalancerOptions b;
  b.policy = c.policy;
  b.seed = o.seed;
  return b;
}

std::string host_without_port(const std::string& host) {
  if (!host.empty() && host.front() == '[') return host.substr(1, host.find(']') - 1);
  return host.substr(0, host.find(':'));
}

// The order of EndpointSet lists: BackendKey, then the address text (for unparsed addresses).
struct OrderedEndpoint {
  const Endpoint* e = nullptr;
  detail::BackendKey key;
  void set(const Endpoint* endpoint) {
    e = endpoint;
    if (e) key = detail::BackendKey::parse(e->address, e->port);
  }
};
int compare(const OrderedEndpoint& a, const OrderedEndpoint& b) {
  if (auto c = a.key <=> b.key; c != 0) return c < 0 ? -1 : 1;
  if (a.key.family != detail::BackendKey::unparsed) return 0;
  if (auto c = std::tie(a.e->address, a.e->port) <=> std::tie(b.e->address, b.e->port); c != 0) return c < 0 ? -1 : 1;
  return 0;
}

// What an Upstream's Picker keeps alive: the snapshots its endpoints point into and the Pod arrays
// that hold its Pods (one each per service; the per-service Pickers hold one of each).
struct PickerOwner {
  std::vector<EndpointSetPtr> sets;
  std::vector<std::shared_ptr<const PodArray::Items>> pods;
};

}  // namespace

Upstream::Impl::Impl(uv_loop_t& l, UpstreamConfig c, UpstreamOptions o)
    : loop(l), config(std::move(c)), options(std::move(o)), balancer(balancer_options(config, options)) {
  // A Pod keeps its slow start's beginning in a 4-byte stamp (pod_health.h): ramps are cut to
  // its span, about 24.8 days.
  options.slow_start = std::min(options.slow_start, detail::kMaxStampSpan);
  publication = std::make_shared<detail::Publication>(std::make_shared<const detail::Routing>(detail::Routing{balancer.build({}), false}));
  timer = new uv_timer_t;
  uv_timer_init(&loop, timer);
  timer->data = this;
}

Upstream::Impl::~Impl() {
  if (timer) {
    uv_timer_stop(timer);
    uv_close(reinterpret_cast<uv_handle_t*>(timer), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  }
}

Result<std::unique_ptr<Upstream>> Upstream::create(uv_loop_t& loop, UpstreamConfig config, const ClusterMap& clusters,
                                                   UpstreamOptions options) {
  if (Status s = validate_upstream_config(config); !s) return s.error();
  if (Status s = validate_zone_aware_routing(options.locality); !s)
    return Error{Errc::invalid_config, fmt::format("upstream \"{}\": {}", config.name, s.error().reason)};
  for (std::size_t i = 0; i < config.services.size(); ++i)
    if (!clusters.count(config.services[i].cluster))
      return Error{Errc::invalid_config, fmt::format("upstream \"{}\": services[{}].cluster: \"{}\" is not a configured cluster",
                                                     config.name, i, config.services[i].cluster)};
  auto impl = std::make_shared<Impl>(loop, std::move(config), std::move(options));
  for (const auto& ref : impl->config.services) {
    Impl::Service s;
    s.ref = ref;
    s.authority = fmt::format("{}.{}.svc", ref.service, ref.namespace_name);
    if (impl->config.scheme == Scheme::https) {
      net::TlsConfig tls;
      tls.ca_file = impl->options.tls.ca_file;
      tls.insecure_skip_verify = impl->options.tls.insecure_skip_verify;
      tls.server_name = !impl->options.tls.server_name.empty() ? impl->options.tls.server_name
                        : impl->config.host_header                 ? host_without_port(*impl->config.host_header)
                                                                   : s.authority;
      auto ctx = net::TlsContext::create(tls);
      if (!ctx) return Error{Errc::invalid_config, fmt::format("upstream \"{}\": tls: {}", impl->config.name, ctx.error().reason)};
      s.tls = *ctx;
      (void)s.tls->claim_insecure_warning();  // logged once below, not again per connection
    }
    impl->services.push_back(std::move(s));
  }
  if (impl->config.scheme == Scheme::https && impl->options.tls.insecure_skip_verify)
    impl->log(LogLevel::warning, fmt::format("upstream \"{}\": TLS verification of Pods is OFF (insecure_skip_verify)",
                                             impl->config.name));
  impl->subscribe(clusters);
  return std::unique_ptr<Upstream>(new Upstream(std::move(impl)));
}

void Upstream::Impl::subscribe(const ClusterMap& clusters) {
  std::weak_ptr<Impl> weak = shared_from_this();
  for (std::size_t i = 0; i < services.size(); ++i) {
    EndpointWatcherCallbacks cb;
    cb.on_update = [weak, i](const EndpointSetPtr& set) {
      if (auto self = weak.lock(); self && !self->stopped) self->on_snapshot(i, set);
    };
    cb.on_state = [weak, i](const WatchState& state) {
      auto self = weak.lock();
      if (!self || self->stopped) return;
      self->services[i].state = state;
      if (state.phase != WatchPhase::synced)
        self->log(LogLevel::warning, fmt::format("upstream \"{}\": {}: {} ({})", self->config.name,
                                                 self->services[i].ref.to_string(), to_string(state.phase), state.reason));
    };
    auto watch = clusters.find(services[i].ref.cluster)->second->watch(services[i].ref, std::move(cb));
    if (!watch) {
      log(LogLevel::error, fmt::format("upstream \"{}\": {}", config.name, watch.error().reason));
      continue;
    }
    services[i].watch = std::move(*watch);
  }
}

void Upstream::Impl::on_snapshot(std::size_t i, const EndpointSetPtr& set) {
  Service& s = services[i];
  const bool first = !s.seen_first_snapshot;
  s.seen_first_snapshot = true;
  const auto now = SteadyClock::now();
  // Pods present in a service's first snapshot are not new: slow start is for Pods that
  // appear later (scale-up, rolling update).
  const std::uint32_t seen = detail::stamp_ms(now);
  // One merge walk of three sorted sequences: the service's Pods (in snapshot order) against the
  // new snapshot's ready and draining lists. No map, no key strings: a Pod is found by its
  // BackendKey, parsed once per Pod and endpoint per change.
  // A new array: the Pickers built from the old one keep it. The Pods are shared, not copied.
  PodArray::Items merged;
  merged.reserve(set->ready.size() + set->draining.size() + 8);
  std::size_t ri = 0, di = 0, oi = 0;
  OrderedEndpoint r, d, o;
  auto next_ready = [&] { r.set(ri < set->ready.size() ? &set->ready[ri] : nullptr); };
  auto next_draining = [&] { d.set(di < set->draining.size() ? &set->draining[di] : nullptr); };
  auto next_old = [&] { o.set(oi < s.pods.size() ? s.pods[oi]->endpoint : nullptr); };
  next_ready();
  next_draining();
  next_old();
  bool left = false;  // a listed Pod is no longer listed and stays: it points into the previous snapshot
  // Unlisted Pods with no request in flight leave the array at once (so the new Pickers, which
  // keep the array, do not keep them); they are forgotten once the new Picker is published.
  PodArray::Items gone;
  auto unlist = [&](const UpstreamPodRef& pod) {
    const bool idle = pod->load().in_flight.load() == 0;
    left = left || (pod->listed && !idle);
    pod->listed = false;
    (idle ? gone : merged).push_back(pod);
  };
  while (r.e || d.e) {
    const bool take_ready = r.e && (!d.e || compare(r, d) <= 0);
    const OrderedEndpoint& n = take_ready ? r : d;
    int c = -1;
    while (o.e && (c = compare(o, n)) < 0) {
      unlist(s.pods[oi++]);
      next_old();
    }
    UpstreamPodRef pod;
    if (o.e && c == 0) {
      pod = s.pods[oi++];
      next_old();
    } else {
      pod = make_pod(static_cast<std::uint32_t>(i), *n.e);
      pod->first_seen = seen;
      pod->ramped = first || options.slow_start.count() <= 0;
    }
    pod->endpoint = n.e;
    pod->listed = true;
    pod->ready = take_ready;
    merged.push_back(std::move(pod));
    if (take_ready) {
      ++ri;
      next_ready();
    } else {
      ++di;
      next_draining();
    }
  }
  for (; oi < s.pods.size(); ++oi) unlist(s.pods[oi]);
  s.pods.assign(std::move(merged));
  if (left && s.set) s.retired.push_back(s.set);
  s.set = set;
  s.dirty = true;
  rebuild();
  for (const auto& pod : gone) forget_pod(*pod);
  release_gone_pods(s);
}

UpstreamPodRef Upstream::Impl::make_pod(std::uint32_t service, const Endpoint& e) {
  // From the Pods' slab pool: 64 bytes, without a malloc header.
  UpstreamPodRef pod(new (detail::SlabAllocator<UpstreamPod>().allocate(1)) UpstreamPod);
  std::uint32_t slot;
  if (!free_pod_slots.empty()) {
    slot = free_pod_slots.back();
    free_pod_slots.pop_back();
  } else {
    if (pod_slots.size() >= (std::size_t{1} << kPodSlotBits))
      throw std::length_error(fmt::format("upstream \"{}\": more than {} Pods at once", config.name, pod_slots.size()));
    slot = static_cast<std::uint32_t>(pod_slots.size());
    pod_slots.push_back(nullptr);
  }
  pod_slots[slot] = pod.get();
  pod->id = next_pod_serial++ << kPodSlotBits | slot;
  pod->PodTarget::service = static_cast<std::uint16_t>(service);
  pod->port = e.port;
  return pod;
}

void detail::release_pod(const PodTarget& target) noexcept {
  auto* pod = const_cast<UpstreamPod*>(static_cast<const UpstreamPod*>(&target));
  pod->~UpstreamPod();
  SlabAllocator<UpstreamPod>().deallocate(pod, 1);
}

UpstreamPod* Upstream::Impl::pod_by_id(std::uint64_t id) const {
  const std::uint32_t slot = slot_of(id);
  UpstreamPod* pod = slot < pod_slots.size() ? pod_slots[slot] : nullptr;
  return pod && pod->id == id ? pod : nullptr;
}

std::size_t Upstream::Impl::pod_count() const {
  std::size_t n = 0;
  for (const auto& svc : services) n += svc.pods.size();
  return n;
}

// A Pod no longer listed keeps its pool until its last request finishes.
void Upstream::Impl::release_gone_pods(Service& s) {
  bool unlisted_left = false;
  s.pods.erase_if([&](UpstreamPod& pod) {
    if (pod.listed) return false;
    if (pod.load().in_flight.load() > 0) {
      unlisted_left = true;
      return false;
    }
    forget_pod(pod);
    return true;
  });
  if (!unlisted_left) s.retired.clear();
}

void Upstream::Impl::release_pod_if_gone(UpstreamPod& pod) {
  if (pod.listed || pod.load().in_flight.load() > 0) return;
  release_gone_pods(services[pod.service()]);
}


void Upstream::Impl::count_pods(Service& service, SteadyClock::time_point now) {
  service.dirty = false;
  service.ready_pods = service.draining_pods = service.ready_healthy = service.draining_healthy = 0;
  service.ready_ejected = service.draining_ejected = 0;
  service.ejection_end = SteadyClock::time_point::max();
  service.ramping = false;
  const bool ramping = options.slow_start.count() > 0;
  for (const auto& entry : service.pods) {
    UpstreamPod& pod = *entry;
    if (!pod.listed) continue;
    pod.health.expire(now);
    const bool ejected = pod.health.ejected(now);
    if (ejected) service.ejection_end = std::min(service.ejection_end, pod.health.ejected_until(now));
    if (ramping && !pod.ramped) {
      if (pod.age(now) < options.slow_start) service.ramping = true;
      else pod.ramped = true;
    }
    const std::size_t healthy = !ejected && pod.active_ok ? 1 : 0;
    if (pod.ready) {
      ++service.ready_pods;
      service.ready_healthy += healthy;
      service.ready_ejected += ejected ? 1 : 0;
    } else {
      ++service.draining_pods;
      service.draining_healthy += healthy;
      service.draining_ejected += ejected ? 1 : 0;
    }
  }
}

PickerPtr Upstream::Impl::service_picker(std::size_t i, SteadyClock::time_point now) {
  Service& service = services[i];
  for (const auto& entry : service.pods) {
    entry->weight = 0;
    entry->local = false;
  }
  const std::size_t count = using_draining ? service.draining_pods : service.ready_pods;
  if (service.ref.weight == 0 || count == 0) return nullptr;
  const bool ramping = options.slow_start.count() > 0;
  const std::uint32_t base = detail::pod_base_weight(config.weight_mode, service.ref.weight, count);
  // 16 bytes per Pod (a CompactWrrPicker): the Endpoint in the service's snapshot and the Pod,
  // both kept alive by the Picker's owner; per-Pod weights only while some Pod ramps up.
  std::vector<detail::CompactEntry> entries;
  std::vector<std::uint32_t> weights;
  entries.reserve(count);
  for (const auto& entry : service.pods) {
    UpstreamPod& p = *entry;
    if (!p.listed || p.ready == using_draining) continue;
    if (!panic && (p.health.ejected(now) || !p.active_ok)) continue;
    std::uint32_t w = base;
    if (ramping)
      w = detail::slow_start_weight(w, p.age(now),
                                    options.slow_start);
    if (w == 0) continue;
    p.weight = w;
    if (w != base && weights.empty()) weights.assign(entries.size(), base);
    if (!weights.empty()) weights.push_back(w);
    entries.push_back({p.endpoint, &p});
  }
  if (entries.empty()) return nullptr;
  return std::make_shared<detail::CompactWrrPicker>(std::move(entries), std::move(weights), base, static_cast<std::uint32_t>(i),
                                                    std::make_shared<const PickerOwner>(PickerOwner{{service.set}, {service.pods.share()}}),
                                                    balancer.seed(), balancer.options().max_wrr_cycle);
}

void Upstream::Impl::rebuild() {
  if (stopped) return;
  const auto now = SteadyClock::now();
  last_rebuild = now;
  ++rebuilds;
  if (config.policy != BalancerPolicy::weighted_round_robin || options.locality.enabled) return rebuild_flat(now);

  // Walk only the services that changed, or change by themselves now (an ejection ended, slow
  // start moved on); the others keep their counts and their Pickers.
  for (auto& service : services)
    if (service.dirty || service.ramping || service.ejection_end <= now) {
      count_pods(service, now);
      service.picker_built = false;
    }
  // The global decisions, from the per-service counts: draining fallback and panic.
  std::size_t ready = 0, draining = 0, ready_healthy = 0, draining_healthy = 0;
  for (const auto& service : services) {
    if (service.ref.weight == 0) continue;
    ready += service.ready_pods;
    draining += service.draining_pods;
    ready_healthy += service.ready_healthy;
    draining_healthy += service.draining_healthy;
  }
  // Nothing ready anywhere: serving-but-terminating Pods are the documented fallback.
  using_draining = ready == 0 && draining > 0;
  const std::size_t candidates = using_draining ? draining : ready;
  const std::size_t healthy = using_draining ? draining_healthy : ready_healthy;
  panic = candidates > 0 && healthy * 100 < candidates * options.panic_threshold_percent;

  std::vector<PickerPtr> groups;
  groups.reserve(services.size());
  auto next = SteadyClock::time_point::max();
  const auto ramp_step = std::max<std::chrono::milliseconds>(options.slow_start / 20, std::chrono::milliseconds{20});
  for (std::size_t i = 0; i < services.size(); ++i) {
    Service& service = services[i];
    if (!service.picker_built || service.picker_draining != using_draining || service.picker_panic != panic) {
      service.picker = service_picker(i, now);
      service.picker_built = true;
      service.picker_draining = using_draining;
      service.picker_panic = panic;
    }
    groups.push_back(service.picker);
    next = std::min(next, service.ejection_end);
    if (service.ramping) next = std::min(next, now + ramp_step);
  }
  publish(balancer.build_grouped(std::move(groups), rebuilds));
  schedule_timer(now, next);
}

void Upstream::Impl::rebuild_flat(SteadyClock::time_point now) {
  // Two walks per service: count_pods() (the counts the timer and the two-level path read),
  // then resetting weights and sorting listed Pods into ready / draining.
  std::vector<UpstreamPod*> ready, draining;
  ready.reserve(pod_count());
  auto next = SteadyClock::time_point::max();
  const bool ramping = options.slow_start.count() > 0;
  const auto ramp_step = std::max<std::chrono::milliseconds>(options.slow_start / 20, std::chrono::milliseconds{20});
  for (auto& service : services) {
    count_pods(service, now);
    service.picker = nullptr;
    service.picker_built = false;
    next = std::min(next, service.ejection_end);
    if (service.ramping) next = std::min(next, now + ramp_step);
    for (const auto& entry : service.pods) {
      UpstreamPod& pod = *entry;
      pod.weight = 0;
      pod.local = false;
      if (!pod.listed || service.ref.weight == 0) continue;
      (pod.ready ? ready : draining).push_back(&pod);
    }
  }
  // Nothing ready anywhere: serving-but-terminating Pods are the documented fallback.
  using_draining = ready.empty() && !draining.empty();
  auto& candidates = using_draining ? draining : ready;

  std::vector<std::size_t> per_service(services.size(), 0);
  std::size_t healthy = 0;
  for (const auto* p : candidates) {
    ++per_service[p->service()];
    if (!p->health.ejected(now) && p->active_ok) ++healthy;
  }
  panic = !candidates.empty() && healthy * 100 < candidates.size() * options.panic_threshold_percent;

  std::vector<WeightedEndpoint> list;
  list.reserve(candidates.size());
  // The Picker's endpoints point into the snapshots and each one's load is its Pod's PodTarget
  // (how the request path finds the Pod of a pick, detail::target_of): both alias one owner that
  // keeps every service's snapshot and Pod array (no allocation, no copy, no count per Pod).
  auto owner = std::make_shared<PickerOwner>();
  for (const auto& service : services) {
    owner->sets.push_back(service.set);
    owner->pods.push_back(service.pods.share());
  }
  auto add = [&](UpstreamPod* p) {
    list.push_back({std::shared_ptr<const Endpoint>(owner, p->endpoint), p->weight, p->service(),
                    std::shared_ptr<EndpointLoad>(owner, p)});
  };
  // Zone-aware routing needs every candidate (an ejected one still counts in its zone) and
  // turns the weights into the zone plan's before the Picker is built (zone_locality.h).
  const bool zoned = options.locality.enabled;
  std::vector<detail::ZoneCandidate> zone_input;
  if (zoned) zone_input.reserve(candidates.size());
  for (auto* entry : candidates) {
    UpstreamPod& p = *entry;
    const bool usable = panic || (!p.health.ejected(now) && p.active_ok);
    if (!usable && !zoned) continue;
    const auto& ref = services[p.service()].ref;
    std::uint32_t w = detail::pod_base_weight(config.weight_mode, ref.weight, per_service[p.service()]);
    if (ramping)
      w = detail::slow_start_weight(w, p.age(now),
                                    options.slow_start);
    if (zoned) {
      zone_input.push_back({p.endpoint, w, usable});
      continue;
    }
    p.weight = w;
    add(entry);
  }
  if (zoned) {
    zone_plan = detail::plan_zones(options.locality, zone_input, panic);
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      UpstreamPod& p = *candidates[i];
      p.local = zone_plan.local[i];
      if (zone_plan.weights[i] == 0) continue;
      p.weight = zone_plan.weights[i];
      add(&p);
    }
  }
  publish(balancer.build(std::move(list)));
  schedule_timer(now, next);
}

// `next`: the earliest ejection end or slow-start step found by rebuild().
void Upstream::Impl::schedule_timer(SteadyClock::time_point now, SteadyClock::time_point next) {
  if (options.health_check.enabled) {
    if (next_health_check == SteadyClock::time_point{}) next_health_check = now;
    next = std::min(next, next_health_check);
    for (const auto& probe : health_probes) next = std::min(next, probe.deadline);
  }
  if (next == SteadyClock::time_point::max()) {
    uv_timer_stop(timer);
    return;
  }
  // Round up: firing a little early would find the deadline not reached yet.
  const auto delay = std::chrono::ceil<std::chrono::milliseconds>(next - now).count();
  uv_timer_start(timer, [](uv_timer_t* t) { static_cast<Impl*>(t->data)->on_timer(); },
                 static_cast<std::uint64_t>(std::max<long long>(delay, 1)), 0);
}

void Upstream::Impl::on_timer() {
  auto keep = shared_from_this();
  if (options.health_check.enabled) {
    expire_probes(SteadyClock::now());
    if (stopped) return;
    if (SteadyClock::now() >= next_health_check) run_health_checks();
  }
  // Rebuild only when weights change: an ejection ended, or a Pod was ramping up at the last
  // build. A health-check tick alone changes nothing (a changed verdict rebuilds by itself),
  // and a rebuild restarts the weighted round-robin cycle of what it rebuilds: rebuilding on
  // every tick would skew shares towards the Pods early in the cycle. The services' counts
  // (count_pods(), at their last walk) say when, without walking the Pods.
  const auto now = SteadyClock::now();
  bool changed = false;
  auto next = SteadyClock::time_point::max();
  for (const auto& service : services) {
    if (service.ramping || service.ejection_end <= now) changed = true;
    next = std::min(next, service.ejection_end);
  }
  if (changed) return rebuild();
  schedule_timer(now, next);
}

// Probes that did not answer within health_check.timeout count as failures.
void Upstream::Impl::expire_probes(SteadyClock::time_point now) {
  std::vector<std::uint64_t> expired;
  for (auto it = health_probes.begin(); it != health_probes.end();) {
    if (it->exchange && it->exchange->done()) {
      it = health_probes.erase(it);
    } else if (now >= it->deadline) {
      expired.push_back(it->pod_id);
      it = health_probes.erase(it);  // cancels the exchange (its connection is closed)
    } else {
      ++it;
    }
  }
  for (const auto id : expired) health_verdict(id, false);
}

void Upstream::Impl::health_verdict(std::uint64_t pod_id, bool ok) {
  if (stopped) return;
  UpstreamPod* found = pod_by_id(pod_id);
  if (!found) return;
  UpstreamPod& p = *found;
  if (ok == p.active_ok) {
    p.active_streak = 0;
    return;
  }
  const auto& policy = options.health_check;
  if (++p.active_streak >= std::clamp<std::uint32_t>(ok ? policy.healthy_threshold : policy.unhealthy_threshold, 1, 0xFFFF)) {
    p.active_ok = ok;
    p.active_streak = 0;
    log(LogLevel::info, fmt::format("upstream \"{}\": Pod {} is {} by health check", config.name, p.name(),
                                    ok ? "healthy" : "unhealthy"));
    services[p.service()].dirty = true;
    rebuild();
  }
}

void Upstream::Impl::run_health_checks() {
  const auto& hc = options.health_check;
  const auto now = SteadyClock::now();
  next_health_check = now + hc.interval;
  std::weak_ptr<Impl> weak = shared_from_this();
  std::vector<UpstreamPodRef> listed;
  for (auto& svc : services)
    for (auto& pod : svc.pods)
      if (pod->listed) listed.push_back(pod);
  for (const auto& pod : listed) {
    const std::uint64_t id = pod->id;
    // One probe per Pod at a time: a Pod whose probe is still running is not probed again.
    if (std::any_of(health_probes.begin(), health_probes.end(), [id](const Probe& p) { return p.pod_id == id; })) continue;
    net::ConnectionPool* pool = pool_for(*pod);
    if (!pool) continue;
    net::HttpRequest req;
    req.target = hc.path;
    req.headers = {{"User-Agent", "kupstream-health/0.1"}};
    if (config.host_header) req.headers.push_back({"Host", *config.host_header});
    net::HttpHandlers h;
    auto status = std::make_shared<int>(0);
    h.on_head = [status](const net::HttpResponseHead& head) { *status = head.status; };
    h.on_body = [](std::string_view) {};
    h.on_complete = [weak, status, id](Status s) {
      auto self = weak.lock();
      if (!self || self->stopped) return;
      self->health_verdict(id, s.ok() && *status >= 200 && *status < 400);
    };
    auto ex = pool->send(std::move(req), std::move(h));
    if (ex) health_probes.push_back({id, now + hc.timeout, std::move(*ex)});
  }
}

// The control loop's own pool to the Pod (health probes share it with this loop's requests).
net::ConnectionPool* Upstream::Impl::pool_for(const UpstreamPod& pod) {
  auto loop_pod = local->pod_for(pod, *pod.endpoint);
  return loop_pod ? loop_pod->pool.get() : nullptr;
}

void Upstream::Impl::record_result(UpstreamPod& pod, bool failure) {
  if (!failure) return pod.health.record_success();
  ++pod.failures;
  ++services[pod.service()].failures;
  const auto now = SteadyClock::now();
  // The cap counts the Pods that could take traffic now: listed, of a service with a weight,
  // ready (or draining while the draining fallback is on). Zero-weight services and draining
  // Pods would otherwise inflate it and let every Pod that matters be ejected.
  std::size_t ejected = 0, total = 0;
  for (const auto& s : services) {
    if (s.ref.weight == 0) continue;
    if (!s.dirty && now < s.ejection_end) {
      // The counts of the last walk still hold: no Pod of the service changed since (a change
      // marks it dirty) and none of its ejections has ended. O(services) per failure.
      total += using_draining ? s.draining_pods : s.ready_pods;
      ejected += using_draining ? s.draining_ejected : s.ready_ejected;
      continue;
    }
    for (const auto& entry : s.pods) {
      const UpstreamPod& p = *entry;
      if (p.listed && p.ready != using_draining) {
        ++total;
        ejected += p.health.ejected(now) ? 1 : 0;
      }
    }
  }
  const bool allowed = detail::ejection_allowed(options.outlier, ejected, total);
  if (pod.health.record_failure(options.outlier, now, allowed)) {
    ++services[pod.service()].ejections;
    log(LogLevel::warning, fmt::format("upstream \"{}\": Pod {} ejected for {} ms after {} consecutive failures",
                                       config.name, pod.name(),
                                       std::chrono::duration_cast<std::chrono::milliseconds>(pod.health.ejected_until(now) - now).count(),
                                       options.outlier.consecutive_failures));
    services[pod.service()].dirty = true;
    rebuild();
  }
}

void Upstream::Impl::shutdown() {
  stopped = true;
  close_forwarding();
  health_probes.clear();
  for (auto& s : services) s.watch.reset();
  for (auto& s : services) {
    s.picker.reset();  // it holds its Pods and snapshot too
    s.pods = PodArray();
    s.retired.clear();
  }
  pod_slots.clear();
  free_pod_slots.clear();
  uv_timer_stop(timer);
  uv_close(reinterpret_cast<uv_handle_t*>(timer), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  timer = nullptr;
}

Upstream::~Upstream() { impl_->shutdown(); }

bool Upstream::ready() const {
  for (const auto& s : impl_->services)
    if (!s.seen_first_snapshot) return false;
  return !impl_->current_picker()->empty();
}

const UpstreamConfig& Upstream::config() const noexcept { return impl_->config; }

}  // namespace kupstream
