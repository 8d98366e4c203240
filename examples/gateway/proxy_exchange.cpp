#include "proxy_exchange.h"

#include <fmt/format.h>
#include <strings.h>

#include "gateway.h"
#include "kupstream/balancer.h"

using namespace kupstream;

namespace kupgw {

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr std::size_t kKeptBlocks = 0;
#else
constexpr std::size_t kKeptBlocks = 1024;
#endif

// Set when this thread's list is destroyed (thread exit): a block freed later on the thread,
// e.g. by a static destructor, bypasses it. Trivially destructible: usable until the end.
bool& list_gone() {
  thread_local bool gone = false;
  return gone;
}

struct FreeBlocks {
  std::vector<void*> blocks;
  ~FreeBlocks() {
    for (void* p : blocks) ::operator delete(p);
    list_gone() = true;
  }
};

FreeBlocks& free_blocks() {
  thread_local FreeBlocks f;
  return f;
}

}  // namespace

void* ProxyExchange::operator new(std::size_t size) {
  if (size != sizeof(ProxyExchange) || list_gone()) return ::operator new(size);
  auto& f = free_blocks().blocks;
  if (f.empty()) return ::operator new(size);
  void* p = f.back();
  f.pop_back();
  return p;
}

void ProxyExchange::operator delete(void* p, std::size_t size) noexcept {
  if (size == sizeof(ProxyExchange) && !list_gone()) {
    auto& f = free_blocks().blocks;
    try {
      if (f.size() < kKeptBlocks) {
        if (f.size() == f.capacity()) f.reserve(f.empty() ? 64 : f.size() * 2);
        f.push_back(p);
        return;
      }
    } catch (...) {
    }
  }
  ::operator delete(p);
}

ProxyExchange::ProxyExchange(Worker& worker, std::shared_ptr<WorkerRoutes> routes, Lane& lane, RequestHead& head,
                             ResponseWriter& writer)
    : worker_(worker), routes_(std::move(routes)), lane_(lane), writer_(writer) {
  request_.method = head.method;
  request_.target = head.target;
  request_.client_address = head.client_address;
  request_.client_scheme = "http";
  request_.client_host = std::string(head.header("host"));
  // The hash key before the headers are moved out of `head` below.
  const auto& hash_header = lane_.handle->entry.hash_header;
  if (!hash_header.empty()) request_.hash = hash_key(head.header(hash_header));
  request_.headers.reserve(head.headers.size());
  for (auto& h : head.headers) {
    // Framing is the Upstream's business; Expect was answered here already.
    if (h.first.size() == 6 && strcasecmp(h.first.c_str(), "expect") == 0) continue;
    request_.headers.emplace_back(std::move(h.first), std::move(h.second));
  }
  if (head.has_body()) {
    if (!head.chunked && head.content_length && *head.content_length <= kBufferLimit) {
      buffering_ = true;
      request_.body.reserve(static_cast<std::size_t>(*head.content_length));
    } else {
      request_.streamed = true;
      streamed_ = true;
      request_.content_length = head.chunked ? std::nullopt : head.content_length;
    }
  }
}

ProxyExchange::~ProxyExchange() {
  // Cancels a running exchange; no handler runs afterwards.
  upstream_request_.reset();
}

void ProxyExchange::begin() {
  if (!buffering_) forward();
}

void ProxyExchange::forward() {
  forwarded_ = true;
  ForwardHandlers h;
  h.on_head = [this](const ForwardResponseHead& head) {
    count(head.status);
    writer_.start(head.status, head.headers, head.content_length);  // same view type: no copy
  };
  h.on_body = [this](std::string_view data) {
    if (!writer_.write(data) && upstream_request_) {
      response_paused_ = true;
      upstream_request_->pause_body();
    }
  };
  h.on_writable = [this] { writer_.resume_request_body(); };
  h.on_complete = [this](Status st) {
    done_ = true;
    if (st.ok()) {
      writer_.finish();
      return;
    }
    fail(st.error());
  };
  auto r = lane_.forwarder->forward(std::move(request_), std::move(h));
  if (!r) {
    done_ = true;
    count(400);
    writer_.simple(400, fmt::format("bad request: {}\n", r.error().reason));
    return;
  }
  upstream_request_ = std::move(*r);
}

void ProxyExchange::fail(const Error& error) {
  const char* code_name = errc_name(static_cast<Errc>(error.code.value()));
  worker_.counters().upstream_errors[error.code.category() == error_category() ? code_name : "other"]++;
  if (writer_.started()) {
    worker_.counters().streams_aborted++;
    worker_.log(LogLevel::warning, fmt::format("upstream {}: response cut short: {}", name(),
                                                error.message()));
    writer_.abort();
    return;
  }
  int status = 502;
  if (error.code == make_error_code(Errc::no_endpoint)) status = 503;
  else if (error.code == make_error_code(Errc::timed_out)) status = 504;
  count(status);
  worker_.log(LogLevel::debug, fmt::format("upstream {}: {} {}: {}", name(), status, code_name,
                                            error.reason));
  std::string_view text = status == 503 ? "service unavailable" : status == 504 ? "gateway timeout" : "bad gateway";
  writer_.simple(status, fmt::format("{}: upstream {}: {}\n", text, name(), code_name));
}

const std::string& ProxyExchange::name() const { return lane_.handle->entry.config.name; }

void ProxyExchange::count(int status) {
  // The (upstream, status) counter, found once per upstream and status: map nodes never move.
  for (auto& [code, counter] : lane_.response_counters) {
    if (code == status) {
      ++*counter;
      return;
    }
  }
  auto& counter = worker_.counters().responses[{name(), status}];
  lane_.response_counters.emplace_back(status, &counter);
  ++counter;
}

void ProxyExchange::on_body(std::string_view data) {
  if (buffering_) {
    request_.body.append(data);
    return;
  }
  if (!upstream_request_ || done_) return;  // the exchange already ended: the rest is discarded
  auto r = upstream_request_->write_body(data);
  if (r.ok() && !*r) writer_.pause_request_body();
}

void ProxyExchange::on_body_end() {
  if (buffering_) {
    buffering_ = false;
    forward();
    return;
  }
  // (A request without a streamed body was sent whole: nothing to end.)
  if (streamed_ && upstream_request_ && !done_) (void)upstream_request_->end_body();
}

void ProxyExchange::on_writable() {
  if (response_paused_ && upstream_request_) {
    response_paused_ = false;
    upstream_request_->resume_body();
  }
}

}  // namespace kupgw
