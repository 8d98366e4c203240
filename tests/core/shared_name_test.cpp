// SharedName: copies share one buffer, equal text compares equal whether shared or not, it reads
// like a const std::string, and copies dropped on other threads free the buffer once.
// SharedNameList: the same for a list of names.
#include "kupstream/shared_name.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

using kupstream::SharedName;
using kupstream::SharedNameList;

TEST_SUITE("shared_name") {
  TEST_CASE("copies share the buffer; equal text built twice does not, but compares equal") {
    SharedName a("node-a-pool1-007");
    SharedName b = a;
    SharedName c("node-a-pool1-007");
    CHECK(a.shares_buffer_with(b));
    CHECK(b.c_str() == a.c_str());
    CHECK_FALSE(a.shares_buffer_with(c));
    CHECK(a == c);
    CHECK(a == b);
    CHECK_FALSE(a != c);
  }

  TEST_CASE("reads like a const std::string") {
    SharedName n = "zone-1a";
    CHECK(n == "zone-1a");
    CHECK("zone-1a" == n);
    CHECK(n == std::string("zone-1a"));
    CHECK(n == std::string_view("zone-1a"));
    CHECK(n != "zone-1b");
    CHECK(n.size() == 7);
    CHECK_FALSE(n.empty());
    CHECK(n.str() == "zone-1a");
    CHECK(std::string(n.c_str()) == "zone-1a");
    CHECK(n.c_str()[n.size()] == '\0');
    CHECK(n.view().data() == n.c_str());  // one buffer, no copy
    CHECK(fmt::format("[{}]", n) == "[zone-1a]");  // through the implicit string_view
    std::string_view v = n;
    CHECK(v == "zone-1a");
    CHECK(std::string(n) == "zone-1a");
    CHECK(SharedName("a") < SharedName("b"));
    CHECK(SharedName("a") < "b");
    CHECK(SharedName("b") > std::string("a"));
  }

  TEST_CASE("the empty name holds no buffer and equals \"\"") {
    SharedName e;
    SharedName from_empty("");
    CHECK(e.empty());
    CHECK(from_empty.empty());
    CHECK(e == "");
    CHECK(e == from_empty);
    CHECK(e.c_str()[0] == '\0');
    CHECK(e.size() == 0);
    CHECK(e.shares_buffer_with(from_empty));  // both null
  }

  TEST_CASE("assignment, move and swap keep the text; a moved-from name is empty") {
    SharedName a("one");
    SharedName b("two");
    a = b;
    CHECK(a == "two");
    CHECK(a.shares_buffer_with(b));
    SharedName c = std::move(a);
    CHECK(c == "two");
    CHECK(a.empty());  // NOLINT(bugprone-use-after-move): the contract says so
    c = "three";
    CHECK(c == "three");
    CHECK(b == "two");
    b.swap(c);
    CHECK(b == "three");
    CHECK(c == "two");
    SharedName& self = b;
    b = self;
    CHECK(b == "three");
  }

  TEST_CASE("works as a key: std::map and std::unordered_set") {
    std::map<SharedName, int> m{{"b", 2}, {"a", 1}};
    CHECK(m.begin()->first == "a");
    std::unordered_set<SharedName> s{"x", SharedName("x"), "y"};
    CHECK(s.size() == 2);
    CHECK(s.count(SharedName("y")) == 1);
  }

  TEST_CASE("copies made and dropped on several threads leave the text intact") {
    SharedName n("shared-across-threads");
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([n] {
        for (int i = 0; i < 10000; ++i) {
          SharedName copy = n;
          if (copy.size() != 21) std::abort();
        }
      });
    for (auto& t : threads) t.join();
    CHECK(n == "shared-across-threads");
  }

  TEST_CASE("a long name and one of a single byte keep their text") {
    const std::string long_text(300, 'x');
    SharedName a(long_text), b("y");
    CHECK(a.size() == 300);
    CHECK(a == long_text);
    CHECK(b.size() == 1);
    CHECK(std::string(b.c_str()) == "y");
  }
}

TEST_SUITE("shared_name_list") {
  TEST_CASE("reads like a const vector of names; copies share it, equal lists built twice compare equal") {
    SharedNameList a = {"zone-1a", "zone-1b"};
    REQUIRE(a.size() == 2);
    CHECK_FALSE(a.empty());
    CHECK(a[0] == "zone-1a");
    CHECK(a.front() == "zone-1a");
    CHECK(a.back() == "zone-1b");
    CHECK(std::vector<std::string>(a.begin(), a.end()) == std::vector<std::string>{"zone-1a", "zone-1b"});
    CHECK(a == std::vector<std::string>{"zone-1a", "zone-1b"});
    CHECK_FALSE(a == std::vector<std::string>{"zone-1a"});
    SharedNameList b = a;
    CHECK(b.shares_buffer_with(a));
    CHECK(b.begin() == a.begin());
    SharedNameList c;
    const std::vector<std::string> texts{"zone-1a", "zone-1b"};
    c.assign(texts.begin(), texts.end());
    CHECK_FALSE(c.shares_buffer_with(a));
    CHECK(c == a);
    CHECK_FALSE(c == SharedNameList{"zone-1a"});
    CHECK(std::find(a.begin(), a.end(), "zone-1b") != a.end());
  }

  TEST_CASE("its names are shared with the SharedNames it was built from") {
    SharedName zone("zone-1a");
    SharedNameList list = {zone, "zone-1c"};
    CHECK(list[0].shares_buffer_with(zone));
    CHECK_FALSE(list[1].shares_buffer_with(zone));
    // The list keeps its names alive after the originals are gone.
    zone = SharedName();
    CHECK(list[0] == "zone-1a");
  }

  TEST_CASE("the empty list holds no buffer; move leaves the source empty") {
    SharedNameList e;
    CHECK(e.empty());
    CHECK(e.size() == 0);
    CHECK(e.begin() == e.end());
    CHECK(e == SharedNameList{});
    CHECK(SharedNameList{} .empty());
    SharedNameList a = {"zone-1a"};
    SharedNameList m = std::move(a);
    CHECK(m == SharedNameList{"zone-1a"});
    CHECK(a.empty());  // NOLINT(bugprone-use-after-move): a moved-from list is empty by contract
    const SharedNameList& same = m;
    m = same;  // self-assignment keeps the list
    CHECK(m.size() == 1);
    a.swap(m);
    CHECK(a.size() == 1);
    CHECK(m.empty());
  }

  TEST_CASE("copies made and dropped on several threads leave the list intact") {
    SharedNameList list = {"zone-1a", "zone-1b", "zone-1c"};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([list] {
        for (int i = 0; i < 10000; ++i) {
          SharedNameList copy = list;
          if (copy.size() != 3 || copy[2].size() != 7) std::abort();
        }
      });
    for (auto& t : threads) t.join();
    CHECK(list == std::vector<std::string>{"zone-1a", "zone-1b", "zone-1c"});
  }
}
