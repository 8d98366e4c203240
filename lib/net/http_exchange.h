// HttpExchange: the caller's handle on one request/response in flight, from
// HttpConnection::send() or ConnectionPool::send().
//
// Thread: loop thread only. Lifetime: dropping the handle at any time (also inside one of its
// own handlers) cancels the exchange: no handler runs afterwards. If the request or response
// was still in flight the connection it used is closed (never reused); a pending exchange in a
// pool queue is simply removed. Dropping after on_complete is free.
#pragma once

#include <memory>
#include <string_view>

#include "kupstream/error.h"

namespace kupstream::net {

struct ExchangeCore;

class HttpExchange {
 public:
  explicit HttpExchange(std::shared_ptr<ExchangeCore> core);
  ~HttpExchange();
  HttpExchange(const HttpExchange&) = delete;
  HttpExchange& operator=(const HttpExchange&) = delete;
  HttpExchange(HttpExchange&&) = delete;
  HttpExchange& operator=(HttpExchange&&) = delete;

  // One per request: blocks come from the per-thread BlockCache (block_cache.h).
  static void* operator new(std::size_t size);
  static void operator delete(void* p, std::size_t size) noexcept;

  // Streams request body bytes (BodyMode::streamed_length / streamed_chunked). Data written
  // before the connection is ready is buffered. Returns false when the send buffer is above
  // the high-water mark: wait for HttpHandlers::on_writable before writing more (data passed
  // in this call was still accepted). Errors (returned, no handler runs): invalid_argument
  // (buffered mode, body already ended, more than content_length), operation_canceled (the
  // exchange already completed or failed).
  Result<bool> write_body(std::string_view data);
  // Ends a streamed body (sends the last chunk for chunked; checks the length for
  // streamed_length: invalid_argument if short).
  Status end_body();

  // Backpressure on the response: stop delivering on_body (and stop reading the socket)
  // until resume_body(). Callable inside on_body. The read idle timer is stopped meanwhile.
  void pause_body();
  void resume_body();

  // True once on_complete has been delivered or the exchange failed.
  bool done() const noexcept;
  // False while no connection carrying this exchange has completed its connect (TCP + TLS):
  // nothing of the request can have been sent (e.g. after a connect timeout).
  bool connected() const noexcept;

 private:
  std::shared_ptr<ExchangeCore> core_;
};

}  // namespace kupstream::net
