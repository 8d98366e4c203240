// HostPortText: IPv4 host:port text inline, longer (IPv6) text in a heap block; copies and
// moves keep the text; the PodTarget keeps none. The addresses are data only:
// nothing here connects anywhere (the private-range and ULA literals are there for their length).
#include "upstream/host_port_text.h"

#include <doctest/doctest.h>

#include <string>
#include <utility>

#include "upstream/forwarding_context.h"

using kupstream::detail::HostPortText;

TEST_SUITE("HostPortText") {
  TEST_CASE("the longest IPv4 host:port is inline; IPv6 text goes to the heap") {
    HostPortText v4("255.255.255.255:65535");
    CHECK(v4.is_inline());
    CHECK(v4.view() == "255.255.255.255:65535");
    HostPortText edge(std::string(HostPortText::kInline, 'x'));
    CHECK(edge.is_inline());
    CHECK(edge.view().size() == HostPortText::kInline);
    HostPortText v6("[fd00:1234:5678:9abc:def0:1234:5678:9abc]:8443");
    CHECK_FALSE(v6.is_inline());
    CHECK(v6 == "[fd00:1234:5678:9abc:def0:1234:5678:9abc]:8443");
    CHECK(v6.str() == std::string(v6.view()));
    HostPortText empty;
    CHECK(empty.view().empty());
    CHECK(empty.is_inline());
  }

  TEST_CASE("copies and moves keep the text; a moved-from text is empty") {
    for (const std::string text : {"10.244.123.45:8080", "[::1]:8080", "[fd00:aaaa:bbbb:cccc:dddd:eeee:ffff:1]:80"}) {
      HostPortText a(text);
      HostPortText b = a;
      CHECK(b == text);
      CHECK(a == text);
      HostPortText c(std::move(a));
      CHECK(c == text);
      CHECK(a.view().empty());  // NOLINT(bugprone-use-after-move): empty by contract
      HostPortText d("127.0.1.5:80");
      d = c;
      CHECK(d == text);
      HostPortText e("[fd00::ffff:ffff:ffff:ffff:ffff]:65535");
      e = std::move(d);
      CHECK(e == text);
      const HostPortText& same = e;
      e = same;  // self-assignment keeps it
      CHECK(e == text);
    }
  }

  TEST_CASE("a HostPortText is 24 bytes, a PodTarget 24 (it keeps no address text)") {
    CHECK(sizeof(HostPortText) == 24);
    // 20 bytes of fields: UpstreamPod puts its first field in the last 4 (upstream_pods_test).
    CHECK(sizeof(kupstream::detail::PodTarget) == 24);
  }
}
