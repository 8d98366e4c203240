// The C++ launcher of kubesim (tests/kubesim/kubesim_process.h).
#include "kubesim/kubesim_process.h"

#include <doctest/doctest.h>

#include <csignal>
#include <filesystem>

using kupstream::test::KubesimProcess;

TEST_SUITE("KubesimProcess") {
  TEST_CASE("starts kubesim, reads its ready file and stops it by its PID") {
    int pid = 0;
    {
      KubesimProcess::Options options;
      options.cluster = "tke-a";
      KubesimProcess sim(options);
      const auto& info = sim.info();
      pid = info.pid;
      CHECK(pid > 0);
      CHECK(info.port > 0);
      CHECK(info.cluster == "tke-a");
      CHECK(info.server == "https://127.0.0.1:" + std::to_string(info.port));
      CHECK(std::filesystem::exists(info.ca_file));
      CHECK_FALSE(info.admin_token.empty());
      CHECK_FALSE(sim.token("admin").empty());
      CHECK(std::filesystem::exists(info.users.at("admin").kubeconfig));
      auto state = sim.admin("GET", "/state");
      REQUIRE(state.exit_code == 0);
      CHECK(state.json()["watchList"].str() == "refuse");
    }
    CHECK(::kill(pid, 0) != 0);  // gone
  }

  TEST_CASE("admin calls seed objects that the API then serves") {
    KubesimProcess::Options options;
    options.cluster = "tke-b";
    options.extra_args = {"--watch-list", "support"};
    KubesimProcess sim(options);
    auto made = sim.admin("POST", "/objects", R"({"object": {"apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice", "metadata": {"name": "web-1", "namespace": "demo",
        "labels": {"kubernetes.io/service-name": "web"}}, "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.1.5"], "conditions": {"ready": true}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}})");
    REQUIRE(made.exit_code == 0);
    auto list = sim.api("admin", "GET", "/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices");
    REQUIRE(list.exit_code == 0);
    auto j = list.json();
    CHECK(j["kind"].str() == "EndpointSliceList");
    REQUIRE(j["items"].array().size() == 1);
    CHECK(j["items"][0]["endpoints"][0]["addresses"][0].str() == "127.0.1.5");
    auto denied = sim.api("admin", "GET", "/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices/nope");
    CHECK(denied.exit_code == 1);
    CHECK(denied.json()["code"].number() == 404);
    CHECK(sim.admin("GET", "/state").json()["watchList"].str() == "support");
  }
}
