// Secrets never reach the log: every credential path (static token, token file and its re-read,
// client certificate, exec plugin, in-cluster service account) runs against kubesim with a
// LogFn that keeps every line at every level (debug included), and every WatchState reason is
// kept too. None may contain a token, a private key (PEM or any line of its base64 body), or the
// exec plugin's stdout. Each path also includes a failure (a rejected token, a plugin that
// fails), so that error reasons are covered, not only the happy path.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "kupstream/cluster_client.h"
#include "kubesim/kubesim_process.h"
#include "net/support/net_loop.h"

using namespace kupstream;
using namespace kupstream::test;
namespace fs = std::filesystem;

namespace {

const char* kTokensFile = R"({"admin": {"token": "adm1n-S3CRET-t0ken-0001", "allow": "*", "client_cert": true},
  "rotated": {"token": "r0tated-S3CRET-t0ken-0002", "allow": "*"},
  "plugin": {"token": "plug1n-S3CRET-t0ken-0003", "allow": "*"}})";

void write_text(const fs::path& path, const std::string& text, bool executable = false) {
  std::ofstream(path) << text;
  if (executable) fs::permissions(path, fs::perms::owner_all);
}

// The secret strings of a PEM private key: the whole PEM and each line of its base64 body.
std::vector<std::string> key_secrets(const std::string& pem) {
  std::vector<std::string> out{pem};
  std::istringstream in(pem);
  for (std::string line; std::getline(in, line);)
    if (line.size() >= 16 && line.find("-----") == std::string::npos) out.push_back(line);
  return out;
}

struct Run {
  TestLoop loop;
  std::vector<std::string> lines;  // log lines and state reasons

  // Watches demo/web:http with `config` until synced (or until `until_phase`), collecting
  // every log line and state reason. Returns the phases seen.
  std::vector<WatchPhase> watch(const ClusterConfig& config, WatchPhase until_phase = WatchPhase::synced,
                                const std::function<void()>& on_first_state = {}) {
    std::vector<WatchPhase> phases;
    {
      ClusterClientOptions co;
      co.backoff_initial = std::chrono::milliseconds{100};
      co.backoff_max = std::chrono::milliseconds{300};
      co.log = [this](LogLevel level, std::string_view m) { lines.push_back(std::string(log_level_name(level)) + ": " + std::string(m)); };
      auto client = ClusterClient::create(loop.loop, config, co);
      if (!client) {
        lines.push_back(client.error().reason);
        return phases;
      }
      ServiceRef ref;
      ref.cluster = config.name;
      ref.namespace_name = "demo";
      ref.service = "web";
      ref.port = PortRef::parse("http");
      EndpointWatcherCallbacks cb;
      bool first = true;
      cb.on_state = [&](const WatchState& s) {
        phases.push_back(s.phase);
        lines.push_back("state: " + s.reason);
        if (first && on_first_state) on_first_state();
        first = false;
      };
      auto w = (*client)->watch(ref, cb);
      REQUIRE(w.ok());
      CHECK(loop.run_until([&] { return !phases.empty() && phases.back() == until_phase; }, 15000));
      w->reset();
      client->reset();
    }
    CHECK(loop.close_loop() == 0);
    return phases;
  }
};

// One kubesim for the whole binary (starting one costs seconds); each case gets its own
// temporary directory and re-applies the Service and its one-endpoint slice.
struct SharedSim {
  fs::path dir;
  std::unique_ptr<KubesimProcess> sim;
  SharedSim() {
    char tmpl[] = "/tmp/kup-secrets-users-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir = tmpl;
    write_text(dir / "users.json", kTokensFile);
    KubesimProcess::Options o;
    o.cluster = "secret-test";
    o.tokens_file = (dir / "users.json").string();
    sim = std::make_unique<KubesimProcess>(o);
  }
  ~SharedSim() {
    sim.reset();  // stops the server by its PID
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

KubesimProcess& shared_sim() {
  static SharedSim shared;
  return *shared.sim;
}

struct Fixture {
  fs::path dir;
  KubesimProcess* sim;

  Fixture() : sim(&shared_sim()) {
    char tmpl[] = "/tmp/kup-secrets-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    REQUIRE(sim->admin("POST", "/objects",
                       R"({"op":"apply","object":{"apiVersion":"v1","kind":"Service","metadata":{"name":"web",)"
                       R"("namespace":"demo"},"spec":{"ports":[{"name":"http","port":80,"targetPort":8080}]}}})")
                .exit_code == 0);
    REQUIRE(sim->admin("POST", "/objects",
                       R"({"op":"apply","object":{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice",)"
                       R"("metadata":{"name":"web-1","namespace":"demo","labels":{"kubernetes.io/service-name":"web"}},)"
                       R"("addressType":"IPv4","ports":[{"name":"http","port":8080,"protocol":"TCP"}],)"
                       R"("endpoints":[{"addresses":["127.0.1.1"],"conditions":{"ready":true}}]}})")
                .exit_code == 0);
  }
  ~Fixture() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }

  ClusterConfig base() const {
    ClusterConfig c;
    c.name = "secret-test";
    c.server = "https://127.0.0.1:" + std::to_string(sim->info().port);
    c.certificate_authority_file = sim->info().ca_file;
    return c;
  }

  std::vector<std::string> secrets() const {
    std::vector<std::string> s = {"adm1n-S3CRET-t0ken-0001", "r0tated-S3CRET-t0ken-0002", "plug1n-S3CRET-t0ken-0003",
                                  "wr0ng-S3CRET-t0ken-0004", "S3CRET"};
    for (auto& k : key_secrets(read_file(sim->info().users.at("admin").client_key))) s.push_back(k);
    return s;
  }

  void check_no_secret(const std::vector<std::string>& lines) const {
    CHECK_FALSE(lines.empty());
    for (const auto& line : lines)
      for (const auto& secret : secrets()) {
        INFO("line: " << line);
        CHECK(line.find(secret) == std::string::npos);
      }
  }
};

}  // namespace

TEST_SUITE("secrets are never logged") {
  TEST_CASE("static token: a rejected token, then the right one, from a kubeconfig") {
    Fixture f;
    Run bad;
    ClusterConfig c = f.base();
    c.credentials.token = "wr0ng-S3CRET-t0ken-0004";
    auto phases = bad.watch(c, WatchPhase::stale);
    REQUIRE_FALSE(phases.empty());
    CHECK(phases.back() == WatchPhase::stale);  // 401: the reason is there, the token is not
    f.check_no_secret(bad.lines);

    KubeconfigOptions kc;
    kc.paths = {f.sim->info().users.at("admin").kubeconfig};
    kc.log = [&bad](LogLevel, std::string_view m) { bad.lines.emplace_back(m); };
    auto loaded = load_kubeconfig(kc);
    REQUIRE(loaded.ok());
    Run good;
    good.watch(*loaded);
    f.check_no_secret(good.lines);
  }

  TEST_CASE("token file: a wrong token is re-read after it rotates to the right one") {
    Fixture f;
    fs::path token = f.dir / "token";
    write_text(token, "wr0ng-S3CRET-t0ken-0004\n");
    ClusterConfig c = f.base();
    c.credentials.token_file = token.string();
    Run run;
    bool rotated = false;
    // Once the wrong token has been refused (stale), the file rotates; the 401 invalidation
    // re-reads it and the watch syncs.
    std::vector<WatchPhase> phases;
    {
      ClusterClientOptions co;
      co.backoff_initial = std::chrono::milliseconds{100};
      co.backoff_max = std::chrono::milliseconds{300};
      co.log = [&run](LogLevel level, std::string_view m) { run.lines.push_back(std::string(log_level_name(level)) + ": " + std::string(m)); };
      auto client = ClusterClient::create(run.loop.loop, c, co);
      REQUIRE(client.ok());
      ServiceRef ref;
      ref.cluster = c.name;
      ref.namespace_name = "demo";
      ref.service = "web";
      ref.port = PortRef::parse("http");
      EndpointWatcherCallbacks cb;
      cb.on_state = [&](const WatchState& s) {
        phases.push_back(s.phase);
        run.lines.push_back("state: " + s.reason);
        if (s.phase == WatchPhase::stale && !rotated) {
          rotated = true;
          write_text(token, "r0tated-S3CRET-t0ken-0002\n");
        }
      };
      auto w = (*client)->watch(ref, cb);
      REQUIRE(w.ok());
      CHECK(run.loop.run_until([&] { return !phases.empty() && phases.back() == WatchPhase::synced; }, 15000));
      w->reset();
      client->reset();
    }
    CHECK(run.loop.close_loop() == 0);
    CHECK(rotated);
    f.check_no_secret(run.lines);
  }

  TEST_CASE("client certificate and key, from files and from PEM data") {
    Fixture f;
    const auto& admin = f.sim->info().users.at("admin");
    REQUIRE_FALSE(admin.client_key.empty());
    ClusterConfig c = f.base();
    c.credentials.client_certificate_file = admin.client_cert;
    c.credentials.client_key_file = admin.client_key;
    Run files;
    files.watch(c);
    f.check_no_secret(files.lines);

    ClusterConfig d = f.base();
    d.credentials.client_certificate_data = read_file(admin.client_cert);
    d.credentials.client_key_data = read_file(admin.client_key);
    Run data;
    data.watch(d);
    f.check_no_secret(data.lines);

    // A key that does not match the certificate: the config error names the field, not the key.
    ClusterConfig e = f.base();
    e.credentials.client_certificate_data = read_file(admin.client_cert);
    e.credentials.client_key_data = read_file(admin.client_key);
    e.credentials.client_key_data.insert(e.credentials.client_key_data.find('\n') + 1, "AAAA");
    Run broken;
    broken.watch(e);
    f.check_no_secret(broken.lines);
  }

  TEST_CASE("exec plugin: its stdout and an echo of the token on stderr stay out of the log") {
    Fixture f;
    fs::path good = f.dir / "get-token";
    write_text(good,
               "#!/bin/sh\n"
               "echo 'fetched plug1n-S3CRET-t0ken-0003 from the vault' >&2\n"
               "echo '{\"kind\":\"ExecCredential\",\"apiVersion\":\"client.authentication.k8s.io/v1\","
               "\"status\":{\"token\":\"plug1n-S3CRET-t0ken-0003\"}}'\n",
               true);
    ClusterConfig c = f.base();
    c.credentials.exec = ExecConfig{};
    c.credentials.exec->command = good.string();
    c.credentials.exec->api_version = "client.authentication.k8s.io/v1";
    Run run;
    run.watch(c);
    bool saw_stderr = false;
    for (const auto& l : run.lines) saw_stderr |= l.find("from the vault") != std::string::npos;
    CHECK(saw_stderr);  // stderr is logged (at debug), with the token redacted
    f.check_no_secret(run.lines);

    // Output that is not a valid ExecCredential: the reason says why, never what it was.
    fs::path bad = f.dir / "bad-token";
    write_text(bad,
               "#!/bin/sh\n"
               "echo '{\"kind\":\"ExecCredential\",\"apiVersion\":\"client.authentication.k8s.io/v1\","
               "\"status\":{\"token\":\"plug1n-S3CRET-t0ken-0003\",\"expirationTimestamp\":\"soon\"}}'\n",
               true);
    fs::path garbage = f.dir / "garbage-token";
    write_text(garbage, "#!/bin/sh\necho 'token=plug1n-S3CRET-t0ken-0003 not json'\n", true);
    for (const fs::path& p : {bad, garbage}) {
      ClusterConfig d = f.base();
      d.credentials.exec = ExecConfig{};
      d.credentials.exec->command = p.string();
      d.credentials.exec->api_version = "client.authentication.k8s.io/v1";
      Run failing;
      auto phases = failing.watch(d, WatchPhase::stale);
      REQUIRE_FALSE(phases.empty());
      CHECK(phases.back() == WatchPhase::stale);
      f.check_no_secret(failing.lines);
    }
  }

  TEST_CASE("in-cluster service account: token and CA files in the service account directory") {
    Fixture f;
    fs::path sa = f.dir / "serviceaccount";
    fs::create_directories(sa);
    fs::copy_file(f.sim->info().ca_file, sa / "ca.crt");
    write_text(sa / "token", "adm1n-S3CRET-t0ken-0001");
    write_text(sa / "namespace", "demo");
    InClusterOptions io;
    io.service_account_dir = sa.string();
    io.service_host = "127.0.0.1";
    io.service_port = std::to_string(f.sim->info().port);
    auto c = load_in_cluster_config(io);
    REQUIRE(c.ok());
    Run run;
    run.watch(*c);
    f.check_no_secret(run.lines);
  }
}

TEST_SUITE("TLS to the API server") {
  TEST_CASE("verification is on by default: without the cluster's CA the watch is stale with a verify error") {
    Fixture f;
    ClusterConfig c = f.base();
    c.certificate_authority_file.clear();  // the system trust store does not know kubesim's CA
    c.credentials.token = "adm1n-S3CRET-t0ken-0001";
    Run run;
    auto phases = run.watch(c, WatchPhase::stale);
    REQUIRE_FALSE(phases.empty());
    CHECK(phases.back() == WatchPhase::stale);
    bool verify_error = false;
    for (const auto& l : run.lines) verify_error |= l.find("certificate") != std::string::npos;
    CHECK(verify_error);
    f.check_no_secret(run.lines);
  }

  TEST_CASE("insecure-skip-tls-verify from a kubeconfig connects and is logged once, whatever the number of connections") {
    Fixture f;
    fs::path kc = f.dir / "insecure.yaml";
    write_text(kc, "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                   "clusters: [{name: k, cluster: {server: \"https://127.0.0.1:" + std::to_string(f.sim->info().port) +
                       "\", insecure-skip-tls-verify: true}}]\n"
                   "users: [{name: u, user: {token: adm1n-S3CRET-t0ken-0001}}]\n"
                   "contexts: [{name: c, context: {cluster: k, user: u}}]\n");
    KubeconfigOptions ko;
    ko.paths = {kc.string()};
    auto c = load_kubeconfig(ko);
    REQUIRE(c.ok());
    CHECK(c->insecure_skip_tls_verify);
    Run run;
    auto phases = run.watch(*c);
    REQUIRE_FALSE(phases.empty());
    CHECK(phases.back() == WatchPhase::synced);
    int warnings = 0;
    for (const auto& l : run.lines)
      if (l.find("insecure-skip-tls-verify") != std::string::npos || l.find("DISABLED") != std::string::npos) {
        ++warnings;
        CHECK(l.rfind("warning: ", 0) == 0);
      }
    CHECK(warnings == 1);  // the list, the watches and the access reviews use several connections
    f.check_no_secret(run.lines);
  }
}

TEST_SUITE("limits on what the API server sends") {
  // Runs a watch with `options` until `done` holds; returns its lines (logs and reasons).
  struct LimitRun {
    TestLoop loop;
    std::vector<std::string> lines;
    std::vector<WatchPhase> phases;
    std::unique_ptr<ClusterClient> client;
    std::unique_ptr<EndpointWatcher> watcher;

    void start(const ClusterConfig& c, ClusterClientOptions co) {
      co.backoff_initial = std::chrono::milliseconds{100};
      co.backoff_max = std::chrono::milliseconds{300};
      co.log = [this](LogLevel, std::string_view m) { lines.emplace_back(m); };
      auto cl = ClusterClient::create(loop.loop, c, co);
      REQUIRE(cl.ok());
      client = std::move(*cl);
      ServiceRef ref;
      ref.cluster = c.name;
      ref.namespace_name = "demo";
      ref.service = "web";
      ref.port = PortRef::parse("http");
      EndpointWatcherCallbacks cb;
      cb.on_state = [this](const WatchState& s) {
        phases.push_back(s.phase);
        lines.push_back("state: " + s.reason);
      };
      auto w = client->watch(ref, cb);
      REQUIRE(w.ok());
      watcher = std::move(*w);
    }
    bool saw(const std::string& text) const {
      for (const auto& l : lines)
        if (l.find(text) != std::string::npos) return true;
      return false;
    }
    int finish() {
      watcher.reset();
      client.reset();
      return loop.close_loop();
    }
  };

  TEST_CASE("a LIST over max_response_bytes fails naming the limit and the watch stays stale") {
    Fixture f;
    ClusterConfig c = f.base();
    c.credentials.token = "adm1n-S3CRET-t0ken-0001";
    ClusterClientOptions co;
    co.max_response_bytes = 200;
    LimitRun run;
    run.start(c, co);
    CHECK(run.loop.run_until([&] { return run.saw("max_response_bytes (200 bytes)"); }, 15000));
    CHECK(run.watcher->current() == nullptr);
    CHECK(run.watcher->state().phase == WatchPhase::stale);
    CHECK(run.finish() == 0);
  }

  TEST_CASE("a watch event over max_event_bytes fails naming the limit and the last snapshot stays") {
    Fixture f;
    ClusterConfig c = f.base();
    c.credentials.token = "adm1n-S3CRET-t0ken-0001";
    ClusterClientOptions co;
    co.max_event_bytes = 120;  // the LIST is not split into lines; events are (a slice event is larger)
    LimitRun run;
    run.start(c, co);
    REQUIRE(run.loop.run_until([&] { return run.watcher->current() != nullptr; }, 15000));
    REQUIRE(f.sim->admin("POST", "/objects",
                         R"({"op":"apply","object":{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice",)"
                         R"("metadata":{"name":"web-1","namespace":"demo","labels":{"kubernetes.io/service-name":"web"}},)"
                         R"("addressType":"IPv4","ports":[{"name":"http","port":8080,"protocol":"TCP"}],)"
                         R"("endpoints":[{"addresses":["127.0.1.1"],"conditions":{"ready":true}},)"
                         R"({"addresses":["127.0.1.2"],"conditions":{"ready":true}}]}})")
                  .exit_code == 0);
    CHECK(run.loop.run_until([&] { return run.saw("max_event_bytes (120 bytes)"); }, 15000));
    // Checked as soon as the failure was seen, before the retry's LIST brings the new state:
    // stale, and the last good set still in service (stale beats empty).
    CHECK(run.watcher->state().phase == WatchPhase::stale);
    REQUIRE(run.watcher->current() != nullptr);
    CHECK(run.watcher->current()->ready.size() == 1);
    CHECK(run.finish() == 0);
  }

  TEST_CASE("a response head over max_header_bytes fails naming the limit") {
    Fixture f;
    ClusterConfig c = f.base();
    c.credentials.token = "adm1n-S3CRET-t0ken-0001";
    ClusterClientOptions co;
    co.max_header_bytes = 40;
    LimitRun run;
    run.start(c, co);
    CHECK(run.loop.run_until([&] { return run.saw("max_header_bytes (40 bytes)"); }, 15000));
    CHECK(run.watcher->current() == nullptr);
    CHECK(run.finish() == 0);
  }
}
