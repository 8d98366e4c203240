#include "http_server.h"

#include <fmt/format.h>
#include <llhttp.h>
#include <sys/socket.h>
#include <uv.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>

using kupstream::Errc;
using kupstream::Error;
using kupstream::Result;

namespace kupgw {

namespace {

// ASCII lower case of each byte: one load per byte in iequals (header names, every request).
constexpr auto kAsciiLower = [] {
  std::array<unsigned char, 256> t{};
  for (int c = 0; c < 256; ++c) t[c] = static_cast<unsigned char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  return t;
}();

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (kAsciiLower[static_cast<unsigned char>(a[i])] != kAsciiLower[static_cast<unsigned char>(b[i])]) return false;
  return true;
}

// Index of the first CR or LF in data[0, len), or len. Eight bytes at a time (a request head's
// lines are scanned on every request).
std::size_t find_cr_or_lf(const char* data, std::size_t len) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL, kHigh = 0x8080808080808080ULL;
  std::size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, data + i, 8);
    const std::uint64_t cr = w ^ (kOnes * '\r'), lf = w ^ (kOnes * '\n');  // zero bytes where CR, LF
    if ((((cr - kOnes) & ~cr) | ((lf - kOnes) & ~lf)) & kHigh) break;
  }
  for (; i < len; ++i)
    if (data[i] == '\r' || data[i] == '\n') return i;
  return len;
}

bool framing_or_hop_header(std::string_view name) {
  switch (name.size()) {  // only names of these lengths can match
    case 2: return iequals(name, "te");
    case 7: return iequals(name, "trailer") || iequals(name, "upgrade");
    case 10: return iequals(name, "connection") || iequals(name, "keep-alive");
    case 14: return iequals(name, "content-length");
    case 16: return iequals(name, "proxy-connection");
    case 17: return iequals(name, "transfer-encoding");
    default: return false;
  }
}

const char* reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status < 300 ? "OK" : status < 400 ? "Redirect" : status < 500 ? "Client Error" : "Server Error";
  }
}

void append_number(std::string& out, std::uint64_t n, int base = 10) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, n, base);
  out.append(buf, static_cast<std::size_t>(r.ptr - buf));
}

constexpr std::size_t kReadBufferSize = 64 * 1024;

// Bytes of pipelined requests read ahead while a response is pending; beyond this, reading stops.
constexpr std::size_t kMaxPipelinedBytes = 64 * 1024;

}  // namespace

std::string_view RequestHead::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) return v;
  return {};
}

void ResponseWriter::simple(int status, std::string_view body, std::string_view content_type) {
  start(status, {{"Content-Type", content_type}}, body.size());
  if (!body.empty()) write(body);
  finish();
}

class Connection;

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  Impl(uv_loop_t& l, HttpServerOptions o, HandlerFactory f) : loop(l), options(std::move(o)), factory(std::move(f)) {}

  struct Listener {
    uv_tcp_t tcp;
    std::shared_ptr<Impl> impl;
  };
  struct Idle {
    uv_idle_t idle;
    std::shared_ptr<Impl> impl;
  };
  struct Timer {
    uv_timer_t timer;
    std::shared_ptr<Impl> impl;
  };

  uv_loop_t& loop;
  HttpServerOptions options;
  HandlerFactory factory;
  HttpServerStats stats;
  std::vector<Listener*> listeners;
  std::map<Connection*, std::shared_ptr<Connection>> connections;
  Idle* idle = nullptr;
  Timer* drain_timer = nullptr;
  // Run on the next loop turn, in order: a connection's next request (fn empty) or fn.
  struct Deferred {
    std::shared_ptr<Connection> next;
    std::function<void()> fn;
  };
  std::vector<Deferred> deferred, running;  // swapped: both keep their capacity
  // Connections whose response bytes wait for the end of the loop phase (Connection::flush_soon).
  std::vector<Connection*> waiting_flush;
  bool draining = false;
  bool shut = false;
  std::function<void()> drain_done;

  void log(std::string_view what) {
    if (options.log) options.log(what);
  }
  void defer(std::function<void()> fn);
  void defer_next(std::shared_ptr<Connection> c);
  void start_idle();
  void run_deferred();
  void closed(Connection* c);
  void close_listeners();
  void check_drained();
  void close_all();
};

class Connection final : public ResponseWriter {
 public:
  explicit Connection(std::shared_ptr<HttpServer::Impl> server) : server_(std::move(server)) {
    llhttp_settings_init(&settings_);
    settings_.on_message_begin = [](llhttp_t* p) { return self(p)->on_message_begin(); };
    settings_.on_url = [](llhttp_t* p, const char* at, std::size_t n) { return self(p)->on_url(at, n); };
    settings_.on_header_field = [](llhttp_t* p, const char* at, std::size_t n) { return self(p)->on_field(at, n); };
    settings_.on_header_value = [](llhttp_t* p, const char* at, std::size_t n) { return self(p)->on_value(at, n); };
    settings_.on_headers_complete = [](llhttp_t* p) { return self(p)->on_headers_complete(); };
    settings_.on_body = [](llhttp_t* p, const char* at, std::size_t n) { return self(p)->on_body(at, n); };
    settings_.on_chunk_header = [](llhttp_t* p) { return self(p)->on_chunk_header(); };
    settings_.on_message_complete = [](llhttp_t* p) { return self(p)->on_message_complete(); };
    llhttp_init(&parser_, HTTP_REQUEST, &settings_);
    parser_.data = this;
  }

  bool open(uv_stream_t* listener, std::shared_ptr<Connection> me) {
    me_ = std::move(me);
    uv_tcp_init(&server_->loop, &tcp_);
    tcp_.data = this;
    uv_timer_init(&server_->loop, &timer_);
    timer_.data = this;
    uv_check_init(&server_->loop, &flush_check_);
    flush_check_.data = this;
    uv_prepare_init(&server_->loop, &flush_prepare_);
    flush_prepare_.data = this;
    open_handles_ = 4;
    if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(&tcp_)) != 0) {
      close();
      return false;
    }
    uv_tcp_nodelay(&tcp_, 1);
    sockaddr_storage ss{};
    int len = sizeof ss;
    if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
      char buf[64] = {};
      if (ss.ss_family == AF_INET6) uv_ip6_name(reinterpret_cast<sockaddr_in6*>(&ss), buf, sizeof buf);
      else uv_ip4_name(reinterpret_cast<sockaddr_in*>(&ss), buf, sizeof buf);
      peer_ = buf;
    }
    arm_timer(server_->options.idle_timeout_ms);
    update_reading();
    return true;
  }

  // Idle between requests (nothing received of the next one): safe to close at once.
  bool idle() const { return !in_message_ && !handler_ && !request_done_ && pending_.empty() && !response_started_; }

  void begin_drain() {
    if (closing_) return;
    if (idle()) close();
    else close_after_ = true;
  }

  void close() {
    if (closing_) return;
    closing_ = true;
    unlist_flush();
    if (handler_) {
      // Never destroy the handler inside one of its own calls; keep this connection (its
      // ResponseWriter) alive until the handler is gone.
      std::shared_ptr<RequestHandler> h(std::move(handler_));
      auto keep = me_;
      server_->defer([h, keep]() mutable { h.reset(); });
    }
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
    uv_timer_stop(&timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), [](uv_handle_t* h) { static_cast<Connection*>(h->data)->handle_closed(); });
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), [](uv_handle_t* h) { static_cast<Connection*>(h->data)->handle_closed(); });
    uv_close(reinterpret_cast<uv_handle_t*>(&flush_check_), [](uv_handle_t* h) { static_cast<Connection*>(h->data)->handle_closed(); });
    uv_close(reinterpret_cast<uv_handle_t*>(&flush_prepare_), [](uv_handle_t* h) { static_cast<Connection*>(h->data)->handle_closed(); });
  }

  // ResponseWriter
  using ResponseWriter::start;
  void start(int status, std::span<const HeaderFieldView> headers, std::optional<std::uint64_t> length) override {
    if (closing_ || response_started_) return;
    response_started_ = true;
    if (status >= 100 && status < 600) server_->stats.responses_by_class[status / 100]++;
    bool bodyless = head_request_ || status == 204 || status == 304 || status < 200;
    body_allowed_ = !bodyless;
    std::string& o = out_;
    if (status == 200) {
      o += "HTTP/1.1 200 OK\r\n";  // the usual status line in one append
    } else {
      o += "HTTP/1.1 ";
      append_number(o, static_cast<std::uint64_t>(status));
      o += ' ';
      o += reason_phrase(status);
      o += "\r\n";
    }
    for (const auto& [k, v] : headers) {
      if (framing_or_hop_header(k)) continue;
      // One append per line where it fits (each append is a call into libstdc++).
      char line[256];
      if (const std::size_t len = k.size() + v.size() + 4; len <= sizeof line) {
        std::memcpy(line, k.data(), k.size());
        std::memcpy(line + k.size(), ": ", 2);
        std::memcpy(line + k.size() + 2, v.data(), v.size());
        std::memcpy(line + len - 2, "\r\n", 2);
        o.append(line, len);
      } else {
        o.append(k).append(": ", 2).append(v).append("\r\n", 2);
      }
    }
    if (length) {
      if (status != 204 && status >= 200) {
        o += "Content-Length: ";
        append_number(o, *length);
        o += "\r\n";
      }
    } else if (!bodyless) {
      if (version_minor_ >= 1) {
        chunked_out_ = true;
        o += "Transfer-Encoding: chunked\r\n";
      } else {
        close_after_ = true;  // HTTP/1.0: the end of the body is the end of the connection
      }
    }
    if (server_->draining || !keep_alive_) close_after_ = true;
    if (close_after_) o += "Connection: close\r\n";
    else if (version_minor_ == 0) o += "Connection: keep-alive\r\n";
    o += "\r\n";
  }

  bool write(std::string_view data) override {
    if (closing_ || !response_started_ || response_done_) return true;
    if (body_allowed_ && !data.empty()) {
      if (chunked_out_) {
        append_number(out_, data.size(), 16);
        out_ += "\r\n";
        out_.append(data);
        out_ += "\r\n";
      } else {
        out_.append(data);
      }
    }
    if (queued_ + out_.size() >= server_->options.write_high_water) flush();
    else flush_soon();
    if (queued_ >= server_->options.write_high_water) {
      want_writable_ = true;
      return false;
    }
    return true;
  }

  void finish() override {
    if (closing_ || response_done_) return;
    if (!response_started_) start(500, {}, 0);
    if (chunked_out_) out_ += "0\r\n\r\n";
    response_done_ = true;
    flush_soon();
    if (!request_done_ && body_paused_) {
      // Answered before the request body ended, with the body paused (the handler no longer
      // needs it, and may never resume it): read on and discard the rest, so that the
      // connection reaches the next request instead of stalling with reading stopped.
      resume_request_body();
    }
    if (close_after_) {
      end_after_writes();
      return;
    }
    maybe_next();
  }

  void abort() override {
    if (closing_) return;
    server_->stats.aborted++;
    close();
  }

  bool started() const override { return response_started_; }

  void pause_request_body() override {
    body_paused_ = true;
    update_reading();
  }
  void resume_request_body() override {
    if (!body_paused_) return;
    body_paused_ = false;
    if (!closing_) {
      auto keep = me_;
      server_->defer([keep] { keep->parse(); });
    }
  }

 private:
  static Connection* self(llhttp_t* p) { return static_cast<Connection*>(p->data); }

  void handle_closed() {
    if (--open_handles_ == 0) {
      auto keep = std::move(me_);
      server_->closed(this);
    }
  }

  // One deadline (header or idle timeout). The uv timer is only re-armed when the deadline
  // moves earlier than where it is armed; firing early, it re-arms for the rest. Stopping
  // leaves it armed but unreferenced. Saves three timer-heap operations per request.
  void arm_timer(std::uint32_t ms) {
    const std::uint64_t deadline = uv_now(&server_->loop) + ms;
    timer_deadline_ = deadline == 0 ? 1 : deadline;
    reference_timer(true);
    if (timer_due_ != 0 && timer_due_ <= deadline) return;
    start_timer(ms);
  }
  void stop_timer() {
    timer_deadline_ = 0;
    reference_timer(false);
  }
  void reference_timer(bool on) {
    if (timer_referenced_ == on) return;
    timer_referenced_ = on;
    if (on) uv_ref(reinterpret_cast<uv_handle_t*>(&timer_));
    else uv_unref(reinterpret_cast<uv_handle_t*>(&timer_));
  }
  void start_timer(std::uint64_t ms) {
    timer_due_ = uv_now(&server_->loop) + ms;
    uv_timer_start(&timer_, [](uv_timer_t* t) {
      auto* c = static_cast<Connection*>(t->data);
      c->timer_due_ = 0;
      if (c->timer_deadline_ == 0 || c->closing_) return;
      const std::uint64_t now = uv_now(&c->server_->loop);
      if (now < c->timer_deadline_) {
        c->start_timer(c->timer_deadline_ - now);
        return;
      }
      c->timer_deadline_ = 0;
      c->server_->stats.timeouts++;
      c->close();
    }, ms, 0);
  }

  void update_reading() {
    if (closing_) return;
    // Keep reading while a response is pending (stopping and restarting costs two epoll_ctl
    // calls per request); bytes of the next request wait in pending_, up to a bound.
    bool want = !body_paused_ && !shutting_down_ && !close_after_ &&
                (!request_done_ || pending_.size() < kMaxPipelinedBytes);
    auto* s = reinterpret_cast<uv_stream_t*>(&tcp_);
    if (want && !reading_) {
      reading_ = true;
      uv_read_start(s, [](uv_handle_t*, std::size_t, uv_buf_t* b) {
        // One buffer per thread for every connection: a read is parsed (and what is left
        // copied to pending_) inside its callback, and the buffer stays in the CPU cache.
        thread_local std::unique_ptr<char[]> shared(new char[kReadBufferSize]);
        b->base = shared.get();
        b->len = kReadBufferSize;
      }, [](uv_stream_t* st, ssize_t n, const uv_buf_t* b) { static_cast<Connection*>(st->data)->on_read(n, b); });
    } else if (!want && reading_) {
      reading_ = false;
      uv_read_stop(s);
    }
  }

  void on_read(ssize_t n, const uv_buf_t* buf) {
    if (n == 0) return;
    if (n < 0) {
      if (n == UV_EOF && !in_message_) {
        // The client half-closed after a whole request (or between requests): answer what is
        // owed and let the queued output leave, then close. (Closing at once would cancel
        // the writes of a response still queued: a large answer given synchronously.)
        close_after_ = true;
        if ((request_done_ && !response_done_) || next_scheduled_) {
          update_reading();  // finish() / next_request() end the connection
          return;
        }
        end_after_writes();
        return;
      }
      close();
      return;
    }
    const char* data = buf->base;
    auto len = static_cast<std::size_t>(n);
    if (pending_.empty()) {
      // Parse straight from the read buffer; only what is left (a pipelined request, or
      // bytes that must wait) is kept in pending_.
      while (len > 0 && !closing_ && !request_done_ && !body_paused_) {
        std::size_t used = execute(data, len);
        if (used == kStop) return;
        data += used;
        len -= used;
      }
      if (len > 0 && !closing_) pending_.append(data, len);
      update_reading();
      return;
    }
    pending_.append(data, len);
    parse();
  }

  static constexpr std::size_t kStop = static_cast<std::size_t>(-1);

  // Runs llhttp over the bytes; returns how many it consumed, or kStop after a protocol error
  // (or once the connection is closing).
  std::size_t execute(const char* data, std::size_t len) {
    if (!check_framing(data, len)) {
      protocol_error(HPE_USER);
      return kStop;
    }
    buffer_end_ = data + len;
    llhttp_errno_t err = llhttp_execute(&parser_, data, len);
    std::size_t used = len;
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
      used = static_cast<std::size_t>(llhttp_get_error_pos(&parser_) - data);
      if (err == HPE_PAUSED_UPGRADE) {
        close_after_ = true;  // no protocol upgrades: answer, then close; the rest is dropped
        pending_.clear();
        used = len;
      }
      llhttp_resume(&parser_);
    } else if (err != HPE_OK) {
      if (!closing_) protocol_error(err);
      return kStop;
    }
    return used;
  }

  void parse() {
    while (!closing_ && !pending_.empty() && !request_done_ && !body_paused_) {
      std::size_t used = execute(pending_.data(), pending_.size());
      if (used == kStop) return;
      pending_.erase(0, used);
    }
    update_reading();
  }

  // Request framing that llhttp 8 accepts but a proxy must not (RFC 9112): a bare LF or CR in
  // the head, obsolete line folding (obs-fold), and chunk data not followed by CRLF. Two
  // parsers that disagree about where a request ends are how requests get smuggled, so these
  // are refused with 400 before llhttp sees the bytes. The head is scanned up to its empty
  // line only; the body is not. Returns false (framing_error_ set) on a violation.
  bool check_framing(const char* data, std::size_t len) {
    std::size_t i = 0;
    for (; crlf_need_ > 0 && i < len; ++i, --crlf_need_) {
      if (data[i] != (crlf_need_ == 2 ? '\r' : '\n')) {
        framing_error_ = "chunk data not followed by CRLF";
        return false;
      }
    }
    if (!scan_head_) return true;
    for (; i < len; ++i) {
      if (scan_started_ && scan_prev_ != '\r' && scan_prev_ != '\n') {
        // Inside a line only the next CR or LF matters: skip to it.
        const std::size_t j = i + find_cr_or_lf(data + i, len - i);
        if (j > i) {
          scan_line_empty_ = false;
          scan_prev_ = data[j - 1];
          i = j;
          if (i == len) break;
        }
      }
      const char c = data[i];
      if (!scan_started_) {
        if (c == '\r' || c == '\n') continue;  // empty lines before a request line are allowed
        scan_started_ = true;
      }
      if (scan_prev_ == '\r' && c != '\n') {
        framing_error_ = "bare CR in the request head";
        return false;
      }
      if (c == '\n') {
        if (scan_prev_ != '\r') {
          framing_error_ = "bare LF in the request head";
          return false;
        }
        if (scan_line_empty_) {  // the empty line: the head ends here
          scan_head_ = false;
          return true;
        }
        scan_line_empty_ = true;
      } else if (scan_prev_ == '\n' && (c == ' ' || c == '\t')) {
        framing_error_ = "obsolete line folding (obs-fold) in the request head";
        return false;
      } else if (c != '\r') {
        scan_line_empty_ = false;
      }
      scan_prev_ = c;
    }
    return true;
  }

  void restart_head_scan() {
    scan_head_ = true;
    scan_started_ = false;
    scan_line_empty_ = false;
    scan_prev_ = 0;
    crlf_need_ = 0;
  }

  void protocol_error(llhttp_errno_t err) { reject(0, err); }

  // Refuses the request: 400 (malformed), 413 (body over max_body_bytes) or 431 (head too
  // large; status 0 picks 400 or 431), then closes. After a response has started, only closes.
  void reject(int status, llhttp_errno_t err = HPE_USER) {
    if (rejected_) return;  // a callback that rejected makes llhttp fail too: one answer
    rejected_ = true;
    server_->stats.bad_requests++;
    bool too_large = header_too_large_;
    if (status == 0) status = too_large ? 431 : 400;
    std::string why = !framing_error_.empty() ? framing_error_
                      : too_large            ? std::string("request head too large")
                      : llhttp_get_error_reason(&parser_) != nullptr ? std::string(llhttp_get_error_reason(&parser_))
                                                                      : std::string(llhttp_errno_name(err));
    server_->log(fmt::format("client {}: {}", peer_, why));
    if (response_started_) {
      close();
      return;
    }
    if (handler_) {
      // Not answered yet: the handler (and whatever it started upstream) goes, the client gets
      // the refusal. Destroyed on a later turn, never inside one of its own calls.
      std::shared_ptr<RequestHandler> h(std::move(handler_));
      auto keep = me_;
      server_->defer([h, keep]() mutable { h.reset(); });
    }
    factory_pending_ = false;
    close_after_ = true;
    keep_alive_ = false;
    head_request_ = false;
    request_done_ = true;
    update_reading();
    if (status == 431) simple(431, "request header fields too large\n");
    else if (status == 413) simple(413, "request body too large\n");
    else if (status == 501) simple(501, "transfer coding not implemented\n");
    else simple(400, "bad request\n");
  }

  int count(std::size_t n) {
    header_bytes_ += n;
    if (header_bytes_ > server_->options.max_header_bytes) {
      header_too_large_ = true;
      return -1;
    }
    return 0;
  }

  int on_message_begin() {
    if (closing_) return -1;
    in_message_ = true;
    reset_head();
    header_bytes_ = 0;
    body_bytes_ = 0;
    chunk_left_ = 0;
    factory_pending_ = false;
    framing_error_.clear();
    header_too_large_ = false;
    field_.clear();
    value_.clear();
    in_value_ = false;
    arm_timer(server_->options.header_timeout_ms);
    return 0;
  }
  // A fresh head that keeps the header vector's capacity.
  void reset_head() {
    head_.method.clear();
    head_.target.clear();
    head_.version_major = head_.version_minor = 1;
    head_.headers.clear();
    head_.content_length.reset();
    head_.chunked = false;
    head_.keep_alive = true;
    head_.client_address.clear();
  }

  int on_url(const char* at, std::size_t n) {
    head_.target.append(at, n);
    return count(n);
  }
  int on_field(const char* at, std::size_t n) {
    if (in_value_) {
      head_.headers.emplace_back(std::move(field_), std::move(value_));
      field_.clear();
      value_.clear();
      in_value_ = false;
    }
    field_.append(at, n);
    return count(n + 4);
  }
  int on_value(const char* at, std::size_t n) {
    in_value_ = true;
    value_.append(at, n);
    return count(n);
  }

  int on_headers_complete() {
    if (!field_.empty() || in_value_) head_.headers.emplace_back(std::move(field_), std::move(value_));
    field_.clear();
    value_.clear();
    stop_timer();
    head_.method = llhttp_method_name(static_cast<llhttp_method_t>(parser_.method));
    head_.version_major = parser_.http_major;
    head_.version_minor = parser_.http_minor;
    version_minor_ = parser_.http_major == 1 ? parser_.http_minor : 1;
    head_.chunked = (parser_.flags & F_CHUNKED) != 0;
    if ((parser_.flags & F_CONTENT_LENGTH) != 0) head_.content_length = parser_.content_length;
    head_.keep_alive = llhttp_should_keep_alive(&parser_) != 0;
    keep_alive_ = head_.keep_alive;
    head_.client_address = peer_;
    head_request_ = head_.method == "HEAD";
    server_->stats.requests++;
    if ((parser_.flags & F_TRANSFER_ENCODING) != 0 && parser_.http_major == 1 && parser_.http_minor == 0) {
      // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing.
      framing_error_ = "Transfer-Encoding in an HTTP/1.0 request";
      return -1;
    }
    if ((parser_.flags & F_TRANSFER_ENCODING) != 0 && (parser_.flags & F_CHUNKED) == 0) {
      // llhttp refuses this too, but only after the head has been handed over: refuse it here,
      // before a handler could forward the head.
      framing_error_ = "Transfer-Encoding without a final chunked";
      return -1;
    }
    if (head_.chunked) {
      // Only plain "chunked" is decoded; "gzip, chunked" would reach the Pod still gzipped
      // while its Transfer-Encoding (hop-by-hop) is dropped. RFC 9112 §6.1: 501.
      std::string_view te = head_.header("transfer-encoding");
      while (!te.empty() && (te.front() == ' ' || te.front() == '\t')) te.remove_prefix(1);
      while (!te.empty() && (te.back() == ' ' || te.back() == '\t')) te.remove_suffix(1);
      if (!iequals(te, "chunked")) {
        framing_error_ = fmt::format("transfer coding \"{}\" is not implemented (only chunked)", te);
        reject(501);
        return -1;
      }
    }
    const std::uint64_t max_body = server_->options.max_body_bytes;
    if (max_body != 0 && head_.content_length && *head_.content_length > max_body) {
      framing_error_ = fmt::format("request body of {} bytes is over max_body_bytes ({})", *head_.content_length, max_body);
      reject(413);
      return -1;
    }
    if (head_.has_body() && iequals(head_.header("expect"), "100-continue")) {
      out_ += "HTTP/1.1 100 Continue\r\n\r\n";
      flush_soon();
    }
    if (head_.has_body()) {
      // The handler (which forwards the request to a Pod) is created once the first body byte
      // has been parsed, so a request whose body framing is broken from the start (an invalid
      // chunk size) is refused before anything reaches a Pod. Until then the header timeout
      // keeps running.
      factory_pending_ = true;
      arm_timer(server_->options.header_timeout_ms);
      return 0;
    }
    return make_handler();
  }

  int make_handler() {
    factory_pending_ = false;
    stop_timer();
    handler_ = server_->factory(head_, *this);
    if (closing_) return -1;
    if (!handler_ && !response_started_) simple(500, "internal error: no handler\n");
    return closing_ ? -1 : 0;
  }

  int on_chunk_header() {
    chunk_left_ = parser_.content_length;  // this chunk's size
    return 0;
  }

  int on_body(const char* at, std::size_t n) {
    if (closing_) return -1;
    body_bytes_ += n;
    const std::uint64_t max_body = server_->options.max_body_bytes;
    if (max_body != 0 && body_bytes_ > max_body) {
      framing_error_ = fmt::format("request body is over max_body_bytes ({})", max_body);
      reject(413);
      return -1;
    }
    if (head_.chunked) {
      chunk_left_ -= std::min<std::uint64_t>(chunk_left_, n);
      if (chunk_left_ == 0) {
        // The chunk's data ends here and "\r\n" must follow: checked now for the bytes of
        // this buffer, at the start of the next buffer for the rest.
        crlf_need_ = 2;
        const char* p = at + n;
        for (; crlf_need_ > 0 && p < buffer_end_; ++p, --crlf_need_) {
          if (*p != (crlf_need_ == 2 ? '\r' : '\n')) {
            framing_error_ = "chunk data not followed by CRLF";
            return -1;
          }
        }
      }
    }
    if (factory_pending_ && make_handler() != 0) return -1;
    if (handler_) handler_->on_body(std::string_view(at, n));
    return closing_ ? -1 : 0;
  }

  int on_message_complete() {
    if (closing_) return -1;
    if (factory_pending_ && make_handler() != 0) return -1;
    in_message_ = false;
    request_done_ = true;
    restart_head_scan();
    if (handler_) handler_->on_body_end();
    if (closing_) return -1;
    if (response_done_ && !close_after_) maybe_next();
    return HPE_PAUSED;  // one request at a time: the next waits for this response
  }

  void maybe_next() {
    if (!request_done_ || !response_done_ || next_scheduled_ || closing_) return;
    next_scheduled_ = true;
    server_->defer_next(me_);
  }

  void next_request() {
    next_scheduled_ = false;
    handler_.reset();
    if (closing_) return;
    request_done_ = response_done_ = response_started_ = false;
    chunked_out_ = head_request_ = false;
    body_paused_ = false;  // a pause of the previous request's body does not carry over
    body_allowed_ = true;
    want_writable_ = false;
    if (close_after_ || server_->draining) {
      end_after_writes();
      return;
    }
    arm_timer(server_->options.idle_timeout_ms);
    parse();
  }

  struct WriteReq {
    uv_write_t req;
    std::string data;
    Connection* conn;
  };

  // Responses leave at the end of the loop phase that wrote them (like the library's
  // Transport::write): the check handle sends after the poll phase's callbacks, the prepare
  // handle before the loop polls again; both are active (and keep the loop alive) only while
  // out_ waits. Every response written while the loop handles one batch of events then leaves
  // back to back, and a client (wrk, a gateway in front) is woken once for them. Once
  // kFlushBatch connections of this server wait, all of them are sent at once, so that the
  // first does not wait for a long run of callbacks.
  static constexpr std::size_t kFlushBatch = 8;
  void flush_soon() {
    if (closing_ || out_.empty() || listed_) return;
    uv_check_start(&flush_check_, [](uv_check_t* h) { static_cast<Connection*>(h->data)->flush(); });
    uv_prepare_start(&flush_prepare_, [](uv_prepare_t* h) { static_cast<Connection*>(h->data)->flush(); });
    auto& waiting = server_->waiting_flush;
    waiting.push_back(this);
    listed_ = true;
    if (waiting.size() < kFlushBatch) return;
    std::vector<Connection*> all;
    all.swap(waiting);
    for (Connection* c : all) c->listed_ = false;
    for (Connection* c : all) c->flush();
    all.clear();
    if (waiting.empty()) waiting.swap(all);  // keep the capacity
  }

  void unlist_flush() {
    if (!listed_) return;
    listed_ = false;
    auto& waiting = server_->waiting_flush;
    if (auto it = std::find(waiting.begin(), waiting.end(), this); it != waiting.end()) waiting.erase(it);
  }

  void flush() {
    unlist_flush();
    if (uv_is_active(reinterpret_cast<uv_handle_t*>(&flush_check_))) {
      uv_check_stop(&flush_check_);
      uv_prepare_stop(&flush_prepare_);
    }
    if (closing_ || out_.empty()) return;
    auto* s = reinterpret_cast<uv_stream_t*>(&tcp_);
    if (queued_ == 0) {
      uv_buf_t b = uv_buf_init(out_.data(), static_cast<unsigned>(out_.size()));
      int n = uv_try_write(s, &b, 1);
      if (n == static_cast<int>(out_.size())) {
        out_.clear();
        return;
      }
      if (n > 0) out_.erase(0, static_cast<std::size_t>(n));
      else if (n != UV_EAGAIN && n != UV_ENOSYS) {
        close();
        return;
      }
    }
    auto* w = new WriteReq{{}, std::move(out_), this};
    out_.clear();
    queued_ += w->data.size();
    uv_buf_t b = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
    w->req.data = w;
    int rc = uv_write(&w->req, s, &b, 1, [](uv_write_t* r, int status) {
      auto* wr = static_cast<WriteReq*>(r->data);
      Connection* c = wr->conn;
      c->queued_ -= wr->data.size();
      delete wr;
      c->write_done(status);
    });
    if (rc != 0) {
      queued_ -= w->data.size();
      delete w;
      close();
    }
  }

  void write_done(int status) {
    if (closing_) return;
    if (status < 0) {
      close();
      return;
    }
    if (want_writable_ && queued_ <= server_->options.write_low_water) {
      want_writable_ = false;
      if (handler_) handler_->on_writable();
    }
    if (queued_ == 0 && shutting_down_) shutdown_now();
  }

  // Close once the output has left: the response's end is the connection's end.
  void end_after_writes() {
    if (closing_) return;
    flush();
    shutting_down_ = true;
    update_reading();
    if (queued_ == 0) shutdown_now();
  }

  void shutdown_now() {
    if (closing_ || shutdown_started_) return;
    shutdown_started_ = true;
    auto* req = new uv_shutdown_t;
    req->data = this;
    if (uv_shutdown(req, reinterpret_cast<uv_stream_t*>(&tcp_), [](uv_shutdown_t* r, int) {
          auto* c = static_cast<Connection*>(r->data);
          delete r;
          c->close();
        }) != 0) {
      delete req;
      close();
    }
  }

  std::shared_ptr<HttpServer::Impl> server_;
  std::shared_ptr<Connection> me_;  // held while handles are open
  uv_tcp_t tcp_{};
  uv_timer_t timer_{};
  uv_check_t flush_check_{};
  uv_prepare_t flush_prepare_{};
  bool listed_ = false;  // in server_->waiting_flush
  std::uint64_t timer_deadline_ = 0;  // loop time; 0 = none
  std::uint64_t timer_due_ = 0;       // loop time the uv timer is armed for; 0 = not armed
  bool timer_referenced_ = true;
  int open_handles_ = 0;
  llhttp_t parser_{};
  llhttp_settings_t settings_{};
  std::string pending_;
  std::string peer_;
  RequestHead head_;
  std::string field_, value_;
  bool in_value_ = false;
  std::size_t header_bytes_ = 0;
  bool header_too_large_ = false;
  // Framing checks (check_framing): the head scan of the current request, the CRLF still
  // owed after a chunk's data, and the bytes of the request body so far.
  bool scan_head_ = true, scan_started_ = false, scan_line_empty_ = false;
  char scan_prev_ = 0;
  int crlf_need_ = 0;
  std::uint64_t chunk_left_ = 0;
  std::uint64_t body_bytes_ = 0;
  const char* buffer_end_ = nullptr;  // end of the bytes llhttp is executing
  bool factory_pending_ = false;      // head parsed, handler not created yet (see on_headers_complete)
  std::string framing_error_;
  bool rejected_ = false;
  std::unique_ptr<RequestHandler> handler_;
  std::string out_;
  std::size_t queued_ = 0;
  int version_minor_ = 1;
  bool in_message_ = false, request_done_ = false;
  bool response_started_ = false, response_done_ = false;
  bool chunked_out_ = false, head_request_ = false, body_allowed_ = true;
  bool keep_alive_ = true, close_after_ = false;
  bool closing_ = false, reading_ = false, body_paused_ = false;
  bool want_writable_ = false, next_scheduled_ = false;
  bool shutting_down_ = false, shutdown_started_ = false;

  friend struct HttpServer::Impl;
};

void HttpServer::Impl::defer(std::function<void()> fn) {
  if (shut && idle == nullptr) return;
  deferred.push_back(Deferred{nullptr, std::move(fn)});
  start_idle();
}

void HttpServer::Impl::defer_next(std::shared_ptr<Connection> c) {
  if (shut && idle == nullptr) return;
  deferred.push_back(Deferred{std::move(c), nullptr});
  start_idle();
}

void HttpServer::Impl::start_idle() {
  if (idle == nullptr) {
    idle = new Idle{{}, shared_from_this()};
    uv_idle_init(&loop, &idle->idle);
    idle->idle.data = idle;
  }
  uv_idle_start(&idle->idle, [](uv_idle_t* h) { static_cast<Idle*>(h->data)->impl->run_deferred(); });
}

void HttpServer::Impl::run_deferred() {
  std::vector<Deferred> batch;
  batch.swap(running);  // the spare (empty) vector, with its capacity
  batch.swap(deferred);
  for (auto& d : batch) {
    if (d.next) d.next->next_request();
    else d.fn();
  }
  batch.clear();
  if (running.capacity() < batch.capacity()) running.swap(batch);
  if (deferred.empty() && idle != nullptr) {
    uv_idle_stop(&idle->idle);
    if (shut) {
      // Nothing more will be deferred: release the idle handle (and its hold on Impl).
      Idle* i = idle;
      idle = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(&i->idle), [](uv_handle_t* h) { delete static_cast<Idle*>(h->data); });
    }
  }
}

void HttpServer::Impl::closed(Connection* c) {
  stats.connections_active--;
  connections.erase(c);
  check_drained();
}

void HttpServer::Impl::close_listeners() {
  for (auto* l : listeners)
    uv_close(reinterpret_cast<uv_handle_t*>(&l->tcp), [](uv_handle_t* h) { delete static_cast<Listener*>(h->data); });
  listeners.clear();
}

void HttpServer::Impl::check_drained() {
  if (!draining || !connections.empty() || !drain_done) return;
  if (drain_timer != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(&drain_timer->timer), [](uv_handle_t* h) { delete static_cast<Timer*>(h->data); });
    drain_timer = nullptr;
  }
  auto done = std::move(drain_done);
  drain_done = nullptr;
  defer([done] { done(); });
  shut = true;
}

void HttpServer::Impl::close_all() {
  close_listeners();
  auto copy = connections;
  for (auto& [raw, c] : copy) c->close();
  if (drain_timer != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(&drain_timer->timer), [](uv_handle_t* h) { delete static_cast<Timer*>(h->data); });
    drain_timer = nullptr;
  }
}

HttpServer::HttpServer(uv_loop_t& loop, HttpServerOptions options, HandlerFactory factory)
    : impl_(std::make_shared<Impl>(loop, std::move(options), std::move(factory))) {}

HttpServer::~HttpServer() {
  impl_->shut = true;
  impl_->drain_done = nullptr;
  impl_->close_all();
  if (impl_->idle != nullptr && impl_->deferred.empty()) {
    Impl::Idle* i = impl_->idle;
    impl_->idle = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&i->idle), [](uv_handle_t* h) { delete static_cast<Impl::Idle*>(h->data); });
  }
}

Result<std::uint16_t> HttpServer::listen(const std::string& address, std::uint16_t port) {
  sockaddr_storage ss{};
  bool v6 = address.find(':') != std::string::npos;
  int rc = v6 ? uv_ip6_addr(address.c_str(), port, reinterpret_cast<sockaddr_in6*>(&ss))
              : uv_ip4_addr(address.c_str(), port, reinterpret_cast<sockaddr_in*>(&ss));
  if (rc != 0) return Error{Errc::invalid_argument, fmt::format("listen {}: not an IP address", address)};
  auto* l = new Impl::Listener{{}, impl_};
  // With reuse_port the socket is created now (not at bind) so the option is set before bind.
  uv_tcp_init_ex(&impl_->loop, &l->tcp, impl_->options.reuse_port ? (v6 ? AF_INET6 : AF_INET) : AF_UNSPEC);
  l->tcp.data = l;
  auto fail = [&](int err) -> Result<std::uint16_t> {
    uv_close(reinterpret_cast<uv_handle_t*>(&l->tcp), [](uv_handle_t* h) { delete static_cast<Impl::Listener*>(h->data); });
    return Error{Errc::io_error, fmt::format("listen {}:{}: {}", address, port, uv_strerror(err))};
  };
  if (impl_->options.reuse_port) {
    uv_os_fd_t fd;
    int one = 1;
    if ((rc = uv_fileno(reinterpret_cast<uv_handle_t*>(&l->tcp), &fd)) != 0) return fail(rc);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) return fail(uv_translate_sys_error(errno));
  }
  if ((rc = uv_tcp_bind(&l->tcp, reinterpret_cast<sockaddr*>(&ss), 0)) != 0) return fail(rc);
  rc = uv_listen(reinterpret_cast<uv_stream_t*>(&l->tcp), 1024, [](uv_stream_t* s, int status) {
    auto* li = static_cast<Impl::Listener*>(s->data);
    if (status < 0 || li->impl->draining) return;
    auto c = std::make_shared<Connection>(li->impl);
    Connection* raw = c.get();
    li->impl->connections.emplace(raw, c);
    li->impl->stats.connections_accepted++;
    li->impl->stats.connections_active++;
    raw->open(s, std::move(c));
  });
  if (rc != 0) return fail(rc);
  int len = sizeof ss;
  uv_tcp_getsockname(&l->tcp, reinterpret_cast<sockaddr*>(&ss), &len);
  std::uint16_t bound = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  impl_->listeners.push_back(l);
  return bound;
}

void HttpServer::drain(std::uint32_t timeout_ms, std::function<void()> done) {
  auto& im = *impl_;
  im.draining = true;
  im.drain_done = std::move(done);
  im.close_listeners();
  auto copy = im.connections;
  for (auto& [raw, c] : copy) c->begin_drain();
  if (!im.connections.empty() && im.drain_timer == nullptr) {
    im.drain_timer = new Impl::Timer{{}, impl_};
    uv_timer_init(&im.loop, &im.drain_timer->timer);
    im.drain_timer->timer.data = im.drain_timer;
    uv_timer_start(&im.drain_timer->timer, [](uv_timer_t* t) {
      auto impl = static_cast<Impl::Timer*>(t->data)->impl;
      auto conns = impl->connections;
      for (auto& [raw, c] : conns) c->abort();
    }, timeout_ms, 0);
  }
  im.check_drained();
}

const HttpServerStats& HttpServer::stats() const { return impl_->stats; }

}  // namespace kupgw
