// Shared pieces of the C ABI's implementation (bindings/c): filling kup_error, catching every
// exception at the boundary, copying strings into C storage, and the handle structs.
#pragma once

#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "kupstream/cluster_client.h"
#include "kupstream/error.h"
#include "kupstream/kupstream_c.h"
#include "kupstream/upstream.h"

namespace kupstream::capi {

// The kup_errc of an Error: kupstream codes keep their value; anything else is KUP_INTERNAL.
int code_of(const std::error_code& code) noexcept;

// Fills *err (when not null) and returns `code`.
int fail(kup_error* err, int code, std::string_view reason) noexcept;
inline int fail(kup_error* err, const Error& e) noexcept { return fail(err, code_of(e.code), e.reason); }

// A malloc'ed NUL-terminated copy (released with kup_string_free / free); null when out of memory.
char* dup_string(std::string_view s) noexcept;

// Copies `s` into a fixed buffer, truncating, always NUL-terminated.
template <std::size_t N>
void copy_into(char (&dst)[N], std::string_view s) noexcept {
  std::size_t n = s.size() < N - 1 ? s.size() : N - 1;
  std::memcpy(dst, s.data(), n);
  dst[n] = '\0';
}

// Runs f (which returns a kup_errc) and turns any exception into a code: nothing C++ crosses.
template <class F>
int guard(kup_error* err, F&& f) noexcept {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return fail(err, KUP_NO_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return fail(err, KUP_INTERNAL, e.what());
  } catch (...) {
    return fail(err, KUP_INTERNAL, "unknown exception");
  }
}

// A C log callback as a LogFn (empty when fn is null).
LogFn make_log(kup_log_fn fn, void* data, std::string prefix = {});

void fill_endpoint(const Endpoint& e, kup_endpoint* out) noexcept;

// Copies a pick into *out; `services` names the ServiceRefs by PickResult::group.
int copy_pick(const PickResult& r, const std::vector<std::string>& services, kup_pick_result* out) noexcept;

// Sends a kup_request through `send` (Upstream::forward or UpstreamWorker::forward) and makes
// the kup_forward handle; `fn` names the C function in errors. Shared by kup_upstream_forward and
// kup_worker_forward.
using SendFn = std::function<Result<std::unique_ptr<UpstreamRequest>>(ForwardRequest, ForwardHandlers)>;
int forward_request(const char* fn, const SendFn& send, const kup_request* request,
                    const kup_forward_callbacks* callbacks, kup_forward** out, kup_error* err) noexcept;

}  // namespace kupstream::capi

struct kup_cluster {
  std::unique_ptr<kupstream::ClusterClient> client;
};

struct kup_snapshot {
  kupstream::EndpointSetPtr set;
};

struct kup_upstream {
  std::unique_ptr<kupstream::Upstream> upstream;
  std::string hash_header;
  // ServiceRef::to_string() of each configured service, by index (PickResult::group);
  // shared with pickers, which may outlive the upstream.
  std::shared_ptr<const std::vector<std::string>> services;
};

struct kup_picker {
  kupstream::PickerPtr picker;
  std::shared_ptr<const std::vector<std::string>> services;
};
