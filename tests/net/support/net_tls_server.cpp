#include "net/support/net_tls_server.h"

#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <stdexcept>

#include "net/support/net_certs.h"
#include "net/support/net_script_server.h"

namespace kupstream::test {

TlsServerContext::TlsServerContext(const TestPki& pki) : TlsServerContext(pki.server_cert, pki.server_key) {}

TlsServerContext::TlsServerContext(const std::string& cert_file, const std::string& key_file)
    : ctx_(SSL_CTX_new(TLS_server_method())) {
  if (ctx_ == nullptr || SSL_CTX_use_certificate_chain_file(ctx_, cert_file.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx_, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
    throw std::runtime_error("TlsServerContext: cannot load " + cert_file + " / " + key_file);
  }
}

TlsServerContext::~TlsServerContext() { SSL_CTX_free(ctx_); }

TlsServerConn::TlsServerConn(SSL_CTX* ctx, int fd, int read_timeout_s) {
  timeval tv{read_timeout_s, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ssl_ = SSL_new(ctx);
  ok_ = ssl_ != nullptr && SSL_set_fd(ssl_, fd) == 1 && SSL_accept(ssl_) == 1;
}

TlsServerConn::~TlsServerConn() {
  if (ssl_ != nullptr) SSL_free(ssl_);
}

std::string TlsServerConn::read_request() {
  if (!ok_) return "";
  return read_request_from([this](char* buf, std::size_t cap) -> long {
    return SSL_read(ssl_, buf, static_cast<int>(std::min<std::size_t>(cap, 1 << 20)));
  });
}

bool TlsServerConn::write(std::string_view data) {
  if (!ok_) return false;
  return data.empty() || SSL_write(ssl_, data.data(), static_cast<int>(data.size())) == static_cast<int>(data.size());
}

void TlsServerConn::close_notify() {
  if (ok_) SSL_shutdown(ssl_);
}

}  // namespace kupstream::test
