#include "net/tls_engine.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "net/tls_errors.h"

// OpenSSL implements several SSL_* calls as macros with C casts (e.g. SSL_set_tlsext_host_name,
// SSL_CTX_add_extra_chain_cert); BoringSSL makes them functions.
#pragma GCC diagnostic ignored "-Wold-style-cast"

namespace kupstream::net {

TlsEngine::TlsEngine(std::shared_ptr<TlsContext> context, SSL* ssl)
    : context_(std::move(context)), ssl_(ssl), in_(BIO_new(BIO_s_mem())), out_(BIO_new(BIO_s_mem())) {
  // An empty input BIO means "try again", not end of file.
  BIO_set_mem_eof_return(in_, -1);
  BIO_set_mem_eof_return(out_, -1);
  SSL_set_bio(ssl_, in_, out_);  // the SSL owns both BIOs now
  const char* sni = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
  name_ = sni != nullptr ? sni : "";
}

TlsEngine::~TlsEngine() { SSL_free(ssl_); }

void TlsEngine::feed(const char* data, std::size_t len) {
  BIO_write(in_, data, static_cast<int>(len));
}

Result<bool> TlsEngine::handshake() {
  if (done_) return true;
  ERR_clear_error();
  int rc = SSL_do_handshake(ssl_);
  if (rc == 1) {
    done_ = true;
    return true;
  }
  int err = SSL_get_error(ssl_, rc);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return false;
  // A verification failure shows as SSL_R_CERTIFICATE_VERIFY_FAILED on the error queue; the
  // X.509 result then says why (expired, name mismatch, unknown issuer).
  unsigned long first = ERR_peek_error();
  long verify = SSL_get_verify_result(ssl_);
  if (ERR_GET_LIB(first) == ERR_LIB_SSL && ERR_GET_REASON(first) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    ERR_clear_error();
    return Error{Errc::tls_verify_failed,
                 std::string("server certificate rejected: ") + X509_verify_cert_error_string(verify)};
  }
  if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN)
    return Error{Errc::tls_handshake_failed, take_ssl_error("peer closed the connection during the TLS handshake")};
  return Error{Errc::tls_handshake_failed, take_ssl_error("TLS handshake failed")};
}

Result<std::size_t> TlsEngine::read(char* buf, std::size_t cap) {
  ERR_clear_error();
  int n = SSL_read(ssl_, buf, static_cast<int>(cap));
  if (n > 0) return static_cast<std::size_t>(n);
  int err = SSL_get_error(ssl_, n);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return std::size_t{0};
  if (err == SSL_ERROR_ZERO_RETURN) {
    peer_closed_ = true;
    return std::size_t{0};
  }
  return Error{Errc::io_error, take_ssl_error("TLS read failed")};
}

Status TlsEngine::write(std::string_view plain) {
  ERR_clear_error();
  while (!plain.empty()) {
    int n = SSL_write(ssl_, plain.data(), static_cast<int>(plain.size()));
    if (n <= 0) return Error{Errc::io_error, take_ssl_error("TLS write failed")};
    plain.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

void TlsEngine::take_output(std::string& out) {
  std::size_t pending = BIO_ctrl_pending(out_);
  if (pending == 0) return;
  std::size_t old = out.size();
  out.resize(old + pending);
  int n = BIO_read(out_, out.data() + old, static_cast<int>(pending));
  out.resize(old + (n > 0 ? static_cast<std::size_t>(n) : 0));
}

bool TlsEngine::has_output() const noexcept { return BIO_ctrl_pending(out_) > 0; }

std::string TlsEngine::alpn() const {
  const unsigned char* data = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(ssl_, &data, &len);
  return data != nullptr ? std::string(reinterpret_cast<const char*>(data), len) : std::string();
}

bool TlsEngine::resumed() const { return SSL_session_reused(ssl_) != 0; }

}  // namespace kupstream::net
