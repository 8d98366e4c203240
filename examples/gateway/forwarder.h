// Forwarder: the one seam between a gateway worker and an Upstream.
//
// A worker forwards every request through the Forwarder of its upstream. With one worker the
// requests are served on the control loop, where the Upstream lives, and the Forwarder is the
// Upstream itself (Upstream::forward). With N workers each worker loop has its own
// kupstream::UpstreamWorker per upstream (Upstream::worker(loop)): its own connection pools,
// the Upstream's Picker and health, and the same forward() contract.
//
// Thread: the worker's loop thread, which is also where the Forwarder is destroyed (for an
// UpstreamWorker, that cancels its requests; no handler runs afterwards). Lifetime: the
// Upstream must outlive its Forwarders.
#pragma once

#include <uv.h>

#include <memory>

#include "kupstream/upstream.h"

#if __has_include("kupstream/upstream_worker.h")
#include "kupstream/upstream_worker.h"
#define KUPGW_HAVE_UPSTREAM_WORKER 1
#else
#define KUPGW_HAVE_UPSTREAM_WORKER 0
#endif

namespace kupgw {

class Forwarder {
 public:
  virtual ~Forwarder() = default;
  // Same contract as kupstream::Upstream::forward() (by reference: one move fewer per request).
  virtual kupstream::Result<std::unique_ptr<kupstream::UpstreamRequest>> forward(kupstream::ForwardRequest&& request,
                                                                                kupstream::ForwardHandlers&& handlers) = 0;
};

// True when this build can serve with more than one worker (the library has UpstreamWorker).
constexpr bool multi_worker_supported() { return KUPGW_HAVE_UPSTREAM_WORKER != 0; }

// A Forwarder for `upstream` on `loop`. `control_loop`: `loop` is the Upstream's own loop, and
// the Upstream forwards directly; otherwise an UpstreamWorker is made for `loop` (errors are
// Upstream::worker()'s, or unsupported without UpstreamWorker in this build).
kupstream::Result<std::unique_ptr<Forwarder>> make_forwarder(kupstream::Upstream& upstream, uv_loop_t& loop,
                                                             bool control_loop);

}  // namespace kupgw
