// Plain value types of the HTTP/1.1 client: request, response head, per-exchange handlers,
// connection options and limits.
//
// Thread: plain values, any thread; the handlers are called on the loop thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kupstream/error.h"
#include "kupstream/log.h"

namespace kupstream::net {

class TlsContext;

struct HttpHeader {
  std::string name;
  std::string value;
  friend bool operator==(const HttpHeader&, const HttpHeader&) = default;
};

// How the request body is sent.
enum class BodyMode {
  buffered,          // `body` is the whole body; Content-Length is added (omitted for an empty
                     // GET/HEAD/DELETE/OPTIONS body). Replayable: eligible for retry-once.
  streamed_length,   // the caller streams exactly `content_length` bytes with write_body().
  streamed_chunked,  // the caller streams with write_body() and ends with end_body();
                     // sent with Transfer-Encoding: chunked.
};

struct HttpRequest {
  std::string method{"GET"};
  std::string target{"/"};  // origin-form, e.g. "/api/v1/pods?watch=1"
  // Sent as given, in order. Host is added from the connection's authority when absent.
  // Content-Length / Transfer-Encoding are set by the client from body_mode; do not add them.
  std::vector<HttpHeader> headers;
  // Header lines already serialized ("Name: value\r\n" each), sent after `headers` (a proxy
  // builds them in one string instead of a vector of strings). The caller guarantees what
  // serialize_request_head() checks for `headers`: names are tokens, values have no CR, LF or
  // NUL, and neither Content-Length nor Transfer-Encoding is among them.
  std::string header_lines;
  bool header_lines_have_host = false;  // a Host line is among header_lines
  BodyMode body_mode = BodyMode::buffered;
  std::string body;                     // BodyMode::buffered only
  std::uint64_t content_length = 0;     // BodyMode::streamed_length only
};

struct HttpResponseHead {
  int status = 0;
  int version_major = 1;
  int version_minor = 1;
  std::string reason;
  std::vector<HttpHeader> headers;  // in wire order, names as received
  bool keep_alive = true;           // the connection may be reused after this response
  std::optional<std::uint64_t> content_length;
  bool chunked = false;

  // First header with this name (case-insensitive), or nullptr.
  const std::string* find(std::string_view name) const noexcept;
};

// Callbacks for one exchange. All run on the loop thread, never synchronously inside send(),
// and none runs after the HttpExchange handle (or its connection / pool) is dropped. Any of
// them may drop the exchange, the connection or the pool.
struct HttpHandlers {
  // Each 1xx response except 101 (e.g. 100 Continue, 103 Early Hints). Optional.
  std::function<void(const HttpResponseHead&)> on_informational;
  // The final response head. Called at most once, before any on_body.
  std::function<void(const HttpResponseHead&)> on_head;
  // Body bytes as they arrive (chunked framing removed). The view is valid only during the
  // call. Call HttpExchange::pause_body() here to stop reading (backpressure).
  std::function<void(std::string_view)> on_body;
  // When a streamed request body may be written again: after write_body() made the send
  // buffer exceed the high-water mark, it drained below it. Optional.
  std::function<void()> on_writable;
  // Exactly once unless dropped: ok after the whole response arrived, or the error.
  // Errors: connect_failed, resolve_failed, timed_out, connection_closed, tls_handshake_failed,
  // tls_verify_failed, http_parse_error, http_limit_exceeded, io_error, operation_canceled
  // (the connection or pool was closed with close() while the exchange was pending).
  std::function<void(Status)> on_complete;

  // Drops every handler (and what it captured). Cheaper than assigning HttpHandlers{}.
  void reset() noexcept;
};

inline void HttpHandlers::reset() noexcept {
  static_assert(sizeof(HttpHandlers) == 5 * sizeof(std::function<void()>), "HttpHandlers::reset: a handler was added");
  on_informational = nullptr;
  on_head = nullptr;
  on_body = nullptr;
  on_writable = nullptr;
  on_complete = nullptr;
}

struct HttpLimits {
  std::size_t max_header_bytes = 64 * 1024;  // status line + all header lines of a response
  std::size_t max_header_count = 128;
};

struct HttpConnectionOptions {
  std::string host;  // IPv4/IPv6 literal (no brackets) or a DNS name (resolved with getaddrinfo)
  std::uint16_t port = 0;
  std::shared_ptr<TlsContext> tls;  // null: plain HTTP
  // The Host header when the request has none. Empty: host, or host:port when the port is
  // not the scheme's default ([v6]:port for IPv6 literals).
  std::string authority;

  std::chrono::milliseconds connect_timeout{10'000};  // TCP connect + TLS handshake; 0 = none
  // From the moment the whole request is handed to a connected socket (end_body() for streamed
  // bodies) to the final response head; 0 = none.
  std::chrono::milliseconds response_header_timeout{0};
  // Longest silence while a response is being received (head or body); 0 = none. Kubernetes
  // watches set this above the server's watch timeout; not counted while the body is paused.
  std::chrono::milliseconds read_idle_timeout{0};
  bool tcp_nodelay = true;
  std::chrono::seconds tcp_keepalive{60};  // 0 = off
  HttpLimits limits;
  // Bytes of unsent request data above which write_body() asks the caller to wait for
  // on_writable.
  std::size_t write_high_water = 256 * 1024;
  LogFn log;  // optional
};

}  // namespace kupstream::net
