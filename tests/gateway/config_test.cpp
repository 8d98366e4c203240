#include <doctest/doctest.h>

#include <string>

#include "config.h"

using namespace kupgw;
using namespace kupstream;

namespace {

const char* kFull = R"(listeners: [{address: 127.0.0.1, port: 8080}]
admin: {address: 127.0.0.1, port: 9901}
server: {max_header_bytes: 32768, max_body_bytes: 1048576, idle_timeout_ms: 5000, workers: 4, heap_trim_mib: 0}
clusters:
  - {name: tke-a, kubeconfig: /path/kubeconfig, context: ctx-a}
  - {name: tke-b, kubeconfig: kc-b, slice_watch: per_service}
  - {name: incluster, in_cluster: true}
upstreams:
  - name: httpbin
    backend: HTTPS
    host: httpbin.example.com
    policy: consistent_hash
    hash_header: X-User
    weight_mode: per_service
    tags: {team: web}
    tls: {ca_file: ca.pem, server_name: pods.example.com}
    timeouts: {connect_ms: 500, response_header_ms: 2000, total_ms: 9000}
    retries: {max: 3, on_status: [503]}
    outlier: {consecutive_failures: 7, base_ejection_ms: 1000, max_ejected_percent: 30}
    health_check: {path: /ready, interval_ms: 700, timeout_ms: 300}
    slow_start_ms: 4000
    panic_threshold_percent: 40
    services:
      - {cluster: tke-a, namespace: default, service: httpbin, port: http, weight: 3}
      - {cluster: tke-b, namespace: default, service: httpbin, port: 8000, weight: 1, node_labels: {pool: blue}}
  - name: other
    services: [{cluster: incluster, service: web, port: "80"}]
routes:
  - {host: "*", path_prefix: /, upstream: httpbin}
  - {host: Api.Example.com, path_prefix: /v1, upstream: other}
)";

std::string errors_of(std::string_view text) {
  auto r = parse_config(text, "gateway.yaml", "/etc/kup");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == make_error_code(Errc::invalid_config));
  return r.error().reason;
}

const char* kHead = "listeners: [{port: 8080}]\nclusters: [{name: tke-a, kubeconfig: /k}]\n";

}  // namespace

TEST_SUITE("GatewayConfig") {
  TEST_CASE("a complete file fills every field") {
    auto r = parse_config(kFull, "gateway.yaml", "/etc/kup");
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().reason));
    const auto& c = *r;
    REQUIRE(c.listeners.size() == 1);
    CHECK(c.listeners[0].address == "127.0.0.1");
    CHECK(c.listeners[0].port == 8080);
    REQUIRE(c.admin.has_value());
    CHECK(c.admin->port == 9901);
    CHECK(c.server.max_header_bytes == 32768);
    CHECK(c.server.max_body_bytes == 1048576);
    CHECK(c.server.idle_timeout_ms == 5000);
    CHECK(c.server.workers == 4);
    CHECK(c.server.heap_trim_mib == 0);
    CHECK(c.server.header_timeout_ms == 10'000);
    REQUIRE(c.clusters.size() == 3);
    CHECK(c.clusters[0].kubeconfig == "/path/kubeconfig");
    CHECK(c.clusters[0].context == "ctx-a");
    CHECK(c.clusters[1].kubeconfig == "/etc/kup/kc-b");
    CHECK(c.clusters[2].in_cluster);
    CHECK(c.clusters[0].slice_watch == SliceWatchMode::per_namespace);  // the default
    CHECK(c.clusters[1].slice_watch == SliceWatchMode::per_service);
    REQUIRE(c.upstreams.size() == 2);
    const auto& u = c.upstreams[0];
    CHECK(u.config.name == "httpbin");
    CHECK(u.config.scheme == Scheme::https);
    CHECK(u.config.host_header == std::optional<std::string>("httpbin.example.com"));
    CHECK(u.config.policy == BalancerPolicy::consistent_hash);
    CHECK(u.hash_header == "X-User");
    CHECK(u.config.weight_mode == WeightMode::per_service);
    REQUIRE(u.config.tags.size() == 1);
    CHECK(u.config.tags[0].second == "web");
    CHECK(u.options.tls.ca_file == "/etc/kup/ca.pem");
    CHECK(u.options.tls.server_name == "pods.example.com");
    CHECK(u.options.timeouts.connect.count() == 500);
    CHECK(u.options.timeouts.response_header.count() == 2000);
    CHECK(u.options.timeouts.total.count() == 9000);
    CHECK(u.options.retries.max_retries == 3);
    CHECK(u.options.retries.on_status == std::vector<int>{503});
    CHECK(u.options.outlier.consecutive_failures == 7);
    CHECK(u.options.outlier.base_ejection.count() == 1000);
    CHECK(u.options.outlier.max_ejected_percent == 30);
    CHECK(u.options.health_check.enabled);
    CHECK(u.options.health_check.path == "/ready");
    CHECK(u.options.health_check.interval.count() == 700);
    CHECK(u.options.slow_start.count() == 4000);
    CHECK(u.options.panic_threshold_percent == 40);
    REQUIRE(u.config.services.size() == 2);
    CHECK(u.config.services[0].to_string() == "tke-a/default/httpbin:http");
    CHECK(u.config.services[0].weight == 3);
    CHECK(u.config.services[1].port == PortRef::number(8000));
    CHECK(u.config.services[1].node_labels.at("pool") == "blue");
    const auto& o = c.upstreams[1];
    CHECK(o.config.services[0].namespace_name == "default");
    CHECK(o.config.services[0].weight == 1);
    CHECK(o.config.scheme == Scheme::http);
    CHECK_FALSE(o.options.health_check.enabled);
    REQUIRE(c.routes.size() == 2);
    CHECK(c.routes[1].host == "api.example.com");
    CHECK(c.routes[1].path_prefix == "/v1");
  }

  TEST_CASE("defaults apply when optional sections are absent") {
    auto r = parse_config(std::string(kHead) +
                              "upstreams: [{name: u, services: [{cluster: tke-a, service: s, port: http}]}]\n"
                              "routes: [{upstream: u}]\n",
                          "g.yaml");
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().reason));
    CHECK_FALSE(r->admin.has_value());
    CHECK(r->listeners[0].address == "127.0.0.1");
    CHECK(r->server.max_body_bytes == 0);  // no limit unless configured
    CHECK(r->server.workers == 1);         // the control loop serves the clients itself
    CHECK(r->server.heap_trim_mib == 8);   // trims once the RSS grew by 8 MiB
    CHECK(r->routes[0].host == "*");
    CHECK(r->routes[0].path_prefix == "/");
    UpstreamOptions defaults;
    CHECK(r->upstreams[0].options.timeouts.connect == defaults.timeouts.connect);
    CHECK(r->upstreams[0].options.retries.max_retries == defaults.retries.max_retries);
    CHECK(r->upstreams[0].config.policy == BalancerPolicy::weighted_round_robin);
  }

  TEST_CASE("server.workers outside 1..64 is reported with its line and value") {
    std::string tail = "upstreams: [{name: u, services: [{cluster: tke-a, service: s, port: http}]}]\n"
                       "routes: [{upstream: u}]\n";
    auto zero = errors_of(std::string(kHead) + "server: {workers: 0}\n" + tail);
    CHECK(zero.find("gateway.yaml:3: server.workers") != std::string::npos);
    CHECK(zero.find("0") != std::string::npos);
    auto many = errors_of(std::string(kHead) + "server: {workers: 65}\n" + tail);
    CHECK(many.find("gateway.yaml:3: server.workers") != std::string::npos);
    CHECK(many.find("65") != std::string::npos);
  }

  TEST_CASE("server.heap_trim_mib above 65536 is reported with its line and value") {
    std::string tail = "upstreams: [{name: u, services: [{cluster: tke-a, service: s, port: http}]}]\n"
                       "routes: [{upstream: u}]\n";
    auto big = errors_of(std::string(kHead) + "server: {heap_trim_mib: 70000}\n" + tail);
    CHECK(big.find("gateway.yaml:3: server.heap_trim_mib: 70000 is out of range 0..65536") != std::string::npos);
  }

  TEST_CASE("a bad namespace is reported with file, line, path and value") {
    std::string text = std::string(kHead) +
                       "upstreams:\n"
                       "  - name: web\n"
                       "    services:\n"
                       "      - {cluster: tke-a, namespace: default, service: a, port: http}\n"
                       "      - {cluster: tke-a, namespace: Default, service: b, port: http}\n"
                       "routes: [{upstream: web}]\n";
    auto why = errors_of(text);
    CHECK(why == "gateway.yaml:7: upstreams[0].services[1].namespace: \"Default\" is not a DNS-1123 label");
  }

  TEST_CASE("unknown keys are errors naming the key and its line") {
    std::string text = std::string(kHead) +
                       "upstreams:\n"
                       "  - name: web\n"
                       "    polcy: random\n"
                       "    services: [{cluster: tke-a, service: a, port: http, wieght: 2}]\n"
                       "routes: [{upstream: web}]\n";
    auto why = errors_of(text);
    CHECK(why.find("gateway.yaml:5: upstreams[0].polcy: unknown key \"polcy\"") != std::string::npos);
    CHECK(why.find("gateway.yaml:6: upstreams[0].services[0].wieght: unknown key \"wieght\"") != std::string::npos);
  }

  TEST_CASE("every problem is reported, one per line") {
    std::string text =
        "listeners: [{port: 70000}]\n"
        "clusters: [{name: tke-a, kubeconfig: /k}, {name: tke-a, in_cluster: true}]\n"
        "upstreams:\n"
        "  - name: web\n"
        "    backend: FTP\n"
        "    policy: fastest\n"
        "    weight_mode: per_node\n"
        "    services: [{cluster: tke-z, service: a, port: http, weight: 10001}]\n"
        "routes: [{upstream: nope, path_prefix: api}]\n";
    auto why = errors_of(text);
    CHECK(why.find("gateway.yaml:1: listeners[0].port: 70000 is out of range 0..65535") != std::string::npos);
    CHECK(why.find("gateway.yaml:2: clusters[1].name: \"tke-a\" is already defined on line 2") != std::string::npos);
    CHECK(why.find("gateway.yaml:5: upstreams[0].backend: \"FTP\" is not HTTP or HTTPS") != std::string::npos);
    CHECK(why.find("gateway.yaml:6: upstreams[0].policy: \"fastest\"") != std::string::npos);
    CHECK(why.find("gateway.yaml:7: upstreams[0].weight_mode: \"per_node\" is not per_pod or per_service") !=
          std::string::npos);
    CHECK(why.find("gateway.yaml:8: upstreams[0].services[0].weight: 10001 is out of range 0..10000") !=
          std::string::npos);
    CHECK(why.find("gateway.yaml:9: routes[0].path_prefix: \"api\" does not start with /") != std::string::npos);
  }

  TEST_CASE("a service in an unknown cluster and a route to an unknown upstream are errors") {
    std::string text = std::string(kHead) +
                       "upstreams: [{name: web, services: [{cluster: tke-b, service: a, port: http}]}]\n"
                       "routes: [{upstream: api}]\n";
    auto why = errors_of(text);
    CHECK(why.find("gateway.yaml:3: upstreams[0].services[0].cluster: \"tke-b\" is not in clusters") !=
          std::string::npos);
    CHECK(why.find("gateway.yaml:4: routes[0].upstream: \"api\" is not a defined upstream") != std::string::npos);
  }

  TEST_CASE("the library's whole-upstream checks are located too") {
    std::string text = std::string(kHead) +
                       "upstreams:\n"
                       "  - name: web\n"
                       "    services:\n"
                       "      - {cluster: tke-a, service: a, port: http}\n"
                       "      - {cluster: tke-a, service: a, port: http}\n"
                       "routes: [{upstream: web}]\n";
    auto why = errors_of(text);
    CHECK(why.find("gateway.yaml:7: upstreams[0].services[1]: ") == 0);
    CHECK(why.find("repeats services[0]") != std::string::npos);
  }

  TEST_CASE("a bad Host override, label and port name are rejected with their values") {
    std::string text = std::string(kHead) +
                       "upstreams:\n"
                       "  - name: web\n"
                       "    host: \"bad host\"\n"
                       "    services: [{cluster: tke-a, service: a, port: \"-http-\", node_labels: {pool: \"b l\"}}]\n"
                       "routes: [{upstream: web}]\n";
    auto why = errors_of(text);
    CHECK(why.find("gateway.yaml:5: upstreams[0].host: ") != std::string::npos);
    CHECK(why.find("bad host") != std::string::npos);
    CHECK(why.find("gateway.yaml:6: upstreams[0].services[0].port: \"-http-\"") != std::string::npos);
  }

  TEST_CASE("YAML syntax errors carry their line") {
    auto why = errors_of("listeners: [{port: 8080}\nclusters: []\n");
    CHECK(why.rfind("gateway.yaml:", 0) == 0);
  }

  TEST_CASE("missing sections and wrong types are reported") {
    auto why = errors_of("listeners: {port: 1}\n");
    CHECK(why.find("gateway.yaml:1: listeners: expected a list") != std::string::npos);
    CHECK(why.find("clusters: is required") != std::string::npos);
    CHECK(why.find("upstreams: is required") != std::string::npos);
    CHECK(why.find("routes: is required") != std::string::npos);
  }

  TEST_CASE("in_cluster cannot be combined with a kubeconfig, booleans are strict") {
    auto why = errors_of(
        "listeners: [{port: 1}]\nclusters: [{name: a, in_cluster: true, kubeconfig: /k}, {name: b, in_cluster: yes}]\n"
        "upstreams: []\nroutes: []\n");
    CHECK(why.find("gateway.yaml:2: clusters[0]: in_cluster: true cannot be combined") != std::string::npos);
    CHECK(why.find("gateway.yaml:2: clusters[1].in_cluster: \"yes\" is not true or false") != std::string::npos);
  }

  TEST_CASE("slice_watch takes per_namespace or per_service, and names the cluster entry otherwise") {
    auto why = errors_of("listeners: [{port: 1}]\nclusters: [{name: a, slice_watch: per_pod}]\nupstreams: []\nroutes: []\n");
    CHECK(why.find("gateway.yaml:2: clusters[0].slice_watch: \"per_pod\" is not per_namespace or per_service") !=
          std::string::npos);
  }

  TEST_CASE("an unreadable file is an io_error naming the path") {
    auto r = load_config_file("/nonexistent/gateway.yaml");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == make_error_code(Errc::io_error));
    CHECK(r.error().reason.find("/nonexistent/gateway.yaml") != std::string::npos);
  }

  // Found by gateway_config_fuzz (tests/fuzz/regressions/gateway_config): a key holding a newline
  // put a raw line break into the error's path, splitting one problem over two lines.
  TEST_CASE("control bytes in a key are escaped in the error's path, one line per problem") {
    const std::string reason = errors_of(std::string(kHead) + "upstreams: []\nroutes: []\nserver: {\"max\\nbytes\\x01\": 1}\n");
    CHECK(reason.find("server.max\\x0abytes\\x01: unknown key") != std::string::npos);
    for (std::size_t at = 0; (at = reason.find('\n', at)) != std::string::npos; ++at)
      CHECK(reason.compare(at + 1, 13, "gateway.yaml:") == 0);
    // The same for a value quoted by the library's own validation (a cluster name with newlines).
    const std::string named = errors_of("listeners: [{port: 8080}]\nclusters: [{name: \"a\\n\\nb\", kubeconfig: /k}]\n"
                                        "upstreams: []\nroutes: []\n");
    CHECK(named.find("a\\x0a\\x0ab") != std::string::npos);
    for (std::size_t at = 0; (at = named.find('\n', at)) != std::string::npos; ++at)
      CHECK(named.compare(at + 1, 13, "gateway.yaml:") == 0);
  }

  TEST_CASE("an upstream's locality block reaches its options; a bad zone is named with line, path and value") {
    const std::string upstream = "upstreams:\n"
                                 "  - name: web\n"
                                 "    locality: {zone: eu-west-1a, min_local_percent: 20, zone_traffic: {eu-west-1a: 1, eu-west-1b: 3}}\n"
                                 "    services: [{cluster: tke-a, service: web, port: http}]\n"
                                 "routes: [{upstream: web}]\n";
    auto r = parse_config(std::string(kHead) + upstream, "gateway.yaml", "/etc/kup");
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().reason));
    const ZoneAwareRouting& l = r->upstreams[0].options.locality;
    CHECK(l.enabled);
    CHECK(l.zone == "eu-west-1a");
    CHECK(l.min_local_percent == 20);
    CHECK(l.zone_traffic.size() == 2);
    auto why = errors_of(std::string(kHead) +
                         "upstreams:\n"
                         "  - name: web\n"
                         "    locality:\n"
                         "      zone: eu/west\n"
                         "    services: [{cluster: tke-a, service: web, port: http}]\n"
                         "routes: [{upstream: web}]\n");
    CHECK(why == "gateway.yaml:6: upstreams[0].locality.zone: \"eu/west\" is not a Kubernetes label value "
                 "(topology.kubernetes.io/zone)");
  }
}
