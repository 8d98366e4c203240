// Upstream against real parts: kubesim as the API server, nginx as the Pod, and a Pod address
// where nothing listens.
#include <doctest/doctest.h>

#include "kupstream/cluster_client.h"
#include "kupstream/upstream.h"
#include "net/support/net_loop.h"
#include "net/support/net_nginx.h"
#include "kubesim/kubesim_process.h"

using namespace kupstream;
using namespace kupstream::test;

namespace {

constexpr const char* kDeadPod = "127.0.1.99";  // loopback, nothing listens: connections are refused

std::string service_json(int target_port) {
  return R"({"op":"apply","object":{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"default"},)"
         R"("spec":{"selector":{"app":"web"},"ports":[{"name":"http","port":80,"protocol":"TCP","targetPort":)" +
         std::to_string(target_port) + "}]}}}";
}

std::string slice_json(int port, const std::vector<std::string>& addresses) {
  std::string eps;
  for (const auto& a : addresses)
    eps += std::string(eps.empty() ? "" : ",") + R"({"addresses":[")" + a + R"("],"conditions":{"ready":true}})";
  return R"({"op":"apply","object":{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice",)"
         R"("metadata":{"name":"web-1","namespace":"default","labels":{"kubernetes.io/service-name":"web"}},)"
         R"("addressType":"IPv4","endpoints":[)" + eps + R"(],"ports":[{"name":"http","protocol":"TCP","port":)" +
         std::to_string(port) + "}]}}";
}

KubesimProcess::Options cluster_a() {
  KubesimProcess::Options o;
  o.cluster = "tke-a";
  return o;
}

struct Response {
  bool done = false;
  Status status;
  int code = 0;
  std::string pod, body;
  std::uint32_t attempts = 0;
};

// A cluster in kubesim with Service "web" (port http 80 → `pod_port`) whose slice lists `pods`.
struct Fixture {
  TestLoop loop;
  TempDir dir;
  NginxServer nginx{dir.path()};
  KubesimProcess sim{cluster_a()};
  std::unique_ptr<ClusterClient> cluster;
  std::unique_ptr<Upstream> upstream;

  void publish(const std::vector<std::string>& pods) {
    REQUIRE(sim.admin("POST", "/objects", service_json(nginx.plain_port)).exit_code == 0);
    REQUIRE(sim.admin("POST", "/objects", slice_json(nginx.plain_port, pods)).exit_code == 0);
  }

  void start(UpstreamOptions options = {}) {
    KubeconfigOptions kc;
    kc.paths = {sim.info().users.at("admin").kubeconfig};
    auto config = load_kubeconfig(kc);
    REQUIRE(config.ok());
    ClusterClientOptions co;
    co.backoff_initial = std::chrono::milliseconds{100};
    auto c = ClusterClient::create(loop.loop, *config, co);
    REQUIRE(c.ok());
    cluster = std::move(*c);
    UpstreamConfig uc;
    uc.name = "web";
    ServiceRef ref;
    ref.cluster = "tke-a";
    ref.namespace_name = "default";
    ref.service = "web";
    ref.port = PortRef::name("http");
    uc.services = {ref};
    auto u = Upstream::create(loop.loop, uc, {{"tke-a", cluster.get()}}, std::move(options));
    REQUIRE(u.ok());
    upstream = std::move(*u);
  }

  Response get(const std::string& path) {
    auto r = std::make_shared<Response>();
    ForwardRequest req;
    req.target = path;
    req.client_address = "127.0.0.1";
    req.client_host = "gw.test";
    ForwardHandlers h;
    h.on_head = [r](const ForwardResponseHead& head) {
      r->code = head.status;
      r->pod = head.pod;
      r->attempts = head.attempts;
    };
    h.on_body = [r](std::string_view bytes) { r->body.append(bytes); };
    h.on_complete = [r](Status s) {
      r->status = std::move(s);
      r->done = true;
    };
    auto handle = upstream->forward(std::move(req), std::move(h));
    REQUIRE(handle.ok());
    REQUIRE(loop.run_until([&] { return r->done; }, 10000));
    return *r;
  }

  ~Fixture() {
    upstream.reset();
    cluster.reset();
    CHECK(loop.close_loop() == 0);
  }
};

}  // namespace

TEST_SUITE("Upstream") {
  TEST_CASE("a request reaches the Pod kubesim lists and the response streams back") {
    Fixture f;
    f.publish({"127.0.0.1"});
    f.start();
    REQUIRE(f.loop.run_until([&] { return f.upstream->ready(); }, 15000));
    auto r = f.get("/hello");
    CHECK(r.status.ok());
    CHECK(r.code == 200);
    CHECK(r.body == "hello\n");
    CHECK(r.pod == "127.0.0.1:" + std::to_string(f.nginx.plain_port));
    auto stats = f.upstream->stats();
    CHECK(stats.requests == 1);
    CHECK(stats.failures == 0);
    CHECK(stats.latency_counts.back() == 1);
    CHECK(f.upstream->prometheus_text().find("kupstream_requests_total{upstream=\"web\"} 1") != std::string::npos);
  }

  TEST_CASE("a refused connection is retried on another Pod, and the dead Pod gets ejected") {
    Fixture f;
    f.publish({"127.0.0.1", kDeadPod});
    UpstreamOptions o;
    o.outlier.consecutive_failures = 2;
    o.seed = 1;
    f.start(o);
    REQUIRE(f.loop.run_until([&] { return f.upstream->ready(); }, 15000));
    for (int i = 0; i < 20; ++i) {
      auto r = f.get("/hello");
      CAPTURE(i);
      REQUIRE(r.status.ok());
      CHECK(r.code == 200);
    }
    auto stats = f.upstream->stats();
    CHECK(stats.failures == 0);
    CHECK(stats.retries >= 2);
    bool dead_ejected = false;
    for (const auto& p : stats.pods)
      if (p.pod.rfind(kDeadPod, 0) == 0) dead_ejected = p.ejected && p.ejections == 1 && p.weight == 0;
    CHECK(dead_ejected);
  }

  TEST_CASE("with no Pod the request fails with no_endpoint, naming the upstream") {
    Fixture f;
    f.publish({});
    f.start();
    REQUIRE(f.loop.run_until([&] { return f.upstream->stats().services[0].state.phase == WatchPhase::synced; }, 15000));
    CHECK_FALSE(f.upstream->ready());
    auto r = f.get("/hello");
    CHECK(r.status.error().code == Errc::no_endpoint);
    CHECK(r.status.error().reason.find("upstream \"web\"") == 0);
  }

  TEST_CASE("when the API server goes away, the last known Pods keep serving") {
    Fixture f;
    f.publish({"127.0.0.1"});
    f.start();
    REQUIRE(f.loop.run_until([&] { return f.upstream->ready(); }, 15000));
    f.sim.kill_now();
    REQUIRE(f.loop.run_until([&] { return f.upstream->stats().services[0].state.phase == WatchPhase::stale; }, 15000));
    auto r = f.get("/hello");
    CHECK(r.code == 200);
    CHECK(f.upstream->stats().services[0].state.reason.find("cluster \"tke-a\"") != std::string::npos);
  }

  TEST_CASE("dropping the Upstream inside a response handler silences every callback and the loop drains") {
    Fixture f;
    f.publish({"127.0.0.1"});
    f.start();
    REQUIRE(f.loop.run_until([&] { return f.upstream->ready(); }, 15000));
    int heads = 0, completions = 0;
    std::vector<std::unique_ptr<UpstreamRequest>> requests;
    for (int i = 0; i < 3; ++i) {
      ForwardHandlers h;
      h.on_head = [&](const ForwardResponseHead&) {
        ++heads;
        f.upstream.reset();
      };
      h.on_complete = [&](Status) { ++completions; };
      ForwardRequest req;
      req.target = "/hello";
      auto handle = f.upstream->forward(std::move(req), std::move(h));
      REQUIRE(handle.ok());
      requests.push_back(std::move(*handle));
    }
    f.loop.run_until([&] { return !f.upstream; }, 10000);
    f.loop.run_for(200);
    CHECK(heads == 1);
    CHECK(completions == 0);
    requests.clear();  // handles outlive their Upstream safely
  }
}
