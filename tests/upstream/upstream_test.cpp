// Upstream basics against kubesim: an empty service, then one Pod (nginx).
#include <doctest/doctest.h>

#include "net/support/net_nginx.h"
#include "upstream/support/upstream_env.h"

using namespace kupstream;
using namespace kupstream::test;

TEST_SUITE("Upstream") {
  TEST_CASE("with no Pod the request fails with no_endpoint naming the upstream, and a Pod added later serves") {
    TempDir dir;
    NginxServer nginx(dir.path());
    UpstreamEnv env;
    env.publish("tke-a", "empty", nginx.plain_port, {});
    env.start(UpstreamEnv::config_for("tke-a", "empty"), {}, false);
    REQUIRE(env.loop.run_until([&] { return env.upstream->stats().services[0].state.phase == WatchPhase::synced; }, 15000));
    CHECK_FALSE(env.upstream->ready());
    auto none = env.get("/hello");
    CHECK(none.status.error().code == Errc::no_endpoint);
    CHECK(none.status.error().reason.find("upstream \"empty\"") == 0);
    CHECK(env.upstream->stats().no_endpoint == 1);

    env.admin("tke-a", {apply_op(slice_object("empty", "empty-1", nginx.plain_port, {{"127.0.0.1", "pod-a"}}))});
    REQUIRE(env.loop.run_until([&] { return env.upstream->ready(); }, 15000));
    auto served = env.get("/hello");
    CHECK(served.status.ok());
    CHECK(served.code == 200);
    CHECK(served.body == "hello\n");
    CHECK(served.pod == "127.0.0.1:" + std::to_string(nginx.plain_port));
  }
}
