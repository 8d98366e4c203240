// ConnectionCore: the internal state of one HTTP/1.1 client connection: a Transport, an llhttp
// response parser and at most one active exchange. Owned either by an HttpConnection handle or
// by a pool (through ConnectionOwner).
//
// Lifetime: release() is the owner's drop. The core then closes its transport, cancels its
// exchange silently and deletes itself as soon as no call into it is on the stack.
#pragma once

#include <llhttp.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "net/exchange_core.h"
#include "net/http_types.h"
#include "net/transport.h"

namespace kupstream::net {

class ConnectionCore;

// Events a pool needs. Called on the loop thread from inside the connection's callbacks.
class ConnectionOwner {
 public:
  // The exchange ended and the connection can carry another one.
  virtual void on_connection_idle(ConnectionCore& conn) = 0;
  // The connection is finished (closed or failed) and must be released by the owner.
  // `retry` is the exchange that failed before any byte of its response arrived on a reused
  // connection; the owner may re-send it (return true) or leave it to fail (false).
  virtual bool on_connection_closed(ConnectionCore& conn, bool failed, std::shared_ptr<ExchangeCore> retry) = 0;

 protected:
  ~ConnectionOwner() = default;
};

class ConnectionCore final : private TransportSink {
 public:
  ConnectionCore(uv_loop_t& loop, HttpConnectionOptions options);
  ConnectionCore(const ConnectionCore&) = delete;
  ConnectionCore& operator=(const ConnectionCore&) = delete;

  void set_owner(ConnectionOwner* owner) noexcept { owner_ = owner; }
  // The owner's drop. No handler or owner call happens afterwards.
  void release();

  Status connect(std::function<void(Status)> cb);
  // Starts an exchange. Errors: invalid_argument (busy / bad request), connection_closed.
  Status start(const std::shared_ptr<ExchangeCore>& exchange);

  bool reusable() const noexcept { return !closed_ && !broken_ && !active_; }
  bool connected() const noexcept { return transport_ != nullptr && transport_->connected(); }
  // The server has closed (or reset) this connection, though the loop has not read that yet.
  bool peer_hung_up() const noexcept { return transport_ != nullptr && transport_->peer_hung_up(); }
  bool closed() const noexcept { return closed_; }
  bool busy() const noexcept { return active_ != nullptr; }
  std::uint64_t exchanges_started() const noexcept { return exchanges_started_; }
  std::string alpn() const { return transport_ != nullptr ? transport_->alpn() : std::string(); }
  bool tls_resumed() const { return transport_ != nullptr && transport_->tls_resumed(); }
  const HttpConnectionOptions& options() const noexcept { return options_; }
  // While idle (no exchange), close after this long; 0 = never. Set by the pool.
  void set_idle_timeout(std::uint64_t ms);

  // From ExchangeCore / HttpExchange.
  std::size_t write_body_bytes(std::string_view framed);
  void request_body_ended();
  void pause_body();
  void resume_body();
  void abort_exchange(ExchangeCore& exchange);

 private:
  friend struct ParserCallbacks;
  struct Depth;
  ~ConnectionCore();

  void begin_connect();
  void send_head(ExchangeCore& ex);
  void feed(const char* data, std::size_t len);
  void finish_ok();
  void handle_eof();
  void notify_writable();
  void fail(Error error);
  void close_transport();
  void update_timer();
  void reset_response();
  bool active_gone() const noexcept;

  void on_transport_connected() override;
  void on_transport_data(const char* data, std::size_t len) override;
  void on_transport_eof() override;
  void on_transport_error(Error error) override;
  void on_transport_timer() override;
  void on_transport_drained() override;
  void on_transport_deferred() override;

  uv_loop_t& loop_;
  HttpConnectionOptions options_;
  std::string authority_;
  ConnectionOwner* owner_ = nullptr;
  Transport* transport_ = nullptr;
  std::shared_ptr<ExchangeCore> active_;
  std::function<void(Status)> connect_cb_;
  bool connect_cb_due_ = false;

  llhttp_t parser_;
  HttpResponseHead head_;
  std::size_t header_count_ = 0;  // headers of the current response (head_.headers may hold more slots)
  std::string head_buf_;          // the serialized request head, reused
  bool header_started_ = false;   // headers[header_count_] holds the start of the header being parsed
  std::size_t header_bytes_ = 0;
  bool head_done_ = false;
  bool message_done_ = false;
  bool limit_hit_ = false;
  std::string limit_reason_;
  std::string reject_reason_;  // why a parser callback refused the response
  std::uint64_t response_bytes_ = 0;

  bool parser_paused_ = false;  // llhttp returned HPE_PAUSED for the consumer's pause
  std::string paused_input_;
  bool request_ended_ = false;
  bool pending_eof_ = false;
  std::uint64_t head_deadline_ = 0;  // loop time; 0 = none
  std::uint64_t idle_timeout_ms_ = 0;

  std::uint64_t exchanges_started_ = 0;
  int depth_ = 0;
  bool released_ = false;
  bool closed_ = false;
  bool broken_ = false;  // must not be reused
  bool connecting_ = false;
};

}  // namespace kupstream::net
