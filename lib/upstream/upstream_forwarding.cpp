// The control loop's side of the request path: making the ForwardingContexts' shared parts
// (settings, Publication, PodTargets), applying the outcomes they report, and telling them
// which Pods are gone. The request path itself is in upstream_request.cpp.
#include <fmt/format.h>

#include <algorithm>

#include "net/tls_context.h"
#include "upstream/upstream_impl.h"
#include "upstream/worker_hub.h"

namespace kupstream {

Upstream::Upstream(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) { impl_->init_forwarding(); }

void Upstream::Impl::init_forwarding() {
  auto s = std::make_shared<detail::ForwardSettings>();
  s->config = config;
  s->options = options;
  std::vector<std::shared_ptr<net::TlsContext>> tls;
  for (const auto& svc : services) {
    s->authorities.push_back(svc.authority);
    s->tls.push_back(svc.tls ? std::optional<net::TlsConfig>(svc.tls->config()) : std::nullopt);
    tls.push_back(svc.tls);
  }
  forward_settings = std::move(s);
  local = std::make_shared<ForwardingContext>(loop, forward_settings, publication, std::move(tls));
  local->control = this;
  hub = std::make_shared<detail::ControlHub>(loop, *this);
}

void Upstream::Impl::close_forwarding() {
  if (hub) hub->close();
  if (local) {
    local->shutdown();
    local->control = nullptr;
  }
  // Workers find no Pod from now on and refuse new requests; their requests in flight finish
  // on their own loops.
  publication->close();
  publication->publish(std::make_shared<const detail::Routing>(detail::Routing{balancer.build({}), false}));
}

void Upstream::Impl::publish(PickerPtr picker) {
  auto r = std::make_shared<detail::Routing>();
  r->picker = std::move(picker);
  r->synced = true;
  for (const auto& s : services) r->synced = r->synced && s.seen_first_snapshot;
  publication->publish(std::move(r));
}

void Upstream::Impl::apply_attempt(const detail::AttemptRecord& attempt) {
  if (stopped || attempt.service >= services.size()) return;
  const auto outcome = attempt.outcome;
  ++services[attempt.service].requests;
  UpstreamPod* found = pod_by_id(attempt.pod_id);
  if (!found) {
    // Forgotten meanwhile: a worker's attempt on a Pod that left while it was picked. Its
    // service still counts it; the Pod's own counts and health are gone with it.
    if (outcome == detail::AttemptOutcome::failure) ++services[attempt.service].failures;
    return;
  }
  UpstreamPod& pod = *found;
  ++pod.requests;
  if (options.locality.enabled) ++(pod.local ? local_requests : cross_zone_requests);
  if (outcome != detail::AttemptOutcome::neutral) record_result(pod, outcome == detail::AttemptOutcome::failure);
  // Last: it may drop the Pod.
  if (!pod.listed && pod.load().in_flight.load() == 0) release_pod_if_gone(pod);
}

void Upstream::Impl::forget_pod(UpstreamPod& pod) {
  const std::uint64_t id = pod.id;
  if (pod_by_id(id) == &pod) {
    const std::uint32_t slot = slot_of(id);
    pod_slots[slot] = nullptr;
    free_pod_slots.push_back(slot);
  }
  if (local) local->pod_removed(id);
  if (hub) hub->pod_removed(id);
}

void Upstream::Impl::apply_batch(detail::Tally& batch) {
  worker_totals.add_counts(batch);
  for (const auto& a : batch.attempts) {
    if (stopped) return;
    apply_attempt(a);
  }
}

detail::Tally Upstream::Impl::totals() const {
  detail::Tally t;
  if (local) {
    t.add_counts(local->tally);
    t.in_flight = local->in_flight;
  }
  t.add_counts(worker_totals);
  return t;
}

Result<std::unique_ptr<UpstreamRequest>> Upstream::forward(ForwardRequest request, ForwardHandlers handlers) {
  return impl_->local->forward(std::move(request), std::move(handlers));
}

PickerPtr Upstream::picker() const { return detail::thread_routing(impl_->publication).picker; }

PickResult Upstream::pick(std::uint64_t hash) const {
  // The result points into the Picker of this thread's cached Routing, which stays alive until
  // this thread's next pick() (or picker()).
  return detail::thread_routing(impl_->publication).picker->pick(hash);
}

}  // namespace kupstream
