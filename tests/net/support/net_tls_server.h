// Server-side TLS for ScriptServer handlers: a blocking TLS session over an accepted socket, in
// this process's TLS library (BoringSSL or OpenSSL), with the test PKI's server certificate. For
// tests that script what a TLS peer does byte by byte: record sizes, close with or without
// close_notify, a reset.
#pragma once

#include <string>
#include <string_view>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace kupstream::test {

struct TestPki;

// An SSL_CTX serving pki.server_cert / server_key. Throws std::runtime_error if they do not load.
class TlsServerContext {
 public:
  explicit TlsServerContext(const TestPki& pki);
  // Serves the given PEM files (e.g. pki.wrong_cert / pki.wrong_key, pki.expired_cert / ...).
  TlsServerContext(const std::string& cert_file, const std::string& key_file);
  ~TlsServerContext();
  TlsServerContext(const TlsServerContext&) = delete;
  TlsServerContext& operator=(const TlsServerContext&) = delete;
  SSL_CTX* get() const noexcept { return ctx_; }

 private:
  SSL_CTX* ctx_ = nullptr;
};

// One server-side TLS session on `fd` (which stays owned by the caller). The constructor runs
// the handshake; reads time out after `read_timeout_s`. Use from the handler's thread only.
class TlsServerConn {
 public:
  TlsServerConn(SSL_CTX* ctx, int fd, int read_timeout_s = 4);
  ~TlsServerConn();  // frees the session without sending anything
  TlsServerConn(const TlsServerConn&) = delete;
  TlsServerConn& operator=(const TlsServerConn&) = delete;

  bool ok() const noexcept { return ok_; }  // the handshake completed
  // One request head (and a Content-Length body); "" on EOF, error or timeout.
  std::string read_request();
  bool write(std::string_view data);  // one TLS record (nothing for empty data)
  void close_notify();                // sends the close_notify alert
  SSL* ssl() const noexcept { return ssl_; }

 private:
  SSL* ssl_ = nullptr;
  bool ok_ = false;
};

}  // namespace kupstream::test
