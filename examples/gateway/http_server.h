// HttpServer: the gateway's HTTP/1.1 server side (listeners and client connections).
//
// Each connection parses requests with llhttp (HTTP_REQUEST mode), one at a time: a pipelined
// request waits until the previous response is finished. For each request head the factory
// returns a RequestHandler that receives the body as it arrives; the handler answers through
// the ResponseWriter. Keep-alive is the default for HTTP/1.1; a response without a known
// length is sent chunked (HTTP/1.1) or delimited by closing the connection (HTTP/1.0).
//
// Backpressure: ResponseWriter::write() returns false once the connection's unsent output
// exceeds the high-water mark; RequestHandler::on_writable() runs when it drops below the
// low-water mark. pause_request_body() stops reading the client socket (at most one read
// buffer more arrives), resume_request_body() restarts it.
//
// Limits: request line + headers larger than max_header_bytes → 431; a body larger than
// max_body_bytes → 413; malformed → 400 (also framing llhttp would accept but a proxy must not:
// bare CR/LF, obs-fold, chunk data without CRLF, Transfer-Encoding in HTTP/1.0); a head
// not complete within header_timeout_ms, or a keep-alive connection idle for idle_timeout_ms,
// is closed.
//
// A request with a body reaches the factory once its first body byte has been parsed (or the
// message ends), so a body whose framing is broken from the start never reaches a handler.
//
// Thread: loop thread only. Lifetime: handlers are destroyed by the connection (never inside
// their own calls: destruction is deferred to a later loop turn) once both the request and the
// response are complete, or when the client goes away. Destroying the HttpServer closes
// everything at once; drain() does it gracefully.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kupstream/error.h"

typedef struct uv_loop_s uv_loop_t;

namespace kupgw {

using HeaderField = std::pair<std::string, std::string>;
using HeaderFieldView = std::pair<std::string_view, std::string_view>;

struct RequestHead {
  std::string method;
  std::string target;  // as sent (origin-form)
  int version_major = 1, version_minor = 1;
  std::vector<HeaderField> headers;  // in order, names as sent
  std::optional<std::uint64_t> content_length;
  bool chunked = false;       // Transfer-Encoding: chunked
  bool keep_alive = true;
  std::string client_address;  // peer IP

  bool has_body() const { return chunked || content_length.value_or(0) > 0; }
  // First value of a header (case-insensitive name), or "" .
  std::string_view header(std::string_view name) const;
};

class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  // Status line and headers. Hop-by-hop headers (Connection, Keep-Alive, Transfer-Encoding...)
  // in `headers` are dropped; the server adds its own framing.
  // The headers are copied out before it returns.
  virtual void start(int status, std::span<const HeaderFieldView> headers,
                     std::optional<std::uint64_t> content_length) = 0;
  void start(int status, std::initializer_list<HeaderFieldView> headers, std::optional<std::uint64_t> content_length) {
    start(status, std::span<const HeaderFieldView>(headers.begin(), headers.size()), content_length);
  }
  // False: above the high-water mark; wait for RequestHandler::on_writable().
  virtual bool write(std::string_view data) = 0;
  virtual void finish() = 0;  // the response is complete
  virtual void abort() = 0;   // cannot complete it: the connection is closed after what was sent
  virtual bool started() const = 0;
  virtual void pause_request_body() = 0;
  virtual void resume_request_body() = 0;
  // Convenience: a whole response with a short text body.
  void simple(int status, std::string_view body, std::string_view content_type = "text/plain; charset=utf-8");
};

class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  virtual void on_body(std::string_view data) = 0;
  virtual void on_body_end() = 0;
  virtual void on_writable() {}
};

// Returns the handler of a request, or nullptr after answering it entirely through the writer
// (the request body, if any, is then read and discarded).
using HandlerFactory = std::function<std::unique_ptr<RequestHandler>(RequestHead& head, ResponseWriter& writer)>;

struct HttpServerOptions {
  std::size_t max_header_bytes = 64 * 1024;
  std::uint64_t max_body_bytes = 0;  // request body larger than this → 413 and close; 0 = no limit
  std::uint32_t header_timeout_ms = 10'000;
  std::uint32_t idle_timeout_ms = 60'000;
  std::size_t write_high_water = 256 * 1024;
  std::size_t write_low_water = 64 * 1024;
  std::function<void(std::string_view)> log;  // connection-level problems; may be empty
  // SO_REUSEPORT on the listening sockets: several servers (one per worker loop) may listen on
  // the same address and port, and the kernel spreads the new connections among them.
  bool reuse_port = false;
};

struct HttpServerStats {
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_active = 0;
  std::uint64_t requests = 0;
  std::uint64_t responses_by_class[6] = {};  // index status/100 (0 unused)
  std::uint64_t bad_requests = 0;            // 400 and 431
  std::uint64_t timeouts = 0;                // header/idle timeouts that closed a connection
  std::uint64_t aborted = 0;                 // responses cut short
};

class HttpServer {
 public:
  HttpServer(uv_loop_t& loop, HttpServerOptions options, HandlerFactory factory);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Starts listening; returns the bound port (useful with port 0). Errors: io_error naming
  // the address.
  kupstream::Result<std::uint16_t> listen(const std::string& address, std::uint16_t port);
  // Graceful stop: closes the listeners, closes idle connections, lets in-flight requests
  // finish (their responses carry Connection: close), and after timeout_ms closes whatever is
  // left. `done` runs once every connection is closed (on a later loop turn).
  void drain(std::uint32_t timeout_ms, std::function<void()> done);

  const HttpServerStats& stats() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace kupgw
