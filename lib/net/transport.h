// Transport: one client byte stream on the loop: resolve (getaddrinfo for names), TCP connect,
// optional TLS (TlsEngine over memory BIOs), buffered writes, pausable reads and one timer.
// Writes never raise SIGPIPE: they use send(MSG_NOSIGNAL) instead of libuv's write(2), so the
// host need not ignore SIGPIPE for kupstream's sake (see docs/security.md).
// The stream abstraction under HttpConnection: plain and TLS look the same to it.
//
// Thread: loop thread only. Lifetime: create() returns a raw pointer owned by the caller until
// close(); close() detaches the sink (no sink call afterwards, even if close() is called from
// inside one) and the Transport deletes itself once libuv has closed its handles and finished
// its requests. Sink calls never happen synchronously inside a Transport method.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kupstream/error.h"

namespace kupstream::net {

class TlsContext;
class TlsEngine;

class TransportSink {
 public:
  virtual void on_transport_connected() = 0;                     // TCP (+ TLS) ready
  virtual void on_transport_data(const char* data, std::size_t len) = 0;  // plaintext
  virtual void on_transport_eof() = 0;                           // clean end of stream
  virtual void on_transport_error(Error error) = 0;             // terminal
  virtual void on_transport_timer() = 0;
  virtual void on_transport_drained() = 0;                       // write queue became empty
  virtual void on_transport_deferred() = 0;                      // after defer()

 protected:
  ~TransportSink() = default;
};

struct TransportOptions {
  std::string host;
  std::uint16_t port = 0;
  std::shared_ptr<TlsContext> tls;
  bool tcp_nodelay = true;
  unsigned tcp_keepalive_s = 60;
};

class Transport {
 public:
  static Transport* create(uv_loop_t& loop, TransportSink& sink, TransportOptions options);
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Starts resolving and connecting. Outcome through the sink.
  void start();
  // Queues plaintext. Before the connection is ready it is kept and sent once it is.
  // Writes are batched per loop phase: what is written while the loop runs one phase (the I/O
  // callbacks of one poll, or the timer and idle callbacks before it) leaves in one send()
  // when that phase ends, just before the loop polls again (a uv_check and a uv_prepare
  // handle, active and referenced only while bytes wait, so the loop neither blocks nor exits
  // with bytes unsent). A peer serving several connections is then woken once for what this
  // loop had for it, not once per write. Bounds: up to kBatchBytes wait per Transport (a write
  // that would go over sends the batch and itself at once), and once kBatchTransports
  // (transport.cpp) of this thread's Transports have a batch waiting, all of them leave at once
  // (so the first one does not wait for a long run of callbacks). close() drops what has not
  // left, as before.
  void write(std::string_view data);
  static constexpr std::size_t kBatchBytes = 16 * 1024;
  std::size_t queued_bytes() const noexcept { return queued_bytes_ + pending_plain_.size(); }
  void pause_reading();
  void resume_reading();
  // One deadline, ms from now; replaces any earlier one. Cheap to call per request: the uv
  // timer is only re-armed when the new deadline is earlier than the armed one; a timer that
  // fires before the current deadline re-arms itself for the rest.
  void set_timer(std::uint64_t ms);
  // No deadline. The uv timer may stay armed, unreferenced (it does not keep the loop alive).
  void clear_timer();
  // Calls sink.on_transport_deferred() on a later loop turn (once, however often called).
  void defer();
  void close();

  bool connected() const noexcept { return state_ == State::ready; }
  std::string alpn() const;
  bool tls_resumed() const;
  // After on_transport_eof: true when TLS was in use and the peer closed the TCP connection
  // without a close_notify alert (an "incomplete close": a close-delimited body may be cut).
  bool tls_incomplete_close() const noexcept;
  // True when the socket already holds the peer's FIN or a reset that the loop has not
  // delivered yet (one non-blocking recv with MSG_PEEK; data waiting, such as a TLS
  // close_notify, is not a hang-up). A pool asks before it reuses a connection for a request it
  // could not replay: a server that closes right behind its response (or times an idle
  // connection out) would otherwise get that request on a dead socket.
  bool peer_hung_up() const noexcept;
  const TransportOptions& options() const noexcept { return options_; }

 private:
  enum class State { init, resolving, connecting, handshaking, ready, failed, closed };

  Transport(uv_loop_t& loop, TransportSink& sink, TransportOptions options);
  ~Transport();

  void connect_to(const sockaddr* addr);
  void on_tcp_connected();
  void on_read(ssize_t nread, const uv_buf_t* buf);
  void process_tls_input();
  void flush_tls_output();
  void raw_write(std::string_view data);
  void send_now(std::string_view data);  // raw_write without batching
  void list_batch();                      // may send every listed batch (kBatchTransports)
  void unlist_batch() noexcept;
  void send_batch();                      // the waiting batch, if any, now
  void end_of_phase();                    // the handles' callback
  static std::vector<Transport*>& pending_batches();  // this thread's listed Transports
  void flush_pending_plain();
  std::size_t send_some(std::string_view data, int& err);  // err: a UV_E* code, 0 = none
  void stop_polling();
  void fail(Error error);
  void fail_later(Error error);
  void start_reading();
  void maybe_delete();
  void reference_timer(bool on);

  static void resolved_cb(uv_getaddrinfo_t* req, int status, addrinfo* res);
  static void connect_cb(uv_connect_t* req, int status);
  static void alloc_cb(uv_handle_t* handle, std::size_t suggested, uv_buf_t* buf);
  static void read_cb(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void writable_cb(uv_poll_t* handle, int status, int events);
  static void poll_close_cb(uv_handle_t* handle);
  static void timer_cb(uv_timer_t* timer);
  static void defer_cb(uv_timer_t* timer);
  static void batch_check_cb(uv_check_t* handle);
  static void batch_prepare_cb(uv_prepare_t* handle);
  static void close_cb(uv_handle_t* handle);
  static void tcp_close_cb(uv_handle_t* handle);

  uv_loop_t& loop_;
  TransportSink* sink_;
  TransportOptions options_;
  State state_ = State::init;
  uv_tcp_t* tcp_;  // heap: a failed attempt's socket closes while the next one connects
  std::vector<sockaddr_storage> addresses_;
  std::size_t next_address_ = 0;
  uv_timer_t timer_;
  std::uint64_t timer_deadline_ = 0;  // loop time of the deadline; 0 = none
  std::uint64_t timer_due_ = 0;       // loop time the uv timer is armed for; 0 = not armed
  bool timer_referenced_ = true;      // uv_ref state of timer_ (unreferenced while no deadline)
  uv_timer_t defer_timer_;
  // Both active while a batch of writes waits in out_ (see write()): the check handle sends it
  // after the poll phase's callbacks, the prepare handle before the loop polls.
  uv_check_t batch_check_;
  uv_prepare_t batch_prepare_;
  bool listed_ = false;  // in pending_batches()
  uv_getaddrinfo_t resolve_req_;
  uv_connect_t connect_req_;
  int open_handles_ = 0;
  bool resolving_ = false;
  bool closing_ = false;
  bool reading_wanted_ = true;
  bool reading_ = false;
  std::unique_ptr<TlsEngine> tls_;
  std::string pending_plain_;   // written before ready
  std::string out_;               // bytes not sent yet (a batch, or what the socket did not take), from out_offset_ on
  std::size_t out_offset_ = 0;
  std::size_t queued_bytes_ = 0;  // out_.size() - out_offset_
  uv_poll_t* poll_ = nullptr;     // writability of poll_fd_, created at the first short write
  int poll_fd_ = -1;              // a duplicate of the socket's descriptor
  bool polling_ = false;
  std::unique_ptr<Error> deferred_error_;
  // (Reads land in a per-thread buffer shared by every Transport, see transport.cpp: it stays
  // in the CPU cache instead of one cold 96 KiB buffer per connection.)
};

}  // namespace kupstream::net
