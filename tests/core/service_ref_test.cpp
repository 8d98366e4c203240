#include <doctest/doctest.h>

#include "kupstream/service_ref.h"

using namespace kupstream;

namespace {
ServiceRef valid_ref() {
  ServiceRef r;
  r.cluster = "tke-a";
  r.namespace_name = "default";
  r.service = "httpbin";
  r.port = PortRef::name("http");
  r.weight = 3;
  r.node_labels = {{"topology.kubernetes.io/zone", "zone-a"}, {"pool", "web"}};
  return r;
}

std::string reason_of(const ServiceRef& r) {
  Status s = validate_service_ref(r, "services[3]");
  return s ? std::string{} : s.error().reason;
}
}  // namespace

TEST_SUITE("ServiceRef") {
  TEST_CASE("a well-formed reference validates and prints as cluster/namespace/service:port") {
    CHECK(validate_service_ref(valid_ref(), "services[0]").ok());
    CHECK(valid_ref().to_string() == "tke-a/default/httpbin:http");
  }

  TEST_CASE("namespace and service must be DNS-1123 labels, and the error names the field and value") {
    auto r = valid_ref();
    r.namespace_name = "Default";
    CHECK(reason_of(r) == "services[3].namespace: \"Default\" is not a DNS-1123 label");
    r = valid_ref();
    r.service = "-web";
    CHECK(reason_of(r) == "services[3].service: \"-web\" is not a DNS-1123 label");
    r.service = std::string(64, 'a');
    CHECK(reason_of(r).find("services[3].service") == 0);
    r.service = std::string(63, 'a');
    CHECK(reason_of(r).empty());
  }

  TEST_CASE("ports are 1..65535 or an IANA service name") {
    CHECK(PortRef::parse("8000") == PortRef::number(8000));
    CHECK(PortRef::parse("http") == PortRef::name("http"));
    CHECK(PortRef::parse("70000") == PortRef::name("70000"));
    auto r = valid_ref();
    for (const char* bad : {"70000", "0", "HTTP", "web--x", "-web", "averyveryverylongname", "a_b"}) {
      r.port = PortRef::parse(bad);
      CAPTURE(bad);
      CHECK(reason_of(r).find("services[3].port:") == 0);
    }
    for (const char* good : {"1", "65535", "http", "https-alt", "grpc-web", "h2c"}) {
      r.port = PortRef::parse(good);
      CAPTURE(good);
      CHECK(reason_of(r).empty());
    }
  }

  TEST_CASE("weight is 0..10000 and 0 is allowed as no new traffic") {
    auto r = valid_ref();
    r.weight = 0;
    CHECK(reason_of(r).empty());
    r.weight = kMaxServiceWeight;
    CHECK(reason_of(r).empty());
    r.weight = kMaxServiceWeight + 1;
    CHECK(reason_of(r) == "services[3].weight: 10001 is outside 0..10000");
  }

  TEST_CASE("node label keys and values follow Kubernetes label syntax") {
    auto r = valid_ref();
    r.node_labels = {{"Bad Key", "x"}};
    CHECK(reason_of(r).find("services[3].node_labels: label key") == 0);
    r.node_labels = {{"example.com/", "x"}};
    CHECK(reason_of(r).find("services[3].node_labels") == 0);
    r.node_labels = {{"Example.com/pool", "x"}};
    CHECK(reason_of(r).find("prefix \"Example.com\"") != std::string::npos);
    r.node_labels = {{"pool", "has space"}};
    CHECK(reason_of(r).find("services[3].node_labels[pool]: label value") == 0);
    r.node_labels = {{"pool", ""}, {"kubernetes.io/hostname", "node-1.example"}, {"a_b.c-d", "V_1.2-x"}};
    CHECK(reason_of(r).empty());
  }

  TEST_CASE("the cluster name is required and has no whitespace") {
    auto r = valid_ref();
    r.cluster = "";
    CHECK(reason_of(r) == "services[3].cluster: must not be empty");
    r.cluster = "tke a";
    CHECK(reason_of(r).find("services[3].cluster:") == 0);
  }

  TEST_CASE("references are regular values compared with ==") {
    auto a = valid_ref();
    auto b = a;
    CHECK(a == b);
    b.weight = 4;
    CHECK_FALSE(a == b);
  }
}
