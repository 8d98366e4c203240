// The admin listener: /metrics (Prometheus text), /readyz, /healthz.
#include <fmt/format.h>

#include <chrono>
#include <map>
#include <sstream>

#include "gateway.h"

using namespace kupstream;

namespace kupgw {

namespace {

// Concatenating several exposition texts would repeat # HELP / # TYPE lines and split metric
// families; regroup the lines by family, keeping first-seen order.
class FamilyMerger {
 public:
  void add(std::string_view text) {
    std::string current;
    std::size_t pos = 0;
    while (pos < text.size()) {
      auto eol = text.find('\n', pos);
      std::string_view line = text.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
      pos = eol == std::string_view::npos ? text.size() : eol + 1;
      if (line.empty()) continue;
      if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
        auto rest = line.substr(7);
        current = std::string(rest.substr(0, rest.find(' ')));
        auto& f = family(current);
        (line[2] == 'H' ? f.help : f.type) = std::string(line);
        continue;
      }
      if (line[0] == '#') continue;
      std::string name(line.substr(0, line.find_first_of("{ ")));
      std::string fam = belongs(name, current) ? current : name;
      family(fam).samples.emplace_back(line);
    }
  }
  std::string text() const {
    std::string out;
    for (const auto& name : order_) {
      const auto& f = families_.at(name);
      if (!f.help.empty()) out += f.help + "\n";
      if (!f.type.empty()) out += f.type + "\n";
      for (const auto& s : f.samples) out += s + "\n";
    }
    return out;
  }

 private:
  struct Family {
    std::string help, type;
    std::vector<std::string> samples;
  };
  static bool belongs(const std::string& sample, const std::string& fam) {
    if (fam.empty() || sample.rfind(fam, 0) != 0) return false;
    auto suffix = std::string_view(sample).substr(fam.size());
    return suffix.empty() || suffix == "_bucket" || suffix == "_sum" || suffix == "_count" || suffix == "_total" ||
           suffix == "_created";
  }
  Family& family(const std::string& name) {
    auto [it, inserted] = families_.try_emplace(name);
    if (inserted) order_.push_back(name);
    return it->second;
  }
  std::map<std::string, Family> families_;
  std::vector<std::string> order_;
};


}  // namespace

std::string Gateway::metrics_text(const std::vector<WorkerSnapshot>& workers) const {
  FamilyMerger m;
  // The workers' counters, summed.
  GatewayCounters counters;
  HttpServerStats server;
  for (const auto& w : workers) {
    for (const auto& [key, n] : w.counters.responses) counters.responses[key] += n;
    for (const auto& [key, n] : w.counters.upstream_errors) counters.upstream_errors[key] += n;
    counters.no_route += w.counters.no_route;
    counters.streams_aborted += w.counters.streams_aborted;
    server.connections_active += w.server.connections_active;
    server.connections_accepted += w.server.connections_accepted;
    server.requests += w.server.requests;
    server.bad_requests += w.server.bad_requests;
    server.timeouts += w.server.timeouts;
  }
  std::string g;
  g += "# HELP kup_gateway_responses_total Responses sent to clients, by upstream and status.\n"
       "# TYPE kup_gateway_responses_total counter\n";
  for (const auto& [key, n] : counters.responses)
    g += fmt::format("kup_gateway_responses_total{{upstream=\"{}\",code=\"{}\"}} {}\n", prometheus_label_value(key.first), key.second, n);
  g += "# HELP kup_gateway_upstream_errors_total Upstream exchanges that failed, by error.\n"
       "# TYPE kup_gateway_upstream_errors_total counter\n";
  for (const auto& [name, n] : counters.upstream_errors)
    g += fmt::format("kup_gateway_upstream_errors_total{{error=\"{}\"}} {}\n", prometheus_label_value(name), n);
  g += fmt::format("# HELP kup_gateway_no_route_total Requests that matched no route (404).\n"
                   "# TYPE kup_gateway_no_route_total counter\nkup_gateway_no_route_total {}\n",
                   counters.no_route);
  g += fmt::format("# HELP kup_gateway_streams_aborted_total Responses cut short after their head was sent.\n"
                   "# TYPE kup_gateway_streams_aborted_total counter\nkup_gateway_streams_aborted_total {}\n",
                   counters.streams_aborted);
  g += fmt::format("# HELP kup_gateway_config_reloads_total Configuration reloads by result.\n"
                   "# TYPE kup_gateway_config_reloads_total counter\n"
                   "kup_gateway_config_reloads_total{{result=\"ok\"}} {}\n"
                   "kup_gateway_config_reloads_total{{result=\"error\"}} {}\n",
                   reloads_ok_, reloads_failed_);
  std::size_t retired = held_.size() - (current_ && held_.count(current_->id) ? 1 : 0);
  g += fmt::format("# HELP kup_gateway_config_generation The configuration generation in service.\n"
                   "# TYPE kup_gateway_config_generation gauge\nkup_gateway_config_generation {}\n"
                   "# HELP kup_gateway_retired_generations Older generations still finishing requests.\n"
                   "# TYPE kup_gateway_retired_generations gauge\nkup_gateway_retired_generations {}\n",
                   current_ ? current_->id : 0, retired);
  if (!workers.empty()) {
    const auto& s = server;
    g += fmt::format("# HELP kup_gateway_connections_active Client connections open.\n"
                     "# TYPE kup_gateway_connections_active gauge\nkup_gateway_connections_active {}\n"
                     "# HELP kup_gateway_connections_accepted_total Client connections accepted.\n"
                     "# TYPE kup_gateway_connections_accepted_total counter\nkup_gateway_connections_accepted_total {}\n"
                     "# HELP kup_gateway_requests_total Requests received from clients.\n"
                     "# TYPE kup_gateway_requests_total counter\nkup_gateway_requests_total {}\n"
                     "# HELP kup_gateway_bad_requests_total Malformed or oversized requests (400/431).\n"
                     "# TYPE kup_gateway_bad_requests_total counter\nkup_gateway_bad_requests_total {}\n"
                     "# HELP kup_gateway_connection_timeouts_total Connections closed by the header or idle timeout.\n"
                     "# TYPE kup_gateway_connection_timeouts_total counter\nkup_gateway_connection_timeouts_total {}\n",
                     s.connections_active, s.connections_accepted, s.requests, s.bad_requests, s.timeouts);
    g += fmt::format("# HELP kup_gateway_workers Worker loops serving clients (1 = on the control loop).\n"
                     "# TYPE kup_gateway_workers gauge\nkup_gateway_workers {}\n"
                     "# HELP kup_gateway_worker_requests_total Requests received from clients, by worker.\n"
                     "# TYPE kup_gateway_worker_requests_total counter\n",
                     workers.size());
    for (std::size_t i = 0; i < workers.size(); ++i)
      g += fmt::format("kup_gateway_worker_requests_total{{worker=\"{}\"}} {}\n", i, workers[i].server.requests);
  }
  if (trimmer_) {
    const auto& t = trimmer_->stats();
    g += fmt::format("# HELP kup_gateway_heap_trims_total Times free heap pages were given back to the system (server.heap_trim_mib).\n"
                     "# TYPE kup_gateway_heap_trims_total counter\nkup_gateway_heap_trims_total {}\n"
                     "# HELP kup_gateway_heap_trim_released_bytes_total Resident memory those trims gave back.\n"
                     "# TYPE kup_gateway_heap_trim_released_bytes_total counter\nkup_gateway_heap_trim_released_bytes_total {}\n"
                     "# HELP kup_gateway_heap_trim_seconds_total Time spent in those trims.\n"
                     "# TYPE kup_gateway_heap_trim_seconds_total counter\nkup_gateway_heap_trim_seconds_total {:.6f}\n",
                     t.trims, t.released_bytes, t.seconds);
  }
  if (auto rss = HeapTrimmer::process_resident_bytes(); rss > 0) {
    g += fmt::format("# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                     "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}\n",
                     rss);
  }
  m.add(g);
  if (current_) {
    for (const auto& [name, h] : current_->upstreams) m.add(h->upstream->prometheus_text());
  }
  return m.text();
}

bool Gateway::ready(std::string* reasons) const {
  if (!current_ || stopping_) {
    if (reasons) *reasons = stopping_ ? "stopping\n" : "no configuration\n";
    return false;
  }
  bool ok = true;
  std::string why;
  for (const auto& [name, h] : current_->upstreams) {
    if (h->upstream->ready()) continue;
    ok = false;
    why += fmt::format("upstream {}: not ready", name);
    auto st = h->upstream->stats();
    for (const auto& s : st.services) {
      why += fmt::format("; {} {}", s.ref.to_string(), to_string(s.state.phase));
      if (!s.state.reason.empty()) why += ": " + s.state.reason;
      auto age = s.staleness;
      if (age.count() > 0) why += fmt::format(" (for {} ms)", age.count());
      why += fmt::format(", {} ready Pods", s.ready);
    }
    why += "\n";
  }
  if (reasons) *reasons = ok ? "ready\n" : why;
  return ok;
}

namespace {

// /metrics: every worker copies its counters on its own loop and sends them back here; the
// answer goes out once all have (at once with one worker on the control loop).
struct MetricsCollect {
  ResponseWriter* writer = nullptr;  // null once the client has gone
  std::size_t remaining = 0;
  std::vector<WorkerSnapshot> snapshots;
};

class MetricsAnswer final : public RequestHandler {
 public:
  explicit MetricsAnswer(std::shared_ptr<MetricsCollect> c) : collect_(std::move(c)) {}
  ~MetricsAnswer() override { collect_->writer = nullptr; }
  void on_body(std::string_view) override {}
  void on_body_end() override {}

 private:
  std::shared_ptr<MetricsCollect> collect_;
};

constexpr std::string_view kMetricsType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace

std::unique_ptr<RequestHandler> Gateway::admin(RequestHead& head, ResponseWriter& writer) {
  std::string_view path = std::string_view(head.target).substr(0, head.target.find('?'));
  if (head.method != "GET" && head.method != "HEAD") {
    writer.simple(405, "only GET and HEAD\n");
    return nullptr;
  }
  if (path == "/metrics") {
    auto collect = std::make_shared<MetricsCollect>();
    collect->writer = &writer;
    collect->remaining = workers_.size();
    collect->snapshots.resize(workers_.size());
    auto reply = [this](const std::shared_ptr<MetricsCollect>& c, std::size_t i, WorkerSnapshot snap) {
      c->snapshots[i] = std::move(snap);
      if (--c->remaining == 0 && c->writer != nullptr) c->writer->simple(200, metrics_text(c->snapshots), kMetricsType);
    };
    for (auto& w : workers_) {
      Worker* worker = w.get();
      std::size_t i = worker->index();
      if (worker->on_control_loop()) {
        reply(collect, i, worker->snapshot());
        continue;
      }
      bool posted = on_worker(*worker, [this, worker, collect, i, reply] {
        auto snap = worker->snapshot();
        post_control([collect, i, reply, snap = std::move(snap)]() mutable { reply(collect, i, std::move(snap)); });
      });
      if (!posted) reply(collect, i, WorkerSnapshot{});  // stopped: nothing more to count
    }
    if (collect->remaining == 0) {
      collect->writer = nullptr;  // answered (or nothing to wait for)
      if (workers_.empty()) writer.simple(200, metrics_text({}), kMetricsType);
      return nullptr;
    }
    return std::make_unique<MetricsAnswer>(std::move(collect));
  } else if (path == "/readyz") {
    std::string why;
    bool ok = ready(&why);
    writer.simple(ok ? 200 : 503, why);
  } else if (path == "/healthz") {
    writer.simple(200, "ok\n");
  } else {
    writer.simple(404, "admin endpoints: /metrics /readyz /healthz\n");
  }
  return nullptr;
}

}  // namespace kupgw
