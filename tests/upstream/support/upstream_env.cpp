#include "upstream/support/upstream_env.h"

#include <fmt/format.h>

#include <csignal>

#include "net/tls_context.h"
#include "upstream/support/pod_farm.h"

namespace kupstream::test {

std::string service_object(const std::string& name, int target_port) {
  return fmt::format(R"({{"apiVersion":"v1","kind":"Service","metadata":{{"name":"{}","namespace":"default"}},)"
                     R"("spec":{{"selector":{{"app":"{}"}},"ports":[{{"name":"http","port":80,"protocol":"TCP","targetPort":{}}}]}}}})",
                     name, name, target_port);
}

std::string slice_object(const std::string& service, const std::string& slice, int port, const std::vector<PodSpec>& pods) {
  std::string eps;
  for (const auto& p : pods) {
    if (!eps.empty()) eps += ",";
    eps += fmt::format(R"({{"addresses":["{}"],"conditions":{{"ready":{},"serving":{},"terminating":{}}})", p.address,
                       p.ready, p.serving, p.terminating);
    if (!p.name.empty()) eps += fmt::format(R"(,"targetRef":{{"kind":"Pod","namespace":"default","name":"{}"}})", p.name);
    if (!p.zone.empty()) eps += fmt::format(R"(,"zone":"{}")", p.zone);
    if (!p.hints.empty()) {
      std::string zones;
      for (const auto& z : p.hints) zones += fmt::format(R"({}{{"name":"{}"}})", zones.empty() ? "" : ",", z);
      eps += fmt::format(R"(,"hints":{{"forZones":[{}]}})", zones);
    }
    eps += "}";
  }
  return fmt::format(R"({{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice",)"
                     R"("metadata":{{"name":"{}","namespace":"default","labels":{{"kubernetes.io/service-name":"{}"}}}},)"
                     R"("addressType":"IPv4","endpoints":[{}],"ports":[{{"name":"http","protocol":"TCP","port":{}}}]}})",
                     slice, service, eps, port);
}

std::string apply_op(const std::string& object) { return R"({"op":"apply","object":)" + object + "}"; }

std::string delete_slice_op(const std::string& slice) {
  return fmt::format(R"({{"op":"delete","resource":"endpointslices","namespace":"default","name":"{}"}})", slice);
}

KubesimProcess& shared_kubesim(const std::string& cluster) {
  static std::map<std::string, std::unique_ptr<KubesimProcess>> sims;
  auto& sim = sims[cluster];
  if (!sim) {
    KubesimProcess::Options o;
    o.cluster = cluster;
    sim = std::make_unique<KubesimProcess>(o);
  }
  return *sim;
}

UpstreamEnv::UpstreamEnv(std::vector<std::string> clusters) {
  // libuv writes with write(2): a Pod that closed its side makes the next write raise SIGPIPE,
  // which kills the process unless ignored. Hosts ignore it (docs/upstream.md); so do the tests.
  std::signal(SIGPIPE, SIG_IGN);
  for (const auto& name : clusters) {
    KubesimProcess& sim = shared_kubesim(name);
    KubeconfigOptions kc;
    kc.paths = {sim.info().users.at("admin").kubeconfig};
    auto config = load_kubeconfig(kc);
    REQUIRE(config.ok());
    ClusterClientOptions co;
    co.backoff_initial = std::chrono::milliseconds{100};
    co.backoff_max = std::chrono::milliseconds{500};
    auto c = ClusterClient::create(loop.loop, *config, co);
    REQUIRE(c.ok());
    clients[name] = std::move(*c);

    net::TlsConfig tls;
    tls.ca_file = sim.info().ca_file;
    auto ctx = net::TlsContext::create(tls);
    REQUIRE(ctx.ok());
    net::PoolOptions po;
    po.connection.host = "127.0.0.1";
    po.connection.port = static_cast<std::uint16_t>(sim.info().port);
    po.connection.tls = *ctx;
    po.max_connections = 4;
    // A liveness bound, not a timing check: a starved Python kubesim on a loaded 2-core machine
    // took over 10 s to finish a TLS handshake.
    po.connection.connect_timeout = std::chrono::milliseconds{30'000};
    auto pool = net::ConnectionPool::create(loop.loop, std::move(po));
    REQUIRE(pool.ok());
    admin_pools_[name] = std::move(*pool);
  }
}

UpstreamEnv::~UpstreamEnv() {
  upstream.reset();
  admin_exchanges_.clear();
  admin_pools_.clear();
  clients.clear();
  CHECK(loop.close_loop() == 0);
}

void UpstreamEnv::admin_async(const std::string& cluster, const std::vector<std::string>& ops, std::function<void(int)> done) {
  std::string body = R"({"items":[)";
  for (std::size_t i = 0; i < ops.size(); ++i) body += (i ? "," : "") + ops[i];
  body += "]}";
  net::HttpRequest req;
  req.method = "POST";
  req.target = "/kubesim/admin/objects";
  req.headers = {{"Authorization", "Bearer " + shared_kubesim(cluster).info().admin_token},
                 {"Content-Type", "application/json"}};
  req.body = std::move(body);
  auto status = std::make_shared<int>(0);
  auto text = std::make_shared<std::string>();
  net::HttpHandlers h;
  h.on_head = [status](const net::HttpResponseHead& head) { *status = head.status; };
  h.on_body = [text](std::string_view b) { text->append(b); };
  h.on_complete = [status, text, done](Status s) {
    if (!s.ok()) {
      *status = -1;
      *text = s.error().reason;
    } else if (text->find("\"ok\":false") != std::string::npos) {
      *status = 422;
    }
    if (*status != 200) MESSAGE("kubesim admin answer: " << *status << " " << *text);
    if (done) done(*status);
  };
  auto ex = admin_pools_.at(cluster)->send(std::move(req), std::move(h));
  REQUIRE(ex.ok());
  admin_exchanges_.push_back(std::move(*ex));
}

std::vector<PodSpec> pods_of(const PodFarm& farm) { return pods_of(farm, 0, farm.size()); }

std::vector<PodSpec> pods_of(const PodFarm& farm, int first, int count) {
  std::vector<PodSpec> out;
  for (int i = first; i < first + count; ++i) out.push_back({farm.address(i), farm.name(i)});
  return out;
}

void UpstreamEnv::publish(const std::string& cluster, const std::string& service, int port,
                          const std::vector<PodSpec>& pods) {
  admin(cluster, {apply_op(service_object(service, port)), apply_op(slice_object(service, service + "-1", port, pods))});
}

void UpstreamEnv::admin(const std::string& cluster, const std::vector<std::string>& ops) {
  int status = 0;
  admin_async(cluster, ops, [&status](int s) { status = s; });
  REQUIRE(loop.run_until([&] { return status != 0; }, 30000));
  REQUIRE(status == 200);
}

ServiceRef UpstreamEnv::ref(const std::string& cluster, const std::string& service, std::uint32_t weight) {
  ServiceRef r;
  r.cluster = cluster;
  r.namespace_name = "default";
  r.service = service;
  r.port = PortRef::name("http");
  r.weight = weight;
  return r;
}

UpstreamConfig UpstreamEnv::config_for(const std::string& cluster, const std::string& service) {
  UpstreamConfig c;
  c.name = service;
  c.services = {ref(cluster, service)};
  return c;
}

void UpstreamEnv::start(UpstreamConfig config, UpstreamOptions options, bool wait_ready) {
  ClusterMap map;
  for (auto& [name, c] : clients) map[name] = c.get();
  auto u = Upstream::create(loop.loop, std::move(config), map, std::move(options));
  REQUIRE_MESSAGE(u.ok(), (u.ok() ? "" : u.error().reason));
  upstream = std::move(*u);
  if (wait_ready) REQUIRE(loop.run_until([&] { return upstream->ready(); }, 15000));
}

Outcome UpstreamEnv::send(ForwardRequest request, int timeout_ms) {
  auto r = std::make_shared<Outcome>();
  ForwardHandlers h;
  h.on_head = [r](const ForwardResponseHead& head) {
    r->code = head.status;
    r->pod = head.pod;
    for (const auto& [name, value] : head.headers) r->headers.emplace_back(name, value);
    r->attempts = head.attempts;
  };
  h.on_body = [r](std::string_view bytes) { r->body.append(bytes); };
  h.on_complete = [r](Status s) {
    r->status = std::move(s);
    r->done = true;
  };
  auto handle = upstream->forward(std::move(request), std::move(h));
  REQUIRE(handle.ok());
  REQUIRE(loop.run_until([&] { return r->done; }, timeout_ms));
  return *r;
}

Outcome UpstreamEnv::get(const std::string& target, int timeout_ms) {
  ForwardRequest req;
  req.target = target;
  req.client_address = "192.0.2.7";
  req.client_host = "gw.test";
  return send(std::move(req), timeout_ms);
}

PausedDownload::PausedDownload(Upstream& upstream, const std::string& target) {
  ForwardHandlers h;
  h.on_head = [this](const ForwardResponseHead& head) { pod = head.pod; };
  h.on_body = [this](std::string_view b) {
    body.append(b);
    handle->pause_body();
  };
  h.on_complete = [this](Status s) {
    status = std::move(s);
    done = true;
  };
  ForwardRequest req;
  req.target = target;
  auto r = upstream.forward(std::move(req), std::move(h));
  REQUIRE(r.ok());
  handle = std::move(*r);
}

struct TrafficLoop::State {
  Upstream* upstream;
  std::string target;
  bool stopped = false;
  std::map<std::uint64_t, std::unique_ptr<UpstreamRequest>> live;
  std::uint64_t next_id = 0;
  std::shared_ptr<TrafficResult> result;

  static void launch(const std::shared_ptr<State>& self) {
    if (self->stopped) return;
    const std::uint64_t id = self->next_id++;
    auto body = std::make_shared<std::string>();
    auto code = std::make_shared<int>(0);
    std::weak_ptr<State> weak = self;
    ForwardRequest req;
    req.target = self->target;
    req.client_address = "192.0.2.7";
    ForwardHandlers h;
    h.on_head = [code](const ForwardResponseHead& head) { *code = head.status; };
    h.on_body = [body](std::string_view b) { body->append(b); };
    h.on_complete = [weak, id, body, code](Status s) {
      auto st = weak.lock();
      if (!st) return;
      auto& r = *st->result;
      if (!s.ok()) {
        ++r.failed;
        if (r.errors.size() < 20) r.errors.push_back(s.error().reason);
      } else {
        ++r.ok;
        if (*code < 200 || *code > 299) ++r.non_2xx;
        while (!body->empty() && body->back() == '\n') body->pop_back();
        ++r.by_body[*body];
      }
      st->live.erase(id);  // drops this request's handle inside its own handler
      launch(st);
    };
    auto handle = self->upstream->forward(std::move(req), std::move(h));
    REQUIRE(handle.ok());
    self->live[id] = std::move(*handle);
  }
};

TrafficLoop::TrafficLoop(Upstream& upstream, int concurrency, std::string target)
    : state_(std::make_shared<State>()), result_(std::make_shared<TrafficResult>()) {
  state_->upstream = &upstream;
  state_->target = std::move(target);
  state_->result = result_;
  for (int i = 0; i < concurrency; ++i) State::launch(state_);
}

TrafficLoop::~TrafficLoop() { stop(); }

void TrafficLoop::stop() {
  state_->stopped = true;
  state_->live.clear();
}

TrafficResult UpstreamEnv::traffic(int n, int concurrency, const std::string& target) {
  auto result = std::make_shared<TrafficResult>();
  int launched = 0, finished = 0;
  std::vector<std::unique_ptr<UpstreamRequest>> handles;
  std::function<void()> launch = [&] {
    if (launched >= n) return;
    ++launched;
    auto body = std::make_shared<std::string>();
    auto code = std::make_shared<int>(0);
    ForwardRequest req;
    req.target = target;
    req.client_address = "192.0.2.7";
    ForwardHandlers h;
    h.on_head = [code](const ForwardResponseHead& head) { *code = head.status; };
    h.on_body = [body](std::string_view b) { body->append(b); };
    h.on_complete = [&, body, code](Status s) {
      ++finished;
      if (!s.ok()) {
        ++result->failed;
        if (result->errors.size() < 20) result->errors.push_back(s.error().reason);
      } else {
        ++result->ok;
        if (*code < 200 || *code > 299) ++result->non_2xx;
        std::string b = *body;
        while (!b.empty() && b.back() == '\n') b.pop_back();
        ++result->by_body[b];
      }
      launch();
    };
    auto handle = upstream->forward(std::move(req), std::move(h));
    REQUIRE(handle.ok());
    handles.push_back(std::move(*handle));
  };
  for (int i = 0; i < concurrency; ++i) launch();
  REQUIRE(loop.run_until([&] { return finished >= n; }, 120000));
  return *result;
}

}  // namespace kupstream::test
