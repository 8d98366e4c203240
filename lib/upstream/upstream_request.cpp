#include <fmt/format.h>
#include <uv.h>

#include <algorithm>
#include <array>
#include <memory>
#include <type_traits>

#include "core/defer.h"
#include "net/block_cache.h"
#include "upstream/forward_headers.h"
#include "upstream/upstream_impl.h"

namespace kupstream {
namespace {

// A streamed body written before the first attempt has its exchange is buffered up to this.
constexpr std::size_t kEarlyBodyHighWater = 256 * 1024;

bool idempotent(const std::string& method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" || method == "DELETE" ||
         method == "TRACE";
}

// Errors where nothing reached the Pod, so any method may go elsewhere.
bool connect_phase(const std::error_code& code) {
  return code == Errc::connect_failed || code == Errc::resolve_failed || code == Errc::tls_handshake_failed ||
         code == Errc::tls_verify_failed || code == Errc::pool_exhausted;
}

// RFC 9110 tchar: visible ASCII but the delimiters. A table: one load per character (the
// method and every header name of every request).
constexpr auto kTokenChar = [] {
  std::array<bool, 256> t{};
  for (int c = 33; c < 127; ++c) t[c] = std::string_view("()<>@,;:\\\"/[]?={}").find(static_cast<char>(c)) == std::string_view::npos;
  return t;
}();

bool valid_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return kTokenChar[c]; });
}

// Whether s holds any of the (few) characters in set. A plain loop: std::string::find_first_of
// calls memchr once per character of s.
bool has_any(std::string_view s, std::string_view set) {
  for (char c : s)
    for (char x : set)
      if (c == x) return true;
  return false;
}

}  // namespace

UpstreamRequest::UpstreamRequest(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

void* UpstreamRequest::operator new(std::size_t size) { return detail::cached_new<UpstreamRequest>(size); }
void UpstreamRequest::operator delete(void* p, std::size_t size) noexcept {
  detail::cached_delete<UpstreamRequest>(p, size);
}

UpstreamRequest::~UpstreamRequest() { impl_->cancel(); }

Result<bool> UpstreamRequest::write_body(std::string_view data) {
  auto& r = *impl_;
  if (!r.request.streamed || r.body_ended) return Error{Errc::invalid_argument, "write_body: the body is not streamed or has ended"};
  if (r.done || r.canceled) return Error{Errc::operation_canceled, "write_body: the request has finished"};
  if (!r.exchange) {
    // Before the first attempt has a connection: buffer, with the same backpressure signal
    // as the exchange (on_writable follows once the buffer has drained into the connection),
    // and the same length check.
    if (r.request.content_length && r.early_body.size() + data.size() > *r.request.content_length)
      return Error{Errc::invalid_argument,
                   fmt::format("write_body: more than content_length ({}) bytes", *r.request.content_length)};
    r.body_written = true;
    r.early_body.append(data);
    if (r.early_body.size() < kEarlyBodyHighWater) return true;
    r.early_blocked = true;
    return false;
  }
  r.body_written = true;
  return r.exchange->write_body(data);
}

Status UpstreamRequest::end_body() {
  auto& r = *impl_;
  if (!r.request.streamed || r.body_ended) return Error{Errc::invalid_argument, "end_body: the body is not streamed or has ended"};
  if (r.done || r.canceled) return Error{Errc::operation_canceled, "end_body: the request has finished"};
  if (!r.exchange) {
    if (r.request.content_length && r.early_body.size() != *r.request.content_length)
      return Error{Errc::invalid_argument, fmt::format("end_body: {} bytes written, content_length is {}",
                                                       r.early_body.size(), *r.request.content_length)};
    r.body_ended = true;
    return {};
  }
  r.body_ended = true;
  return r.exchange->end_body();
}

void UpstreamRequest::pause_body() {
  if (impl_->exchange) impl_->exchange->pause_body();
}

void UpstreamRequest::resume_body() {
  if (impl_->exchange) impl_->exchange->resume_body();
}

Result<std::unique_ptr<UpstreamRequest>> ForwardingContext::forward(ForwardRequest&& request, ForwardHandlers&& handlers) {
  if (!valid_token(request.method)) return Error{Errc::invalid_argument, fmt::format("forward: bad method \"{}\"", request.method)};
  // CR, LF and NUL are refused here, as the connection's serializer would: a request it refused
  // later would fail on a later turn and count against the Pod it was meant for.
  constexpr std::string_view kBadInValue("\r\n\0", 3);
  constexpr std::string_view kBadInTarget(" \r\n\0", 4);
  if (request.target.empty() || has_any(request.target, kBadInTarget))
    return Error{Errc::invalid_argument, fmt::format("forward: bad target \"{}\"", request.target)};
  for (const auto& [name, value] : request.headers)
    if (!valid_token(name) || has_any(value, kBadInValue))
      return Error{Errc::invalid_argument, fmt::format("forward: bad header \"{}\"", name)};
  if (stopped || publication->closed())
    return Error{Errc::operation_canceled, fmt::format("upstream \"{}\" is closed", name())};
  auto r = std::allocate_shared<UpstreamRequest::Impl>(detail::BlockAllocator<UpstreamRequest::Impl>{},
                                                       std::move(request), std::move(handlers));
  r->context = weak_from_this();
  r->start = SteadyClock::now();
  ++tally.requests;
  ++in_flight;
  live_requests.insert(r);
  if (!scheduler) scheduler = std::make_unique<detail::RequestScheduler>(loop);
  if (options().timeouts.total.count() > 0)
    scheduler->add_deadline(*r, static_cast<std::uint64_t>(options().timeouts.total.count()));
  // Send at once when there is a Pod to send to: the request reaches the Pod without waiting
  // for the rest of this loop turn (no callback can run here: the exchange's handlers never
  // run inside send(), and a failure is kept by complete() and delivered on a later turn).
  // With no Pod yet, wait for a later turn as before: a snapshot may arrive meanwhile.
  if (!routing().picker->empty()) {
    r->in_forward = true;
    r->attempt();
    r->in_forward = false;
    if (r->deferred_outcome) scheduler->defer_attempt(r);
  } else {
    scheduler->defer_attempt(r);
  }
  return std::make_unique<UpstreamRequest>(std::move(r));
}

void UpstreamRequest::Impl::run_deferred() {
  if (deferred_outcome) {
    Status s = std::move(*deferred_outcome);
    deferred_outcome.reset();
    return complete(std::move(s));
  }
  attempt();
}

void UpstreamRequest::Impl::on_total_timeout() {
  auto keep = shared_from_this();
  auto ctx = context.lock();
  const std::string name = ctx ? ctx->name() : "?";
  const std::string pod_name = pod ? pod->host_port.str() : last_pod;
  exchange.reset();
  if (pod) finish_attempt(true);
  complete(Error{Errc::timed_out, fmt::format("upstream \"{}\": Pod {}: no complete response within {} ms "
                                              "(total timeout, {} attempt(s))",
                                              name, pod_name.empty() ? "(none yet)" : pod_name,
                                              ctx ? ctx->options().timeouts.total.count() : 0, attempts)});
}

void LiveRequests::insert(Ptr r) {
  r->live_index = v_.size();
  v_.push_back(std::move(r));
}

void LiveRequests::erase(UpstreamRequest::Impl& r) noexcept {
  const std::size_t i = r.live_index;
  if (i >= v_.size() || v_[i].get() != &r) return;
  r.live_index = static_cast<std::size_t>(-1);
  if (i + 1 != v_.size()) {
    v_[i] = std::move(v_.back());
    v_[i]->live_index = i;
  }
  v_.pop_back();  // may drop the last reference to r: nothing touches r after this
}

void LiveRequests::clear() noexcept {
  for (auto& r : v_) r->live_index = static_cast<std::size_t>(-1);
  v_.clear();
}

void UpstreamRequest::Impl::attempt() {
  auto up = context.lock();
  if (!up || up->stopped) return complete(Error{Errc::operation_canceled, "upstream closed"});
  // A worker's request whose Upstream was dropped: no Pod to try any more.
  if (up->publication->closed())
    return complete(Error{Errc::operation_canceled, fmt::format("upstream \"{}\" is closed", up->name())});
  auto keep = shared_from_this();
  ++attempts;
  // Pick a Pod not tried yet (a few draws; with one Pod, the same one again). The Routing is
  // this loop's copy of the current one: `routing` stays valid until the next routing() call.
  const detail::Routing& routing = up->routing();
  const Picker* picker = routing.picker.get();
  PickResult chosen;
  auto untried = [&](const PickResult& e) {
    return std::find(tried.begin(), tried.end(), detail::target_of(e).id) == tried.end();
  };
  for (int draw = 0; draw < 8 && !picker->empty(); ++draw) {
    const auto pick = picker->pick(request.hash + (attempts - 1) * 0x9e3779b97f4a7c15ULL + draw);
    if (!pick) break;
    chosen = pick;
    if (untried(chosen)) break;
  }
  // The draws kept landing on tried Pods (a policy that favours them, such as consistent hash,
  // or bad luck with random): take the first untried Pod of the Picker, from a request-dependent
  // start so that retries do not all pile onto one Pod.
  // Picker::at(), not endpoints(): a grouped Picker would assemble its whole list for that.
  if (chosen && !tried.empty() && !untried(chosen)) {
    const std::size_t n = picker->size();
    for (std::size_t k = 0; k < n; ++k) {
      const auto candidate = picker->at((request.hash + k) % n);  // its `load` is its Pod's PodTarget
      if (candidate.weight > 0 && untried(candidate)) {
        chosen = candidate;
        break;
      }
    }
  }
  if (!chosen) {
    ++up->tally.no_endpoint;
    return complete(Error{Errc::no_endpoint, fmt::format("upstream \"{}\": {}", up->name(),
                                                         picker->empty() ? picker->no_endpoint_reason() : "no Pod")});
  }
  pod = up->pod_for(detail::target_of(chosen), *chosen.endpoint);
  if (!pod) {
    last_pod = chosen.endpoint->host_port();
    return complete(Error{Errc::internal, fmt::format("upstream \"{}\": no pool for Pod {}", up->name(), last_pod)});
  }
  net::ConnectionPool* pool = pod->pool.get();
  pod->target->load().start();
  ++pod->in_flight;

  net::HttpRequest out;
  out.method = request.method;
  out.target = request.target;
  const auto& host_header = up->settings->config.host_header;
  const std::string* host_override = host_header ? &*host_header : nullptr;
  if (!detail::append_upstream_header_lines(request, host_override, out.header_lines, out.header_lines_have_host)) {
    out.header_lines.clear();
    out.header_lines_have_host = false;
    detail::append_upstream_request_headers(request, host_override, out.headers);
  }
  if (!request.streamed) {
    out.body_mode = net::BodyMode::buffered;
    if (!request.body.empty()) out.body = request.body;
  } else if (request.content_length) {
    out.body_mode = net::BodyMode::streamed_length;
    out.content_length = *request.content_length;
  } else {
    out.body_mode = net::BodyMode::streamed_chunked;
  }

  // The handlers capture a plain pointer (stored inside std::function without an allocation):
  // they only run while this Impl owns the exchange, and dropping the exchange (also from
  // ~Impl) guarantees that none runs afterwards. Each takes a reference for its duration.
  Impl* raw = this;
  net::HttpHandlers h;
  h.on_head = [raw](const net::HttpResponseHead& head) {
    auto self = raw->shared_from_this();
    if (self->done) return;
    auto owner = self->context.lock();
    if (!owner) return;
    self->status = head.status;
    const auto& retry_on = owner->options().retries.on_status;
    if (std::find(retry_on.begin(), retry_on.end(), head.status) != retry_on.end() && idempotent(self->request.method) &&
        !self->request.streamed && self->may_retry(*owner, false)) {
      self->exchange.reset();
      self->finish_attempt(true);
      return self->retry(*owner);
    }
    // The kept headers as views: on the stack for a usual head, in a vector for a long one.
    // The stack slots are left uninitialized (1 KiB zeroed per response otherwise) and each is
    // constructed when used; HeaderView is trivially destructible.
    static_assert(std::is_trivially_destructible_v<HeaderView>);
    constexpr std::size_t kOnStack = 32;
    union Slots {
      Slots() {}
      HeaderView v[kOnStack];
    } on_stack;
    std::vector<HeaderView> spilled;
    std::size_t kept = 0;
    detail::for_each_end_to_end(head.headers, [&](HeaderView header) {
      if (kept < kOnStack) {
        std::construct_at(&on_stack.v[kept++], header);
        return;
      }
      if (spilled.empty()) spilled.assign(on_stack.v, on_stack.v + kOnStack);
      spilled.push_back(header);
    });
    ForwardResponseHead fh;
    fh.status = head.status;
    fh.headers = spilled.empty() ? std::span<const HeaderView>(on_stack.v, kept) : std::span<const HeaderView>(spilled);
    fh.content_length = head.content_length;
    const auto answered = self->pod;  // fh.pod stays valid if the handler cancels the request
    fh.pod = answered->host_port.view();
    fh.attempts = self->attempts;
    self->head_delivered = true;
    self->call(&ForwardHandlers::on_head, fh);
  };
  h.on_body = [raw](std::string_view bytes) { raw->call(&ForwardHandlers::on_body, bytes); };
  h.on_writable = [raw] { raw->call(&ForwardHandlers::on_writable); };
  h.on_complete = [raw](Status s) {
    auto self = raw->shared_from_this();
    if (self->done) return;
    auto owner = self->context.lock();
    if (!owner) return;
    const bool pod_failure = !s.ok() || self->status >= 500;
    // A connect that timed out sent nothing either (timed_out is also a response timeout).
    const bool never_connected = self->exchange && !self->exchange->connected();
    std::string pod_name;
    if (!s.ok()) pod_name = self->pod->host_port.view();
    self->exchange.reset();
    self->finish_attempt(pod_failure);
    if (!s.ok() && !self->head_delivered) {
      const bool nothing_sent =
          connect_phase(s.error().code) || (s.error().code == Errc::timed_out && never_connected);
      const bool replayable = !self->request.streamed && idempotent(self->request.method);
      // retries.on_connect_failure = false turns connect-failure retries off for every method.
      const bool allowed = nothing_sent ? owner->options().retries.on_connect_failure : replayable;
      if (allowed && (replayable || !self->body_written)) {
        if (self->may_retry(*owner, nothing_sent)) return self->retry(*owner);
      }
    }
    if (!s.ok())
      s = Error{s.error().code, fmt::format("upstream \"{}\": Pod {}: {}", owner->name(), pod_name, s.error().reason)};
    self->complete(std::move(s));
  };
  auto ex = pool->send(std::move(out), std::move(h));
  if (!ex) {
    const std::string pod_name = pod ? pod->host_port.str() : std::string("?");
    const std::error_code code = ex.error().code;
    // Neither a request the connection refuses (invalid_argument) nor our own full queue for
    // the Pod (pool_exhausted: nothing was sent) says the Pod failed. The latter may go to
    // another Pod like a connect failure (see connect_phase()).
    const bool exhausted = code == Errc::pool_exhausted;
    if (exhausted && pod) tried.push_back(pod->target->id);
    finish_attempt(exhausted || code == Errc::invalid_argument ? Outcome::neutral : Outcome::failure);
    last_pod = pod_name;
    if (exhausted && up->options().retries.on_connect_failure && may_retry(*up, true)) return retry(*up);
    return complete(Error{ex.error().code, fmt::format("upstream \"{}\": Pod {}: {}", up->name(), pod_name,
                                                       ex.error().reason)});
  }
  exchange = std::move(*ex);
  if (request.streamed) {
    if (!early_body.empty()) (void)exchange->write_body(early_body);
    early_body.clear();
    if (body_ended) (void)exchange->end_body();
    // The caller was told to wait: the buffer now belongs to the exchange, so say "writable"
    // (on a later turn). The exchange still applies its own high-water mark to what follows.
    // (Not relying on the exchange's on_writable here: an exchange that has no connection
    // yet may not report the drain of data buffered before it connected.)
    if (early_blocked) {
      early_blocked = false;
      detail::defer(up->loop, [weak = std::weak_ptr<Impl>(keep)] {
        if (auto self = weak.lock(); self && !self->canceled) self->call(&ForwardHandlers::on_writable);
      });
    }
  }
}

void UpstreamRequest::Impl::finish_attempt(Outcome outcome) {
  if (!pod) return;
  auto p = std::move(pod);
  pod = nullptr;
  p->target->load().finish();
  --p->in_flight;
  if (outcome == Outcome::failure) {
    // A retry may follow: it avoids this Pod, and error reasons name it.
    tried.push_back(p->target->id);
    last_pod = p->host_port.view();
  }
  if (auto ctx = context.lock(); ctx && !ctx->stopped) ctx->attempt_done(p, outcome);
}

bool UpstreamRequest::Impl::may_retry(const ForwardingContext& ctx, bool) const {
  const auto& policy = ctx.options().retries;
  if (attempts > policy.max_retries) return false;
  const double budget = std::max<double>(policy.min_concurrent, policy.budget_ratio * ctx.in_flight);
  return ctx.retries_in_flight < budget;
}

void UpstreamRequest::Impl::retry(ForwardingContext& up) {
  ++up.tally.retries;
  if (!counted_retry) {
    counted_retry = true;
    ++up.retries_in_flight;
  }
  up.log(LogLevel::debug, fmt::format("upstream \"{}\": retrying {} {} (attempt {})", up.name(), request.method,
                                      request.target, attempts + 1));
  status = 0;
  attempt();
}

void UpstreamRequest::Impl::complete(Status s) {
  if (done) return;
  if (in_forward) {
    deferred_outcome = std::move(s);  // forward() has it delivered on a later turn
    return;
  }
  done = true;
  close_timer();
  auto keep = shared_from_this();
  if (auto ctx = context.lock()) ctx->request_done(*this, !s.ok(), true);
  auto cb = std::move(handlers.on_complete);
  if (calling == 0) drop_handlers();
  if (cb) cb(std::move(s));
}

void UpstreamRequest::Impl::cancel() {
  if (canceled) return;
  canceled = true;
  // Inside one of our handlers (the caller dropped us there) the running std::function must
  // stay alive until it returns: call() clears the handlers then.
  if (calling == 0) drop_handlers();
  exchange.reset();
  finish_attempt(Outcome::neutral);
  if (!done) {
    done = true;
    close_timer();
    if (auto ctx = context.lock()) ctx->request_done(*this, false, false);
  }
}

void UpstreamRequest::Impl::close_timer() {
  if (!deadline_listed) return;
  if (auto ctx = context.lock(); ctx && ctx->scheduler) ctx->scheduler->remove_deadline(*this);
}

}  // namespace kupstream
