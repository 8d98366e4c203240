#include "net/transport.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "net/tls_context.h"
#include "net/tls_engine.h"

namespace kupstream::net {

namespace {

std::string host_port(const TransportOptions& o) {
  bool v6 = o.host.find(':') != std::string::npos;
  return (v6 ? "[" + o.host + "]" : o.host) + ":" + std::to_string(o.port);
}

// Per-thread buffers shared by all Transports of the thread: a read is consumed inside its
// callback (the sink copies what it keeps), and callbacks never nest.
constexpr std::size_t kReadBufferSize = 64 * 1024;
constexpr std::size_t kPlainBufferSize = 32 * 1024;

char* shared_read_buffer() {
  thread_local std::unique_ptr<char[]> b(new char[kReadBufferSize]);
  return b.get();
}

char* shared_plain_buffer() {
  thread_local std::unique_ptr<char[]> b(new char[kPlainBufferSize]);
  return b.get();
}

#ifdef MSG_NOSIGNAL
constexpr int kSendFlags = MSG_NOSIGNAL;
#else
constexpr int kSendFlags = 0;  // (BSD/macOS: SO_NOSIGPIPE is set on the socket instead)
#endif

Errc errc_for_uv(int status) {
  switch (status) {
    case UV_ECONNRESET:
    case UV_EPIPE:
    case UV_ECONNABORTED:
    case UV_EOF:
      return Errc::connection_closed;
    case UV_ETIMEDOUT:
      return Errc::timed_out;
    default:
      return Errc::io_error;
  }
}

// Batches waiting on one thread before all of them leave at once (see write() in the header).
constexpr std::size_t kBatchTransports = 8;

}  // namespace

Transport* Transport::create(uv_loop_t& loop, TransportSink& sink, TransportOptions options) {
  return new Transport(loop, sink, std::move(options));
}

Transport::Transport(uv_loop_t& loop, TransportSink& sink, TransportOptions options)
    : loop_(loop), sink_(&sink), options_(std::move(options)) {
  tcp_ = new uv_tcp_t;
  uv_tcp_init(&loop_, tcp_);
  tcp_->data = this;
  uv_timer_init(&loop_, &timer_);
  timer_.data = this;
  uv_timer_init(&loop_, &defer_timer_);
  defer_timer_.data = this;
  uv_check_init(&loop_, &batch_check_);
  batch_check_.data = this;
  uv_prepare_init(&loop_, &batch_prepare_);
  batch_prepare_.data = this;
  open_handles_ = 5;
}

Transport::~Transport() = default;

void Transport::start() {
  if (state_ != State::init) return;
  sockaddr_storage addr{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
  if (uv_ip4_addr(options_.host.c_str(), options_.port, v4) == 0 ||
      uv_ip6_addr(options_.host.c_str(), options_.port, v6) == 0) {
    connect_to(reinterpret_cast<const sockaddr*>(&addr));
    return;
  }
  state_ = State::resolving;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  // No AI_ADDRCONFIG: on a host with only loopback it hides "localhost".
  resolve_req_.data = this;
  std::string port = std::to_string(options_.port);
  int rc = uv_getaddrinfo(&loop_, &resolve_req_, &Transport::resolved_cb, options_.host.c_str(), port.c_str(), &hints);
  if (rc != 0) {
    // Report later, never inside start(): the timer gives us the next loop turn.
    fail_later(Error{Errc::resolve_failed, "resolve " + options_.host + ": " + uv_strerror(rc)});
    return;
  }
  resolving_ = true;
}

void Transport::resolved_cb(uv_getaddrinfo_t* req, int status, addrinfo* res) {
  auto* self = static_cast<Transport*>(req->data);
  self->resolving_ = false;
  if (self->closing_) {
    uv_freeaddrinfo(res);
    self->maybe_delete();
    return;
  }
  if (status != 0 || res == nullptr) {
    uv_freeaddrinfo(res);
    self->fail(Error{Errc::resolve_failed, "resolve " + self->options_.host + ": " + uv_strerror(status)});
    return;
  }
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    sockaddr_storage addr{};
    std::memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
    self->addresses_.push_back(addr);
  }
  uv_freeaddrinfo(res);
  if (self->addresses_.empty()) {
    self->fail(Error{Errc::resolve_failed, "resolve " + self->options_.host + ": no IPv4 or IPv6 address"});
    return;
  }
  self->next_address_ = 1;
  self->connect_to(reinterpret_cast<const sockaddr*>(&self->addresses_[0]));
}

void Transport::connect_to(const sockaddr* addr) {
  state_ = State::connecting;
  connect_req_.data = this;
  int rc = uv_tcp_connect(&connect_req_, tcp_, addr, &Transport::connect_cb);
  if (rc != 0) {
    fail_later(Error{Errc::connect_failed, "connect " + host_port(options_) + ": " + uv_strerror(rc)});
  }
}

void Transport::connect_cb(uv_connect_t* req, int status) {
  auto* self = static_cast<Transport*>(req->data);
  if (self->closing_ || status == UV_ECANCELED) return;
  if (status != 0) {
    if (self->next_address_ < self->addresses_.size()) {
      // A name with several addresses (e.g. localhost: ::1 and 127.0.0.1): try the next one on
      // a fresh socket; the failed one closes on its own.
      uv_close(reinterpret_cast<uv_handle_t*>(self->tcp_), &Transport::tcp_close_cb);
      self->tcp_ = new uv_tcp_t;
      uv_tcp_init(&self->loop_, self->tcp_);
      self->tcp_->data = self;
      ++self->open_handles_;
      const sockaddr_storage& next = self->addresses_[self->next_address_++];
      self->connect_to(reinterpret_cast<const sockaddr*>(&next));
      return;
    }
    self->fail(Error{Errc::connect_failed, "connect " + host_port(self->options_) + ": " + uv_strerror(status)});
    return;
  }
  self->on_tcp_connected();
}

void Transport::on_tcp_connected() {
  if (options_.tcp_nodelay) uv_tcp_nodelay(tcp_, 1);
#if !defined(MSG_NOSIGNAL) && defined(SO_NOSIGPIPE)
  uv_os_fd_t fd = -1;
  int one = 1;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(tcp_), &fd) == 0) setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
  if (options_.tcp_keepalive_s > 0) uv_tcp_keepalive(tcp_, 1, options_.tcp_keepalive_s);
  if (options_.tls) {
    Result<SSL*> ssl = options_.tls->new_client_ssl(options_.host, options_.port);
    if (!ssl) {
      fail(ssl.error());
      return;
    }
    tls_ = std::make_unique<TlsEngine>(options_.tls, *ssl);
    state_ = State::handshaking;
    start_reading();
    Result<bool> done = tls_->handshake();  // produces the ClientHello
    flush_tls_output();
    if (!done) {
      fail(Error{done.error().code, "TLS with " + host_port(options_) + ": " + done.error().reason});
    }
    return;
  }
  state_ = State::ready;
  start_reading();
  flush_pending_plain();
  if (sink_ != nullptr) sink_->on_transport_connected();
}

void Transport::start_reading() {
  if (reading_wanted_ && !reading_ && !closing_) {
    if (uv_read_start(reinterpret_cast<uv_stream_t*>(tcp_), &Transport::alloc_cb, &Transport::read_cb) == 0)
      reading_ = true;
  }
}

void Transport::pause_reading() {
  reading_wanted_ = false;
  if (reading_) {
    uv_read_stop(reinterpret_cast<uv_stream_t*>(tcp_));
    reading_ = false;
  }
}

void Transport::resume_reading() {
  reading_wanted_ = true;
  if (state_ == State::ready || state_ == State::handshaking) start_reading();
}

void Transport::alloc_cb(uv_handle_t* handle, std::size_t /*suggested*/, uv_buf_t* buf) {
  (void)handle;
  buf->base = shared_read_buffer();
  buf->len = kReadBufferSize;
}

void Transport::read_cb(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  static_cast<Transport*>(stream->data)->on_read(nread, buf);
}

void Transport::on_read(ssize_t nread, const uv_buf_t* buf) {
  if (closing_ || sink_ == nullptr) return;
  if (nread == 0) return;
  if (nread < 0) {
    if (nread == UV_EOF) {
      if (state_ == State::handshaking) {
        fail(Error{Errc::tls_handshake_failed,
                   "TLS with " + host_port(options_) + ": peer closed the connection during the handshake"});
        return;
      }
      // libuv reports a reset that follows a short read as EOF (POLLHUP); the pending socket
      // error tells it from an orderly close (a cut close-delimited body must not look whole).
      int err = 0;
      socklen_t len = sizeof err;
      uv_os_fd_t fd;
      if (uv_fileno(reinterpret_cast<uv_handle_t*>(tcp_), &fd) == 0 &&
          getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) {
        int status = uv_translate_sys_error(err);
        fail(Error{errc_for_uv(status), "read from " + host_port(options_) + ": " + uv_strerror(status)});
        return;
      }
      pause_reading();
      sink_->on_transport_eof();
      return;
    }
    int status = static_cast<int>(nread);
    Errc code = state_ == State::handshaking ? Errc::tls_handshake_failed : errc_for_uv(status);
    fail(Error{code, "read from " + host_port(options_) + ": " + uv_strerror(status)});
    return;
  }
  if (!tls_) {
    sink_->on_transport_data(buf->base, static_cast<std::size_t>(nread));
    return;
  }
  tls_->feed(buf->base, static_cast<std::size_t>(nread));
  process_tls_input();
}

void Transport::process_tls_input() {
  if (state_ == State::handshaking) {
    Result<bool> done = tls_->handshake();
    flush_tls_output();
    if (!done) {
      fail(Error{done.error().code, "TLS with " + host_port(options_) + ": " + done.error().reason});
      return;
    }
    if (!*done) return;
    state_ = State::ready;
    flush_pending_plain();
    if (sink_ == nullptr) return;
    sink_->on_transport_connected();
    if (closing_ || sink_ == nullptr) return;
  }
  for (;;) {
    char* plain = shared_plain_buffer();
    Result<std::size_t> n = tls_->read(plain, kPlainBufferSize);
    if (!n) {
      flush_tls_output();
      fail(Error{n.error().code, "TLS from " + host_port(options_) + ": " + n.error().reason});
      return;
    }
    if (*n == 0) break;
    sink_->on_transport_data(plain, *n);
    if (closing_ || sink_ == nullptr) return;
  }
  flush_tls_output();  // e.g. key updates / session tickets acknowledgements
  if (tls_->peer_closed() && sink_ != nullptr) {
    pause_reading();
    sink_->on_transport_eof();
  }
}

bool Transport::peer_hung_up() const noexcept {
  if (state_ != State::ready || closing_) return false;
  uv_os_fd_t fd;
  if (uv_fileno(reinterpret_cast<const uv_handle_t*>(tcp_), &fd) != 0) return false;
  char byte;
  const ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

bool Transport::tls_incomplete_close() const noexcept { return tls_ != nullptr && !tls_->peer_closed(); }

void Transport::flush_tls_output() {
  if (!tls_ || !tls_->has_output()) return;
  std::string out;
  tls_->take_output(out);
  raw_write(out);
}

void Transport::write(std::string_view data) {
  if (closing_ || data.empty()) return;
  if (state_ != State::ready) {
    pending_plain_.append(data);
    return;
  }
  if (tls_) {
    if (Status s = tls_->write(data); !s) {
      fail_later(Error{Errc::io_error, "TLS write to " + host_port(options_) + ": " + s.error().reason});
      return;
    }
    flush_tls_output();
    return;
  }
  raw_write(data);
}

void Transport::flush_pending_plain() {
  if (pending_plain_.empty()) return;
  std::string data;
  data.swap(pending_plain_);
  write(data);
}

// Small writes wait in out_ for the end of the loop phase (see write() in the header). While
// polling_ is off, out_ holds nothing or a waiting batch (batch_check_ and batch_prepare_ are
// then active); while it is on, out_ holds what the socket did not take, and no batch forms.
// Each waiting batch is listed in its thread's pending_batches(); when kBatchTransports are
// listed, all of them leave at once (the handles stay active: their callback then reports the
// drain and stops them).
void Transport::raw_write(std::string_view data) {
  if (closing_ || deferred_error_ || state_ == State::failed || data.empty()) return;
  if (!polling_ && queued_bytes_ + data.size() <= kBatchBytes) {
    if (queued_bytes_ == 0) {
      out_.clear();
      out_offset_ = 0;
      uv_check_start(&batch_check_, &Transport::batch_check_cb);
      uv_prepare_start(&batch_prepare_, &Transport::batch_prepare_cb);
    }
    out_.append(data);
    queued_bytes_ += data.size();
    if (!listed_) list_batch();
    return;
  }
  if (!polling_ && queued_bytes_ > 0) {  // the waiting batch leaves first, with data
    out_.append(data);
    queued_bytes_ += data.size();
    return send_batch();
  }
  send_now(data);
}

std::vector<Transport*>& Transport::pending_batches() {
  thread_local std::vector<Transport*> pending;
  return pending;
}

void Transport::list_batch() {
  auto& pending = pending_batches();
  pending.push_back(this);
  listed_ = true;
  if (pending.size() < kBatchTransports) return;
  std::vector<Transport*> all;
  all.swap(pending);
  for (Transport* t : all) t->listed_ = false;
  for (Transport* t : all) t->send_batch();
  all.clear();
  if (pending.empty()) pending.swap(all);  // keep the capacity
}

void Transport::unlist_batch() noexcept {
  if (!listed_) return;
  listed_ = false;
  auto& pending = pending_batches();
  if (auto it = std::find(pending.begin(), pending.end(), this); it != pending.end()) pending.erase(it);
}

void Transport::send_batch() {
  unlist_batch();
  if (polling_ || queued_bytes_ == 0 || closing_ || deferred_error_ || state_ == State::failed) return;
  std::string batch;
  batch.swap(out_);
  queued_bytes_ = 0;
  out_offset_ = 0;
  send_now(batch);
  // All sent: keep the larger buffer for the next batch.
  if (queued_bytes_ == 0 && batch.capacity() > out_.capacity()) out_.swap(batch);
}

// From the loop, never inside a Transport method: a batch that left whole counts as a drained
// write queue, as a queue emptied by writable_cb does (a caller above its high-water mark
// waits for that).
void Transport::batch_check_cb(uv_check_t* handle) { static_cast<Transport*>(handle->data)->end_of_phase(); }
void Transport::batch_prepare_cb(uv_prepare_t* handle) { static_cast<Transport*>(handle->data)->end_of_phase(); }

void Transport::end_of_phase() {
  uv_check_stop(&batch_check_);
  uv_prepare_stop(&batch_prepare_);
  send_batch();
  if (queued_bytes_ == 0 && !closing_ && state_ == State::ready && sink_ != nullptr) sink_->on_transport_drained();
}

// Every byte leaves through send(..., MSG_NOSIGNAL), never through libuv's write(2)/writev(2):
// writing to a connection the peer has closed or reset makes write(2) raise SIGPIPE, which kills
// a host that left SIGPIPE at its default. What the socket does not take at once waits in out_,
// and a poll handle says when the socket is writable again. That handle watches a duplicate of
// the socket's descriptor: libuv allows one watcher per descriptor number and the uv_tcp_t owns
// the original (epoll registers the duplicate separately; both refer to the same socket).
void Transport::send_now(std::string_view data) {
  if (queued_bytes_ == 0) {
    int err = 0;
    data.remove_prefix(send_some(data, err));
    if (err != 0) {
      fail_later(Error{errc_for_uv(err), "write to " + host_port(options_) + ": " + uv_strerror(err)});
      return;
    }
    if (data.empty()) return;
    out_.clear();
    out_offset_ = 0;
  }
  out_.append(data);
  queued_bytes_ += data.size();
  if (poll_ == nullptr) {
    uv_os_fd_t fd = -1;
    int dup_fd = uv_fileno(reinterpret_cast<uv_handle_t*>(tcp_), &fd) == 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (dup_fd < 0) {
      fail_later(Error{Errc::io_error, "write to " + host_port(options_) + ": cannot watch the socket: " +
                                           std::strerror(errno)});
      return;
    }
    poll_ = new uv_poll_t;
    int rc = uv_poll_init_socket(&loop_, poll_, dup_fd);
    if (rc != 0) {
      delete poll_;
      poll_ = nullptr;
      ::close(dup_fd);
      fail_later(Error{Errc::io_error, "write to " + host_port(options_) + ": cannot watch the socket: " + uv_strerror(rc)});
      return;
    }
    poll_fd_ = dup_fd;
    poll_->data = this;
    ++open_handles_;
  }
  if (!polling_) {
    uv_poll_start(poll_, UV_WRITABLE, &Transport::writable_cb);
    polling_ = true;
  }
}

std::size_t Transport::send_some(std::string_view data, int& err) {
  uv_os_fd_t fd = -1;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(tcp_), &fd) != 0) {
    err = UV_EBADF;
    return 0;
  }
  std::size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, kSendFlags);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    err = n < 0 ? uv_translate_sys_error(errno) : UV_EPIPE;
    break;
  }
  return sent;
}

void Transport::writable_cb(uv_poll_t* handle, int status, int /*events*/) {
  auto* self = static_cast<Transport*>(handle->data);
  if (self->closing_) return;
  if (self->state_ == State::failed || self->deferred_error_) {
    self->stop_polling();  // failed meanwhile: nothing more is written, no drained call
    return;
  }
  if (status < 0) {
    self->stop_polling();
    self->fail(Error{errc_for_uv(status), "write to " + host_port(self->options_) + ": " + uv_strerror(status)});
    return;
  }
  int err = 0;
  std::size_t n = self->send_some(std::string_view(self->out_).substr(self->out_offset_), err);
  self->out_offset_ += n;
  self->queued_bytes_ -= n;
  if (err != 0) {
    self->stop_polling();
    self->fail(Error{errc_for_uv(err), "write to " + host_port(self->options_) + ": " + uv_strerror(err)});
    return;
  }
  if (self->queued_bytes_ > 0) {
    if (self->out_offset_ >= 64 * 1024 && self->out_offset_ * 2 >= self->out_.size()) {
      self->out_.erase(0, self->out_offset_);
      self->out_offset_ = 0;
    }
    return;
  }
  self->stop_polling();
  self->out_.clear();
  self->out_offset_ = 0;
  if (self->sink_ != nullptr) self->sink_->on_transport_drained();
}

void Transport::stop_polling() {
  if (polling_) {
    uv_poll_stop(poll_);
    polling_ = false;
  }
}

void Transport::fail_later(Error error) {
  // Reported on the next loop turn, never inside the call that found it.
  if (deferred_error_ || closing_) return;
  state_ = State::failed;
  pause_reading();
  stop_polling();
  deferred_error_ = std::make_unique<Error>(std::move(error));
  timer_deadline_ = 0;
  timer_due_ = uv_now(&loop_);
  reference_timer(true);
  uv_timer_start(&timer_, &Transport::timer_cb, 0, 0);
}

void Transport::set_timer(std::uint64_t ms) {
  if (closing_ || deferred_error_) return;
  const std::uint64_t deadline = uv_now(&loop_) + ms;
  timer_deadline_ = deadline == 0 ? 1 : deadline;
  reference_timer(true);
  // Armed for no later than the deadline: it fires then, finds the deadline and re-arms for
  // the rest (see timer_cb). Saves a timer-heap removal and insertion per call.
  if (timer_due_ != 0 && timer_due_ <= deadline) return;
  timer_due_ = deadline;
  uv_timer_start(&timer_, &Transport::timer_cb, ms, 0);
}

void Transport::clear_timer() {
  if (closing_ || deferred_error_) return;
  timer_deadline_ = 0;
  // Left armed (it fires once more for nothing) but no longer keeps the loop alive.
  reference_timer(false);
}

void Transport::reference_timer(bool on) {
  if (timer_referenced_ == on) return;
  timer_referenced_ = on;
  if (on) uv_ref(reinterpret_cast<uv_handle_t*>(&timer_));
  else uv_unref(reinterpret_cast<uv_handle_t*>(&timer_));
}

void Transport::timer_cb(uv_timer_t* timer) {
  auto* self = static_cast<Transport*>(timer->data);
  self->timer_due_ = 0;
  if (self->closing_ || self->sink_ == nullptr) return;
  if (self->deferred_error_) {
    Error e = std::move(*self->deferred_error_);
    self->sink_->on_transport_error(std::move(e));
    return;
  }
  if (self->timer_deadline_ == 0) return;  // cleared since it was armed
  const std::uint64_t now = uv_now(&self->loop_);
  if (now < self->timer_deadline_) {
    self->timer_due_ = self->timer_deadline_;
    uv_timer_start(timer, &Transport::timer_cb, self->timer_deadline_ - now, 0);
    return;
  }
  self->timer_deadline_ = 0;
  self->sink_->on_transport_timer();
}

void Transport::fail(Error error) {
  if (closing_ || deferred_error_) return;
  state_ = State::failed;
  pause_reading();
  stop_polling();
  uv_timer_stop(&timer_);
  timer_deadline_ = 0;
  timer_due_ = 0;
  if (sink_ != nullptr) sink_->on_transport_error(std::move(error));
}

void Transport::close() {
  if (closing_) return;
  closing_ = true;
  unlist_batch();
  sink_ = nullptr;
  state_ = State::closed;
  if (resolving_) uv_cancel(reinterpret_cast<uv_req_t*>(&resolve_req_));
  if (poll_ != nullptr) {
    // uv_close removes the duplicate from epoll at once; the descriptor itself is closed in the
    // close callback (until then it keeps the socket open, which the closing uv_tcp_t ends).
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), &Transport::poll_close_cb);
    polling_ = false;
  }
  uv_close(reinterpret_cast<uv_handle_t*>(tcp_), &Transport::tcp_close_cb);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), &Transport::close_cb);
  uv_close(reinterpret_cast<uv_handle_t*>(&defer_timer_), &Transport::close_cb);
  uv_close(reinterpret_cast<uv_handle_t*>(&batch_check_), &Transport::close_cb);
  uv_close(reinterpret_cast<uv_handle_t*>(&batch_prepare_), &Transport::close_cb);
}

void Transport::defer() {
  if (!closing_ && !uv_is_active(reinterpret_cast<uv_handle_t*>(&defer_timer_)))
    uv_timer_start(&defer_timer_, &Transport::defer_cb, 0, 0);
}

void Transport::defer_cb(uv_timer_t* timer) {
  auto* self = static_cast<Transport*>(timer->data);
  if (self->closing_ || self->sink_ == nullptr) return;
  self->sink_->on_transport_deferred();
}

void Transport::tcp_close_cb(uv_handle_t* handle) {
  auto* self = static_cast<Transport*>(handle->data);
  delete reinterpret_cast<uv_tcp_t*>(handle);
  --self->open_handles_;
  self->maybe_delete();
}

void Transport::poll_close_cb(uv_handle_t* handle) {
  auto* self = static_cast<Transport*>(handle->data);
  delete reinterpret_cast<uv_poll_t*>(handle);
  ::close(self->poll_fd_);
  self->poll_fd_ = -1;
  self->poll_ = nullptr;
  --self->open_handles_;
  self->maybe_delete();
}

void Transport::close_cb(uv_handle_t* handle) {
  auto* self = static_cast<Transport*>(handle->data);
  --self->open_handles_;
  self->maybe_delete();
}

void Transport::maybe_delete() {
  if (closing_ && open_handles_ == 0 && !resolving_) delete this;
}

std::string Transport::alpn() const { return tls_ ? tls_->alpn() : std::string(); }
bool Transport::tls_resumed() const { return tls_ && tls_->resumed(); }

}  // namespace kupstream::net
