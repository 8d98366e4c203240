// TlsEngine: a client SSL driven over two memory BIOs, with no I/O of its own. The transport
// feeds it ciphertext from the socket and sends what it produces.
//
// Thread: loop thread only (one engine per connection). Not copyable.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "kupstream/error.h"
#include "net/tls_context.h"

typedef struct bio_st BIO;

namespace kupstream::net {

class TlsEngine {
 public:
  // Takes ownership of `ssl` (from TlsContext::new_client_ssl).
  TlsEngine(std::shared_ptr<TlsContext> context, SSL* ssl);
  ~TlsEngine();
  TlsEngine(const TlsEngine&) = delete;
  TlsEngine& operator=(const TlsEngine&) = delete;

  // Ciphertext received from the peer.
  void feed(const char* data, std::size_t len);
  // Drives the handshake. Returns true once complete. Errors: tls_handshake_failed, or
  // tls_verify_failed with the X.509 reason (expired, name mismatch, unknown CA).
  Result<bool> handshake();
  bool handshake_done() const noexcept { return done_; }
  // Decrypts into buf. Returns bytes (>0), 0 when more ciphertext is needed. A close_notify
  // from the peer sets peer_closed(). Errors: io_error / connection_closed.
  Result<std::size_t> read(char* buf, std::size_t cap);
  bool peer_closed() const noexcept { return peer_closed_; }
  // Encrypts plaintext (after the handshake). Errors: io_error.
  Status write(std::string_view plain);
  // Appends ciphertext waiting to be sent to `out`.
  void take_output(std::string& out);
  bool has_output() const noexcept;

  std::string alpn() const;
  bool resumed() const;
  std::string server_name() const { return name_; }

 private:
  std::shared_ptr<TlsContext> context_;
  SSL* ssl_;
  BIO* in_;   // network -> SSL
  BIO* out_;  // SSL -> network
  bool done_ = false;
  bool peer_closed_ = false;
  std::string name_;
};

}  // namespace kupstream::net
