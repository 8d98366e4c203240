// UpstreamWorker (include/kupstream/upstream_worker.h) and the channels between it and the
// Upstream's control loop (worker_hub.h).
#include "kupstream/upstream_worker.h"

#include <fmt/format.h>
#include <uv.h>

#include "net/tls_context.h"
#include "upstream/upstream_impl.h"
#include "upstream/worker_hub.h"

namespace kupstream {

namespace detail {

ControlHub::ControlHub(uv_loop_t& loop, Upstream::Impl& owner)
    : async_(new uv_async_t), timer_(new uv_timer_t), owner_(&owner) {
  uv_async_init(&loop, async_, [](uv_async_t* a) { static_cast<ControlHub*>(a->data)->on_wake(); });
  async_->data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(async_));
  uv_timer_init(&loop, timer_);
  timer_->data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(timer_));
}

ControlHub::~ControlHub() { close(); }

void ControlHub::close() {
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    closed_ = true;
    inbox_.clear();
    links_.clear();
  }
  owner_ = nullptr;
  // No callback runs after uv_close (a pending wake-up or tick included): `this` is not touched again.
  uv_close(reinterpret_cast<uv_handle_t*>(async_), [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
  async_ = nullptr;
  uv_timer_stop(timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  timer_ = nullptr;
}

void ControlHub::pod_removed(std::uint64_t pod_id) {
  std::lock_guard lock(mutex_);
  for (const auto& link : links_) {
    std::lock_guard link_lock(link->mutex);
    if (link->closed) continue;
    link->removed.push_back(pod_id);
    uv_async_send(link->async);
  }
}

bool ControlHub::attach(const std::shared_ptr<WorkerLink>& link) {
  std::lock_guard lock(mutex_);
  if (closed_) return false;
  links_.push_back(link);
  return true;
}

void ControlHub::detach(const WorkerLink* link) {
  std::lock_guard lock(mutex_);
  std::erase_if(links_, [link](const std::shared_ptr<WorkerLink>& l) { return l.get() == link; });
}

void ControlHub::submit(Tally&& batch, bool urgent) {
  std::lock_guard lock(mutex_);
  if (closed_) return;
  inbox_.push_back(std::move(batch));
  // The ticking timer takes it within kDrainMs; otherwise (or for a failure) wake the loop,
  // once until it has run.
  if ((urgent || !ticking_) && !woken_) {
    woken_ = true;
    uv_async_send(async_);
  }
}

bool ControlHub::drain() {
  {
    std::lock_guard lock(mutex_);
    applying_.swap(inbox_);
  }
  const bool any = !applying_.empty();
  for (auto& batch : applying_) {
    if (owner_ == nullptr) break;  // closed while applying (the Upstream went away)
    owner_->apply_batch(batch);
  }
  applying_.clear();
  return any;
}

void ControlHub::on_wake() {
  {
    std::lock_guard lock(mutex_);
    woken_ = false;
  }
  drain();
  if (owner_ == nullptr) return;  // closed while applying
  bool start = false;
  {
    std::lock_guard lock(mutex_);
    if (!ticking_) start = ticking_ = true;
  }
  if (start)
    uv_timer_start(timer_, [](uv_timer_t* t) { static_cast<ControlHub*>(t->data)->on_tick(); }, kDrainMs, kDrainMs);
}

void ControlHub::on_tick() {
  if (drain() || owner_ == nullptr) return;
  // A quiet tick: stop. A batch submitted after this sees ticking_ false and wakes the loop.
  std::lock_guard lock(mutex_);
  if (!inbox_.empty()) return;  // one came meanwhile: the next tick takes it
  ticking_ = false;
  uv_timer_stop(timer_);
}

}  // namespace detail

struct UpstreamWorker::Impl {
  Impl(uv_loop_t& l, std::shared_ptr<ForwardingContext> c, std::shared_ptr<detail::ControlHub> h)
      : loop(l), context(std::move(c)), hub(std::move(h)), link(std::make_shared<detail::WorkerLink>()) {}

  // How long a worker's counts and successful or canceled attempt outcomes may wait before
  // they go to the control loop. Handing over every loop turn (about once per 20 requests at
  // full load) cost a hub lock and, often, a wake-up of the control thread each time; now a
  // busy worker hands over every kHandOverMs and the control loop drains on its own timer
  // (ControlHub). A failed attempt does not wait (outlier ejection sees it at the end of the
  // loop turn, as before), nor does a dropped worker's last batch.
  static constexpr std::uint64_t kHandOverMs = 5;

  // Worker loop thread: the uv handles, then the link to the control loop.
  bool open() {
    link->async = new uv_async_t;
    uv_async_init(&loop, link->async, [](uv_async_t* a) { static_cast<Impl*>(a->data)->on_removed(); });
    link->async->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(link->async));
    check = new uv_check_t;
    uv_check_init(&loop, check);
    check->data = this;
    uv_check_start(check, [](uv_check_t* c) { static_cast<Impl*>(c->data)->after_turn(); });
    uv_unref(reinterpret_cast<uv_handle_t*>(check));
    // Referenced while armed: news pending keeps the loop running until they are handed over.
    timer = new uv_timer_t;
    uv_timer_init(&loop, timer);
    timer->data = this;
    return hub->attach(link);
  }

  bool has_news() const noexcept {
    const ForwardingContext& c = *context;
    return c.tally.has_news() || static_cast<std::int64_t>(c.in_flight) != c.in_flight_reported;
  }

  // Once per loop turn (uv_check, after I/O callbacks): a failed attempt goes now; other news
  // within kHandOverMs (the timer, armed by the first news since the last hand-over).
  void after_turn() {
    if (!has_news()) return;
    if (context->tally.failed_attempt) {
      flush();
      return;
    }
    if (!uv_is_active(reinterpret_cast<uv_handle_t*>(timer)))
      uv_timer_start(timer, [](uv_timer_t* t) { static_cast<Impl*>(t->data)->flush(); }, kHandOverMs, 0);
  }

  // Hands what happened since the last hand-over to the control loop; `last` (the worker is
  // being dropped) wakes it at once, like a failed attempt.
  void flush(bool last = false) {
    if (timer != nullptr) uv_timer_stop(timer);
    ForwardingContext& c = *context;
    const std::int64_t in_flight_change = static_cast<std::int64_t>(c.in_flight) - c.in_flight_reported;
    detail::Tally& t = c.tally;
    if (!t.has_news() && in_flight_change == 0) return;
    detail::Tally batch;
    std::swap(batch, t);
    t.attempts.reserve(batch.attempts.size());
    batch.in_flight = in_flight_change;
    c.in_flight_reported = c.in_flight;
    const bool urgent = last || batch.failed_attempt;
    hub->submit(std::move(batch), urgent);
  }

  void on_removed() {
    std::vector<std::uint64_t> ids;
    {
      std::lock_guard lock(link->mutex);
      ids.swap(link->removed);
    }
    for (auto id : ids) context->pod_removed(id);
  }

  void close() {
    context->shutdown();  // cancels the requests: their last counts go into the final batch
    flush(true);
    {
      std::lock_guard lock(link->mutex);
      link->closed = true;
    }
    hub->detach(link.get());
    auto closed = [](uv_handle_t* h) {
      if (h->type == UV_ASYNC) delete reinterpret_cast<uv_async_t*>(h);
      else if (h->type == UV_TIMER) delete reinterpret_cast<uv_timer_t*>(h);
      else delete reinterpret_cast<uv_check_t*>(h);
    };
    uv_close(reinterpret_cast<uv_handle_t*>(link->async), closed);
    link->async = nullptr;
    uv_check_stop(check);
    uv_close(reinterpret_cast<uv_handle_t*>(check), closed);
    check = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(timer), closed);
    timer = nullptr;
  }

  uv_loop_t& loop;
  std::shared_ptr<ForwardingContext> context;
  std::shared_ptr<detail::ControlHub> hub;
  std::shared_ptr<detail::WorkerLink> link;
  uv_check_t* check = nullptr;
  uv_timer_t* timer = nullptr;  // armed while news wait for their hand-over
};

UpstreamWorker::UpstreamWorker(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

UpstreamWorker::~UpstreamWorker() { impl_->close(); }

Result<std::unique_ptr<UpstreamRequest>> UpstreamWorker::forward(ForwardRequest request, ForwardHandlers handlers) {
  return impl_->context->forward(std::move(request), std::move(handlers));
}

PickerPtr UpstreamWorker::picker() const { return detail::thread_routing(impl_->context->publication).picker; }

PickResult UpstreamWorker::pick(std::uint64_t hash) const {
  return detail::thread_routing(impl_->context->publication).picker->pick(hash);
}

bool UpstreamWorker::ready() const {
  const auto& publication = impl_->context->publication;
  if (publication->closed()) return false;
  const detail::Routing& r = detail::thread_routing(publication);
  return r.synced && !r.picker->empty();
}

const UpstreamConfig& UpstreamWorker::config() const noexcept { return impl_->context->settings->config; }

Result<std::unique_ptr<UpstreamWorker>> Upstream::worker(uv_loop_t& worker_loop) {
  Impl& u = *impl_;
  const auto& settings = u.forward_settings;
  if (u.stopped || u.publication->closed())
    return Error{Errc::operation_canceled, fmt::format("upstream \"{}\" is closed", settings->config.name)};
  // Each loop has its own TLS contexts: a TlsContext's session cache is not thread-safe.
  std::vector<std::shared_ptr<net::TlsContext>> tls;
  for (std::size_t i = 0; i < settings->tls.size(); ++i) {
    if (!settings->tls[i]) {
      tls.push_back(nullptr);
      continue;
    }
    auto ctx = net::TlsContext::create(*settings->tls[i]);
    if (!ctx)
      return Error{Errc::invalid_config, fmt::format("upstream \"{}\": worker: tls: {}", settings->config.name, ctx.error().reason)};
    (void)(*ctx)->claim_insecure_warning();  // the Upstream logged it once
    tls.push_back(std::move(*ctx));
  }
  auto context = std::make_shared<ForwardingContext>(worker_loop, settings, u.publication, std::move(tls));
  auto impl = std::make_shared<UpstreamWorker::Impl>(worker_loop, std::move(context), u.hub);
  auto handle = std::make_unique<UpstreamWorker>(impl);
  if (!impl->open())
    return Error{Errc::operation_canceled, fmt::format("upstream \"{}\" is closed", settings->config.name)};
  return handle;
}

}  // namespace kupstream
