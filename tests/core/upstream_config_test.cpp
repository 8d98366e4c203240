#include <doctest/doctest.h>

#include "kupstream/upstream_config.h"

using namespace kupstream;

namespace {
ServiceRef ref(std::string cluster, std::string service, std::uint32_t weight = 1) {
  ServiceRef r;
  r.cluster = std::move(cluster);
  r.namespace_name = "default";
  r.service = std::move(service);
  r.port = PortRef::name("http");
  r.weight = weight;
  return r;
}

UpstreamConfig config() {
  UpstreamConfig c;
  c.name = "httpbin";
  c.services = {ref("tke-a", "httpbin", 3), ref("tke-b", "httpbin", 1)};
  c.host_header = "httpbin.example.com";
  c.tags = {{"team", "web"}, {"tier", "gold"}};
  return c;
}

std::string reason_of(const UpstreamConfig& c) {
  Status s = validate_upstream_config(c);
  return s ? std::string{} : s.error().reason;
}
}  // namespace

TEST_SUITE("UpstreamConfig") {
  TEST_CASE("a two-cluster upstream with a Host override and tags is valid, with documented defaults") {
    UpstreamConfig c = config();
    CHECK(reason_of(c).empty());
    CHECK(c.scheme == Scheme::http);
    CHECK(c.policy == BalancerPolicy::weighted_round_robin);
    CHECK(c.weight_mode == WeightMode::per_pod);
    CHECK(c.max_services == 20);
  }

  TEST_CASE("errors name the upstream and the offending entry") {
    UpstreamConfig c = config();
    c.services.push_back(ref("tke-a", "web"));
    c.services.push_back(ref("tke-a", "api"));
    c.services[3].namespace_name = "Default";
    CHECK(reason_of(c) == "upstream \"httpbin\": services[3].namespace: \"Default\" is not a DNS-1123 label");
  }

  TEST_CASE("1 to max_services services, and the limit is configurable") {
    UpstreamConfig c = config();
    c.services.clear();
    CHECK(reason_of(c) == "upstream \"httpbin\": services: at least one service is required");
    for (int i = 0; i < 21; ++i) c.services.push_back(ref("tke-a", "svc-" + std::to_string(i)));
    CHECK(reason_of(c) == "upstream \"httpbin\": services: 21 entries exceed the limit of 20");
    c.max_services = 32;
    CHECK(reason_of(c).empty());
  }

  TEST_CASE("the same service and port twice is rejected") {
    UpstreamConfig c = config();
    c.services.push_back(ref("tke-a", "httpbin", 5));
    CHECK(reason_of(c) == "upstream \"httpbin\": services[2]: \"tke-a/default/httpbin:http\" repeats services[0]");
  }

  TEST_CASE("the Host header must be host[:port] without CR or LF") {
    for (const char* good : {"example.com", "example.com:8080", "127.0.0.1", "127.0.0.1:80", "[::1]", "[::1]:443",
                             "Svc.Default.svc.cluster.local", "localhost"}) {
      CAPTURE(good);
      CHECK(check_host_header(good).empty());
    }
    for (const char* bad : {"", "evil.com\r\nX-Injected: 1", "a b", "example.com:0", "example.com:65536",
                            "example.com:", "-bad.com", "[::1", "[not-v6]:80", "[::1]x", "a..b", "host:80:90"}) {
      CAPTURE(bad);
      CHECK_FALSE(check_host_header(bad).empty());
    }
    UpstreamConfig c = config();
    c.host_header = "evil.com\r\nX: y";
    CHECK(reason_of(c).find("upstream \"httpbin\": host_header:") == 0);
  }

  TEST_CASE("tag keys are non-empty and unique") {
    UpstreamConfig c = config();
    c.tags.emplace_back("team", "ops");
    CHECK(reason_of(c) == "upstream \"httpbin\": tags[2]: key \"team\" repeats");
    c.tags = {{"", "x"}};
    CHECK(reason_of(c) == "upstream \"httpbin\": tags[0]: key must not be empty");
  }

  TEST_CASE("the upstream name is required") {
    UpstreamConfig c = config();
    c.name = "has space";
    CHECK(reason_of(c).find("name: \"has space\"") != std::string::npos);
  }

  TEST_CASE("enum names round-trip and unknown names list the choices") {
    CHECK(*parse_scheme("https") == Scheme::https);
    CHECK(*parse_balancer_policy("least_request") == BalancerPolicy::least_request);
    CHECK(*parse_weight_mode("per_service") == WeightMode::per_service);
    auto bad = parse_balancer_policy("round_robin");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().reason ==
          "balancer policy \"round_robin\" is not one of: weighted_round_robin, least_request, consistent_hash, random");
  }
}
