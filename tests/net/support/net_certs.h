// TestPki: a throw-away CA and certificates made with the openssl CLI in a temp directory:
// a server certificate for localhost/127.0.0.1/::1, one for the wrong name, an expired one,
// and a client certificate for mTLS.
#pragma once

#include <string>

namespace kupstream::test {

struct TestPki {
  // Generates everything into `dir`. Throws std::runtime_error if openssl fails.
  explicit TestPki(const std::string& dir);

  std::string dir;
  std::string ca_cert, ca_key;
  std::string server_cert, server_key;    // SAN DNS:localhost, IP:127.0.0.1, IP:::1, DNS:api.kupstream.test
  std::string wrong_cert, wrong_key;      // SAN DNS:wrong.example only
  std::string expired_cert, expired_key;  // valid 2020-01-01..2020-01-02, right names
  std::string client_cert, client_key;    // CN=kupstream-client, clientAuth
  std::string other_ca_cert;              // an unrelated CA (not the issuer of anything here)
};

}  // namespace kupstream::test
