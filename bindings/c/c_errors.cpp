// The C ABI's plain functions: version, error codes and messages, kup_error, strings, hashing.
#include <cstdlib>

#include "c_abi.h"
#include "kupstream/balancer.h"

namespace kupstream::capi {
namespace {

// Every kupstream::Errc has a KUP_ code of the same value: this table names them, and the
// static_asserts fail the build when error.h's table and kupstream_c.h disagree.
#define KUP_C_ERRC(UPPER, lower) \
  static_assert(KUP_##UPPER == static_cast<int>(Errc::lower), "kup_errc must mirror kupstream::Errc");
KUP_C_ERRC(INVALID_ARGUMENT, invalid_argument)
KUP_C_ERRC(INVALID_CONFIG, invalid_config)
KUP_C_ERRC(NO_ENDPOINT, no_endpoint)
KUP_C_ERRC(OPERATION_CANCELED, operation_canceled)
KUP_C_ERRC(TIMED_OUT, timed_out)
KUP_C_ERRC(CONNECT_FAILED, connect_failed)
KUP_C_ERRC(CONNECTION_CLOSED, connection_closed)
KUP_C_ERRC(TLS_HANDSHAKE_FAILED, tls_handshake_failed)
KUP_C_ERRC(TLS_VERIFY_FAILED, tls_verify_failed)
KUP_C_ERRC(HTTP_PARSE_ERROR, http_parse_error)
KUP_C_ERRC(HTTP_LIMIT_EXCEEDED, http_limit_exceeded)
KUP_C_ERRC(RESOLVE_FAILED, resolve_failed)
KUP_C_ERRC(POOL_EXHAUSTED, pool_exhausted)
KUP_C_ERRC(UNAUTHORIZED, unauthorized)
KUP_C_ERRC(FORBIDDEN, forbidden)
KUP_C_ERRC(NOT_FOUND, not_found)
KUP_C_ERRC(GONE, gone)
KUP_C_ERRC(TOO_MANY_REQUESTS, too_many_requests)
KUP_C_ERRC(SERVER_ERROR, server_error)
KUP_C_ERRC(DECODE_ERROR, decode_error)
KUP_C_ERRC(CREDENTIAL_ERROR, credential_error)
KUP_C_ERRC(UNSUPPORTED, unsupported)
KUP_C_ERRC(IO_ERROR, io_error)
KUP_C_ERRC(INTERNAL, internal)
#undef KUP_C_ERRC

// A code appended to error.h's table must be added to kupstream_c.h (and above).
#define KUP_C_COUNT(name, value, message) +1
constexpr int kErrcCount = 0 KUPSTREAM_ERRC_MAP(KUP_C_COUNT);
#undef KUP_C_COUNT
static_assert(kErrcCount == KUP_INTERNAL, "a kupstream::Errc is missing from kupstream_c.h's kup_errc");

constexpr const char* kNames[] = {
    "KUP_OK",
    "KUP_INVALID_ARGUMENT", "KUP_INVALID_CONFIG", "KUP_NO_ENDPOINT", "KUP_OPERATION_CANCELED",
    "KUP_TIMED_OUT", "KUP_CONNECT_FAILED", "KUP_CONNECTION_CLOSED", "KUP_TLS_HANDSHAKE_FAILED",
    "KUP_TLS_VERIFY_FAILED", "KUP_HTTP_PARSE_ERROR", "KUP_HTTP_LIMIT_EXCEEDED", "KUP_RESOLVE_FAILED",
    "KUP_POOL_EXHAUSTED", "KUP_UNAUTHORIZED", "KUP_FORBIDDEN", "KUP_NOT_FOUND", "KUP_GONE",
    "KUP_TOO_MANY_REQUESTS", "KUP_SERVER_ERROR", "KUP_DECODE_ERROR", "KUP_CREDENTIAL_ERROR",
    "KUP_UNSUPPORTED", "KUP_IO_ERROR", "KUP_INTERNAL"};
static_assert(sizeof(kNames) / sizeof(kNames[0]) == kErrcCount + 1);

}  // namespace

int code_of(const std::error_code& code) noexcept {
  if (!code) return KUP_OK;
  if (code.category() == error_category() && code.value() >= 1 && code.value() <= kErrcCount) return code.value();
  return KUP_INTERNAL;
}

int fail(kup_error* err, int code, std::string_view reason) noexcept {
  if (err != nullptr) {
    std::free(err->reason);
    err->code = code;
    err->reason = dup_string(reason);
  }
  return code;
}

char* dup_string(std::string_view s) noexcept {
  auto* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p == nullptr) return nullptr;
  std::memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  return p;
}

LogFn make_log(kup_log_fn fn, void* data, std::string prefix) {
  if (fn == nullptr) return {};
  return [fn, data, prefix = std::move(prefix)](LogLevel level, std::string_view message) {
    auto lvl = static_cast<kup_log_level>(static_cast<int>(level));
    if (prefix.empty()) {
      fn(lvl, message.data(), message.size(), data);
      return;
    }
    try {
      std::string text = prefix + std::string(message);
      fn(lvl, text.data(), text.size(), data);
    } catch (const std::bad_alloc&) {
      fn(lvl, message.data(), message.size(), data);
    }
  };
}

void fill_endpoint(const Endpoint& e, kup_endpoint* out) noexcept {
  out->address = e.address.c_str();
  out->port = e.port;
  out->pod_name = e.pod_name.c_str();
  out->node_name = e.node_name.c_str();
  out->zone = e.zone.c_str();
  out->ready = e.conditions.ready ? 1 : 0;
  out->serving = e.conditions.serving ? 1 : 0;
  out->terminating = e.conditions.terminating ? 1 : 0;
}

}  // namespace kupstream::capi

using namespace kupstream;

extern "C" {

KUP_API unsigned kup_version(void) { return KUP_VERSION_NUMBER; }
KUP_API const char* kup_version_string(void) { return KUP_VERSION_STRING; }

KUP_API const char* kup_strerror(int code) {
  switch (code) {
    case KUP_OK: return "success";
    case KUP_NO_MEMORY: return "out of memory";
#define KUP_C_MESSAGE(name, value, message) \
  case value: return message;
    KUPSTREAM_ERRC_MAP(KUP_C_MESSAGE)
#undef KUP_C_MESSAGE
    default: return "unknown error";
  }
}

KUP_API const char* kup_errc_name(int code) {
  if (code == KUP_NO_MEMORY) return "KUP_NO_MEMORY";
  if (code < 0 || code > capi::kErrcCount) return "KUP_UNKNOWN";
  return capi::kNames[code];
}

KUP_API void kup_error_clear(kup_error* err) {
  if (err == nullptr) return;
  std::free(err->reason);
  err->reason = nullptr;
  err->code = KUP_OK;
}

KUP_API void kup_string_free(char* s) { std::free(s); }

KUP_API uint64_t kup_hash_key(const char* key, size_t length) {
  if (key == nullptr) return hash_key({});
  return hash_key(std::string_view(key, length));
}

}  // extern "C"
