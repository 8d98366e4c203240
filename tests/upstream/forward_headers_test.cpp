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

  TEST_CASE("every name in several Connection headers is dropped, beyond the inline eight too") {
    std::vector<Header> in{{"Connection", " x-a ,X-B,, x-c"}, {"Connection", "x-d, x-e, x-f, x-g, x-h, x-i, X-J"}};
    for (char c = 'A'; c <= 'K'; ++c) in.emplace_back(std::string("X-") + c, "v");
    auto out = end_to_end(in);
    REQUIRE(out.size() == 1);
    CHECK(out[0].first == "X-K");
    const ConnectionTokens tokens(in);
    CHECK(tokens.contains("x-j"));
    CHECK_FALSE(tokens.contains("x-k"));
    CHECK_FALSE(tokens.contains(""));
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

  TEST_CASE("the serialized header lines are the same headers in the same order") {
    ForwardRequest r;
    r.headers = {{"host", "gw.example.com"}, {"Connection", "close, X-Hop"}, {"X-Hop", "1"},
                 {"X-Forwarded-For", "192.0.2.1"}, {"Accept", "*/*"}};
    r.client_address = "127.0.0.9";
    r.client_host = "gw.example.com";
    const std::string override_value = "pods.internal";
    for (const std::string* override_host : std::vector<const std::string*>{nullptr, &override_value}) {
      std::string expected;
      for (const auto& [n, v] : upstream_request_headers(r, override_host)) expected += n + ": " + v + "\r\n";
      std::string lines = "kept\r\n";
      bool has_host = false;
      REQUIRE(append_upstream_header_lines(r, override_host, lines, has_host));
      CHECK(lines == "kept\r\n" + expected);
      CHECK(has_host);
    }
  }

  TEST_CASE("header lines are refused when a value holds CR, LF or NUL, and Host is reported only when present") {
    ForwardRequest r;
    r.headers = {{"A", std::string("x\0y", 3)}};
    std::string lines;
    bool has_host = true;
    CHECK_FALSE(append_upstream_header_lines(r, nullptr, lines, has_host));
    r.headers = {{"A", "b"}};
    r.client_host.clear();
    lines.clear();
    REQUIRE(append_upstream_header_lines(r, nullptr, lines, has_host));
    CHECK_FALSE(has_host);
    CHECK(lines.find("A: b\r\n") == 0);
  }

  TEST_CASE("CR, LF and NUL are found at every position of a long value, and no other byte is refused") {
    ForwardRequest r;
    r.client_host.clear();
    std::string lines;
    bool has_host = false;
    for (char bad : {'\r', '\n', '\0'}) {
      for (std::size_t at = 0; at < 40; ++at) {
        std::string value(40, 'v');
        value[at] = bad;
        r.headers = {{"A", value}};
        lines.clear();
        CHECK_FALSE(append_upstream_header_lines(r, nullptr, lines, has_host));
      }
    }
    std::string every_other;  // bytes 1..255 but CR and LF: below 14, 0x80 and above, in runs of 8
    for (int c = 1; c < 256; ++c)
      if (c != '\r' && c != '\n') every_other += static_cast<char>(c);
    r.headers = {{"A", every_other}, {"X-Forwarded-For", "192.0.2.1"}, {"X-Forwarded-For", "192.0.2.2"}};
    r.client_address = "127.0.0.9";
    lines.clear();
    REQUIRE(append_upstream_header_lines(r, nullptr, lines, has_host));
    CHECK(lines.find("A: " + every_other + "\r\n") == 0);
    CHECK(lines.find("X-Forwarded-For: 192.0.2.1, 192.0.2.2, 127.0.0.9\r\n") != std::string::npos);
    r.client_address.clear();
    r.headers = {{"X-Forwarded-For", "192.0.2.1"}};
    lines.clear();
    REQUIRE(append_upstream_header_lines(r, nullptr, lines, has_host));
    CHECK(lines == "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\n");
  }

  TEST_CASE("X-Forwarded-For joins the client's values and the client address, with no comma before the first") {
    auto chain = [](std::vector<Header> headers, std::string address) {
      ForwardRequest r;
      r.headers = std::move(headers);
      r.client_address = std::move(address);
      r.client_host.clear();
      return find(upstream_request_headers(r, nullptr), "X-Forwarded-For");
    };
    CHECK(chain({}, "") == "<none>");
    CHECK(chain({}, "127.0.0.9") == "127.0.0.9");
    CHECK(chain({{"X-Forwarded-For", ""}}, "127.0.0.9") == "127.0.0.9");
    CHECK(chain({{"X-Forwarded-For", ""}}, "") == "<none>");
    CHECK(chain({{"X-Forwarded-For", "192.0.2.1"}}, "") == "192.0.2.1");
    CHECK(chain({{"x-forwarded-for", "192.0.2.1"}, {"X-Forwarded-For", ""}}, "127.0.0.9") == "192.0.2.1, , 127.0.0.9");
    CHECK(chain({{"X-Forwarded-For", "a"}, {"X-Forwarded-For", "b"}, {"X-Forwarded-For", "c"}}, "d") == "a, b, c, d");
  }
}
