#include <doctest/doctest.h>

#include "kupstream/upstream_document.h"

using namespace kupstream;

namespace {
std::string errors_of(std::string_view text, UpstreamDocumentOptions options = {}) {
  auto r = parse_upstream_document(text, options);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == Errc::invalid_config);
  return r.error().reason;
}
UpstreamDocumentOptions from(std::string source, std::string root = "", bool line_numbers = true) {
  UpstreamDocumentOptions o;
  o.source = std::move(source);
  o.root = std::move(root);
  o.line_numbers = line_numbers;
  return o;
}
}  // namespace

TEST_SUITE("parse_upstream_document") {
  TEST_CASE("a JSON document reaches every field of UpstreamConfig and UpstreamOptions") {
    auto r = parse_upstream_document(R"({
      "name": "web", "backend": "https", "host": "web.example.com", "policy": "consistent_hash",
      "hash_header": "X-User", "weight_mode": "per_service", "tags": {"team": "a"},
      "tls": {"ca_file": "ca.pem", "server_name": "pods.example.com"},
      "timeouts": {"connect_ms": 100, "response_header_ms": 200, "total_ms": 300, "idle_connection_ms": 400},
      "retries": {"max": 4, "on_status": [503], "on_connect_failure": false, "budget_ratio": 50, "min_concurrent": 7},
      "outlier": {"consecutive_failures": 9, "base_ejection_ms": 10, "max_ejection_ms": 20, "max_ejected_percent": 30},
      "health_check": {"path": "/ready", "interval_ms": 11, "timeout_ms": 12, "unhealthy_threshold": 3,
                       "healthy_threshold": 2},
      "slow_start_ms": 5000, "panic_threshold_percent": 10, "max_connections_per_pod": 8, "max_idle_per_pod": 4,
      "max_services": 3, "seed": 42, "pod_metrics_limit": 0,
      "services": [{"cluster": "tke-a", "namespace": "shop", "service": "web", "port": "http", "weight": 3,
                    "node_labels": {"pool": "blue"}},
                   {"cluster": "tke-b", "service": "web", "port": 8080}]
    })",
                                     [] { auto o = from("doc", "", false); o.base_dir = "/etc/kup"; return o; }());
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().reason));
    const UpstreamConfig& c = r->config;
    const UpstreamOptions& o = r->options;
    CHECK(c.name == "web");
    CHECK(c.scheme == Scheme::https);
    CHECK(c.host_header == std::optional<std::string>("web.example.com"));
    CHECK(c.policy == BalancerPolicy::consistent_hash);
    CHECK(r->hash_header == "X-User");
    CHECK(c.weight_mode == WeightMode::per_service);
    CHECK(c.tags == std::vector<std::pair<std::string, std::string>>{{"team", "a"}});
    CHECK(c.max_services == 3);
    REQUIRE(c.services.size() == 2);
    CHECK(c.services[0].to_string() == "tke-a/shop/web:http");
    CHECK(c.services[0].weight == 3);
    CHECK(c.services[0].node_labels.at("pool") == "blue");
    CHECK(c.services[1].namespace_name == "default");
    CHECK(c.services[1].port == PortRef::number(8080));
    CHECK(o.tls.ca_file == "/etc/kup/ca.pem");
    CHECK(o.tls.server_name == "pods.example.com");
    CHECK(o.timeouts.connect.count() == 100);
    CHECK(o.timeouts.response_header.count() == 200);
    CHECK(o.timeouts.total.count() == 300);
    CHECK(o.timeouts.idle_connection.count() == 400);
    CHECK(o.retries.max_retries == 4);
    CHECK(o.retries.on_status == std::vector<int>{503});
    CHECK_FALSE(o.retries.on_connect_failure);
    CHECK(o.retries.budget_ratio == doctest::Approx(0.5));
    CHECK(o.retries.min_concurrent == 7);
    CHECK(o.outlier.consecutive_failures == 9);
    CHECK(o.outlier.base_ejection.count() == 10);
    CHECK(o.outlier.max_ejection.count() == 20);
    CHECK(o.outlier.max_ejected_percent == 30);
    CHECK(o.health_check.enabled);
    CHECK(o.health_check.path == "/ready");
    CHECK(o.health_check.interval.count() == 11);
    CHECK(o.health_check.timeout.count() == 12);
    CHECK(o.health_check.unhealthy_threshold == 3);
    CHECK(o.health_check.healthy_threshold == 2);
    CHECK(o.slow_start.count() == 5000);
    CHECK(o.panic_threshold_percent == 10);
    CHECK(o.max_connections_per_pod == 8);
    CHECK(o.max_idle_per_pod == 4);
    CHECK(o.seed == std::optional<std::uint64_t>(42));
    CHECK(o.pod_metrics_limit == 0);
  }

  TEST_CASE("defaults are UpstreamOptions' own") {
    auto r = parse_upstream_document("name: u\nservices: [{cluster: c, service: s, port: http}]\n");
    REQUIRE(r.ok());
    UpstreamOptions defaults;
    CHECK(r->options.timeouts.total == defaults.timeouts.total);
    CHECK(r->options.retries.on_status == defaults.retries.on_status);
    CHECK_FALSE(r->options.seed.has_value());
    CHECK(r->config.max_services == kDefaultMaxServices);
  }

  TEST_CASE("every problem is reported with source, line and path") {
    std::string why = errors_of(
        "name: web\n"
        "polcy: random\n"
        "services:\n"
        "  - {cluster: a, namespace: Default, service: s, port: http}\n"
        "  - {cluster: a, service: s2, port: http, weight: 10001}\n",
        from("web.yaml"));
    CHECK(why.find("web.yaml:2: polcy: unknown key \"polcy\"") != std::string::npos);
    CHECK(why.find("web.yaml:5: services[1].weight: 10001 is out of range 0..10000") != std::string::npos);
    // The library's ServiceRef check runs on the entries that parsed.
    CHECK(why.find("web.yaml:4: services[0].namespace: \"Default\" is not a DNS-1123 label") != std::string::npos);
  }

  TEST_CASE("without line numbers the source and path still name the field") {
    std::string why = errors_of(R"({"name": "web", "services": [{"cluster": "a", "service": "s"}]})",
                                from("upstream \"web\"", "", false));
    CHECK(why == "upstream \"web\": services[0].port: is required");
  }

  TEST_CASE("a root path selects the upstream inside a larger document") {
    const char* text =
        "upstreams:\n"
        "  - name: first\n"
        "    services: [{cluster: a, service: s, port: http}]\n"
        "  - name: second\n"
        "    services: [{cluster: a, service: s, port: 0}]\n";
    auto first = parse_upstream_document(text, from("", "upstreams[0]"));
    REQUIRE(first.ok());
    CHECK(first->config.name == "first");
    CHECK(errors_of(text, from("g.yaml", "upstreams[1]")).find("g.yaml:5: upstreams[1].services[0].port:") ==
          0);
    CHECK(errors_of(text, from("g.yaml", "upstreams[2]")) == "g.yaml:2: upstreams[2]: is required");
  }

  TEST_CASE("whole-upstream checks are located too") {
    std::string why = errors_of(
        "name: web\nmax_services: 1\nservices:\n  - {cluster: a, service: s, port: http}\n"
        "  - {cluster: a, service: t, port: http}\n",
        from("u"));
    CHECK(why == "u:4: services: 2 entries exceed the limit of 1");
  }

  TEST_CASE("YAML syntax errors name the line") {
    CHECK(errors_of("name: [unclosed\n", from("u")).rfind("u:", 0) == 0);
    CHECK(errors_of("- just a list\n").find("expected a mapping") != std::string::npos);
  }
}
