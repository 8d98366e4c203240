#include "fuzz/support/fuzz_loop.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <set>
#include <vector>

namespace kupfuzz {
namespace {

std::set<const uv_handle_t*>& kept() {
  static std::set<const uv_handle_t*> k;
  return k;
}

[[noreturn]] void die(const char* what, const char* why) {
  std::fprintf(stderr, "fuzz harness: %s: %s\n", what, why);
  std::abort();
}

struct WriteReq {
  uv_write_t req;
  uv_buf_t buf;
};

}  // namespace

bool tracing() {
  static const bool on = std::getenv("KUPFUZZ_TRACE") != nullptr;
  return on;
}

uv_loop_t& loop() {
  static uv_loop_t* l = [] {
    std::signal(SIGPIPE, SIG_IGN);  // as every libuv host must (docs: the SIGPIPE contract)
    auto* p = new uv_loop_t;
    uv_loop_init(p);
    return p;
  }();
  return *l;
}

void keep_handle(const uv_handle_t* handle) { kept().insert(handle); }

void keep_current_handles() {
  uv_walk(&loop(), [](uv_handle_t* h, void*) { kept().insert(h); }, nullptr);
}

void run_until_quiet(const std::function<bool()>& done, const char* what, int timeout_ms,
                     const std::function<std::string()>& describe) {
  struct Guard {
    uv_timer_t timer;
    const char* what;
    const std::function<std::string()>* describe;
  } guard;
  guard.what = what;
  guard.describe = &describe;
  uv_timer_init(&loop(), &guard.timer);
  guard.timer.data = &guard;
  uv_timer_start(&guard.timer, [](uv_timer_t* t) {
    auto* g = static_cast<Guard*>(t->data);
    std::string why = "no progress within the time limit (hang or leaked handle)";
    if (*g->describe) why += "; " + (*g->describe)();
    uv_walk(t->loop, [](uv_handle_t* h, void* self) {
      if (h != self && !kept().count(h)) std::fprintf(stderr, "  open handle: %s%s\n", uv_handle_type_name(uv_handle_get_type(h)),
                                         uv_is_closing(h) ? " (closing)" : uv_is_active(h) ? " (active)" : "");
    }, t);
    die(g->what, why.c_str());
  }, static_cast<std::uint64_t>(timeout_ms), 0);
  auto count = [&] {
    int n = 0;
    std::pair<int*, Guard*> arg(&n, &guard);
    uv_walk(&loop(), [](uv_handle_t* h, void* a) {
      auto* g = static_cast<std::pair<int*, Guard*>*>(a);
      if (h != reinterpret_cast<uv_handle_t*>(&g->second->timer) && !kept().count(h) && (uv_is_active(h) || uv_is_closing(h)))
        ++*g->first;
    }, &arg);
    return n;
  };
  while (!done() || count() > 0) uv_run(&loop(), UV_RUN_ONCE);
  uv_timer_stop(&guard.timer);
  bool closed = false;
  guard.timer.data = &closed;
  uv_close(reinterpret_cast<uv_handle_t*>(&guard.timer), [](uv_handle_t* h) { *static_cast<bool*>(h->data) = true; });
  while (!closed) uv_run(&loop(), UV_RUN_ONCE);
}

// ---------------------------------------------------------------------------------------------
struct Responder::Conn {
  uv_tcp_t tcp;
  uv_shutdown_t shutdown;
  Responder* owner;
  std::string in, out;
  bool answered = false, closing = false;

  void close() {
    if (closing) return;
    closing = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp), [](uv_handle_t* h) {
      auto* c = static_cast<Conn*>(h->data);
      Responder* r = c->owner;
      delete c;
      --r->open_;
      if (r->on_closed_) r->on_closed_();
    });
  }
};

Responder::Responder() {
  uv_tcp_init(&loop(), &listener_);
  listener_.data = this;
  sockaddr_in addr{};
  uv_ip4_addr("127.0.0.1", 0, &addr);
  if (uv_tcp_bind(&listener_, reinterpret_cast<const sockaddr*>(&addr), 0) != 0 ||
      uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 128, on_connection) != 0)
    die("Responder", "cannot listen on 127.0.0.1");
  sockaddr_storage bound{};
  int len = sizeof bound;
  uv_tcp_getsockname(&listener_, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  keep_handle(reinterpret_cast<uv_handle_t*>(&listener_));
}

void Responder::on_connection(uv_stream_t* server, int status) {
  auto* self = static_cast<Responder*>(server->data);
  if (status != 0) return;
  auto* c = new Conn;
  c->owner = self;
  uv_tcp_init(&loop(), &c->tcp);
  c->tcp.data = c;
  ++self->open_;
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) return c->close();
  uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp),
                [](uv_handle_t*, std::size_t, uv_buf_t* buf) {
                  static char block[64 * 1024];
                  *buf = uv_buf_init(block, sizeof block);
                },
                [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
                  auto* self_conn = static_cast<Conn*>(s->data);
                  if (n < 0) return self_conn->close();
                  if (self_conn->answered) return;  // later requests get nothing
                  self_conn->in.append(buf->base, static_cast<std::size_t>(n));
                  const auto end = self_conn->in.find("\r\n\r\n");
                  if (end == std::string::npos) return;
                  self_conn->answered = true;
                  self_conn->out = self_conn->owner->answer_ ? self_conn->owner->answer_(std::string_view(self_conn->in).substr(0, end + 4)) : std::string();
                  auto* w = new WriteReq;
                  w->req.data = self_conn;
                  w->buf = uv_buf_init(self_conn->out.data(), static_cast<unsigned>(self_conn->out.size()));
                  uv_write(&w->req, s, &w->buf, 1, [](uv_write_t* req, int) {
                    auto* wr = reinterpret_cast<WriteReq*>(req);
                    auto* conn = static_cast<Conn*>(req->data);
                    delete wr;
                    if (conn->closing) return;
                    conn->shutdown.data = conn;
                    if (uv_shutdown(&conn->shutdown, reinterpret_cast<uv_stream_t*>(&conn->tcp), [](uv_shutdown_t*, int) {}) != 0)
                      conn->close();
                  });
                });
}

// ---------------------------------------------------------------------------------------------
RawClient::RawClient(std::uint16_t port, std::string bytes, std::size_t pieces) : bytes_(std::move(bytes)), pieces_(pieces) {
  uv_tcp_init(&loop(), &tcp_);
  tcp_.data = this;
  sockaddr_in addr{};
  uv_ip4_addr("127.0.0.1", port, &addr);
  connect_.data = this;
  if (uv_tcp_connect(&connect_, &tcp_, reinterpret_cast<const sockaddr*>(&addr), on_connect) != 0) close();
}

void RawClient::on_connect(uv_connect_t* req, int status) {
  auto* self = static_cast<RawClient*>(req->data);
  if (status != 0) return self->close();
  auto* stream = reinterpret_cast<uv_stream_t*>(&self->tcp_);
  const std::size_t pieces = std::max<std::size_t>(1, self->pieces_);
  const std::size_t step = std::max<std::size_t>(1, (self->bytes_.size() + pieces - 1) / pieces);
  for (std::size_t at = 0; at < self->bytes_.size(); at += step) {
    auto* w = new WriteReq;
    w->buf = uv_buf_init(self->bytes_.data() + at, static_cast<unsigned>(std::min(step, self->bytes_.size() - at)));
    uv_write(&w->req, stream, &w->buf, 1, [](uv_write_t* r, int) { delete reinterpret_cast<WriteReq*>(r); });
  }
  self->shutdown_.data = self;
  uv_shutdown(&self->shutdown_, stream, [](uv_shutdown_t*, int) {});
  uv_read_start(stream,
                [](uv_handle_t*, std::size_t, uv_buf_t* buf) {
                  static char block[64 * 1024];
                  *buf = uv_buf_init(block, sizeof block);
                },
                [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
                  auto* c = static_cast<RawClient*>(s->data);
                  if (n < 0) return c->close();
                  c->received_.append(buf->base, static_cast<std::size_t>(n));
                });
}

void RawClient::close() {
  if (closing_) return;
  closing_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), [](uv_handle_t* h) { static_cast<RawClient*>(h->data)->closed_ = true; });
}

}  // namespace kupfuzz
