#include <doctest/doctest.h>

#include "router.h"

using namespace kupgw;

TEST_SUITE("Router") {
  TEST_CASE("the longest matching path prefix wins") {
    Router r({{"*", "/", "root"}, {"*", "/api", "api"}, {"*", "/api/v2", "v2"}});
    CHECK(r.match("x", "/") == "root");
    CHECK(r.match("x", "/api") == "api");
    CHECK(r.match("x", "/api/users?id=1") == "api");
    CHECK(r.match("x", "/api/v2/users") == "v2");
    CHECK(r.match("x", "/apix") == "root");
    CHECK(r.match("x", "/api?q=1") == "api");
  }

  TEST_CASE("an exact host beats the wildcard, case-insensitively and without the port") {
    Router r({{"*", "/", "any"}, {"shop.example.com", "/", "shop"}});
    CHECK(r.match("Shop.Example.COM:8080", "/cart") == "shop");
    CHECK(r.match("other.example.com", "/cart") == "any");
    CHECK(r.match("", "/") == "any");
  }

  TEST_CASE("no route means no upstream") {
    Router r({{"a.example.com", "/", "a"}});
    CHECK(r.match("b.example.com", "/") == "");
    Router prefix({{"*", "/only", "o"}});
    CHECK(prefix.match("x", "/other") == "");
  }

  TEST_CASE("hosts are normalized") {
    CHECK(Router::normalize_host("[::1]:8080") == "[::1]");
    CHECK(Router::normalize_host("EXAMPLE.com") == "example.com");
  }
}
