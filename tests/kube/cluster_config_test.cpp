// The private-range IP literals here are values to parse and compare: addresses are data only (nothing connects to them).
#include "kupstream/cluster.h"

#include <doctest/doctest.h>

#include <vector>

#include "kube/base64.h"
#include "temp_dir.h"

using namespace kupstream;
using kube_test::TempDir;

namespace {

struct Logs {
  std::vector<std::string> lines;
  LogFn fn() {
    return [this](LogLevel, std::string_view m) { lines.emplace_back(m); };
  }
  bool contains(std::string_view s) const {
    for (auto& l : lines)
      if (l.find(s) != std::string::npos) return true;
    return false;
  }
};

const char* kBasic = R"(apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: dev-cluster
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority: certs/ca.crt
    tls-server-name: kubernetes.default
- name: prod-cluster
  cluster:
    server: https://[::1]:7443/prefix/
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==
users:
- name: dev-user
  user:
    token: dev-token
- name: prod-user
  user:
    client-certificate-data: Y2VydA==
    client-key-data: a2V5
- name: file-user
  user:
    tokenFile: tokens/t
    client-certificate: /abs/cert.pem
    client-key: key.pem
contexts:
- name: dev
  context:
    cluster: dev-cluster
    user: dev-user
    namespace: team-a
- name: prod
  context:
    cluster: prod-cluster
    user: prod-user
- name: files
  context:
    cluster: dev-cluster
    user: file-user
)";

}  // namespace

TEST_SUITE("ClusterConfig") {
  TEST_CASE("the current context of a kubeconfig gives server, CA path, SNI, token and namespace") {
    TempDir t;
    std::string path = t.write("kubeconfig", kBasic);
    auto r = load_kubeconfig({.paths = {path}});
    REQUIRE_MESSAGE(r.ok(), r.error().reason);
    CHECK(r->name == "dev");
    CHECK(r->server == "https://127.0.0.1:6443");
    CHECK(r->certificate_authority_file == t.path() + "/certs/ca.crt");  // relative to the file
    CHECK(r->tls_server_name == "kubernetes.default");
    CHECK(r->credentials.token == "dev-token");
    CHECK(r->default_namespace == "team-a");
  }

  TEST_CASE("a named context selects its cluster and user and decodes base64 data fields") {
    TempDir t;
    auto r = load_kubeconfig({.paths = {t.write("kubeconfig", kBasic)}, .context = "prod"});
    REQUIRE_MESSAGE(r.ok(), r.error().reason);
    CHECK(r->server == "https://[::1]:7443/prefix/");
    CHECK(r->certificate_authority_data == "-----BEGIN CERTIFICATE-----\n");
    CHECK(r->credentials.client_certificate_data == "cert");
    CHECK(r->credentials.client_key_data == "key");
    CHECK(r->default_namespace == "default");
    auto f = load_kubeconfig({.paths = {t.file("kubeconfig")}, .context = "files"});
    REQUIRE_MESSAGE(f.ok(), f.error().reason);
    CHECK(f->credentials.token_file == t.path() + "/tokens/t");
    CHECK(f->credentials.client_certificate_file == "/abs/cert.pem");
    CHECK(f->credentials.client_key_file == t.path() + "/key.pem");
  }

  TEST_CASE("KUBECONFIG files merge as kubectl does: first definition wins, missing files are skipped") {
    TempDir t;
    std::string a = t.write("a/config", R"(
clusters:
- name: c1
  cluster: {server: "https://127.0.0.1:1001", certificate-authority: ca-a.crt}
users:
- name: u1
  user: {token: token-from-a}
contexts:
- name: ctx
  context: {cluster: c1, user: u1, namespace: from-a}
)");
    std::string b = t.write("b/config", R"(
current-context: ctx
clusters:
- name: c1
  cluster: {server: "https://127.0.0.1:2002"}
- name: c2
  cluster: {server: "https://127.0.0.1:2003", certificate-authority: ca-b.crt}
users:
- name: u1
  user: {token: token-from-b}
contexts:
- name: ctx
  context: {cluster: c2, user: u1}
- name: other
  context: {cluster: c2, user: u1}
)");
    std::string c = t.write("c/config", "current-context: other\n");
    std::string env = a + ":" + t.file("missing/config") + ":" + b + ":" + c + ":" + a;
    auto r = load_kubeconfig({.kubeconfig_env = env});
    REQUIRE_MESSAGE(r.ok(), r.error().reason);
    // current-context comes from b (the first file that sets it), the context "ctx" from a.
    CHECK(r->name == "ctx");
    CHECK(r->server == "https://127.0.0.1:1001");
    CHECK(r->credentials.token == "token-from-a");
    CHECK(r->certificate_authority_file == t.path() + "/a/ca-a.crt");
    CHECK(r->default_namespace == "from-a");
    auto o = load_kubeconfig({.kubeconfig_env = env, .context = "other"});
    REQUIRE_MESSAGE(o.ok(), o.error().reason);
    CHECK(o->server == "https://127.0.0.1:2003");
    CHECK(o->certificate_authority_file == t.path() + "/b/ca-b.crt");  // resolved against b's directory
    CHECK(o->credentials.token == "token-from-a");
  }

  TEST_CASE("an exec plugin is read with args, env, hints and a command resolved only when it is a path") {
    TempDir t;
    std::string path = t.write("kubeconfig", R"(
current-context: x
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}}]
contexts: [{name: x, context: {cluster: c, user: u}}, {name: y, context: {cluster: c, user: v}}]
users:
- name: u
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: ./bin/get-token
      args: [--cluster, dev]
      env: [{name: REGION, value: eu-1}, {name: EMPTY}]
      installHint: install get-token from the wiki
      provideClusterInfo: true
      interactiveMode: Never
- name: v
  user:
    exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: aws}
)");
    auto r = load_kubeconfig({.paths = {path}});
    REQUIRE_MESSAGE(r.ok(), r.error().reason);
    CHECK(r->insecure_skip_tls_verify);
    REQUIRE(r->credentials.exec.has_value());
    const ExecConfig& e = *r->credentials.exec;
    CHECK(e.command == t.path() + "/./bin/get-token");
    CHECK(e.args == std::vector<std::string>{"--cluster", "dev"});
    CHECK(e.env == std::vector<ExecEnvVar>{{"REGION", "eu-1"}, {"EMPTY", ""}});
    CHECK(e.install_hint == "install get-token from the wiki");
    CHECK(e.provide_cluster_info);
    CHECK(e.interactive_mode == ExecInteractiveMode::never);
    auto v = load_kubeconfig({.paths = {path}, .context = "y"});
    REQUIRE_MESSAGE(v.ok(), v.error().reason);
    CHECK(v->credentials.exec->command == "aws");
    CHECK(v->credentials.exec->interactive_mode == ExecInteractiveMode::if_available);
  }

  TEST_CASE("unsupported user and cluster fields are errors that name the file, entry and field") {
    TempDir t;
    struct Case {
      const char* user;
      const char* cluster_extra;
      const char* expect;
      Errc code;
    };
    const Case cases[] = {
        {"{auth-provider: {name: gcp}}", "", "user \"u\": auth-provider is not supported", Errc::unsupported},
        {"{username: admin, password: secret}", "", "user \"u\": ", Errc::unsupported},
        {"{token: t, as: someone}", "", "user \"u\": as is not supported (impersonation)", Errc::unsupported},
        {"{token: t}", ", proxy-url: \"http://127.0.0.1:3128\"", "cluster \"c\": proxy-url is not supported",
         Errc::unsupported},
        {"{exec: {command: x, apiVersion: client.authentication.k8s.io/v1alpha1}}", "", "exec.apiVersion",
         Errc::unsupported},
        {"{exec: {command: x, apiVersion: client.authentication.k8s.io/v1}}", "",
         "exec.interactiveMode is missing", Errc::invalid_config},
        {"{exec: {command: x, apiVersion: client.authentication.k8s.io/v1, interactiveMode: Always}}", "",
         "interactiveMode Always is not supported", Errc::unsupported},
        {"{client-certificate-data: '!!notbase64'}", "", "client-certificate-data is not valid base64",
         Errc::invalid_config},
        {"{client-certificate: c.pem}", "", "client-certificate is set without client-key", Errc::invalid_config},
    };
    for (const auto& c : cases) {
      CAPTURE(c.user);
      std::string yaml = std::string("current-context: x\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:1\"") +
                         c.cluster_extra + "}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\nusers: [{name: u, user: " +
                         c.user + "}]\n";
      std::string path = t.write("kubeconfig", yaml);
      auto r = load_kubeconfig({.paths = {path}});
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code == make_error_code(c.code));
      CHECK_MESSAGE(r.error().reason.find(c.expect) != std::string::npos, r.error().reason);
      CHECK_MESSAGE(r.error().reason.find(path) != std::string::npos, r.error().reason);
    }
  }

  TEST_CASE("ignored and unknown fields are logged as warnings, not silently dropped") {
    TempDir t;
    Logs logs;
    std::string path = t.write("kubeconfig", R"(
current-context: x
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", disable-compression: true, shiny-new: 1}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
users: [{name: u, user: {token: a, tokenFile: /tmp/t}}]
)");
    auto r = load_kubeconfig({.paths = {path}, .log = logs.fn()});
    REQUIRE_MESSAGE(r.ok(), r.error().reason);
    CHECK(logs.contains("cluster \"c\": disable-compression is ignored"));
    CHECK(logs.contains("unknown field shiny-new is ignored"));
    CHECK(logs.contains("both token and tokenFile are set; tokenFile is used"));
  }

  TEST_CASE("missing contexts, clusters, users, files and broken YAML are clear errors") {
    TempDir t;
    std::string path = t.write("kubeconfig", kBasic);
    auto nctx = load_kubeconfig({.paths = {path}, .context = "nope"});
    REQUIRE_FALSE(nctx.ok());
    CHECK(nctx.error().reason == "kubeconfig " + path + ": context \"nope\" is not defined");
    std::string dangling = t.write("k2", "contexts: [{name: x, context: {cluster: gone, user: u}}]\ncurrent-context: x\n");
    auto ncl = load_kubeconfig({.paths = {dangling}});
    REQUIRE_FALSE(ncl.ok());
    CHECK(ncl.error().reason.find("context \"x\": cluster \"gone\" is not defined") != std::string::npos);
    auto nofile = load_kubeconfig({.paths = {t.file("absent")}});
    REQUIRE_FALSE(nofile.ok());
    CHECK(nofile.error().code == make_error_code(Errc::io_error));
    CHECK(nofile.error().reason.find(t.file("absent")) != std::string::npos);
    std::string broken = t.write("k3", "clusters: [unclosed\n");
    auto br = load_kubeconfig({.paths = {broken}});
    REQUIRE_FALSE(br.ok());
    CHECK(br.error().reason.find("not valid YAML") != std::string::npos);
    std::string noserver = t.write("k4", "current-context: x\nclusters: [{name: c, cluster: {}}]\ncontexts: [{name: x, context: {cluster: c}}]\n");
    auto ns = load_kubeconfig({.paths = {noserver}});
    REQUIRE_FALSE(ns.ok());
    CHECK(ns.error().reason == "kubeconfig " + noserver + ": cluster \"c\": server is missing");
    auto nocur = load_kubeconfig({.paths = {t.write("k5", "clusters: []\n")}});
    REQUIRE_FALSE(nocur.ok());
    CHECK(nocur.error().reason.find("current-context is not set") != std::string::npos);
    auto none = load_kubeconfig({.kubeconfig_env = t.file("x") + ":" + t.file("y")});
    REQUIRE_FALSE(none.ok());
  }

  TEST_CASE("in-cluster config reads the service account directory and the service environment") {
    TempDir t;
    t.write("sa/token", "sa-token\n");
    t.write("sa/ca.crt", "-----BEGIN CERTIFICATE-----\n");
    t.write("sa/namespace", "gateway\n");
    auto r = load_in_cluster_config({.service_account_dir = t.file("sa"), .service_host = "10.96.0.1", .service_port = "443"});
    REQUIRE_MESSAGE(r.ok(), r.error().reason);
    CHECK(r->name == "in-cluster");
    CHECK(r->server == "https://10.96.0.1:443");
    CHECK(r->certificate_authority_file == t.file("sa/ca.crt"));
    CHECK(r->credentials.token_file == t.file("sa/token"));
    CHECK(r->credentials.token.empty());
    CHECK(r->default_namespace == "gateway");
    auto v6 = load_in_cluster_config({.service_account_dir = t.file("sa"), .service_host = "fd00::1", .service_port = "443"});
    REQUIRE(v6.ok());
    CHECK(v6->server == "https://[fd00::1]:443");
  }

  TEST_CASE("in-cluster config fails clearly outside a Pod or without a token") {
    TempDir t;
    auto noenv = load_in_cluster_config({.service_account_dir = t.path(), .service_host = "", .service_port = ""});
    REQUIRE_FALSE(noenv.ok());
    CHECK(noenv.error().reason.find("KUBERNETES_SERVICE_HOST") != std::string::npos);
    auto notoken = load_in_cluster_config({.service_account_dir = t.path(), .service_host = "10.0.0.1", .service_port = "443"});
    REQUIRE_FALSE(notoken.ok());
    CHECK(notoken.error().code == make_error_code(Errc::io_error));
    CHECK(notoken.error().reason.find(t.file("token")) != std::string::npos);
  }

  TEST_CASE("server URLs parse into scheme, host, port and base path") {
    auto a = parse_server_url("https://127.0.0.1:6443");
    REQUIRE(a.ok());
    CHECK(*a == ServerUrl{true, "127.0.0.1", 6443, ""});
    auto b = parse_server_url("https://[::1]/k8s/clusters/c-1/");
    REQUIRE(b.ok());
    CHECK(*b == ServerUrl{true, "::1", 443, "/k8s/clusters/c-1"});
    auto c = parse_server_url("http://localhost");
    REQUIRE(c.ok());
    CHECK(*c == ServerUrl{false, "localhost", 80, ""});
    for (const char* bad : {"ftp://x", "https://", "https://h:0", "https://h:99999", "https://::1:443", "https://u@h",
                            "https://h:12a", "https://h/?q=1", "127.0.0.1:6443"}) {
      CAPTURE(bad);
      CHECK_FALSE(parse_server_url(bad).ok());
    }
  }

  TEST_CASE("explicit configs are validated") {
    ClusterConfig c;
    c.name = "mine";
    CHECK_FALSE(validate_cluster_config(c).ok());
    c.server = "https://127.0.0.1:6443";
    CHECK(validate_cluster_config(c).ok());
    c.insecure_skip_tls_verify = true;
    c.certificate_authority_data = "pem";
    auto s = validate_cluster_config(c);
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().reason == "cluster \"mine\": insecure-skip-tls-verify cannot be combined with a certificate authority");
    c.insecure_skip_tls_verify = false;
    c.credentials.client_key_data = "k";
    CHECK_FALSE(validate_cluster_config(c).ok());
  }

  TEST_CASE("base64 decodes padded data, skips whitespace and rejects garbage") {
    using kupstream::kube::base64_decode;
    using kupstream::kube::base64_encode;
    CHECK(base64_decode("aGVsbG8=") == std::optional<std::string>("hello"));
    CHECK(base64_decode("aGVs\nbG8h") == std::optional<std::string>("hello!"));
    CHECK(base64_decode("") == std::optional<std::string>(""));
    CHECK_FALSE(base64_decode("aGVsbG8").has_value());
    CHECK_FALSE(base64_decode("aGV*bG8=").has_value());
    CHECK_FALSE(base64_decode("aG=sbG8=").has_value());
    for (const std::string& s : std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)}) CHECK(base64_decode(base64_encode(s)) == s);
  }
}
