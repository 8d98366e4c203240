// The C ABI's forwarding (kupstream_c.h): kup_upstream_forward over Upstream::forward and
// kup_worker_forward over UpstreamWorker::forward, with the response streamed to C callbacks and
// the request body streamed from the host.
#include <cstring>

#include "c_abi.h"

using namespace kupstream;
using kupstream::capi::fail;
using kupstream::capi::guard;

struct kup_forward {
  std::unique_ptr<UpstreamRequest> request;
  kup_forward_callbacks callbacks{};
};

namespace {

std::string_view view(const char* s, std::string_view fallback) { return s != nullptr ? std::string_view(s) : fallback; }

// The handlers below touch nothing after the host's callback returns: it may have destroyed
// the kup_forward (or the upstream).
ForwardHandlers handlers_for(kup_forward* f) {
  ForwardHandlers h;
  h.on_head = [f](const ForwardResponseHead& head) {
    if (f->callbacks.on_head == nullptr) return;
    std::vector<kup_header> headers;
    std::string pod;
    try {
      headers.reserve(head.headers.size());
      for (const auto& [name, value] : head.headers) headers.push_back({name.data(), name.size(), value.data(), value.size()});
      pod.assign(head.pod);
    } catch (const std::bad_alloc&) {
      headers.clear();  // the host still learns the status
    }
    kup_response_head c{};
    c.status = head.status;
    c.headers = headers.data();
    c.header_count = headers.size();
    c.content_length = head.content_length ? static_cast<int64_t>(*head.content_length) : -1;
    c.pod = pod.c_str();
    c.attempts = head.attempts;
    f->callbacks.on_head(f, &c, f->callbacks.data);
  };
  h.on_body = [f](std::string_view chunk) {
    if (f->callbacks.on_body != nullptr) f->callbacks.on_body(f, chunk.data(), chunk.size(), f->callbacks.data);
  };
  h.on_writable = [f] {
    if (f->callbacks.on_writable != nullptr) f->callbacks.on_writable(f, f->callbacks.data);
  };
  h.on_complete = [f](Status st) {
    if (f->callbacks.on_complete == nullptr) return;
    int code = st ? KUP_OK : capi::code_of(st.error().code);
    f->callbacks.on_complete(f, code, st ? "" : st.error().reason.c_str(), f->callbacks.data);
  };
  return h;
}

}  // namespace

namespace kupstream::capi {

int forward_request(const char* fn, const SendFn& send, const kup_request* request,
                    const kup_forward_callbacks* callbacks, kup_forward** out, kup_error* err) noexcept {
  if (out != nullptr) *out = nullptr;
  return guard(err, [&]() -> int {
    const std::string name(fn);
    if (request == nullptr || out == nullptr)
      return fail(err, KUP_INVALID_ARGUMENT, name + ": request and out must not be NULL");
    if ((request->headers == nullptr && request->header_count > 0) || (request->body == nullptr && request->body_len > 0))
      return fail(err, KUP_INVALID_ARGUMENT, name + ": headers or body is NULL with a nonzero size");
    ForwardRequest r;
    r.method = view(request->method, "GET");
    r.target = view(request->target, "/");
    r.headers.reserve(request->header_count);
    for (size_t i = 0; i < request->header_count; ++i) {
      const kup_header& h = request->headers[i];
      if ((h.name == nullptr && h.name_len > 0) || (h.value == nullptr && h.value_len > 0))
        return fail(err, KUP_INVALID_ARGUMENT, name + ": headers[" + std::to_string(i) + "] is NULL");
      r.headers.emplace_back(std::string(h.name != nullptr ? h.name : "", h.name_len),
                             std::string(h.value != nullptr ? h.value : "", h.value_len));
    }
    r.client_address = view(request->client_address, "");
    r.client_scheme = view(request->client_scheme, "http");
    r.client_host = view(request->client_host, "");
    r.streamed = request->streamed != 0;
    if (!r.streamed && request->body_len > 0) r.body.assign(request->body, request->body_len);
    if (r.streamed && request->content_length >= 0) r.content_length = static_cast<std::uint64_t>(request->content_length);
    r.hash = request->hash;

    auto handle = std::make_unique<kup_forward>();
    if (callbacks != nullptr) handle->callbacks = *callbacks;
    auto started = send(std::move(r), handlers_for(handle.get()));
    if (!started) return fail(err, started.error());
    handle->request = std::move(*started);
    *out = handle.release();
    return KUP_OK;
  });
}

}  // namespace kupstream::capi

extern "C" {

KUP_API int kup_upstream_forward(kup_upstream* upstream, const kup_request* request,
                                 const kup_forward_callbacks* callbacks, kup_forward** out, kup_error* err) {
  if (out != nullptr) *out = nullptr;
  if (upstream == nullptr)
    return fail(err, KUP_INVALID_ARGUMENT, "kup_upstream_forward: upstream, request and out must not be NULL");
  Upstream& u = *upstream->upstream;
  return capi::forward_request(
      "kup_upstream_forward", [&u](ForwardRequest r, ForwardHandlers h) { return u.forward(std::move(r), std::move(h)); },
      request, callbacks, out, err);
}

KUP_API int kup_forward_write(kup_forward* request, const char* data, size_t len, int* writable, kup_error* err) {
  if (writable != nullptr) *writable = 0;
  if (request == nullptr || (data == nullptr && len > 0))
    return fail(err, KUP_INVALID_ARGUMENT, "kup_forward_write: request and data must not be NULL");
  return guard(err, [&]() -> int {
    auto r = request->request->write_body(std::string_view(data != nullptr ? data : "", len));
    if (!r) return fail(err, r.error());
    if (writable != nullptr) *writable = *r ? 1 : 0;
    return KUP_OK;
  });
}

KUP_API int kup_forward_end(kup_forward* request, kup_error* err) {
  if (request == nullptr) return fail(err, KUP_INVALID_ARGUMENT, "kup_forward_end: request must not be NULL");
  return guard(err, [&]() -> int {
    auto st = request->request->end_body();
    if (!st) return fail(err, st.error());
    return KUP_OK;
  });
}

KUP_API void kup_forward_pause(kup_forward* request) {
  if (request == nullptr) return;
  try {
    request->request->pause_body();
  } catch (...) {  // nothing C++ crosses the boundary
  }
}

KUP_API void kup_forward_resume(kup_forward* request) {
  if (request == nullptr) return;
  try {
    request->request->resume_body();
  } catch (...) {  // nothing C++ crosses the boundary
  }
}

KUP_API void kup_forward_destroy(kup_forward* request) { delete request; }

}  // extern "C"
