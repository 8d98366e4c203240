// ExchangeCore: the state of one request/response shared by its HttpExchange handle, the
// connection carrying it and (while queued) the pool.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "net/http_types.h"

namespace kupstream::net {

class ConnectionCore;
class PoolCore;

struct ExchangeCore {
  enum class State { queued, active, done };

  ExchangeCore() = default;
  ExchangeCore(HttpRequest&& r, HttpHandlers&& h) : request(std::move(r)), handlers(std::move(h)) {}

  HttpRequest request;
  HttpHandlers handlers;
  State state = State::queued;
  ConnectionCore* conn = nullptr;  // while active
  PoolCore* pool = nullptr;        // while queued in a pool
  std::size_t write_high_water = 256 * 1024;

  // Streamed body bookkeeping.
  bool body_ended = false;         // buffered bodies count as ended from the start
  std::uint64_t body_written = 0;  // payload bytes accepted by write_body()
  std::string early_body;          // framed body bytes written before a connection took us
  bool want_writable = false;      // write_body() returned false; call on_writable on drain

  bool paused = false;
  bool retried = false;
  bool connected = false;  // a connection carrying it got connected (bytes may have left)
  bool canceled = false;  // the handle was dropped, or the owner went away
  int calling = 0;        // depth of handler calls in progress

  // Delivers on_complete once (unless canceled) and marks the exchange done.
  void complete(const Status& status);
  // Drops interest silently: no handler runs afterwards. Safe inside a handler.
  void cancel_silently();
  // Releases the handlers when no handler is running (captured state may own the handle).
  void maybe_release_handlers();
};

// Serializes the request line and headers (and a buffered body). Errors: invalid_argument for
// CR/LF/NUL in the method, target or headers, or an empty header name.
Status serialize_request_head(const HttpRequest& request, const std::string& authority, std::string& out);

// "5\r\nhello\r\n": one chunk of a chunked body.
void frame_chunk(std::string_view data, std::string& out);

}  // namespace kupstream::net
