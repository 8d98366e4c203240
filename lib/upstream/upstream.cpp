#include "kupstream/upstream.h"

#include <fmt/format.h>
#include <uv.h>

#include <algorithm>
#include <iterator>

#include "net/tls_context.h"
#include "upstream/pod_weights.h"
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

// "<service index>|address:port" (IPv6 in brackets), written into `out` (its buffer is reused).
void pod_key(std::string& out, std::size_t service, const Endpoint& e) {
  out.clear();
  if (e.is_ipv6())
    fmt::format_to(std::back_inserter(out), "{}|[{}]:{}", service, e.address, e.port);
  else
    fmt::format_to(std::back_inserter(out), "{}|{}:{}", service, e.address, e.port);
}

}  // namespace

Upstream::Impl::Impl(uv_loop_t& l, UpstreamConfig c, UpstreamOptions o)
    : loop(l), config(std::move(c)), options(std::move(o)), balancer(balancer_options(config, options)) {
  publication = std::make_shared<detail::Publication>(std::make_shared<const detail::Routing>(detail::Routing{balancer.build({}), {}, false}));
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
  s.set = set;
  const auto now = SteadyClock::now();
  // Pods present in a service's first snapshot are not new: slow start is for Pods that
  // appear later (scale-up, rolling update).
  const auto old_enough = now - options.slow_start - std::chrono::milliseconds{1};
  // Listed-ness is a flag on the Pods, not a set of keys built per snapshot: at 1,000 Pods a
  // std::set<std::string> and two formatted strings per Pod were most of a change's cost.
  for (auto& pod : s.pods) pod->listed = false;
  std::string key;
  for (const auto* list : {&set->ready, &set->draining}) {
    for (const auto& e : *list) {
      pod_key(key, i, e);
      auto it = pods.find(key);
      if (it == pods.end()) {
        auto pod = std::make_shared<UpstreamPod>();
        pod->service = i;
        pod->key = key;
        pod->first_seen = first ? old_enough : now;
        it = pods.emplace(key, std::move(pod)).first;
      }
      UpstreamPod& pod = *it->second;
      pod.endpoint = &e;
      pod.snapshot = set;
      pod.listed = true;
      pod.ready = list == &set->ready;
    }
  }
  std::vector<std::shared_ptr<UpstreamPod>> gone;
  // Keys are "<service index>|address:port": this service's Pods are one contiguous range.
  const std::string prefix = fmt::format("{}|", i);
  s.pods.clear();
  for (auto it = pods.lower_bound(prefix); it != pods.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    s.pods.push_back(it->second);
    if (!it->second->listed) gone.push_back(it->second);
  }
  rebuild();
  for (auto& pod : gone) release_pod_if_gone(pod);
}

// A Pod no longer listed keeps its pool until its last request finishes.
void Upstream::Impl::release_pod_if_gone(const std::shared_ptr<UpstreamPod>& pod) {
  if (pod->listed || pod->load->in_flight.load() > 0) return;
  auto it = pods.find(pod->key);
  if (it == pods.end() || it->second != pod) return;
  std::erase(services[pod->service].pods, pod);
  forget_pod(*pod);
  pods.erase(it);
}


void Upstream::Impl::rebuild() {
  if (stopped) return;
  const auto now = SteadyClock::now();
  last_rebuild = now;
  // One pass over the Pods (a map walk is the dominant cost with thousands of Pods): reset
  // weights, sort listed Pods into ready / draining, and find the next timer deadline.
  std::vector<std::shared_ptr<UpstreamPod>*> ready, draining;
  ready.reserve(pods.size());
  auto next = SteadyClock::time_point::max();
  const bool ramping = options.slow_start.count() > 0;
  const auto ramp_step = std::max<std::chrono::milliseconds>(options.slow_start / 20, std::chrono::milliseconds{20});
  for_each_pod([&](std::shared_ptr<UpstreamPod>& entry) {
    UpstreamPod& pod = *entry;
    pod.weight = 0;
    pod.local = false;
    if (!pod.listed) return;
    if (pod.health.ejected(now)) next = std::min(next, pod.health.ejected_until());
    if (ramping && now - pod.first_seen < options.slow_start) next = std::min(next, now + ramp_step);
    if (services[pod.service].ref.weight == 0) return;
    (pod.ready ? ready : draining).push_back(&entry);
  });
  // Nothing ready anywhere: serving-but-terminating Pods are the documented fallback.
  using_draining = ready.empty() && !draining.empty();
  auto& candidates = using_draining ? draining : ready;

  std::vector<std::size_t> per_service(services.size(), 0);
  std::size_t healthy = 0;
  for (auto* p : candidates) {
    ++per_service[(*p)->service];
    if (!(*p)->health.ejected(now) && (*p)->active_ok) ++healthy;
  }
  panic = !candidates.empty() && healthy * 100 < candidates.size() * options.panic_threshold_percent;

  std::vector<WeightedEndpoint> list;
  list.reserve(candidates.size());
  picked_pods.clear();
  picked_pods.reserve(candidates.size());
  // Zone-aware routing needs every candidate (an ejected one still counts in its zone) and
  // turns the weights into the zone plan's before the Picker is built (zone_locality.h).
  const bool zoned = options.locality.enabled;
  std::vector<detail::ZoneCandidate> zone_input;
  if (zoned) zone_input.reserve(candidates.size());
  for (auto* entry : candidates) {
    UpstreamPod& p = **entry;
    const bool usable = panic || (!p.health.ejected(now) && p.active_ok);
    if (!usable && !zoned) continue;
    const auto& ref = services[p.service].ref;
    std::uint32_t w = detail::pod_base_weight(config.weight_mode, ref.weight, per_service[p.service]);
    if (ramping)
      w = detail::slow_start_weight(w, std::chrono::duration_cast<std::chrono::milliseconds>(now - p.first_seen),
                                    options.slow_start);
    if (zoned) {
      zone_input.push_back({p.endpoint, w, usable});
      continue;
    }
    p.weight = w;
    list.push_back({std::shared_ptr<const Endpoint>(p.snapshot, p.endpoint), w, p.load, static_cast<std::uint32_t>(p.service)});
    picked_pods.push_back(*entry);
  }
  if (zoned) {
    zone_plan = detail::plan_zones(options.locality, zone_input, panic);
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      UpstreamPod& p = **candidates[i];
      p.local = zone_plan.local[i];
      if (zone_plan.weights[i] == 0) continue;
      p.weight = zone_plan.weights[i];
      list.push_back({std::shared_ptr<const Endpoint>(p.snapshot, p.endpoint), p.weight, p.load, static_cast<std::uint32_t>(p.service)});
      picked_pods.push_back(*candidates[i]);
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
  // and a rebuild restarts the weighted round-robin cycle: rebuilding on every tick would skew
  // shares towards the Pods early in the cycle.
  const auto now = SteadyClock::now();
  bool changed = false;
  auto next = SteadyClock::time_point::max();
  const bool ramping = options.slow_start.count() > 0;
  const auto ramp_step = std::max<std::chrono::milliseconds>(options.slow_start / 20, std::chrono::milliseconds{20});
  for_each_pod([&](const std::shared_ptr<UpstreamPod>& entry) {
    const UpstreamPod& pod = *entry;
    if (!pod.listed) return;
    const auto until = pod.health.ejected_until();
    if (until > now) next = std::min(next, until);
    else if (until > last_rebuild) changed = true;
    if (ramping && last_rebuild - pod.first_seen < options.slow_start) changed = true;
    if (ramping && now - pod.first_seen < options.slow_start) next = std::min(next, now + ramp_step);
  });
  if (changed) return rebuild();
  schedule_timer(now, next);
}

// Probes that did not answer within health_check.timeout count as failures.
void Upstream::Impl::expire_probes(SteadyClock::time_point now) {
  std::vector<std::string> expired;
  for (auto it = health_probes.begin(); it != health_probes.end();) {
    if (it->exchange && it->exchange->done()) {
      it = health_probes.erase(it);
    } else if (now >= it->deadline) {
      expired.push_back(it->pod_key);
      it = health_probes.erase(it);  // cancels the exchange (its connection is closed)
    } else {
      ++it;
    }
  }
  for (const auto& key : expired) health_verdict(key, false);
}

void Upstream::Impl::health_verdict(const std::string& pod_key, bool ok) {
  if (stopped) return;
  auto it = pods.find(pod_key);
  if (it == pods.end()) return;
  UpstreamPod& p = *it->second;
  if (ok == p.active_ok) {
    p.active_streak = 0;
    return;
  }
  const auto& policy = options.health_check;
  if (++p.active_streak >= std::max<std::uint32_t>(1, ok ? policy.healthy_threshold : policy.unhealthy_threshold)) {
    p.active_ok = ok;
    p.active_streak = 0;
    log(LogLevel::info, fmt::format("upstream \"{}\": Pod {} is {} by health check", config.name, p.endpoint->host_port(),
                                    ok ? "healthy" : "unhealthy"));
    rebuild();
  }
}

void Upstream::Impl::run_health_checks() {
  const auto& hc = options.health_check;
  const auto now = SteadyClock::now();
  next_health_check = now + hc.interval;
  std::weak_ptr<Impl> weak = shared_from_this();
  for (auto& [key, pod] : pods) {
    if (!pod->listed) continue;
    // One probe per Pod at a time: a Pod whose probe is still running is not probed again.
    if (std::any_of(health_probes.begin(), health_probes.end(), [&k = key](const Probe& p) { return p.pod_key == k; })) continue;
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
    h.on_complete = [weak, status, pod_key = key](Status s) {
      auto self = weak.lock();
      if (!self || self->stopped) return;
      self->health_verdict(pod_key, s.ok() && *status >= 200 && *status < 400);
    };
    auto ex = pool->send(std::move(req), std::move(h));
    if (ex) health_probes.push_back({key, now + hc.timeout, std::move(*ex)});
  }
}

// The control loop's own pool to the Pod (health probes share it with this loop's requests).
net::ConnectionPool* Upstream::Impl::pool_for(UpstreamPod& pod) {
  auto loop_pod = local->pod_for(ensure_target(pod));
  return loop_pod ? loop_pod->pool.get() : nullptr;
}

void Upstream::Impl::record_result(UpstreamPod& pod, bool failure) {
  if (!failure) return pod.health.record_success();
  ++pod.failures;
  ++services[pod.service].failures;
  const auto now = SteadyClock::now();
  // The cap counts the Pods that could take traffic now: listed, of a service with a weight,
  // ready (or draining while the draining fallback is on). Zero-weight services and draining
  // Pods would otherwise inflate it and let every Pod that matters be ejected.
  std::size_t ejected = 0, total = 0;
  for_each_pod([&](const std::shared_ptr<UpstreamPod>& p) {
    if (p->listed && services[p->service].ref.weight > 0 && p->ready != using_draining) {
      ++total;
      ejected += p->health.ejected(now) ? 1 : 0;
    }
  });
  const bool allowed = detail::ejection_allowed(options.outlier, ejected, total);
  if (pod.health.record_failure(options.outlier, now, allowed)) {
    ++services[pod.service].ejections;
    log(LogLevel::warning, fmt::format("upstream \"{}\": Pod {} ejected for {} ms after {} consecutive failures",
                                       config.name, pod.endpoint->host_port(),
                                       std::chrono::duration_cast<std::chrono::milliseconds>(pod.health.ejected_until() - now).count(),
                                       options.outlier.consecutive_failures));
    rebuild();
  }
}

void Upstream::Impl::shutdown() {
  stopped = true;
  close_forwarding();
  health_probes.clear();
  for (auto& s : services) s.watch.reset();
  picked_pods.clear();
  for (auto& s : services) s.pods.clear();
  pods.clear();
  pods_by_id.clear();
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
