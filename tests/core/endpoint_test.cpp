#include <doctest/doctest.h>

#include "kupstream/endpoint.h"

using namespace kupstream;

namespace {
Endpoint ep(std::string address, std::uint16_t port, bool ready = true, bool serving = true, bool terminating = false) {
  Endpoint e;
  e.address = std::move(address);
  e.port = port;
  e.conditions = {ready, serving, terminating};
  return e;
}
}  // namespace

TEST_SUITE("Endpoint") {
  TEST_CASE("host_port brackets IPv6 addresses") {
    CHECK(ep("127.0.1.5", 80).host_port() == "127.0.1.5:80");
    CHECK(ep("::1", 8080).host_port() == "[::1]:8080");
  }

  TEST_CASE("validation names the bad address or port") {
    CHECK(validate_endpoint(ep("127.0.1.5", 80), "e").ok());
    CHECK(validate_endpoint(ep("::1", 80), "e").ok());
    CHECK(validate_endpoint(ep("pod.example", 80), "endpoints[2]").error().reason ==
          "endpoints[2].address: \"pod.example\" is not an IPv4 or IPv6 literal");
    CHECK(validate_endpoint(ep("127.0.1.5", 0), "endpoints[2]").error().reason ==
          "endpoints[2].port: 0 is not a port 1..65535");
  }

  TEST_CASE("ready means ready and not terminating; draining means serving while terminating") {
    CHECK(ep("127.0.1.1", 80).is_ready());
    CHECK_FALSE(ep("127.0.1.1", 80, true, true, true).is_ready());
    CHECK(ep("127.0.1.1", 80, false, true, true).is_draining());
    CHECK_FALSE(ep("127.0.1.1", 80, false, false, true).is_draining());
  }
}

TEST_SUITE("EndpointSet") {
  TEST_CASE("make partitions ready and draining, drops the rest, sorts and de-duplicates") {
    auto set = EndpointSet::make(7, "1234",
                                 {ep("127.0.1.9", 80), ep("127.0.1.2", 80), ep("127.0.1.3", 80, false, true, true),
                                  ep("127.0.1.4", 80, false, false, false), ep("127.0.1.2", 80),
                                  ep("127.0.1.2", 81)});
    CHECK(set->generation == 7);
    CHECK(set->resource_version == "1234");
    REQUIRE(set->ready.size() == 3);
    CHECK(set->ready[0].host_port() == "127.0.1.2:80");
    CHECK(set->ready[1].host_port() == "127.0.1.2:81");
    CHECK(set->ready[2].host_port() == "127.0.1.9:80");
    REQUIRE(set->draining.size() == 1);
    CHECK(set->draining[0].host_port() == "127.0.1.3:80");
  }

  TEST_CASE("a backend listed twice keeps its ready occurrence") {
    auto set = EndpointSet::make(1, "", {ep("127.0.1.2", 80, false, true, true), ep("127.0.1.2", 80)});
    CHECK(set->ready.size() == 1);
    CHECK(set->draining.empty());
  }

  TEST_CASE("same_endpoints ignores generation and resource version but not conditions") {
    auto a = EndpointSet::make(1, "10", {ep("127.0.1.2", 80)});
    auto b = EndpointSet::make(2, "11", {ep("127.0.1.2", 80)});
    auto c = EndpointSet::make(3, "12", {ep("127.0.1.2", 80, false, true, true)});
    CHECK(a->same_endpoints(*b));
    CHECK_FALSE(a->same_endpoints(*c));
  }
}
