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

  TEST_CASE("lists are in numeric address order, IPv4 before IPv6, then port") {
    auto set = EndpointSet::make(1, "", {ep("::1", 80), ep("127.0.1.10", 80), ep("127.0.1.9", 81), ep("127.0.1.9", 80),
                                          ep("127.0.2.1", 80), ep("fe80::2", 80), ep("fe80::10", 80)});
    std::vector<std::string> order;
    for (const auto& e : set->ready) order.push_back(e.host_port());
    CHECK(order == std::vector<std::string>{"127.0.1.9:80", "127.0.1.9:81", "127.0.1.10:80", "127.0.2.1:80", "[::1]:80",
                                            "[fe80::2]:80", "[fe80::10]:80"});
  }

  TEST_CASE("two spellings of one IPv6 address are one backend") {
    auto set = EndpointSet::make(1, "", {ep("0::1", 80, false, true, true), ep("::1", 80)});
    REQUIRE(set->ready.size() == 1);
    CHECK(set->ready[0].address == "::1");
    CHECK(set->draining.empty());
  }

  TEST_CASE("a backend listed twice keeps its ready occurrence") {
    auto set = EndpointSet::make(1, "", {ep("127.0.1.2", 80, false, true, true), ep("127.0.1.2", 80)});
    CHECK(set->ready.size() == 1);
    CHECK(set->draining.empty());
  }

  TEST_CASE("addresses that are not IP literals sort after the others, by text") {
    auto set = EndpointSet::make(1, "", {ep("zeta", 80), ep("alpha", 80), ep("127.0.1.1", 80)});
    REQUIRE(set->ready.size() == 3);
    CHECK(set->ready[0].address == "127.0.1.1");
    CHECK(set->ready[1].address == "alpha");
    CHECK(set->ready[2].address == "zeta");
  }

  TEST_CASE("same_endpoints ignores generation and resource version but not conditions") {
    auto a = EndpointSet::make(1, "10", {ep("127.0.1.2", 80)});
    auto b = EndpointSet::make(2, "11", {ep("127.0.1.2", 80)});
    auto c = EndpointSet::make(3, "12", {ep("127.0.1.2", 80, false, true, true)});
    CHECK(a->same_endpoints(*b));
    CHECK_FALSE(a->same_endpoints(*c));
  }
}

TEST_SUITE("EndpointList") {
  TEST_CASE("reads like a vector: size, index, iteration, front, back, to_vector") {
    EndpointList list({ep("127.0.1.1", 80), ep("127.0.1.2", 80)});
    REQUIRE(list.size() == 2);
    CHECK_FALSE(list.empty());
    CHECK(list[1].address == "127.0.1.2");
    CHECK(list.front().address == "127.0.1.1");
    CHECK(list.back().address == "127.0.1.2");
    CHECK(list.end() - list.begin() == 2);
    CHECK(std::next(list.begin())->address == "127.0.1.2");
    std::vector<std::string> seen;
    for (const auto& e : list) seen.push_back(e.address);
    CHECK(seen == std::vector<std::string>{"127.0.1.1", "127.0.1.2"});
    CHECK(list.to_vector() == std::vector<Endpoint>{ep("127.0.1.1", 80), ep("127.0.1.2", 80)});
    CHECK(EndpointList{}.empty());
  }

  TEST_CASE("equality compares endpoints, not storage") {
    EndpointList a({ep("127.0.1.1", 80)});
    EndpointList b({ep("127.0.1.1", 80)});
    EndpointList c({ep("127.0.1.1", 80, true, true, true)});
    CHECK(a == b);
    CHECK_FALSE(a == c);
    CHECK_FALSE(a == EndpointList{});
  }

  TEST_CASE("a copy keeps its endpoints alive after the set it came from is gone") {
    EndpointList copy;
    {
      auto set = EndpointSet::make(1, "", {ep("127.0.1.7", 8080)});
      copy = set->ready;
    }
    REQUIRE(copy.size() == 1);
    CHECK(copy[0].host_port() == "127.0.1.7:8080");
  }
}
