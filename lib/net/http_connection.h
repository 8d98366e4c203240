// HttpConnection: one HTTP/1.1 client connection (TCP or TLS) on the host's loop, carrying one
// exchange at a time, with keep-alive reuse. Used directly by the Kubernetes API client
// (e.g. a watch: one request, an endless chunked body streamed through on_body) and, pooled,
// by ConnectionPool.
//
// Thread: loop thread only. Lifetime: create() returns a unique_ptr; dropping it at any time,
// even inside a handler of its own exchange, closes the socket; no handler runs afterwards and
// the internal state lives on only until libuv has closed the handles.
// Connecting is lazy: the first send() (or connect()) resolves, connects and handshakes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "kupstream/error.h"
#include "net/http_exchange.h"
#include "net/http_types.h"

typedef struct uv_loop_s uv_loop_t;

namespace kupstream::net {

class ConnectionCore;

class HttpConnection {
 public:
  // Validates options (host non-empty, port 1..65535): invalid_argument otherwise. Opens
  // nothing yet.
  static Result<std::unique_ptr<HttpConnection>> create(uv_loop_t& loop, HttpConnectionOptions options);

  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;
  HttpConnection(HttpConnection&&) = delete;
  HttpConnection& operator=(HttpConnection&&) = delete;

  // Starts connecting now (optional; send() does it too). `cb` runs once, later, with ok or
  // the connect/TLS error; a connection already connected answers ok (also later).
  // Errors returned: connection_closed when the connection is no longer usable.
  Status connect(std::function<void(Status)> cb);

  // Sends one request. Errors returned (no handler runs): invalid_argument (another exchange
  // is in flight, or a bad request such as a CR/LF in a header), connection_closed (the
  // connection was closed or the last response forbade reuse: make a new connection).
  Result<std::unique_ptr<HttpExchange>> send(HttpRequest request, HttpHandlers handlers);

  // No exchange in flight and the connection can take another request.
  bool reusable() const noexcept;
  // The TCP/TLS connection is established (handshake done).
  bool connected() const noexcept;
  // The ALPN protocol negotiated ("" when none or plain).
  std::string alpn() const;
  // The TLS session was resumed.
  bool tls_resumed() const noexcept;

  // Internal: the state shared with exchanges and the pool.
  ConnectionCore* core() const noexcept { return core_; }

 private:
  explicit HttpConnection(ConnectionCore* core) : core_(core) {}
  ConnectionCore* core_;
};

}  // namespace kupstream::net
