// libFuzzer target: the exec credential plugin's output parser (parse_exec_credential: the
// ExecCredential JSON, its token / client certificate and key, expirationTimestamp in RFC 3339).
//
// Input: byte 0 picks the expected apiVersion (even: client.authentication.k8s.io/v1, odd:
// v1beta1), the rest is the plugin's stdout. Seeds: tests/fuzz/fixtures/seeds/exec_credential.
// Checked: a failure is credential_error with a non-empty reason; a success carries a token or a
// certificate with its key; nothing leaks.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "kube/exec_credential.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kupstream;
  if (size == 0) return 0;
  const std::string_view api = (data[0] & 1) ? "client.authentication.k8s.io/v1beta1" : "client.authentication.k8s.io/v1";
  const std::string_view json(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto r = kube::parse_exec_credential(json, api);
  if (!r) {
    if (r.error().code != make_error_code(Errc::credential_error) || r.error().reason.empty()) {
      std::fprintf(stderr, "exec_credential_fuzz: unexpected error %s: %s\n", r.error().code.message().c_str(),
                   r.error().reason.c_str());
      std::abort();
    }
    return 0;
  }
  const bool cert = !r->client_certificate_pem.empty() && !r->client_key_pem.empty();
  if (r->authorization.empty() && !cert) {
    std::fprintf(stderr, "exec_credential_fuzz: accepted output with neither a token nor a certificate and key\n");
    std::abort();
  }
  return 0;
}
