#include "net/http_exchange.h"

#include "net/block_cache.h"
#include "net/connection_core.h"
#include "net/exchange_core.h"
#include "net/pool_core.h"

namespace kupstream::net {

void ExchangeCore::complete(const Status& status) {
  if (state == State::done) return;
  state = State::done;
  conn = nullptr;
  pool = nullptr;
  if (canceled || !handlers.on_complete) {
    maybe_release_handlers();
    return;
  }
  ++calling;
  handlers.on_complete(status);
  --calling;
  canceled = true;  // nothing more will be delivered
  maybe_release_handlers();
}

void ExchangeCore::cancel_silently() {
  canceled = true;
  maybe_release_handlers();
}

void ExchangeCore::maybe_release_handlers() {
  if (canceled && calling == 0) handlers.reset();
}

HttpExchange::HttpExchange(std::shared_ptr<ExchangeCore> core) : core_(std::move(core)) {}

void* HttpExchange::operator new(std::size_t size) { return detail::cached_new<HttpExchange>(size); }
void HttpExchange::operator delete(void* p, std::size_t size) noexcept { detail::cached_delete<HttpExchange>(p, size); }

HttpExchange::~HttpExchange() {
  ExchangeCore& c = *core_;
  bool was_done = c.state == ExchangeCore::State::done;
  c.canceled = true;
  if (!was_done) {
    if (c.state == ExchangeCore::State::active && c.conn != nullptr) {
      c.conn->abort_exchange(c);
    } else if (c.state == ExchangeCore::State::queued && c.pool != nullptr) {
      c.pool->remove_pending(c);
    }
    c.state = ExchangeCore::State::done;
    c.conn = nullptr;
    c.pool = nullptr;
  }
  c.maybe_release_handlers();
}

Result<bool> HttpExchange::write_body(std::string_view data) {
  ExchangeCore& c = *core_;
  if (c.state == ExchangeCore::State::done) return Error{Errc::operation_canceled, "write_body: the exchange is over"};
  if (c.request.body_mode == BodyMode::buffered)
    return Error{Errc::invalid_argument, "write_body: the request body is buffered (BodyMode::buffered)"};
  if (c.body_ended) return Error{Errc::invalid_argument, "write_body: end_body() was already called"};
  std::string framed;
  if (c.request.body_mode == BodyMode::streamed_length) {
    if (c.body_written + data.size() > c.request.content_length)
      return Error{Errc::invalid_argument, "write_body: more than content_length (" +
                                               std::to_string(c.request.content_length) + ") bytes"};
    framed.assign(data);
  } else {
    frame_chunk(data, framed);
  }
  c.body_written += data.size();
  std::size_t queued = 0;
  if (c.conn != nullptr) {
    queued = c.conn->write_body_bytes(framed);
  } else {
    c.early_body += framed;
    queued = c.early_body.size();
  }
  if (queued > c.write_high_water) {
    c.want_writable = true;
    return false;
  }
  return true;
}

Status HttpExchange::end_body() {
  ExchangeCore& c = *core_;
  if (c.state == ExchangeCore::State::done) return Error{Errc::operation_canceled, "end_body: the exchange is over"};
  if (c.request.body_mode == BodyMode::buffered)
    return Error{Errc::invalid_argument, "end_body: the request body is buffered (BodyMode::buffered)"};
  if (c.body_ended) return Error{Errc::invalid_argument, "end_body: called twice"};
  if (c.request.body_mode == BodyMode::streamed_length && c.body_written != c.request.content_length)
    return Error{Errc::invalid_argument, "end_body: " + std::to_string(c.body_written) + " bytes written, content_length is " +
                                             std::to_string(c.request.content_length)};
  c.body_ended = true;
  std::string_view last = c.request.body_mode == BodyMode::streamed_chunked ? "0\r\n\r\n" : "";
  if (c.conn != nullptr) {
    c.conn->write_body_bytes(last);
    c.conn->request_body_ended();
  } else {
    c.early_body += last;
  }
  return {};
}

void HttpExchange::pause_body() {
  ExchangeCore& c = *core_;
  if (c.paused || c.state == ExchangeCore::State::done) return;
  c.paused = true;
  if (c.conn != nullptr) c.conn->pause_body();
}

void HttpExchange::resume_body() {
  ExchangeCore& c = *core_;
  if (!c.paused) return;
  c.paused = false;
  if (c.conn != nullptr) c.conn->resume_body();
}

bool HttpExchange::done() const noexcept { return core_->state == ExchangeCore::State::done; }

bool HttpExchange::connected() const noexcept { return core_->connected; }

}  // namespace kupstream::net
