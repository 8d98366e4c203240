#include <fmt/format.h>

#include <algorithm>
#include <tuple>

#include "upstream/upstream_impl.h"

namespace kupstream {

std::string prometheus_label_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

UpstreamStats Upstream::stats() const { return impl_->stats(); }
std::string Upstream::prometheus_text() const { return impl_->prometheus_text(); }

UpstreamStats Upstream::Impl::stats() const {
  const Impl& u = *this;
  UpstreamStats s;
  const detail::Tally t = totals();  // this loop's requests and the workers' (as last reported)
  s.requests = t.requests;
  s.failures = t.failures;
  s.retries = t.retries;
  s.no_endpoint = t.no_endpoint;
  s.in_flight = static_cast<std::uint32_t>(std::max<std::int64_t>(t.in_flight, 0));
  s.panic = u.panic;
  s.using_draining = u.using_draining;
  s.latency_buckets_seconds.assign(detail::LatencyHistogram::kBounds.begin(), detail::LatencyHistogram::kBounds.end());
  const auto counts = t.latency.cumulative();
  s.latency_counts.assign(counts.begin(), counts.end());
  s.latency_sum_seconds = t.latency.sum_seconds();
  const auto now = SteadyClock::now();
  for_each_pod([&](const UpstreamPod& pod) {
    PodStats p;
    p.pod = pod.name();
    p.pod_name = pod.endpoint->pod_name;
    p.service = u.services[pod.service()].ref.to_string();
    p.zone = pod.endpoint->zone;
    p.weight = pod.weight;
    p.ejected = pod.health.ejected(now);
    p.draining = !pod.ready;
    p.requests = pod.requests;
    p.failures = pod.failures;
    p.ejections = pod.health.times_ejected();
    p.in_flight = pod.load().in_flight.load();
    s.pods.push_back(std::move(p));
  });
  for (const auto& svc : u.services) {
    ServiceStatus st;
    st.ref = svc.ref;
    st.state = svc.state;
    st.staleness = svc.state.staleness(std::chrono::system_clock::now());
    if (svc.set) {
      st.ready = svc.set->ready.size();
      st.draining = svc.set->draining.size();
    }
    st.requests = svc.requests;
    st.failures = svc.failures;
    st.ejections = svc.ejections;
    for (const auto& pod : svc.pods) st.ejected += pod->listed && pod->health.ejected(now) ? 1 : 0;
    s.services.push_back(std::move(st));
  }
  s.locality.enabled = options.locality.enabled;
  if (s.locality.enabled) {
    s.locality.zone = options.locality.zone;
    s.locality.mode = u.zone_plan.mode;
    s.locality.hints = u.zone_plan.hints;
    s.locality.reason = u.zone_plan.reason;
    s.locality.local_share = u.zone_plan.local_share;
    s.locality.local_requests = u.local_requests;
    s.locality.cross_zone_requests = u.cross_zone_requests;
    s.locality.zones = u.zone_plan.zones;
  }
  return s;
}

std::string Upstream::Impl::prometheus_text() const {
  const UpstreamStats s = stats();
  const std::string up = prometheus_label_value(config.name);
  std::string out;
  auto metric = [&](std::string_view name, std::string_view type, std::string_view help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  metric("kupstream_requests_total", "counter", "Requests forwarded by the upstream.");
  out += fmt::format("kupstream_requests_total{{upstream=\"{}\"}} {}\n", up, s.requests);
  metric("kupstream_request_failures_total", "counter", "Requests that ended in an error.");
  out += fmt::format("kupstream_request_failures_total{{upstream=\"{}\"}} {}\n", up, s.failures);
  metric("kupstream_retries_total", "counter", "Retries on another Pod.");
  out += fmt::format("kupstream_retries_total{{upstream=\"{}\"}} {}\n", up, s.retries);
  metric("kupstream_no_endpoint_total", "counter", "Requests with no Pod to go to.");
  out += fmt::format("kupstream_no_endpoint_total{{upstream=\"{}\"}} {}\n", up, s.no_endpoint);
  metric("kupstream_in_flight", "gauge", "Requests in flight.");
  out += fmt::format("kupstream_in_flight{{upstream=\"{}\"}} {}\n", up, s.in_flight);
  metric("kupstream_panic", "gauge", "1 when too few Pods are healthy and all are used.");
  out += fmt::format("kupstream_panic{{upstream=\"{}\"}} {}\n", up, s.panic ? 1 : 0);
  metric("kupstream_request_duration_seconds", "histogram", "Time from forward() to the end of the response.");
  for (std::size_t i = 0; i < s.latency_buckets_seconds.size(); ++i)
    out += fmt::format("kupstream_request_duration_seconds_bucket{{upstream=\"{}\",le=\"{}\"}} {}\n", up,
                       s.latency_buckets_seconds[i], s.latency_counts[i]);
  out += fmt::format("kupstream_request_duration_seconds_bucket{{upstream=\"{}\",le=\"+Inf\"}} {}\n", up,
                     s.latency_counts.back());
  out += fmt::format("kupstream_request_duration_seconds_sum{{upstream=\"{}\"}} {}\n", up, s.latency_sum_seconds);
  out += fmt::format("kupstream_request_duration_seconds_count{{upstream=\"{}\"}} {}\n", up, s.latency_counts.back());

  // Per service: what a dashboard or an alert needs, in series that do not grow with Pods.
  const auto now = std::chrono::system_clock::now();
  auto per_service = [&](std::string_view name, std::string_view type, std::string_view help, auto value) {
    metric(name, type, help);
    for (const auto& sv : s.services)
      out += fmt::format("{}{{upstream=\"{}\",service=\"{}\"}} {}\n", name, up, prometheus_label_value(sv.ref.to_string()),
                         value(sv));
  };
  per_service("kupstream_service_requests_total", "counter", "Attempts sent to the service's Pods.",
              [](const ServiceStatus& sv) { return sv.requests; });
  per_service("kupstream_service_failures_total", "counter", "Failed attempts on the service's Pods.",
              [](const ServiceStatus& sv) { return sv.failures; });
  per_service("kupstream_service_ejections_total", "counter", "Outlier ejections of the service's Pods.",
              [](const ServiceStatus& sv) { return sv.ejections; });
  metric("kupstream_service_synced", "gauge", "1 when the service's watch is synced.");
  for (const auto& sv : s.services)
    out += fmt::format("kupstream_service_synced{{upstream=\"{}\",service=\"{}\",phase=\"{}\"}} {}\n", up,
                       prometheus_label_value(sv.ref.to_string()), to_string(sv.state.phase), sv.state.phase == WatchPhase::synced ? 1 : 0);
  per_service("kupstream_service_staleness_seconds", "gauge", "How long the service's snapshot has not been confirmed.",
              [&](const ServiceStatus& sv) { return sv.state.staleness(now).count() / 1000.0; });
  metric("kupstream_service_endpoints", "gauge", "Ready, draining and ejected endpoints per service.");
  for (const auto& sv : s.services) {
    const std::string svc = prometheus_label_value(sv.ref.to_string());
    for (auto [state, n] : {std::pair{"ready", sv.ready}, {"draining", sv.draining}, {"ejected", sv.ejected}})
      out += fmt::format("kupstream_service_endpoints{{upstream=\"{}\",service=\"{}\",state=\"{}\"}} {}\n", up, svc, state, n);
  }

  // Zone-aware routing: per upstream, plus one series per zone (a handful, never per Pod).
  if (s.locality.enabled) {
    const std::string zone = prometheus_label_value(s.locality.zone);
    metric("kupstream_locality_mode", "gauge", "Zone-aware routing of the current Picker: 1 for its mode (local, spill, everywhere).");
    for (auto m : {LocalityMode::local, LocalityMode::spill, LocalityMode::everywhere})
      out += fmt::format("kupstream_locality_mode{{upstream=\"{}\",zone=\"{}\",mode=\"{}\"}} {}\n", up, zone, to_string(m),
                         s.locality.mode == m ? 1 : 0);
    metric("kupstream_locality_local_share", "gauge", "Share of new requests the current Picker keeps in the local zone.");
    out += fmt::format("kupstream_locality_local_share{{upstream=\"{}\",zone=\"{}\"}} {}\n", up, zone, s.locality.local_share);
    metric("kupstream_locality_requests_total", "counter", "Attempts sent to Pods of the local zone or of other zones.");
    out += fmt::format("kupstream_locality_requests_total{{upstream=\"{}\",target=\"local\"}} {}\n", up, s.locality.local_requests);
    out += fmt::format("kupstream_locality_requests_total{{upstream=\"{}\",target=\"cross_zone\"}} {}\n", up,
                       s.locality.cross_zone_requests);
    metric("kupstream_zone_endpoints", "gauge", "Endpoints per zone that could take traffic, healthy or not.");
    for (const auto& z : s.locality.zones) {
      const std::string name = prometheus_label_value(z.zone);
      out += fmt::format("kupstream_zone_endpoints{{upstream=\"{}\",zone=\"{}\",state=\"healthy\"}} {}\n", up, name, z.healthy);
      out += fmt::format("kupstream_zone_endpoints{{upstream=\"{}\",zone=\"{}\",state=\"unhealthy\"}} {}\n", up, name,
                         z.endpoints - z.healthy);
    }
    metric("kupstream_zone_routed_share", "gauge", "Share of new requests the current Picker sends to each zone.");
    for (const auto& z : s.locality.zones)
      out += fmt::format("kupstream_zone_routed_share{{upstream=\"{}\",zone=\"{}\"}} {}\n", up, prometheus_label_value(z.zone),
                         z.routed);
  }

  // Per Pod: only the pod_metrics_limit Pods with the most failures (then requests), so that a
  // scrape stays small at tens of thousands of Pods; the limit is a series of its own.
  metric("kupstream_pod_series_limit", "gauge", "How many Pods get per-Pod series (by most failures, then requests).");
  out += fmt::format("kupstream_pod_series_limit{{upstream=\"{}\"}} {}\n", up, options.pod_metrics_limit);
  std::vector<const PodStats*> shown;
  for (const auto& p : s.pods) shown.push_back(&p);
  const std::size_t limit = std::min(shown.size(), options.pod_metrics_limit);
  std::partial_sort(shown.begin(), shown.begin() + static_cast<std::ptrdiff_t>(limit), shown.end(),
                    [](const PodStats* a, const PodStats* b) {
                      return std::tie(a->failures, a->requests, b->pod) > std::tie(b->failures, b->requests, a->pod);
                    });
  shown.resize(limit);
  // pod_name rides on the requests series only (join on pod for the others), as before the cap.
  auto per_pod = [&](std::string_view name, std::string_view type, std::string_view help, auto value) {
    metric(name, type, help);
    const bool named = name == "kupstream_pod_requests_total";
    for (const PodStats* p : shown)
      out += fmt::format("{}{{upstream=\"{}\",service=\"{}\",pod=\"{}\"{}}} {}\n", name, up,
                         prometheus_label_value(p->service), p->pod,
                         named ? fmt::format(",pod_name=\"{}\"", prometheus_label_value(p->pod_name)) : "", value(*p));
  };
  per_pod("kupstream_pod_requests_total", "counter", "Requests sent to each Pod.", [](const PodStats& p) { return p.requests; });
  per_pod("kupstream_pod_failures_total", "counter", "Failed requests per Pod.", [](const PodStats& p) { return p.failures; });
  per_pod("kupstream_pod_ejections_total", "counter", "Outlier ejections per Pod.", [](const PodStats& p) { return p.ejections; });
  per_pod("kupstream_pod_in_flight", "gauge", "Requests in flight per Pod.", [](const PodStats& p) { return p.in_flight; });
  per_pod("kupstream_pod_weight", "gauge", "Effective weight of each Pod (0 when ejected or draining).",
          [](const PodStats& p) { return p.weight; });
  return out;
}

}  // namespace kupstream
