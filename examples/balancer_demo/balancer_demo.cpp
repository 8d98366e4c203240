// kup-balancer-demo: reads an upstream from YAML, validates it, gives each service simulated
// Pods and shows how the Balancer spreads 10,000 requests, in both weight modes, plus what a
// bad config line reports. Uses only the public API.
//
//   kup-balancer-demo [upstream.yaml]
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <map>

#include "kupstream/kupstream.h"

using namespace kupstream;

namespace {

struct DemoUpstream {
  UpstreamConfig config;
  std::vector<int> pods_per_service;
};

Result<DemoUpstream> load(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    return Error{Errc::invalid_config, fmt::format("{}: {}", path, e.what())};
  }
  DemoUpstream out;
  UpstreamConfig& c = out.config;
  c.name = root["name"].as<std::string>("");
  if (root["scheme"]) {
    auto s = parse_scheme(root["scheme"].as<std::string>());
    if (!s) return Error{Errc::invalid_config, fmt::format("{}: scheme: {}", path, s.error().reason)};
    c.scheme = *s;
  }
  if (root["weight_mode"]) {
    auto m = parse_weight_mode(root["weight_mode"].as<std::string>());
    if (!m) return Error{Errc::invalid_config, fmt::format("{}: weight_mode: {}", path, m.error().reason)};
    c.weight_mode = *m;
  }
  if (root["host_header"]) c.host_header = root["host_header"].as<std::string>();
  for (const auto& tag : root["tags"]) c.tags.emplace_back(tag.first.as<std::string>(), tag.second.as<std::string>());
  for (const auto& s : root["services"]) {
    ServiceRef r;
    r.cluster = s["cluster"].as<std::string>("");
    r.namespace_name = s["namespace"].as<std::string>("");
    r.service = s["service"].as<std::string>("");
    r.port = PortRef::parse(s["port"].as<std::string>(""));
    r.weight = s["weight"].as<std::uint32_t>(1);
    c.services.push_back(r);
    out.pods_per_service.push_back(s["pods"].as<int>(1));
  }
  if (Status st = validate_upstream_config(c); !st) return Error{st.error().code, fmt::format("{}: {}", path, st.error().reason)};
  return out;
}

// Per-Pod weights for one weight mode: per_pod gives each Pod the service weight; per_service
// splits it, scaled by the product of Pod counts so every share stays an integer.
std::vector<WeightedEndpoint> endpoints_for(const DemoUpstream& u, WeightMode mode) {
  std::uint32_t scale = 1;
  for (int n : u.pods_per_service) scale *= static_cast<std::uint32_t>(n);
  std::vector<WeightedEndpoint> out;
  for (std::size_t s = 0; s < u.config.services.size(); ++s) {
    const ServiceRef& ref = u.config.services[s];
    for (int p = 0; p < u.pods_per_service[s]; ++p) {
      Endpoint e;
      e.address = fmt::format("127.0.{}.{}", 1 + s, 5 + p);
      e.port = 80;
      e.pod_name = fmt::format("{}-{}-v{}", ref.service, ref.cluster, 1 + p % 3);
      const std::uint32_t w = mode == WeightMode::per_pod
                                  ? ref.weight
                                  : ref.weight * scale / static_cast<std::uint32_t>(u.pods_per_service[s]);
      out.push_back(WeightedEndpoint::make(std::move(e), w));
    }
  }
  return out;
}

void show_distribution(const DemoUpstream& u, WeightMode mode) {
  auto picker = Balancer{}.build(endpoints_for(u, mode));
  std::map<std::string, int> per_pod, per_cluster;
  const int requests = 10000;
  for (int i = 0; i < requests; ++i) {
    const auto pick = picker->pick();
    ++per_pod[fmt::format("{} {}", pick.endpoint->host_port(), pick.endpoint->pod_name)];
    ++per_cluster[std::string(pick.endpoint->pod_name.view().substr(pick.endpoint->pod_name.view().find('-') + 1, 5))];
  }
  fmt::print("\n{} requests, weight mode {}:\n", requests, to_string(mode));
  for (const auto& [pod, n] : per_pod) fmt::print("  {:<34} {:>6}  {:5.1f}%\n", pod, n, 100.0 * n / requests);
  for (const auto& [cluster, n] : per_cluster) fmt::print("  cluster {:<26} {:>6}  {:5.1f}%\n", cluster, n, 100.0 * n / requests);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string path = argc > 1 ? argv[1] : "upstream.yaml";
  auto upstream = load(path);
  if (!upstream) {
    fmt::print(stderr, "error: {}\n", upstream.error().message());
    return 1;
  }
  const auto& c = upstream->config;
  fmt::print("upstream \"{}\" ({}, Host: {}) with {} services:\n", c.name, to_string(c.scheme), c.host_header.value_or("-"),
             c.services.size());
  for (std::size_t i = 0; i < c.services.size(); ++i)
    fmt::print("  {} weight {} ({} Pods)\n", c.services[i].to_string(), c.services[i].weight, upstream->pods_per_service[i]);

  show_distribution(*upstream, WeightMode::per_pod);
  show_distribution(*upstream, WeightMode::per_service);

  BalancerOptions seeded;
  seeded.seed = 0;
  auto classic = Balancer(seeded).build({WeightedEndpoint::make(Endpoint{"127.0.1.1", 80, {}, "a", "", "", {}}, 5),
                                         WeightedEndpoint::make(Endpoint{"127.0.1.2", 80, {}, "b", "", "", {}}, 1),
                                         WeightedEndpoint::make(Endpoint{"127.0.1.3", 80, {}, "c", "", "", {}}, 1)});
  std::string order;
  for (int i = 0; i < 14; ++i) order += classic->pick().endpoint->pod_name.str() + " ";
  fmt::print("\nsmooth WRR, weights a=5 b=1 c=1, 14 picks: {}\n", order);

  UpstreamConfig bad = c;
  bad.services[0].namespace_name = "Default";
  fmt::print("\na bad config line is reported with its path and value:\n  {}\n", validate_upstream_config(bad).error().reason);
  auto empty = Balancer{}.build({});
  fmt::print("an empty endpoint list picks nothing: {}\n", empty->no_endpoint_error().message());
  return 0;
}
