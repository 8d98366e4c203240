// The Upstream request path against kubesim and real Pods: Host override and X-Forwarded-*,
// HTTPS Pods with a test CA, timeouts, streamed bodies both ways, the API server going away,
// and the Prometheus text.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <set>
#include <sstream>

#include "net/support/net_script_server.h"
#include "upstream/support/pod_farm.h"
#include "upstream/support/upstream_env.h"

using namespace kupstream;
using namespace kupstream::test;

namespace {

UpstreamConfig config_of(const std::string& service, std::optional<std::string> host = std::nullopt,
                         Scheme scheme = Scheme::http) {
  UpstreamConfig c;
  c.name = service;
  c.services = {UpstreamEnv::ref("tke-a", service)};
  c.host_header = std::move(host);
  c.scheme = scheme;
  return c;
}

// Serves one slow answer per request: reads it, waits `delay_ms` (or until the server stops).
ScriptServer::Handler slow_pod(int delay_ms, const ScriptServer** self) {
  return [delay_ms, self](int& fd, int) {
    for (;;) {
      if (read_request(fd, 3000).empty()) return;
      for (int waited = 0; waited < delay_ms && !(*self)->stopping(); waited += 10) sleep_ms(10);
      if (!write_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow")) return;
    }
  };
}

}  // namespace

TEST_SUITE("Upstream") {
  TEST_CASE("the Host override and X-Forwarded-For/Proto/Host reach the Pod") {
    TempDir dir;
    PodFarm farm(dir.path(), 1, "hd", 21);
    UpstreamEnv env;
    env.publish("tke-a", "hd", farm.port(), pods_of(farm));
    env.start(config_of("hd", "api.internal:8080"));
    ForwardRequest req;
    req.target = "/headers";
    req.client_address = "192.0.2.7";
    req.client_scheme = "https";
    req.client_host = "shop.example.com";
    req.headers = {{"Host", "ignored.example"}, {"X-Forwarded-For", "203.0.113.9"}, {"Connection", "X-Drop"},
                   {"X-Drop", "1"}};
    auto r = env.send(std::move(req));
    REQUIRE(r.status.ok());
    CHECK(r.code == 200);
    CHECK(r.body == "host=api.internal:8080 xff=203.0.113.9, 192.0.2.7 proto=https xhost=shop.example.com\n");

    // Without an override the client's Host goes through.
    env.upstream.reset();
    env.start(config_of("hd"));
    r = env.get("/headers");
    CHECK(r.body == "host=gw.test xff=192.0.2.7 proto=http xhost=gw.test\n");
  }

  TEST_CASE("HTTPS Pods are verified with the test CA under the Host override's name") {
    TempDir dir;
    TestPki pki(dir.path());
    TempDir www;
    PodFarm farm(www.path(), 2, "tls", 22, &pki);
    UpstreamEnv env;
    env.publish("tke-a", "tls", farm.port(), pods_of(farm));
    UpstreamOptions o;
    o.tls.ca_file = pki.ca_cert;
    env.start(config_of("tls", "api.kupstream.test", Scheme::https), o);
    auto r = env.get("/headers");
    REQUIRE(r.status.ok());
    CHECK(r.body.rfind("host=api.kupstream.test ", 0) == 0);
    auto t = env.traffic(20, 4);
    CHECK(t.failed == 0);
    CHECK(t.by_body[farm.name(0)] == 10);
    CHECK(t.by_body[farm.name(1)] == 10);

    SUBCASE("a wrong CA fails with tls_verify_failed naming the Pod") {
      env.upstream.reset();
      o.tls.ca_file = pki.other_ca_cert;
      env.start(config_of("tls", "api.kupstream.test", Scheme::https), o);
      r = env.get("/");
      REQUIRE_FALSE(r.status.ok());
      CHECK(r.status.error().code == Errc::tls_verify_failed);
      CHECK(r.status.error().reason.find("upstream \"tls\"") == 0);
      CHECK(r.status.error().reason.find(":" + std::to_string(farm.port())) != std::string::npos);
    }
    SUBCASE("the verification name comes from the Host override") {
      env.upstream.reset();
      env.start(config_of("tls", "wrong.example", Scheme::https), o);  // the certificate does not name it
      r = env.get("/");
      REQUIRE_FALSE(r.status.ok());
      CHECK(r.status.error().code == Errc::tls_verify_failed);
      env.upstream.reset();
      o.tls.server_name = "localhost";  // explicit server_name wins over the override
      env.start(config_of("tls", "wrong.example", Scheme::https), o);
      r = env.get("/headers");
      CHECK(r.status.ok());
      CHECK(r.body.rfind("host=wrong.example ", 0) == 0);
    }
    SUBCASE("a CA file that does not exist is a config error and leaves the loop clean") {
      env.upstream.reset();
      o.tls.ca_file = dir.file("missing.pem");
      ClusterMap map{{"tke-a", env.clients["tke-a"].get()}};
      auto u = Upstream::create(env.loop.loop, config_of("tls", std::nullopt, Scheme::https), map, o);
      REQUIRE_FALSE(u.ok());
      CHECK(u.error().reason.find("upstream \"tls\"") == 0);
    }
  }

  TEST_CASE("HTTPS Pods are verified by default; insecure_skip_verify is explicit and logged once per Upstream") {
    TempDir dir;
    TestPki pki(dir.path());
    TempDir www;
    PodFarm farm(www.path(), 2, "tlsdef", 31, &pki);
    UpstreamEnv env;
    env.publish("tke-a", "tlsdef", farm.port(), pods_of(farm));
    {
      UpstreamOptions o;  // no CA: the system trust store, which does not know the test CA
      env.start(config_of("tlsdef", "api.kupstream.test", Scheme::https), o);
      auto r = env.get("/");
      REQUIRE_FALSE(r.status.ok());
      CHECK(r.status.error().code == Errc::tls_verify_failed);
      env.upstream.reset();
    }
    std::vector<std::string> warnings;
    UpstreamOptions o;
    o.tls.insecure_skip_verify = true;
    o.log = [&warnings](LogLevel level, std::string_view m) {
      if (level == LogLevel::warning && (m.find("insecure") != std::string_view::npos || m.find("DISABLED") != std::string_view::npos))
        warnings.emplace_back(m);
    };
    env.start(config_of("tlsdef", "wrong.example", Scheme::https), o);  // not even the name is checked
    auto t = env.traffic(40, 8);  // several connections to each of the two Pods
    CHECK(t.failed == 0);
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0] == "upstream \"tlsdef\": TLS verification of Pods is OFF (insecure_skip_verify)");
  }

  TEST_CASE("on_head sees the Pod's headers in order without hop-by-hop ones, also beyond 32 of them") {
    std::string head = "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\n";
    for (int i = 0; i < 40; ++i) head += fmt::format("X-H{}: value-{}\r\n", i, i);
    head += "X-Hop: dropped\r\nContent-Length: 2\r\n\r\nok";
    ScriptServer pod([head](int& fd, int) {
      while (!read_request(fd, 3000).empty())
        if (!write_all(fd, head)) return;
    });
    UpstreamEnv env;
    env.publish("tke-a", "hh", pod.port(), {{"127.0.0.1", "hh"}});
    env.start(config_of("hh"));
    auto r = env.get("/");
    REQUIRE(r.status.ok());
    CHECK(r.body == "ok");
    CHECK(r.pod == "127.0.0.1:" + std::to_string(pod.port()));
    REQUIRE(r.headers.size() == 41);
    for (int i = 0; i < 40; ++i) CHECK(r.headers[i] == Header{fmt::format("X-H{}", i), fmt::format("value-{}", i)});
    CHECK(r.headers[40] == Header{"Content-Length", "2"});
  }

  TEST_CASE("a Pod's response head over max_response_header_bytes or _count fails with http_limit_exceeded naming the limit") {
    // 100 header fields of ~60 bytes: over 4096 bytes and over 50 fields.
    ScriptServer big([](int& fd, int) {
      for (;;) {
        if (read_request(fd, 3000).empty()) return;
        std::string head = "HTTP/1.1 200 OK\r\n";
        for (int i = 0; i < 100; ++i) head += fmt::format("X-Filler-{:03}: {}\r\n", i, std::string(40, 'f'));
        if (!write_all(fd, head + "Content-Length: 2\r\n\r\nok")) return;
      }
    });
    UpstreamEnv env;
    env.publish("tke-a", "bighead", big.port(), {{"127.0.0.1", "big"}});
    UpstreamOptions o;
    o.retries.max_retries = 0;
    env.start(config_of("bighead"), o);
    auto r = env.get("/");  // the defaults (64 KiB, 128 fields) let it through
    CHECK(r.status.ok());
    env.upstream.reset();
    o.max_response_header_bytes = 4096;
    env.start(config_of("bighead"), o);
    r = env.get("/");
    REQUIRE_FALSE(r.status.ok());
    CHECK(r.status.error().code == Errc::http_limit_exceeded);
    CHECK(r.status.error().reason.find("max_header_bytes (4096 bytes)") != std::string::npos);
    CHECK(r.status.error().reason.find("upstream \"bighead\"") == 0);
    env.upstream.reset();
    o.max_response_header_bytes = 64 * 1024;
    o.max_response_header_count = 50;
    env.start(config_of("bighead"), o);
    r = env.get("/");
    REQUIRE_FALSE(r.status.ok());
    CHECK(r.status.error().code == Errc::http_limit_exceeded);
    CHECK(r.status.error().reason.find("max_header_count (50)") != std::string::npos);
  }

  TEST_CASE("a slow Pod gives timed_out naming the upstream and the Pod, for both timeouts") {
    const ScriptServer* self = nullptr;
    ScriptServer slow(slow_pod(2000, &self));
    self = &slow;
    UpstreamEnv env;
    env.publish("tke-a", "to", slow.port(), {{"127.0.0.1", "slow"}});
    const std::string pod = "127.0.0.1:" + std::to_string(slow.port());
    UpstreamOptions o;
    o.retries.max_retries = 0;
    o.timeouts.response_header = std::chrono::milliseconds{150};
    env.start(config_of("to"), o);
    auto r = env.get("/");
    REQUIRE_FALSE(r.status.ok());
    CHECK(r.status.error().code == Errc::timed_out);
    CHECK(r.status.error().reason.find("upstream \"to\"") == 0);
    CHECK(r.status.error().reason.find(pod) != std::string::npos);

    env.upstream.reset();
    o.timeouts.response_header = std::chrono::milliseconds{5000};
    o.timeouts.total = std::chrono::milliseconds{200};
    env.start(config_of("to"), o);
    const auto start = std::chrono::steady_clock::now();
    r = env.get("/");
    REQUIRE_FALSE(r.status.ok());
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds{1500});
    CHECK(r.status.error().code == Errc::timed_out);
    CHECK(r.status.error().reason.find("upstream \"to\"") == 0);
    CHECK(r.status.error().reason.find(pod) != std::string::npos);
    CHECK(env.upstream->stats().failures == 1);
  }

  TEST_CASE("streamed request bodies reach the Pod, chunked and with Content-Length") {
    TempDir dir;
    PodFarm farm(dir.path(), 2, "up", 23);
    UpstreamEnv env;
    env.publish("tke-a", "up", farm.port(), pods_of(farm));
    env.start(config_of("up"));
    for (bool chunked : {true, false}) {
      CAPTURE(chunked);
      const std::string name = chunked ? "chunked" : "length";
      std::string expected;
      for (int i = 0; i < 64; ++i) expected += std::string(16 * 1024, static_cast<char>('a' + i % 26));
      ForwardRequest req;
      req.method = "PUT";
      req.target = "/upload/" + name;
      req.streamed = true;
      if (!chunked) req.content_length = expected.size();
      bool done = false, writable = false;
      int code = 0;
      Status status;
      ForwardHandlers h;
      h.on_head = [&](const ForwardResponseHead& head) { code = head.status; };
      h.on_writable = [&] { writable = true; };
      h.on_complete = [&](Status s) {
        status = std::move(s);
        done = true;
      };
      auto handle = env.upstream->forward(std::move(req), std::move(h));
      REQUIRE(handle.ok());
      auto& up = **handle;
      std::size_t sent = 0;
      // 300 KiB before the first attempt has a connection (above the early-buffer mark: the
      // caller is asked to wait for on_writable), the rest in 64 KiB pieces with backpressure.
      auto first = up.write_body(std::string_view(expected).substr(0, 300 * 1024));
      REQUIRE(first.ok());
      CHECK_FALSE(*first);
      REQUIRE(env.loop.run_until([&] { return writable; }, 5000));
      writable = false;
      sent = 300 * 1024;
      while (sent < expected.size()) {
        env.loop.run_for(1);
        const std::size_t n = std::min<std::size_t>(64 * 1024, expected.size() - sent);
        auto more = up.write_body(std::string_view(expected).substr(sent, n));
        REQUIRE(more.ok());
        sent += n;
        if (!*more) REQUIRE(env.loop.run_until([&] { return writable; }, 5000));
        writable = false;
      }
      REQUIRE(up.end_body().ok());
      REQUIRE(env.loop.run_until([&] { return done; }, 10000));
      CHECK(status.ok());
      CHECK((code == 201 || code == 204));
      CHECK(farm.uploaded(name) == expected);
      CHECK(up.write_body("x").error().code == Errc::invalid_argument);
    }
  }

  TEST_CASE("a streamed response honours pause_body and resume_body") {
    TempDir dir;
    PodFarm farm(dir.path(), 1, "dl", 24);
    std::string content;
    for (int i = 0; i < 4 * 1024 * 1024 / 8; ++i) content += fmt::format("{:07x}\n", i);
    farm.add_file("big", content);
    UpstreamEnv env;
    env.publish("tke-a", "dl", farm.port(), pods_of(farm));
    env.start(config_of("dl"));
    std::string body;
    bool paused = false, done = false;
    int pauses = 0;
    std::optional<std::uint64_t> length;
    Status status;
    std::unique_ptr<UpstreamRequest> handle;
    ForwardHandlers h;
    h.on_head = [&](const ForwardResponseHead& head) { length = head.content_length; };
    h.on_body = [&](std::string_view b) {
      CHECK_FALSE(paused);  // nothing arrives while paused
      body.append(b);
      handle->pause_body();
      paused = true;
      ++pauses;
    };
    h.on_complete = [&](Status s) {
      status = std::move(s);
      done = true;
    };
    ForwardRequest req;
    req.target = "/files/big";
    auto f = env.upstream->forward(std::move(req), std::move(h));
    REQUIRE(f.ok());
    handle = std::move(*f);
    while (!done) {
      REQUIRE(env.loop.run_until([&] { return paused || done; }, 5000));
      if (done) break;
      env.loop.run_for(2);
      paused = false;
      handle->resume_body();
    }
    CHECK(status.ok());
    CHECK(length == content.size());
    CHECK(body == content);
    CHECK(pauses > 2);
  }

  TEST_CASE("when the API server goes away traffic keeps flowing and the state reports growing staleness") {
    KubesimProcess& sim = shared_kubesim("tke-gone");  // this test's own API server: it gets killed
    TempDir dir;
    PodFarm farm(dir.path(), 2, "st", 25);
    UpstreamEnv env({"tke-gone"});
    env.admin("tke-gone", {apply_op(service_object("st", farm.port())),
                           apply_op(slice_object("st", "st-1", farm.port(), pods_of(farm)))});
    UpstreamConfig c;
    c.name = "st";
    c.services = {UpstreamEnv::ref("tke-gone", "st")};
    env.start(c);
    sim.kill_now();
    REQUIRE(env.loop.run_until([&] { return env.upstream->stats().services[0].state.phase == WatchPhase::stale; }, 15000));
    const auto first = env.upstream->stats().services[0].staleness;
    auto r = env.traffic(50, 4);
    CHECK(r.failed == 0);
    CHECK(r.by_body[farm.name(0)] + r.by_body[farm.name(1)] == 50);
    env.loop.run_for(300);
    const auto s = env.upstream->stats().services[0];
    CHECK(s.state.phase == WatchPhase::stale);
    CHECK(s.staleness >= first + std::chrono::milliseconds{250});
    CHECK(s.state.reason.find("tke-gone") != std::string::npos);
    const std::string text = env.upstream->prometheus_text();
    CHECK(text.find("kupstream_service_synced{upstream=\"st\",service=\"tke-gone/default/st:http\",phase=\"stale\"} 0") !=
          std::string::npos);
  }

  TEST_CASE("the Prometheus text is well-formed: HELP and TYPE for each metric, cumulative buckets") {
    TempDir dir;
    PodFarm farm(dir.path(), 2, "pm", 26);
    UpstreamEnv env;
    env.publish("tke-a", "pm", farm.port(), pods_of(farm));
    env.start(config_of("pm"));
    env.traffic(50, 4);
    const std::string text = env.upstream->prometheus_text();
    std::istringstream in(text);
    std::string line;
    std::map<std::string, std::string> types;
    std::set<std::string> helps;
    std::vector<std::pair<double, double>> buckets;  // (le, count)
    double hist_count = -1;
    int samples = 0;
    while (std::getline(in, line)) {
      CAPTURE(line);
      REQUIRE_FALSE(line.empty());
      if (line.rfind("# HELP ", 0) == 0) {
        helps.insert(line.substr(7, line.find(' ', 7) - 7));
        continue;
      }
      if (line.rfind("# TYPE ", 0) == 0) {
        const auto name_end = line.find(' ', 7);
        const std::string name = line.substr(7, name_end - 7);
        CHECK(helps.count(name) == 1);  // HELP comes first
        CHECK(types.count(name) == 0);  // once
        types[name] = line.substr(name_end + 1);
        continue;
      }
      REQUIRE(line[0] != '#');
      ++samples;
      const auto brace = line.find('{');
      const auto space = line.rfind(' ');
      REQUIRE(space != std::string::npos);
      std::string name = line.substr(0, std::min(brace, space));
      const double value = std::stod(line.substr(space + 1));
      std::string family = name;
      for (const char* suffix : {"_bucket", "_sum", "_count"})
        if (!types.count(family) && family.size() > std::strlen(suffix) &&
            family.compare(family.size() - std::strlen(suffix), std::string::npos, suffix) == 0)
          family = family.substr(0, family.size() - std::strlen(suffix));
      REQUIRE(types.count(family) == 1);  // declared before its samples
      if (brace != std::string::npos) CHECK(line.find('}') < space);
      if (name == "kupstream_request_duration_seconds_bucket") {
        const auto le = line.find("le=\"");
        REQUIRE(le != std::string::npos);
        const std::string bound = line.substr(le + 4, line.find('"', le + 4) - le - 4);
        buckets.emplace_back(bound == "+Inf" ? HUGE_VAL : std::stod(bound), value);
      }
      if (name == "kupstream_request_duration_seconds_count") hist_count = value;
    }
    CHECK(samples > 10);
    CHECK(types["kupstream_request_duration_seconds"] == "histogram");
    REQUIRE(buckets.size() >= 2);
    for (std::size_t i = 1; i < buckets.size(); ++i) {
      CHECK(buckets[i].first > buckets[i - 1].first);
      CHECK(buckets[i].second >= buckets[i - 1].second);
    }
    CHECK(buckets.back().first == HUGE_VAL);
    CHECK(buckets.back().second == hist_count);
    CHECK(hist_count == 50);
  }

  TEST_CASE("metrics stay per service by default: per-Pod series only for the Pods with most failures") {
    TempDir dir;
    PodFarm farm(dir.path(), 4, "pl", 27);
    farm.set_failing(2, true);  // 503 to everything: retried elsewhere, counted as its failures
    UpstreamEnv env;
    env.publish("tke-a", "pl", farm.port(), pods_of(farm));
    UpstreamOptions o;
    o.pod_metrics_limit = 1;
    o.outlier.consecutive_failures = 0;  // keep it in rotation so its failures keep counting
    env.start(config_of("pl"), o);
    auto r = env.traffic(60, 4);
    CHECK(r.failed == 0);
    const UpstreamStats stats = env.upstream->stats();
    REQUIRE(stats.services.size() == 1);
    const ServiceStatus& svc = stats.services[0];
    CHECK(svc.requests >= 60);
    CHECK(svc.failures > 0);
    std::uint64_t pod_requests = 0, pod_failures = 0;
    const PodStats* worst = nullptr;
    for (const auto& p : stats.pods) {
      pod_requests += p.requests, pod_failures += p.failures;
      if (!worst || p.failures > worst->failures) worst = &p;
    }
    CHECK(svc.requests == pod_requests);  // the service's counters are its Pods' sums
    CHECK(svc.failures == pod_failures);
    REQUIRE(worst != nullptr);
    CHECK(worst->pod_name == farm.name(2));
    CHECK(stats.pods.size() == 4);  // stats() still lists every Pod

    const std::string text = env.upstream->prometheus_text();
    const std::string svc_labels = "{upstream=\"pl\",service=\"tke-a/default/pl:http\"}";
    CHECK(text.find(fmt::format("kupstream_service_requests_total{} {}\n", svc_labels, svc.requests)) != std::string::npos);
    CHECK(text.find(fmt::format("kupstream_service_failures_total{} {}\n", svc_labels, svc.failures)) != std::string::npos);
    CHECK(text.find("kupstream_pod_series_limit{upstream=\"pl\"} 1\n") != std::string::npos);
    std::size_t pod_lines = 0;
    for (std::size_t at = 0; (at = text.find("\nkupstream_pod_failures_total{", at)) != std::string::npos; ++at) ++pod_lines;
    CHECK(pod_lines == 1);
    CHECK(text.find(fmt::format("kupstream_pod_failures_total{{upstream=\"pl\",service=\"tke-a/default/pl:http\",pod=\"{}\"",
                                worst->pod)) != std::string::npos);
  }
}
