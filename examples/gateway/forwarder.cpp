#include "forwarder.h"

using namespace kupstream;

namespace kupgw {

namespace {

// One worker on the control loop: the Upstream itself.
class UpstreamForwarder final : public Forwarder {
 public:
  explicit UpstreamForwarder(Upstream& upstream) : upstream_(upstream) {}
  Result<std::unique_ptr<UpstreamRequest>> forward(ForwardRequest&& request, ForwardHandlers&& handlers) override {
    return upstream_.forward(std::move(request), std::move(handlers));
  }

 private:
  Upstream& upstream_;
};

#if KUPGW_HAVE_UPSTREAM_WORKER
// A worker loop of its own: the Upstream's handle for that loop.
class WorkerForwarder final : public Forwarder {
 public:
  explicit WorkerForwarder(std::unique_ptr<UpstreamWorker> worker) : worker_(std::move(worker)) {}
  Result<std::unique_ptr<UpstreamRequest>> forward(ForwardRequest&& request, ForwardHandlers&& handlers) override {
    return worker_->forward(std::move(request), std::move(handlers));
  }

 private:
  std::unique_ptr<UpstreamWorker> worker_;
};
#endif

}  // namespace

Result<std::unique_ptr<Forwarder>> make_forwarder(Upstream& upstream, uv_loop_t& loop, bool control_loop) {
  if (control_loop) return std::unique_ptr<Forwarder>(std::make_unique<UpstreamForwarder>(upstream));
#if KUPGW_HAVE_UPSTREAM_WORKER
  auto w = upstream.worker(loop);
  if (!w) return w.error();
  return std::unique_ptr<Forwarder>(std::make_unique<WorkerForwarder>(std::move(*w)));
#else
  (void)loop;
  return Error{Errc::unsupported, "this kupstream has no UpstreamWorker: one worker only"};
#endif
}

}  // namespace kupgw
