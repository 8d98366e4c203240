#include "net/connection_core.h"

#include <algorithm>

#include "net/tls_context.h"

namespace kupstream::net {

struct ConnectionCore::Depth {
  ConnectionCore* c;
  explicit Depth(ConnectionCore* core) : c(core) { ++c->depth_; }
  ~Depth() {
    if (--c->depth_ == 0 && c->released_) delete c;
  }
  Depth(const Depth&) = delete;
  Depth& operator=(const Depth&) = delete;
};

namespace {

// Larger request heads (with a buffered body) are not kept between exchanges.
constexpr std::size_t kMaxKeptHeadBuffer = 16 * 1024;

std::string default_authority(const HttpConnectionOptions& o) {
  bool v6 = o.host.find(':') != std::string::npos;
  std::string host = v6 ? "[" + o.host + "]" : o.host;
  std::uint16_t default_port = o.tls ? 443 : 80;
  return o.port == default_port ? host : host + ":" + std::to_string(o.port);
}

std::string target_name(const HttpConnectionOptions& o) {
  bool v6 = o.host.find(':') != std::string::npos;
  return std::string(o.tls ? "https://" : "http://") + (v6 ? "[" + o.host + "]" : o.host) + ":" +
         std::to_string(o.port);
}

}  // namespace

// llhttp callbacks, one static table for every connection.
struct ParserCallbacks {
  static ConnectionCore& self(llhttp_t* p) { return *static_cast<ConnectionCore*>(p->data); }

  static int limit(ConnectionCore& c, std::string reason) {
    c.limit_hit_ = true;
    c.limit_reason_ = std::move(reason);
    return HPE_USER;
  }

  static int reject(ConnectionCore& c, std::string reason) {
    c.reject_reason_ = std::move(reason);
    return HPE_USER;
  }

  [[gnu::noinline, gnu::cold]] static int header_bytes_limit(ConnectionCore& c) {
    return limit(c, "response head exceeds max_header_bytes (" + std::to_string(c.options_.limits.max_header_bytes) + " bytes)");
  }
  [[gnu::noinline, gnu::cold]] static int header_count_limit(ConnectionCore& c) {
    return limit(c, "response has more header fields than max_header_count (" + std::to_string(c.options_.limits.max_header_count) + ")");
  }
  static int count_bytes(ConnectionCore& c, std::size_t len) {
    c.header_bytes_ += len;
    if (c.header_bytes_ > c.options_.limits.max_header_bytes) [[unlikely]]
      return header_bytes_limit(c);
    return 0;
  }
  // The header being parsed is written straight into its slot, headers[header_count_], cleared
  // at its first piece: a slot left from the previous response on this connection keeps its
  // capacity (no allocation per header in the steady state). nullptr past max_header_count.
  static HttpHeader* header_slot(ConnectionCore& c) {
    auto& headers = c.head_.headers;
    if (!c.header_started_) {
      if (c.header_count_ >= c.options_.limits.max_header_count) return nullptr;
      if (c.header_count_ < headers.size()) {
        headers[c.header_count_].name.clear();
        headers[c.header_count_].value.clear();
      } else {
        headers.emplace_back();
      }
      c.header_started_ = true;
    }
    return &headers[c.header_count_];
  }

  static int on_status(llhttp_t* p, const char* at, std::size_t len) {
    ConnectionCore& c = self(p);
    c.head_.reason.append(at, len);
    return count_bytes(c, len);
  }
  static int on_header_field(llhttp_t* p, const char* at, std::size_t len) {
    ConnectionCore& c = self(p);
    HttpHeader* slot = header_slot(c);
    if (slot == nullptr) return header_count_limit(c);
    slot->name.append(at, len);
    return count_bytes(c, len);
  }
  static int on_header_value(llhttp_t* p, const char* at, std::size_t len) {
    ConnectionCore& c = self(p);
    HttpHeader* slot = header_slot(c);
    if (slot == nullptr) return header_count_limit(c);
    slot->value.append(at, len);
    return count_bytes(c, len);
  }
  static int on_header_value_complete(llhttp_t* p) {
    ConnectionCore& c = self(p);
    if (header_slot(c) == nullptr) return header_count_limit(c);  // (a header with no name and no value)
    ++c.header_count_;
    c.header_started_ = false;
    return count_bytes(c, 4);
  }
  static int on_headers_complete(llhttp_t* p) {
    ConnectionCore& c = self(p);
    HttpResponseHead& h = c.head_;
    if (h.headers.size() > c.header_count_) h.headers.resize(c.header_count_);  // drop the unused slots
    h.status = p->status_code;
    h.version_major = p->http_major;
    h.version_minor = p->http_minor;
    h.chunked = (p->flags & F_CHUNKED) != 0;
    if ((p->flags & F_CONTENT_LENGTH) != 0) h.content_length = p->content_length;
    h.keep_alive = llhttp_should_keep_alive(p) != 0;
    std::shared_ptr<ExchangeCore> ex = c.active_;
    if (!ex) return HPE_USER;
    // (llhttp replaces the reason of an error returned from here, so it is kept aside.)
    if (h.status == 101) return reject(c, "unexpected 101 Switching Protocols");
    // llhttp takes any three digits; 000..099 is no status code (RFC 9110 15).
    if (h.status < 100) return reject(c, "invalid status code " + std::to_string(h.status));
    if (h.status >= 100 && h.status < 200) {
      if (ex->handlers.on_informational && !ex->canceled) {
        ++ex->calling;
        ex->handlers.on_informational(h);
        --ex->calling;
        ex->maybe_release_handlers();
        if (c.active_gone()) return HPE_USER;
      }
      return 1;  // a 1xx has no content whatever Content-Length/Transfer-Encoding say (RFC 9110 15.2)
    }
    c.head_done_ = true;
    c.update_timer();
    if (ex->handlers.on_head && !ex->canceled) {
      ++ex->calling;
      ex->handlers.on_head(h);
      --ex->calling;
      ex->maybe_release_handlers();
      if (c.active_gone()) return HPE_USER;
    }
    // No body follows, whatever Content-Length says (RFC 9110 6.4.1).
    if (ex->request.method == "HEAD" || h.status == 204 || h.status == 304) return 1;
    if (ex->paused) return HPE_PAUSED;
    return 0;
  }
  static int on_body(llhttp_t* p, const char* at, std::size_t len) {
    if (len == 0) return 0;  // an empty span flush after a resume
    ConnectionCore& c = self(p);
    std::shared_ptr<ExchangeCore> ex = c.active_;
    if (!ex) return HPE_USER;
    if (ex->handlers.on_body && !ex->canceled) {
      ++ex->calling;
      ex->handlers.on_body(std::string_view(at, len));
      --ex->calling;
      ex->maybe_release_handlers();
      if (c.active_gone()) return HPE_USER;
    }
    return ex->paused ? HPE_PAUSED : 0;
  }
  static int on_message_complete(llhttp_t* p) {
    ConnectionCore& c = self(p);
    if (c.head_.status >= 100 && c.head_.status < 200) {
      c.reset_response();  // an interim response: the final one follows
      return 0;
    }
    c.message_done_ = true;
    return HPE_PAUSED;
  }

  static const llhttp_settings_t& settings() {
    static const llhttp_settings_t s = [] {
      llhttp_settings_t t;
      llhttp_settings_init(&t);
      t.on_status = on_status;
      t.on_header_field = on_header_field;
      t.on_header_value = on_header_value;
      t.on_header_value_complete = on_header_value_complete;
      t.on_headers_complete = on_headers_complete;
      t.on_body = on_body;
      t.on_message_complete = on_message_complete;
      return t;
    }();
    return s;
  }
};

ConnectionCore::ConnectionCore(uv_loop_t& loop, HttpConnectionOptions options)
    : loop_(loop), options_(std::move(options)) {
  authority_ = options_.authority.empty() ? default_authority(options_) : options_.authority;
  llhttp_init(&parser_, HTTP_RESPONSE, &ParserCallbacks::settings());
  parser_.data = this;
}

ConnectionCore::~ConnectionCore() = default;

void ConnectionCore::release() {
  if (released_) return;
  released_ = true;
  owner_ = nullptr;
  connect_cb_ = nullptr;
  if (active_) {
    active_->conn = nullptr;
    active_->state = ExchangeCore::State::done;
    active_->cancel_silently();
    active_.reset();
  }
  close_transport();
  if (depth_ == 0) delete this;
}

bool ConnectionCore::active_gone() const noexcept { return released_ || !active_ || active_->canceled; }

void ConnectionCore::close_transport() {
  closed_ = true;
  if (transport_ != nullptr) {
    transport_->close();
    transport_ = nullptr;
  }
}

void ConnectionCore::begin_connect() {
  TransportOptions t;
  t.host = options_.host;
  t.port = options_.port;
  t.tls = options_.tls;
  t.tcp_nodelay = options_.tcp_nodelay;
  t.tcp_keepalive_s = static_cast<unsigned>(options_.tcp_keepalive.count());
  if (options_.tls && options_.log && options_.tls->claim_insecure_warning()) {
    options_.log(LogLevel::warning, "TLS certificate verification is DISABLED (insecure_skip_verify) for " +
                                        target_name(options_));
  }
  transport_ = Transport::create(loop_, *this, std::move(t));
  connecting_ = true;
  transport_->start();
  if (options_.connect_timeout.count() > 0) transport_->set_timer(static_cast<std::uint64_t>(options_.connect_timeout.count()));
}

Status ConnectionCore::connect(std::function<void(Status)> cb) {
  if (closed_ || broken_) return Error{Errc::connection_closed, target_name(options_) + ": connection is closed"};
  if (connect_cb_) return Error{Errc::invalid_argument, "connect: already waiting for a connect callback"};
  connect_cb_ = std::move(cb);
  if (transport_ == nullptr) {
    begin_connect();
  } else if (transport_->connected()) {
    connect_cb_due_ = true;
    transport_->defer();
  }
  return {};
}

Status ConnectionCore::start(const std::shared_ptr<ExchangeCore>& ex) {
  if (closed_ || broken_) return Error{Errc::connection_closed, target_name(options_) + ": connection is closed"};
  if (active_) return Error{Errc::invalid_argument, target_name(options_) + ": an exchange is already in flight"};
  std::string& head = head_buf_;  // reused: its capacity saves an allocation per exchange
  head.clear();
  if (Status s = serialize_request_head(ex->request, authority_, head); !s) return s;
  if (ex->request.body_mode == BodyMode::buffered) {
    ex->body_ended = true;
  }
  head += ex->early_body;
  ex->early_body.clear();
  ex->early_body.shrink_to_fit();
  ex->state = ExchangeCore::State::active;
  ex->conn = this;
  ex->pool = nullptr;
  ex->write_high_water = options_.write_high_water;
  active_ = ex;
  if (transport_ != nullptr && transport_->connected()) ex->connected = true;
  ++exchanges_started_;
  reset_response();
  llhttp_init(&parser_, HTTP_RESPONSE, &ParserCallbacks::settings());
  parser_.data = this;
  response_bytes_ = 0;
  request_ended_ = false;
  pending_eof_ = false;
  head_deadline_ = 0;
  parser_paused_ = false;
  paused_input_.clear();
  if (transport_ == nullptr) begin_connect();
  transport_->write(head);
  if (head.capacity() > kMaxKeptHeadBuffer) std::string().swap(head);
  if (ex->paused) transport_->pause_reading();
  else transport_->resume_reading();
  if (ex->want_writable && transport_->connected()) transport_->defer();  // see on_transport_deferred
  if (ex->body_ended) request_body_ended();
  else update_timer();
  return {};
}

void ConnectionCore::reset_response() {
  // Field by field rather than a fresh HttpResponseHead: the header slots keep their strings
  // for the next response (see on_header_value_complete).
  head_.status = 0;
  head_.version_major = 1;
  head_.version_minor = 1;
  head_.reason.clear();
  head_.keep_alive = true;
  head_.content_length.reset();
  head_.chunked = false;
  header_count_ = 0;
  header_started_ = false;
  header_bytes_ = 0;
  head_done_ = false;
  message_done_ = false;
  limit_hit_ = false;
  reject_reason_.clear();
}

std::size_t ConnectionCore::write_body_bytes(std::string_view framed) {
  if (transport_ == nullptr || closed_) return 0;
  transport_->write(framed);
  return transport_->queued_bytes();
}

void ConnectionCore::request_body_ended() {
  request_ended_ = true;
  if (options_.response_header_timeout.count() > 0 && !head_done_)
    head_deadline_ = uv_now(&loop_) + static_cast<std::uint64_t>(options_.response_header_timeout.count());
  update_timer();
}

void ConnectionCore::update_timer() {
  if (transport_ == nullptr || closed_) return;
  if (connecting_) return;  // the connect timer stays armed
  if (!active_) {
    if (idle_timeout_ms_ > 0) transport_->set_timer(idle_timeout_ms_);
    else transport_->clear_timer();
    return;
  }
  std::uint64_t now = uv_now(&loop_);
  std::uint64_t wait = 0;
  if (!head_done_ && head_deadline_ != 0) wait = head_deadline_ > now ? head_deadline_ - now : 1;
  if (options_.read_idle_timeout.count() > 0 && !active_->paused) {
    auto idle = static_cast<std::uint64_t>(options_.read_idle_timeout.count());
    wait = wait == 0 ? idle : std::min(wait, idle);
  }
  if (wait > 0) transport_->set_timer(wait);
  else transport_->clear_timer();
}

void ConnectionCore::set_idle_timeout(std::uint64_t ms) {
  idle_timeout_ms_ = ms;
  if (!active_) update_timer();
}

void ConnectionCore::pause_body() {
  if (transport_ != nullptr) transport_->pause_reading();
  update_timer();
}

void ConnectionCore::resume_body() {
  if (transport_ == nullptr || closed_) return;
  if (parser_paused_) {
    // Continue parsing on the next turn: never deliver body inside resume_body().
    transport_->defer();
  } else {
    transport_->resume_reading();
  }
  update_timer();
}

void ConnectionCore::abort_exchange(ExchangeCore& ex) {
  if (active_.get() != &ex) return;
  Depth guard(this);
  std::shared_ptr<ExchangeCore> keep = std::move(active_);
  keep->conn = nullptr;
  broken_ = true;
  close_transport();
  if (owner_ != nullptr) owner_->on_connection_closed(*this, false, nullptr);
}

void ConnectionCore::feed(const char* data, std::size_t len) {
  // Called with a Depth guard held by the caller.
  response_bytes_ += len;
  llhttp_errno_t err = llhttp_execute(&parser_, data, len);
  if (released_ || closed_) return;
  if (err == HPE_OK) {
    if (options_.read_idle_timeout.count() > 0 || head_deadline_ != 0) update_timer();
    return;
  }
  if (err == HPE_PAUSED) {
    const char* pos = llhttp_get_error_pos(&parser_);
    std::size_t used = pos != nullptr ? static_cast<std::size_t>(pos - data) : len;
    if (message_done_) {
      if (used < len) broken_ = true;  // bytes after the response: the stream is not trustworthy
      finish_ok();
      return;
    }
    // The consumer paused: keep the rest until resume_body().
    parser_paused_ = true;
    paused_input_.assign(data + used, len - used);
    response_bytes_ -= len - used;
    if (transport_ != nullptr) transport_->pause_reading();
    update_timer();
    return;
  }
  if (active_gone()) {
    // The consumer dropped the exchange inside a handler; abort_exchange() did the rest.
    return;
  }
  if (limit_hit_) {
    fail(Error{Errc::http_limit_exceeded, target_name(options_) + ": " + limit_reason_});
    return;
  }
  const char* reason = llhttp_get_error_reason(&parser_);
  if (!reject_reason_.empty()) reason = reject_reason_.c_str();
  fail(Error{Errc::http_parse_error, target_name(options_) + ": malformed response: " + llhttp_errno_name(err) + " (" +
                                         (reason != nullptr ? reason : "") + ")"});
}

void ConnectionCore::finish_ok() {
  std::shared_ptr<ExchangeCore> ex = std::move(active_);
  ex->conn = nullptr;
  bool reuse = head_.keep_alive && !broken_ && ex->body_ended;
  if (!reuse) {
    broken_ = true;
    close_transport();
  } else {
    update_timer();
  }
  if (owner_ != nullptr) {
    if (reuse) owner_->on_connection_idle(*this);
    else owner_->on_connection_closed(*this, false, nullptr);
  }
  ex->complete(Status{});
}

void ConnectionCore::fail(Error error) {
  std::shared_ptr<ExchangeCore> ex = std::move(active_);
  bool was_connecting = connecting_;
  connecting_ = false;
  broken_ = true;
  close_transport();
  std::shared_ptr<ExchangeCore> retry;
  if (ex) {
    ex->conn = nullptr;
    bool retryable = exchanges_started_ > 1 && response_bytes_ == 0 && !ex->retried &&
                     ex->request.body_mode == BodyMode::buffered && error.code == make_error_code(Errc::connection_closed);
    if (retryable) retry = ex;
  }
  bool taken = false;
  if (owner_ != nullptr) taken = owner_->on_connection_closed(*this, true, retry);
  if (ex && !taken) ex->complete(error);
  if (was_connecting && connect_cb_ && !released_) {
    auto cb = std::move(connect_cb_);
    connect_cb_ = nullptr;
    cb(error);
  }
}

void ConnectionCore::on_transport_connected() {
  Depth guard(this);
  connecting_ = false;
  if (active_) active_->connected = true;
  // The response-head clock starts when the request can actually leave, not at send().
  if (request_ended_ && head_deadline_ != 0)
    head_deadline_ = uv_now(&loop_) + static_cast<std::uint64_t>(options_.response_header_timeout.count());
  update_timer();
  if (connect_cb_) {
    auto cb = std::move(connect_cb_);
    connect_cb_ = nullptr;
    cb(Status{});
    if (released_ || closed_) return;
  }
  notify_writable();  // body bytes buffered before the connection was ready are out now
}

void ConnectionCore::on_transport_data(const char* data, std::size_t len) {
  Depth guard(this);
  if (!active_) {
    // Bytes nobody asked for: the server is confused; never reuse this stream.
    broken_ = true;
    close_transport();
    if (owner_ != nullptr) owner_->on_connection_closed(*this, true, nullptr);
    return;
  }
  if (parser_paused_ || active_->paused) {
    // The consumer is not ready: hold the bytes (at most one read) until resume_body().
    parser_paused_ = true;
    paused_input_.append(data, len);
    if (transport_ != nullptr) transport_->pause_reading();
    return;
  }
  feed(data, len);
}

void ConnectionCore::on_transport_deferred() {
  Depth guard(this);
  notify_writable();
  if (released_ || closed_) return;
  if (connect_cb_due_) {
    connect_cb_due_ = false;
    if (connect_cb_) {
      auto cb = std::move(connect_cb_);
      connect_cb_ = nullptr;
      cb(Status{});
      if (released_ || closed_) return;
    }
  }
  if (parser_paused_ && active_ && !active_->paused) {
    parser_paused_ = false;
    llhttp_resume(&parser_);
    std::string input;
    input.swap(paused_input_);
    // Even with nothing held, run the parser once: a pause on the last body bytes leaves the
    // message-complete step still to be taken, and no more bytes may ever arrive.
    feed(input.data(), input.size());
    if (released_ || closed_) return;
    if (transport_ != nullptr && !parser_paused_) transport_->resume_reading();
    if (pending_eof_ && !parser_paused_ && active_) {
      pending_eof_ = false;
      handle_eof();
    }
  }
}

void ConnectionCore::on_transport_eof() {
  Depth guard(this);
  if (active_ && parser_paused_) {
    pending_eof_ = true;  // deliver what is held first
    // The peer has closed: however the held response ends, this stream never carries another
    // exchange (a TLS close_notify can arrive behind a paused response in the same read).
    broken_ = true;
    return;
  }
  handle_eof();
}

void ConnectionCore::handle_eof() {
  if (!active_) {
    // The server closed an idle keep-alive connection.
    close_transport();
    if (owner_ != nullptr) owner_->on_connection_closed(*this, false, nullptr);
    return;
  }
  if (response_bytes_ == 0) {
    fail(Error{Errc::connection_closed, target_name(options_) + ": connection closed before any response byte"});
    return;
  }
  broken_ = true;
  // Over TLS only close_notify proves that a body delimited by the close is whole (RFC 9112
  // 9.8); a bare TCP close may be a truncation. Framed bodies end by their framing instead.
  if (llhttp_message_needs_eof(&parser_) != 0 && transport_ != nullptr && transport_->tls_incomplete_close()) {
    fail(Error{Errc::connection_closed, target_name(options_) + ": TLS connection closed without close_notify after " +
                                            std::to_string(response_bytes_) +
                                            " bytes of a close-delimited body (it may be truncated)"});
    return;
  }
  llhttp_errno_t err = llhttp_finish(&parser_);
  if (released_ || closed_) return;
  if (message_done_ && (err == HPE_OK || err == HPE_PAUSED)) {
    finish_ok();
    return;
  }
  if (active_gone()) return;
  fail(Error{Errc::connection_closed, target_name(options_) + ": connection closed mid-response after " +
                                          std::to_string(response_bytes_) + " bytes (" +
                                          (head_done_ ? "body truncated" : "head truncated") + ")"});
}

void ConnectionCore::on_transport_error(Error error) {
  Depth guard(this);
  if (!active_ && !connecting_) {
    close_transport();
    if (owner_ != nullptr) owner_->on_connection_closed(*this, true, nullptr);
    return;
  }
  fail(std::move(error));
}

void ConnectionCore::on_transport_timer() {
  Depth guard(this);
  if (connecting_) {
    fail(Error{Errc::timed_out, target_name(options_) + ": connect did not complete within " +
                                    std::to_string(options_.connect_timeout.count()) + " ms"});
    return;
  }
  if (!active_) {
    // Idle too long in the pool.
    close_transport();
    if (owner_ != nullptr) owner_->on_connection_closed(*this, false, nullptr);
    return;
  }
  if (!head_done_ && head_deadline_ != 0 && uv_now(&loop_) >= head_deadline_) {
    fail(Error{Errc::timed_out, target_name(options_) + ": no response head within " +
                                    std::to_string(options_.response_header_timeout.count()) + " ms"});
    return;
  }
  fail(Error{Errc::timed_out, target_name(options_) + ": no data for " +
                                  std::to_string(options_.read_idle_timeout.count()) + " ms while reading the response"});
}

void ConnectionCore::on_transport_drained() {
  Depth guard(this);
  notify_writable();
}

void ConnectionCore::notify_writable() {
  std::shared_ptr<ExchangeCore> ex = active_;
  if (!ex || !ex->want_writable || ex->canceled || transport_ == nullptr) return;
  if (transport_->queued_bytes() > ex->write_high_water) return;
  ex->want_writable = false;
  if (ex->handlers.on_writable) {
    ++ex->calling;
    ex->handlers.on_writable();
    --ex->calling;
    ex->maybe_release_handlers();
  }
}

}  // namespace kupstream::net
