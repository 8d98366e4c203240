#include "kube/line_splitter.h"

#include <doctest/doctest.h>

#include "fixture.h"
#include "kube/decoder.h"

using namespace kupstream;
using namespace kupstream::kube;

namespace {

std::vector<std::string> drain(LineSplitter& s) {
  std::vector<std::string> out;
  while (auto l = s.next()) out.emplace_back(*l);
  return out;
}

// Feeds `bytes` in pieces that end at the given cut positions.
std::vector<std::string> feed_cut(std::string_view bytes, const std::vector<std::size_t>& cuts) {
  LineSplitter s;
  std::vector<std::string> out;
  std::size_t from = 0;
  for (std::size_t c : cuts) {
    REQUIRE(s.append(bytes.substr(from, c - from)).ok());
    for (auto& l : drain(s)) out.push_back(l);
    from = c;
  }
  REQUIRE(s.append(bytes.substr(from)).ok());
  for (auto& l : drain(s)) out.push_back(l);
  CHECK(s.pending_bytes() == 0);
  return out;
}

}  // namespace

TEST_SUITE("LineSplitter") {
  TEST_CASE("captured watch streams split anywhere give the same events, each decodable") {
    for (const char* name : {"watch-endpointslices.jsonl", "watch-two-events-one-chunk.jsonl", "watch-several-events.jsonl"}) {
      CAPTURE(name);
      std::string bytes = kube_test::fixture(name);
      auto expected = kube_test::fixture_lines(name);
      REQUIRE(feed_cut(bytes, {}) == expected);
      // One cut at every position, and two cuts around every position.
      for (std::size_t i = 0; i <= bytes.size(); ++i) {
        auto got = feed_cut(bytes, {i});
        REQUIRE(got == expected);
        if (i + 7 <= bytes.size()) REQUIRE(feed_cut(bytes, {i, i + 1, i + 7}) == expected);
      }
      Decoder d;
      for (auto& l : expected) {
        auto r = d.decode_event<EndpointSlice>(l);
        CHECK_MESSAGE(r.ok(), r.error().reason);
      }
    }
  }

  TEST_CASE("byte-at-a-time feeding yields each line as soon as its newline arrives") {
    std::string bytes = kube_test::fixture("watch-two-events-one-chunk.jsonl");
    LineSplitter s;
    std::size_t lines = 0;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      REQUIRE(s.append(bytes.substr(i, 1)).ok());
      auto l = s.next();
      if (bytes[i] == '\n') {
        REQUIRE(l.has_value());
        ++lines;
      } else {
        CHECK_FALSE(l.has_value());
      }
    }
    CHECK(lines == 2);
  }

  TEST_CASE("blank lines and CRLF endings are skipped and trimmed") {
    LineSplitter s;
    REQUIRE(s.append("\n\r\n{\"a\":1}\r\n  \n{\"b\":2}\n").ok());
    CHECK(drain(s) == std::vector<std::string>{"{\"a\":1}", "{\"b\":2}"});
  }

  TEST_CASE("an unterminated last event stays pending so a cut-off stream can be detected") {
    LineSplitter s;
    REQUIRE(s.append("{\"a\":1}\n{\"b\":").ok());
    CHECK(drain(s).size() == 1);
    CHECK(s.pending_bytes() == 5);
    CHECK(s.pending() == "{\"b\":");
    s.clear();
    CHECK(s.pending_bytes() == 0);
  }

  TEST_CASE("a line longer than the limit is an error") {
    LineSplitter s(16);
    REQUIRE(s.append("0123456789").ok());
    auto r = s.append("0123456789");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == make_error_code(Errc::decode_error));
    CHECK(r.error().reason.find("exceeds max_event_bytes (16 bytes)") != std::string::npos);
    // Lines within the limit still pass after clear().
    REQUIRE(s.append("short\n").ok());
    CHECK(drain(s) == std::vector<std::string>{"short"});
  }

  TEST_CASE("a complete line longer than the limit is an error too, also between short ones") {
    LineSplitter s(16);
    auto r = s.append("ok\n0123456789abcdefXYZ\nok\n");  // 19 bytes in one piece
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().reason.find("exceeds max_event_bytes (16 bytes)") != std::string::npos);
    LineSplitter t(16);
    REQUIRE(t.append("0123456789").ok());
    REQUIRE_FALSE(t.append("abcdefXYZ\n").ok());  // completed by the second piece
    LineSplitter u(16);
    REQUIRE(u.append("0123456789abcdef\n").ok());  // exactly the limit
    CHECK(drain(u) == std::vector<std::string>{"0123456789abcdef"});
  }
}
