#include "net/support/net_certs.h"

#include <stdexcept>
#include <tuple>
#include <utility>

#include "net/support/net_process.h"

namespace kupstream::test {
namespace {

void sh(const std::string& cmd) {
  if (run_shell(cmd + " >/dev/null 2>&1") != 0) throw std::runtime_error("command failed: " + cmd);
}

const char* kEc = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";

}  // namespace

TestPki::TestPki(const std::string& d) : dir(d) {
  ca_cert = dir + "/ca.crt";
  ca_key = dir + "/ca.key";
  sh("openssl req -x509 " + std::string(kEc) + " -keyout " + ca_key + " -out " + ca_cert +
     " -days 3 -subj /CN=kupstream-test-ca -addext basicConstraints=critical,CA:TRUE"
     " -addext keyUsage=critical,keyCertSign,cRLSign");
  other_ca_cert = dir + "/other-ca.crt";
  sh("openssl req -x509 " + std::string(kEc) + " -keyout " + dir + "/other-ca.key -out " + other_ca_cert +
     " -days 3 -subj /CN=kupstream-other-ca");

  auto leaf = [&](const std::string& name, const std::string& cn, const std::string& ext) {
    std::string key = dir + "/" + name + ".key", csr = dir + "/" + name + ".csr", crt = dir + "/" + name + ".crt";
    write_file(dir + "/" + name + ".ext", ext);
    sh("openssl req -new " + std::string(kEc) + " -keyout " + key + " -out " + csr + " -subj /CN=" + cn);
    sh("openssl x509 -req -in " + csr + " -CA " + ca_cert + " -CAkey " + ca_key + " -CAcreateserial -out " + crt +
       " -days 2 -sha256 -extfile " + dir + "/" + name + ".ext");
    return std::pair{crt, key};
  };
  std::string server_ext =
      "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1,DNS:api.kupstream.test\nextendedKeyUsage=serverAuth\n";
  std::tie(server_cert, server_key) = leaf("server", "localhost", server_ext);
  std::tie(wrong_cert, wrong_key) = leaf("wrong", "wrong.example", "subjectAltName=DNS:wrong.example\nextendedKeyUsage=serverAuth\n");
  std::tie(client_cert, client_key) = leaf("client", "kupstream-client", "extendedKeyUsage=clientAuth\n");

  // Expired: `openssl ca` accepts explicit start and end dates in the past.
  expired_key = dir + "/expired.key";
  expired_cert = dir + "/expired.crt";
  run_shell("mkdir -p " + dir + "/newcerts && : > " + dir + "/index.txt && echo 1000 > " + dir + "/serial");
  write_file(dir + "/ca.cnf",
             "[ ca ]\ndefault_ca = CA_default\n[ CA_default ]\ndatabase = " + dir + "/index.txt\nnew_certs_dir = " + dir +
                 "/newcerts\nserial = " + dir + "/serial\ndefault_md = sha256\npolicy = policy_any\nunique_subject = no\n"
                 "[ policy_any ]\ncommonName = supplied\n[ ext ]\n" + server_ext);
  sh("openssl req -new " + std::string(kEc) + " -keyout " + expired_key + " -out " + dir + "/expired.csr -subj /CN=localhost");
  sh("openssl ca -batch -config " + dir + "/ca.cnf -cert " + ca_cert + " -keyfile " + ca_key + " -in " + dir +
     "/expired.csr -out " + expired_cert + " -startdate 20200101000000Z -enddate 20200102000000Z -extensions ext -notext");
}

}  // namespace kupstream::test
