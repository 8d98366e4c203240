#include "upstream/forwarding_context.h"

#include <fmt/format.h>

#include <array>

#include "net/tls_context.h"
#include "upstream/upstream_impl.h"

namespace kupstream {

namespace detail {

const Routing& thread_routing(const std::shared_ptr<const Publication>& p) {
  // A few slots, so that a thread alternating between Upstreams (or an Upstream and its
  // workers, which share one Publication) does not reload on every call.
  struct Slot {
    std::shared_ptr<const Publication> owner;
    RoutingCache cache;
  };
  thread_local std::array<Slot, 4> slots;
  thread_local std::size_t next_victim = 0;
  for (auto& slot : slots)
    if (slot.owner == p) return slot.cache.get(*p);
  // A miss: first let go of Upstreams that are gone (this slot holds the last reference to their
  // Publication). Its cached Routing would otherwise keep the dropped Upstream's last Picker, and
  // through it its snapshots and Pods, alive for as long as this thread lives.
  Slot* free_slot = nullptr;
  for (auto& slot : slots) {
    if (slot.owner && slot.owner.use_count() == 1) slot = Slot{};
    if (!slot.owner && free_slot == nullptr) free_slot = &slot;
  }
  Slot& slot = free_slot != nullptr ? *free_slot : slots[next_victim++ % slots.size()];
  slot.owner = p;
  slot.cache = RoutingCache{};
  return slot.cache.get(*p);
}

}  // namespace detail

ForwardingContext::ForwardingContext(uv_loop_t& l, std::shared_ptr<const detail::ForwardSettings> s,
                                     std::shared_ptr<const detail::Publication> p,
                                     std::vector<std::shared_ptr<net::TlsContext>> t)
    : loop(l), settings(std::move(s)), publication(std::move(p)), tls(std::move(t)) {}

ForwardingContext::~ForwardingContext() { shutdown(); }

std::shared_ptr<detail::LoopPod> ForwardingContext::pod_for(const detail::PodTarget& t, const Endpoint& endpoint) {
  const detail::PodTarget* target = &t;
  auto& slot = pods[target->id];
  if (slot) return slot;
  const auto& o = options();
  net::PoolOptions po;
  po.connection.host = endpoint.address;
  po.connection.port = target->port;
  po.connection.tls = target->service < tls.size() ? tls[target->service] : nullptr;
  const auto& host_header = settings->config.host_header;
  po.connection.authority = host_header                                          ? *host_header
                            : target->service < settings->authorities.size() ? settings->authorities[target->service]
                                                                               : std::string();
  po.connection.connect_timeout = o.timeouts.connect;
  po.connection.response_header_timeout = o.timeouts.response_header;
  po.connection.limits.max_header_bytes = o.max_response_header_bytes;
  po.connection.limits.max_header_count = o.max_response_header_count;
  po.connection.log = o.log;
  po.max_connections = o.max_connections_per_pod;
  po.max_idle = o.max_idle_per_pod;
  po.idle_timeout = o.timeouts.idle_connection;
  auto pool = net::ConnectionPool::create(loop, std::move(po));
  if (!pool) {
    pods.erase(target->id);
    log(LogLevel::error, fmt::format("upstream \"{}\": Pod {}: {}", name(), endpoint.host_port(), pool.error().reason));
    return nullptr;
  }
  slot = std::make_shared<detail::LoopPod>();
  slot->target = detail::TargetRef(target);
  slot->host_port = detail::HostPortText(endpoint.host_port());
  slot->pool = std::move(*pool);
  return slot;
}

void ForwardingContext::attempt_done(const std::shared_ptr<detail::LoopPod>& pod, detail::AttemptOutcome outcome) {
  if (control != nullptr) control->apply_attempt({pod->target->id, pod->target->service, outcome});
  else {
    tally.attempts.push_back({pod->target->id, pod->target->service, outcome});
    if (outcome == detail::AttemptOutcome::failure) tally.failed_attempt = true;
  }
  if (pod->removed && pod->in_flight == 0) {
    auto it = pods.find(pod->target->id);
    if (it != pods.end() && it->second == pod) pods.erase(it);
  }
}

void ForwardingContext::request_done(UpstreamRequest::Impl& r, bool failed, bool completed) {
  --in_flight;
  if (r.counted_retry) --retries_in_flight;
  if (failed) ++tally.failures;
  if (completed) tally.latency.record(SteadyClock::now() - r.start);
  live_requests.erase(r);  // may drop the last reference to r: nothing touches r after this
}

void ForwardingContext::pod_removed(std::uint64_t pod_id) {
  auto it = pods.find(pod_id);
  if (it == pods.end()) return;
  if (it->second->in_flight == 0) {
    pods.erase(it);  // closes the pool
    return;
  }
  it->second->removed = true;  // attempt_done() closes it after the last attempt
}

void ForwardingContext::shutdown() {
  if (stopped || shutting_down_) return;
  // The canceled attempts still report (neutral): the control loop may be waiting for the last
  // attempt on a Pod that left its slice before it forgets the Pod.
  shutting_down_ = true;
  for (auto& r : std::vector<std::shared_ptr<UpstreamRequest::Impl>>(live_requests.begin(), live_requests.end())) r->cancel();
  live_requests.clear();
  stopped = true;
  pods.clear();
}

}  // namespace kupstream
