#include <doctest/doctest.h>

#include "upstream/forward_headers.h"

using namespace kupstream;
using namespace kupstream::detail;

namespace {
std::string find(const std::vector<Header>& hs, std::string_view name) {
  for (const auto& [n, v] : hs)
    if (iequals(n, name)) return v;
  return "<none>";
}
}  // namespace

TEST_SUITE("forward headers") {
  TEST_CASE("hop-by-hop headers and those named in Connection are dropped") {
    std::vector<Header> in{{"Connection", "keep-alive, X-Secret"}, {"Keep-Alive", "timeout=5"}, {"X-Secret", "1"},
                           {"Transfer-Encoding", "chunked"},     {"Upgrade", "h2c"},          {"Accept", "*/*"}};
    auto out = end_to_end(in);
    REQUIRE(out.size() == 1);
    CHECK(out[0].first == "Accept");
  }

  TEST_CASE("the Host override replaces Host and X-Forwarded-* describe the client") {
    ForwardRequest r;
    r.headers = {{"host", "gw.example.com"}, {"X-Forwarded-For", "192.0.2.1"}, {"Content-Length", "5"}, {"A", "b"}};
    r.client_address = "127.0.0.9";
    r.client_scheme = "https";
    r.client_host = "gw.example.com";
    const std::string override_host = "httpbin.internal";
    auto out = upstream_request_headers(r, &override_host);
    CHECK(find(out, "Host") == "httpbin.internal");
    CHECK(find(out, "X-Forwarded-For") == "192.0.2.1, 127.0.0.9");
    CHECK(find(out, "X-Forwarded-Proto") == "https");
    CHECK(find(out, "X-Forwarded-Host") == "gw.example.com");
    CHECK(find(out, "Content-Length") == "<none>");
    CHECK(find(out, "A") == "b");
    auto plain = upstream_request_headers(r, nullptr);
    CHECK(find(plain, "Host") == "gw.example.com");
  }
}
