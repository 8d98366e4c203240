// TlsContext: loading trust anchors and client credentials from files and memory.
#include <doctest/doctest.h>

#include "net/support/net_certs.h"
#include "net/support/net_process.h"
#include "net/tls_context.h"

using namespace kupstream;
using namespace kupstream::net;
using namespace kupstream::test;

TEST_SUITE("TlsContext") {
  TEST_CASE("a CA file, a CA PEM and a client certificate with its key load from files and memory") {
    TempDir dir;
    TestPki pki(dir.path());
    TlsConfig files;
    files.ca_file = pki.ca_cert;
    files.cert_file = pki.client_cert;
    files.key_file = pki.client_key;
    auto a = TlsContext::create(files);
    REQUIRE_MESSAGE(a.ok(), a.error().reason);
    CHECK((*a)->native() != nullptr);

    TlsConfig memory;
    memory.ca_pem = read_file(pki.ca_cert) + read_file(pki.other_ca_cert);
    memory.cert_pem = read_file(pki.client_cert);
    memory.key_pem = read_file(pki.client_key);
    auto b = TlsContext::create(memory);
    REQUIRE_MESSAGE(b.ok(), b.error().reason);
    CHECK((*a)->identity() != (*b)->identity());
  }

  TEST_CASE("missing files, bad PEM and mismatched keys are invalid_config naming the field") {
    TempDir dir;
    TestPki pki(dir.path());
    TlsConfig missing;
    missing.ca_file = dir.file("nope.crt");
    auto r = TlsContext::create(missing);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == make_error_code(Errc::invalid_config));
    CHECK(r.error().reason.find("tls.ca_file") != std::string::npos);

    TlsConfig bad_pem;
    bad_pem.ca_pem = "not a certificate";
    r = TlsContext::create(bad_pem);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().reason.find("tls.ca_pem") != std::string::npos);

    TlsConfig mismatch;
    mismatch.ca_file = pki.ca_cert;
    mismatch.cert_file = pki.client_cert;
    mismatch.key_file = pki.server_key;
    r = TlsContext::create(mismatch);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == make_error_code(Errc::invalid_config));
    CHECK(r.error().reason.find("tls.key_file") != std::string::npos);

    TlsConfig key_only;
    key_only.key_pem = read_file(pki.client_key);
    r = TlsContext::create(key_only);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().reason.find("without a client certificate") != std::string::npos);
  }

  TEST_CASE("insecure_skip_verify is off by default and shows in the identity when on") {
    TlsConfig def;
    CHECK_FALSE(def.insecure_skip_verify);
    TlsConfig insecure;
    insecure.insecure_skip_verify = true;
    CHECK(insecure.identity().find("INSECURE") != std::string::npos);
    CHECK(def.identity().find("INSECURE") == std::string::npos);
  }
}
