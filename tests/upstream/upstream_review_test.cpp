// Upstream request-path behaviours found in the review of the optimized request path.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "upstream/support/pod_farm.h"
#include "upstream/support/upstream_env.h"

using namespace kupstream;
using namespace kupstream::test;

namespace {

// "<before>\0<after>" (built char by char: GCC 12 misreads the (ptr, len) constructor here).
std::string with_nul(const std::string& before, const std::string& after) {
  std::string s = before;
  s.push_back('\0');
  s += after;
  return s;
}

UpstreamConfig config_of(const std::string& service) {
  UpstreamConfig c;
  c.name = service;
  c.services = {UpstreamEnv::ref("tke-a", service)};
  return c;
}

}  // namespace

TEST_SUITE("Upstream") {
  TEST_CASE("a NUL byte in a header value or the target is refused by forward() and never counts against the Pod") {
    TempDir dir;
    PodFarm farm(dir.path(), 1, "nul", 61);
    UpstreamEnv env;
    env.publish("tke-a", "nul", farm.port(), pods_of(farm));
    UpstreamOptions options;
    options.outlier.consecutive_failures = 2;
    env.start(config_of("nul"), options);

    // Handles of requests forward() wrongly accepted, and how many of them completed.
    std::vector<std::unique_ptr<UpstreamRequest>> accepted;
    auto completed = std::make_shared<int>(0);
    auto try_forward = [&](ForwardRequest req) {
      ForwardHandlers h;
      h.on_complete = [completed](Status) { ++*completed; };
      auto r = env.upstream->forward(std::move(req), std::move(h));
      CHECK_FALSE(r.ok());
      if (!r.ok()) CHECK(r.error().code == make_error_code(Errc::invalid_argument));
      else accepted.push_back(std::move(*r));
    };
    for (int i = 0; i < 3; ++i) {
      ForwardRequest bad_header;
      bad_header.target = "/";
      bad_header.headers = {{"X-Bad", with_nul("a", "b")}};
      try_forward(std::move(bad_header));
      ForwardRequest bad_target;
      bad_target.target = with_nul("/a", "b");
      try_forward(std::move(bad_target));
    }
    const auto wrongly_accepted = static_cast<int>(accepted.size());
    CHECK(env.loop.run_until([&] { return *completed == wrongly_accepted; }, 3000));

    // A client's malformed request says nothing about the Pod: it is neither failed nor ejected.
    const UpstreamStats stats = env.upstream->stats();
    REQUIRE(stats.pods.size() == 1);
    CHECK(stats.pods[0].failures == 0);
    CHECK_FALSE(stats.pods[0].ejected);
    CHECK(env.upstream->ready());
    const Outcome ok = env.get("/");
    CHECK(ok.status.ok());
    CHECK(ok.code == 200);
    accepted.clear();
  }
}
