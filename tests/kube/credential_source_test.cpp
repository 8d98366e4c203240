#include "kube/credential_source.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "fixture.h"
#include "kube/exec_credential.h"
#include "temp_dir.h"

using namespace kupstream;
using namespace kupstream::kube;
using namespace std::chrono_literals;
using kube_test::TempDir;

namespace {

// A loop per test; the destructor checks that everything closed.
struct Loop {
  uv_loop_t loop{};
  Loop() {
    uv_loop_init(&loop);
    ::alarm(60);  // watchdog: a hung test dies instead of blocking the suite
  }
  ~Loop() {
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
    ::alarm(0);
  }
  void run() { uv_run(&loop, UV_RUN_DEFAULT); }
  // Runs the loop until `done` or until `ms` elapsed.
  template <class Pred>
  bool run_until(Pred done, std::uint64_t ms = 10000) {
    std::uint64_t start = uv_now(&loop);
    while (!done()) {
      uv_update_time(&loop);
      if (uv_now(&loop) - start > ms) return false;
      uv_run(&loop, UV_RUN_ONCE);
    }
    return true;
  }
  void sleep_ms(std::uint64_t ms) {
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    bool fired = false;
    t.data = &fired;
    uv_timer_start(&t, [](uv_timer_t* h) { *static_cast<bool*>(h->data) = true; }, ms, 0);
    run_until([&] { return fired; });
    uv_close(reinterpret_cast<uv_handle_t*>(&t), nullptr);
    uv_run(&loop, UV_RUN_NOWAIT);
  }
};

// get() once and wait for the answer.
Result<CredentialSource::CredentialPtr> get_now(Loop& l, CredentialSource& s) {
  std::optional<Result<CredentialSource::CredentialPtr>> out;
  bool sync = true;
  s.get([&](Result<CredentialSource::CredentialPtr> r) {
    CHECK_FALSE(sync);  // never inside get()
    out.emplace(std::move(r));
  });
  sync = false;
  REQUIRE(l.run_until([&] { return out.has_value(); }));
  return std::move(*out);
}

std::string auth(const Result<CredentialSource::CredentialPtr>& r) {
  REQUIRE_MESSAGE(r.ok(), r.error().reason);
  return (*r)->authorization;
}

ClusterConfig cluster_with(ClusterCredentials c) {
  ClusterConfig cfg;
  cfg.name = "test";
  cfg.server = "https://127.0.0.1:6443";
  cfg.certificate_authority_data = "-----BEGIN CERTIFICATE-----\nfake\n";
  cfg.credentials = std::move(c);
  return cfg;
}

// A plugin that counts its runs in `dir/count`, saves its KUBERNETES_EXEC_INFO, args and
// REGION, and prints an ExecCredential whose token is tok-<run>.
std::string write_counting_plugin(const TempDir& t, const std::string& api = "client.authentication.k8s.io/v1",
                                  const std::string& extra_status = "") {
  std::string script = "#!/bin/sh\n"
                       "d='" + t.path() + "'\n"
                       "n=$(cat \"$d/count\" 2>/dev/null || echo 0); n=$((n+1)); echo $n > \"$d/count\"\n"
                       "printf '%s' \"$KUBERNETES_EXEC_INFO\" > \"$d/exec_info\"\n"
                       "printf '%s|%s' \"$*\" \"$REGION\" > \"$d/args\"\n"
                       "echo 'plugin says hi' >&2\n"
                       "printf '{\"kind\":\"ExecCredential\",\"apiVersion\":\"" + api +
                       "\",\"status\":{\"token\":\"tok-%s\"" + extra_status + "}}\\n' $n\n";
  return t.write("plugin.sh", script, true);
}

int run_count(const TempDir& t) {
  auto s = kube_test::read_file(t.file("count"));
  return std::stoi(s);
}

ExecConfig exec_of(const std::string& cmd, std::string api = "client.authentication.k8s.io/v1") {
  ExecConfig e;
  e.command = cmd;
  e.api_version = std::move(api);
  e.interactive_mode = ExecInteractiveMode::never;
  e.install_hint = "Install the test plugin.";
  return e;
}

}  // namespace

TEST_SUITE("CredentialSource") {
  TEST_CASE("a static token is yielded as a Bearer header, never synchronously") {
    Loop l;
    ClusterCredentials c;
    c.token = "abc";
    auto s = CredentialSource::create(l.loop, cluster_with(c));
    REQUIRE(s.ok());
    CHECK((*s)->kind() == CredentialSource::Kind::token);
    CHECK(auth(get_now(l, **s)) == "Bearer abc");
    (*s)->invalidate();
    CHECK(auth(get_now(l, **s)) == "Bearer abc");
  }

  TEST_CASE("a cluster without a bearer source yields an empty authorization") {
    Loop l;
    auto s = CredentialSource::create(l.loop, cluster_with({}));
    REQUIRE(s.ok());
    CHECK((*s)->kind() == CredentialSource::Kind::none);
    CHECK(auth(get_now(l, **s)).empty());
  }

  TEST_CASE("a token file is re-read only after the recheck period or an invalidate") {
    Loop l;
    TempDir t;
    ClusterCredentials c;
    c.token_file = t.write("token", "first\n");
    auto s = CredentialSource::create(l.loop, cluster_with(c), {.token_file_recheck = 1h});
    REQUIRE(s.ok());
    CHECK((*s)->kind() == CredentialSource::Kind::token_file);
    CHECK(auth(get_now(l, **s)) == "Bearer first");
    t.write("token", "second\n");
    CHECK(auth(get_now(l, **s)) == "Bearer first");  // within the recheck period
    (*s)->invalidate();                              // a 401 happened
    CHECK(auth(get_now(l, **s)) == "Bearer second");
  }

  TEST_CASE("a rotated token file is picked up once the recheck period passed") {
    Loop l;
    TempDir t;
    ClusterCredentials c;
    c.token_file = t.write("token", "first");
    auto s = CredentialSource::create(l.loop, cluster_with(c), {.token_file_recheck = 30ms});
    REQUIRE(s.ok());
    CHECK(auth(get_now(l, **s)) == "Bearer first");
    t.write("token", "rotated");
    l.sleep_ms(60);
    CHECK(auth(get_now(l, **s)) == "Bearer rotated");
  }

  TEST_CASE("an unreadable token file is an error at first and keeps the last token later") {
    Loop l;
    TempDir t;
    std::vector<std::string> logs;
    ClusterCredentials c;
    c.token_file = t.file("token");
    auto s = CredentialSource::create(l.loop, cluster_with(c),
                                      {.token_file_recheck = 1h, .log = [&](LogLevel, std::string_view m) { logs.emplace_back(m); }});
    REQUIRE(s.ok());
    auto first = get_now(l, **s);
    REQUIRE_FALSE(first.ok());
    CHECK(first.error().code == make_error_code(Errc::io_error));
    CHECK(first.error().reason.find(t.file("token")) != std::string::npos);
    t.write("token", "tok");
    CHECK(auth(get_now(l, **s)) == "Bearer tok");
    ::unlink(t.file("token").c_str());
    (*s)->invalidate();
    CHECK(auth(get_now(l, **s)) == "Bearer tok");
    REQUIRE_FALSE(logs.empty());
    CHECK(logs.back().find("keeping the token read before") != std::string::npos);
  }

  TEST_CASE("an exec plugin runs once with args, env and KUBERNETES_EXEC_INFO and its token is cached") {
    Loop l;
    TempDir t;
    ClusterCredentials c;
    c.exec = exec_of(write_counting_plugin(t));
    c.exec->args = {"--cluster", "dev"};
    c.exec->env = {{"REGION", "eu-1"}};
    c.exec->provide_cluster_info = true;
    auto s = CredentialSource::create(l.loop, cluster_with(c));
    REQUIRE(s.ok());
    CHECK((*s)->kind() == CredentialSource::Kind::exec);
    // Three concurrent requests share one run.
    std::vector<std::string> got;
    for (int i = 0; i < 3; ++i) (*s)->get([&](auto r) { got.push_back(auth(r)); });
    REQUIRE(l.run_until([&] { return got.size() == 3; }));
    CHECK(got == std::vector<std::string>(3, "Bearer tok-1"));
    CHECK(run_count(t) == 1);
    CHECK(auth(get_now(l, **s)) == "Bearer tok-1");
    CHECK(run_count(t) == 1);
    CHECK(kube_test::read_file(t.file("args")) == "--cluster dev|eu-1");
    std::string info = kube_test::read_file(t.file("exec_info"));
    CHECK(info.find(R"("kind":"ExecCredential")") != std::string::npos);
    CHECK(info.find(R"("apiVersion":"client.authentication.k8s.io/v1")") != std::string::npos);
    CHECK(info.find(R"("interactive":false)") != std::string::npos);
    CHECK(info.find(R"("server":"https://127.0.0.1:6443")") != std::string::npos);
    CHECK(info.find(R"("certificate-authority-data":"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCmZha2UK")") != std::string::npos);
  }

  TEST_CASE("invalidate after a 401 re-runs the plugin") {
    Loop l;
    TempDir t;
    ClusterCredentials c;
    c.exec = exec_of(write_counting_plugin(t, "client.authentication.k8s.io/v1beta1"),
                     "client.authentication.k8s.io/v1beta1");
    auto s = CredentialSource::create(l.loop, cluster_with(c));
    REQUIRE(s.ok());
    CHECK(auth(get_now(l, **s)) == "Bearer tok-1");
    (*s)->invalidate();
    CHECK(auth(get_now(l, **s)) == "Bearer tok-2");
    CHECK(auth(get_now(l, **s)) == "Bearer tok-2");
    CHECK(run_count(t) == 2);
  }

  TEST_CASE("a token close to its expirationTimestamp is refreshed, a distant one is cached") {
    Loop l;
    TempDir t;
    ClusterCredentials c;
    c.exec = exec_of(write_counting_plugin(t, "client.authentication.k8s.io/v1", R"(,"expirationTimestamp":"2099-01-01T00:00:00Z")"));
    auto far = CredentialSource::create(l.loop, cluster_with(c));
    REQUIRE(far.ok());
    auto first = get_now(l, **far);
    REQUIRE(first.ok());
    REQUIRE((*first)->expiry.has_value());
    CHECK(*(*first)->expiry == *parse_rfc3339("2099-01-01T00:00:00Z"));
    CHECK(auth(get_now(l, **far)) == "Bearer tok-1");
    CHECK(run_count(t) == 1);

    TempDir t2;
    c.exec = exec_of(write_counting_plugin(t2, "client.authentication.k8s.io/v1", R"(,"expirationTimestamp":"2001-01-01T00:00:00.5+02:00")"));
    auto soon = CredentialSource::create(l.loop, cluster_with(c));
    REQUIRE(soon.ok());
    CHECK(auth(get_now(l, **soon)) == "Bearer tok-1");
    CHECK(auth(get_now(l, **soon)) == "Bearer tok-2");  // already expired: run again
  }

  TEST_CASE("a bare plugin command is looked up in PATH") {
    Loop l;
    ClusterCredentials c;
    c.exec = exec_of("sh");
    c.exec->args = {"-c",
                    "printf '{\"kind\":\"ExecCredential\",\"apiVersion\":\"client.authentication.k8s.io/v1\","
                    "\"status\":{\"token\":\"from-path\"}}'"};
    auto s = CredentialSource::create(l.loop, cluster_with(c));
    REQUIRE(s.ok());
    CHECK(auth(get_now(l, **s)) == "Bearer from-path");
  }

  TEST_CASE("a plugin may return a client certificate and key") {
    Loop l;
    TempDir t;
    std::string p = t.write("plugin.sh",
                            "#!/bin/sh\nprintf '{\"kind\":\"ExecCredential\",\"apiVersion\":\"client.authentication.k8s.io/v1\","
                            "\"status\":{\"clientCertificateData\":\"CERT\\\\n\",\"clientKeyData\":\"KEY\"}}'\n",
                            true);
    ClusterCredentials c;
    c.exec = exec_of(p);
    auto s = CredentialSource::create(l.loop, cluster_with(c));
    REQUIRE(s.ok());
    auto r = get_now(l, **s);
    REQUIRE_MESSAGE(r.ok(), r.error().reason);
    CHECK((*r)->authorization.empty());
    CHECK((*r)->client_certificate_pem == "CERT\n");
    CHECK((*r)->client_key_pem == "KEY");
  }

  TEST_CASE("a failing plugin names the command, exit status, stderr and install hint") {
    Loop l;
    TempDir t;
    std::string p = t.write("fail.sh", "#!/bin/sh\necho 'token service unreachable' >&2\nexit 3\n", true);
    ClusterCredentials c;
    c.exec = exec_of(p);
    auto s = CredentialSource::create(l.loop, cluster_with(c));
    REQUIRE(s.ok());
    auto r = get_now(l, **s);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == make_error_code(Errc::credential_error));
    CHECK(r.error().reason == "exec plugin \"" + p + "\" for cluster \"test\": exited with status 3; stderr: token service unreachable; Install the test plugin.");
  }

  TEST_CASE("a missing plugin command, bad output and a wrong apiVersion are credential errors") {
    Loop l;
    TempDir t;
    struct Case {
      std::string cmd;
      std::string expect;
    };
    std::vector<Case> cases = {
        {t.file("does-not-exist"), "cannot run: no such file or directory"},
        {t.write("text.sh", "#!/bin/sh\necho hello\n", true), "output is not JSON"},
        {t.write("beta.sh",
                 "#!/bin/sh\necho '{\"kind\":\"ExecCredential\",\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"status\":{\"token\":\"x\"}}'\n",
                 true),
         "output has apiVersion \"client.authentication.k8s.io/v1beta1\", expected \"client.authentication.k8s.io/v1\""},
        {t.write("empty.sh", "#!/bin/sh\necho '{\"kind\":\"ExecCredential\",\"apiVersion\":\"client.authentication.k8s.io/v1\",\"status\":{}}'\n", true),
         "status has neither a token nor a client certificate"},
        {t.write("half.sh", "#!/bin/sh\necho '{\"kind\":\"ExecCredential\",\"apiVersion\":\"client.authentication.k8s.io/v1\",\"status\":{\"clientCertificateData\":\"C\"}}'\n", true),
         "clientCertificateData is set without status.clientKeyData"},
        {t.write("sig.sh", "#!/bin/sh\nkill -TERM $$\n", true), "was killed by signal 15"},
    };
    for (const auto& tc : cases) {
      CAPTURE(tc.cmd);
      ClusterCredentials c;
      c.exec = exec_of(tc.cmd);
      auto s = CredentialSource::create(l.loop, cluster_with(c));
      REQUIRE(s.ok());
      auto r = get_now(l, **s);
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code == make_error_code(Errc::credential_error));
      CHECK_MESSAGE(r.error().reason.find(tc.expect) != std::string::npos, r.error().reason);
      CHECK(r.error().reason.find("Install the test plugin.") != std::string::npos);
    }
  }

  TEST_CASE("a plugin that floods stdout is killed and reported") {
    Loop l;
    TempDir t;
    ClusterCredentials c;
    c.exec = exec_of(t.write("flood.sh", "#!/bin/sh\nexec yes xxxxxxxxxxxxxxxx\n", true));
    auto s = CredentialSource::create(l.loop, cluster_with(c), {.exec_max_output = 64 * 1024});
    REQUIRE(s.ok());
    auto r = get_now(l, **s);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().reason.find("wrote more than 65536 bytes to stdout") != std::string::npos);
  }

  TEST_CASE("a hanging plugin is killed after the timeout") {
    Loop l;
    TempDir t;
    ClusterCredentials c;
    c.exec = exec_of(t.write("hang.sh", "#!/bin/sh\nexec sleep 30\n", true));
    auto s = CredentialSource::create(l.loop, cluster_with(c), {.exec_timeout = 200ms});
    REQUIRE(s.ok());
    auto r = get_now(l, **s);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().reason.find("timed out after 200 ms") != std::string::npos);
  }

  TEST_CASE("dropping the source while the plugin runs kills it and runs no callback") {
    Loop l;
    TempDir t;
    ClusterCredentials c;
    c.exec = exec_of(t.write("hang.sh", "#!/bin/sh\nexec sleep 30\n", true));
    auto s = CredentialSource::create(l.loop, cluster_with(c));
    REQUIRE(s.ok());
    bool called = false;
    (*s)->get([&](auto) { called = true; });
    l.sleep_ms(50);  // the plugin is running now
    auto t0 = std::chrono::steady_clock::now();
    s->reset();
    l.run();  // returns once every handle closed: the child was killed and reaped
    CHECK(std::chrono::steady_clock::now() - t0 < 5s);
    CHECK_FALSE(called);
  }

  TEST_CASE("dropping the source before the loop runs, or inside a callback, stops further callbacks") {
    Loop l;
    ClusterCredentials c;
    c.token = "x";
    {
      auto s = CredentialSource::create(l.loop, cluster_with(c));
      REQUIRE(s.ok());
      bool called = false;
      (*s)->get([&](auto) { called = true; });
      s->reset();
      l.run();
      CHECK_FALSE(called);
    }
    auto s = CredentialSource::create(l.loop, cluster_with(c));
    REQUIRE(s.ok());
    int calls = 0;
    std::unique_ptr<CredentialSource> owner = std::move(*s);
    owner->get([&](auto) {
      ++calls;
      owner.reset();
    });
    owner->get([&](auto) { ++calls; });
    l.run();
    CHECK(calls == 1);
  }

  TEST_CASE("create rejects interactive Always and unknown exec apiVersions") {
    Loop l;
    ClusterCredentials c;
    c.exec = exec_of("/bin/true");
    c.exec->interactive_mode = ExecInteractiveMode::always;
    auto a = CredentialSource::create(l.loop, cluster_with(c));
    REQUIRE_FALSE(a.ok());
    CHECK(a.error().code == make_error_code(Errc::unsupported));
    c.exec = exec_of("/bin/true", "client.authentication.k8s.io/v1alpha1");
    CHECK_FALSE(CredentialSource::create(l.loop, cluster_with(c)).ok());
  }

  TEST_CASE("RFC 3339 times parse with fractions and offsets") {
    using namespace std::chrono;
    auto a = parse_rfc3339("1970-01-01T00:00:00Z");
    REQUIRE(a);
    CHECK(a->time_since_epoch().count() == 0);
    auto b = parse_rfc3339("2026-11-27T05:38:15.25+01:00");
    REQUIRE(b);
    CHECK(duration_cast<milliseconds>(b->time_since_epoch()).count() == 1795754295250LL);
    for (const char* bad : {"", "2026-11-27", "2026-11-27T05:38:15", "2026-13-01T00:00:00Z", "2026-11-27T05:38:15.Z",
                            "2026-11-27T05:38:15Zjunk"})
      CHECK_FALSE(parse_rfc3339(bad).has_value());
  }
}

TEST_SUITE("parse_exec_credential") {
  // Found by exec_credential_fuzz (tests/fuzz/regressions/exec_credential): an expiry outside
  // system_clock's 64-bit nanosecond range (about 1678 to 2262) overflowed a signed integer.
  TEST_CASE("an expirationTimestamp beyond the clock's range is the range's end, not an overflow") {
    using Clock = std::chrono::system_clock;
    auto with_expiry = [](const std::string& t) {
      return kupstream::kube::parse_exec_credential(
          R"({"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","status":{"token":"t","expirationTimestamp":")" +
              t + R"("}})",
          "client.authentication.k8s.io/v1");
    };
    auto late = with_expiry("9999-12-31T23:59:59Z");
    REQUIRE(late.ok());
    CHECK(late->expiry == Clock::time_point::max());
    auto early = with_expiry("1000-01-01T00:00:00Z");
    REQUIRE(early.ok());
    CHECK(early->expiry == Clock::time_point::min());
    auto normal = with_expiry("2099-01-01T00:00:00Z");
    REQUIRE(normal.ok());
    CHECK(normal->expiry > Clock::now());
    CHECK(normal->expiry < Clock::time_point::max());
  }
}
