// The `locality` block of upstream documents (zone-aware routing): every key reaches
// UpstreamOptions::locality, and each bad value is reported with its line, path and value.
#include <doctest/doctest.h>

#include <cstdlib>

#include "kupstream/upstream_document.h"

using namespace kupstream;

namespace {
UpstreamDocumentOptions named(std::string source) {
  UpstreamDocumentOptions o;
  o.source = std::move(source);
  return o;
}
std::string errors_of(std::string_view text) {
  auto r = parse_upstream_document(text, named("u.yaml"));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == Errc::invalid_config);
  return r.error().reason;
}
constexpr const char* kServices = "services: [{cluster: a, service: s, port: http}]\n";
}  // namespace

TEST_SUITE("parse_upstream_document") {
  TEST_CASE("locality reaches every field of ZoneAwareRouting; the block alone turns it on") {
    auto r = parse_upstream_document(std::string("name: web\n") + kServices +
                                     "locality:\n"
                                     "  zone: eu-west-1a\n"
                                     "  hints: false\n"
                                     "  zone_traffic: {eu-west-1a: 2, eu-west-1b: 1.5}\n"
                                     "  min_endpoints: 3\n"
                                     "  min_local_endpoints: 2\n"
                                     "  min_local_percent: 25\n");
    REQUIRE(r.ok());
    const ZoneAwareRouting& l = r->options.locality;
    CHECK(l.enabled);
    CHECK(l.zone == "eu-west-1a");
    CHECK_FALSE(l.use_hints);
    REQUIRE(l.zone_traffic.size() == 2);
    CHECK(l.zone_traffic[0] == std::pair<std::string, double>{"eu-west-1a", 2});
    CHECK(l.zone_traffic[1] == std::pair<std::string, double>{"eu-west-1b", 1.5});
    CHECK(l.min_endpoints == 3);
    CHECK(l.min_local_endpoints == 2);
    CHECK(l.min_local_percent == 25);

    auto off = parse_upstream_document(std::string("name: web\n") + kServices);
    REQUIRE(off.ok());
    CHECK_FALSE(off->options.locality.enabled);  // off by default
    auto disabled = parse_upstream_document(std::string("name: web\n") + kServices + "locality: {enabled: false}\n");
    REQUIRE(disabled.ok());  // no zone needed while off
    CHECK_FALSE(disabled->options.locality.enabled);
  }

  TEST_CASE("locality errors name the line, the field and the value") {
    CHECK(errors_of(std::string("name: web\n") + kServices + "locality: {hints: true}\n") ==
          "u.yaml:3: locality.zone: is required when zone-aware routing is enabled");
    CHECK(errors_of(std::string("name: web\n") + kServices + "locality:\n  zone: \"eu west\"\n") ==
          "u.yaml:4: locality.zone: \"eu west\" is not a Kubernetes label value (topology.kubernetes.io/zone)");
    CHECK(errors_of(std::string("name: web\n") + kServices + "locality:\n  zone: a\n  min_local_percent: 101\n") ==
          "u.yaml:5: locality.min_local_percent: 101 is out of range 0..100");
    CHECK(errors_of(std::string("name: web\n") + kServices + "locality:\n  zone: a\n  zone_traffic: {a: lots}\n") ==
          "u.yaml:5: locality.zone_traffic.a: \"lots\" is not a number");
    CHECK(errors_of(std::string("name: web\n") + kServices + "locality:\n  zone: a\n  zone_traffic: {b: 1}\n")
              .find("locality.zone_traffic: the local zone \"a\" needs a share > 0") != std::string::npos);
    CHECK(errors_of(std::string("name: web\n") + kServices + "locality:\n  zone: a\n  zone_traffic: [a]\n") ==
          "u.yaml:5: locality.zone_traffic: expected a map of zone name to traffic share");
    CHECK(errors_of(std::string("name: web\n") + kServices + "locality:\n  zone: a\n  zonee: b\n")
              .find("u.yaml:5: locality.zonee: unknown key \"zonee\" (known: enabled, zone, zone_from_env, hints,") == 0);
  }

  TEST_CASE("zone_from_env reads the zone from the environment, and says which variable is missing") {
    REQUIRE(setenv("KUP_TEST_ZONE", "eu-west-1c", 1) == 0);
    auto r = parse_upstream_document(std::string("name: web\n") + kServices + "locality: {zone_from_env: KUP_TEST_ZONE}\n");
    REQUIRE(r.ok());
    CHECK(r->options.locality.zone == "eu-west-1c");
    REQUIRE(unsetenv("KUP_TEST_ZONE") == 0);
    CHECK(errors_of(std::string("name: web\n") + kServices + "locality: {zone_from_env: KUP_TEST_ZONE}\n") ==
          "u.yaml:3: locality.zone_from_env: environment variable \"KUP_TEST_ZONE\" is not set");
    CHECK(errors_of(std::string("name: web\n") + kServices + "locality: {zone: a, zone_from_env: KUP_TEST_ZONE}\n") ==
          "u.yaml:3: locality.zone_from_env: contradicts zone: give one of them");
  }
}
