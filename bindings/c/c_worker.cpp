// The C ABI's worker loops (kupstream_c.h, "Worker loops"): kup_worker over UpstreamWorker, so
// that a C host with one loop per core forwards through one upstream's discovery and picker.
#include "c_abi.h"
#include "kupstream/upstream_worker.h"

using namespace kupstream;
using kupstream::capi::fail;
using kupstream::capi::guard;

struct kup_worker {
  std::unique_ptr<UpstreamWorker> worker;
  // The upstream's service names by PickResult::group (shared: the upstream may go first).
  std::shared_ptr<const std::vector<std::string>> services;
};

extern "C" {

KUP_API int kup_upstream_worker(kup_upstream* upstream, uv_loop_t* worker_loop, kup_worker** out, kup_error* err) {
  if (out != nullptr) *out = nullptr;
  if (upstream == nullptr || worker_loop == nullptr || out == nullptr)
    return fail(err, KUP_INVALID_ARGUMENT, "kup_upstream_worker: upstream, worker_loop and out must not be NULL");
  return guard(err, [&]() -> int {
    auto handle = std::make_unique<kup_worker>();
    handle->services = upstream->services;
    auto w = upstream->upstream->worker(*worker_loop);
    if (!w) return fail(err, w.error());
    handle->worker = std::move(*w);
    *out = handle.release();
    return KUP_OK;
  });
}

KUP_API void kup_worker_destroy(kup_worker* worker) { delete worker; }

KUP_API int kup_worker_forward(kup_worker* worker, const kup_request* request, const kup_forward_callbacks* callbacks,
                               kup_forward** out, kup_error* err) {
  if (out != nullptr) *out = nullptr;
  if (worker == nullptr)
    return fail(err, KUP_INVALID_ARGUMENT, "kup_worker_forward: worker, request and out must not be NULL");
  UpstreamWorker& w = *worker->worker;
  return capi::forward_request(
      "kup_worker_forward", [&w](ForwardRequest r, ForwardHandlers h) { return w.forward(std::move(r), std::move(h)); },
      request, callbacks, out, err);
}

KUP_API int kup_worker_pick(const kup_worker* worker, uint64_t hash, kup_pick_result* out, kup_error* err) {
  if (worker == nullptr || out == nullptr)
    return fail(err, KUP_INVALID_ARGUMENT, "kup_worker_pick: worker and out must not be NULL");
  return guard(err, [&]() -> int {
    // The worker keeps the Picker alive for this thread until its next pick: copy before that.
    PickResult r = worker->worker->pick(hash);
    if (!r) {
      PickerPtr p = worker->worker->picker();
      return fail(err, KUP_NO_ENDPOINT, "upstream \"" + worker->worker->config().name + "\": " +
                                            (p ? p->no_endpoint_reason() : std::string("no picker")));
    }
    return capi::copy_pick(r, *worker->services, out);
  });
}

KUP_API kup_picker* kup_worker_picker(const kup_worker* worker) {
  if (worker == nullptr) return nullptr;
  try {
    return new kup_picker{worker->worker->picker(), worker->services};
  } catch (...) {  // nothing C++ crosses the boundary
    return nullptr;
  }
}

KUP_API int kup_worker_ready(const kup_worker* worker) { return worker != nullptr && worker->worker->ready() ? 1 : 0; }

}  // extern "C"
