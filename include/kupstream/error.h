/// @file
/// Error codes and Result<T>: the library's only way of reporting failure.
///
/// Thread: all types here are plain values, safe to use on any thread.
/// No exception crosses the public API; every fallible call returns Result<T> or takes a
/// callback that receives an Error.
#pragma once

#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

#include "kupstream/export.h"

namespace kupstream {

/// The one table of kupstream's error codes: X(enumerator, value, message).
/// Values are stable; new codes are appended. Expand it with an X of your own to list every code.
#define KUPSTREAM_ERRC_MAP(X)                                                          \
  X(invalid_argument, 1, "invalid argument")                                           \
  X(invalid_config, 2, "invalid configuration")                                        \
  X(no_endpoint, 3, "no endpoint available")                                           \
  X(operation_canceled, 4, "operation canceled")                                       \
  X(timed_out, 5, "timed out")                                                         \
  X(connect_failed, 6, "connection failed")                                            \
  X(connection_closed, 7, "connection closed by peer")                                 \
  X(tls_handshake_failed, 8, "TLS handshake failed")                                   \
  X(tls_verify_failed, 9, "TLS certificate verification failed")                       \
  X(http_parse_error, 10, "malformed HTTP message")                                    \
  X(http_limit_exceeded, 11, "HTTP size or count limit exceeded")                      \
  X(resolve_failed, 12, "host name resolution failed")                                 \
  X(pool_exhausted, 13, "connection pool exhausted")                                   \
  X(unauthorized, 14, "unauthorized (401)")                                            \
  X(forbidden, 15, "forbidden (403)")                                                  \
  X(not_found, 16, "not found (404)")                                                  \
  X(gone, 17, "resource version expired (410)")                                        \
  X(too_many_requests, 18, "too many requests (429)")                                  \
  X(server_error, 19, "server error (5xx)")                                            \
  X(decode_error, 20, "malformed Kubernetes object")                                   \
  X(credential_error, 21, "credential could not be obtained")                          \
  X(unsupported, 22, "unsupported feature")                                            \
  X(io_error, 23, "I/O error")                                                         \
  X(internal, 24, "internal error")

/// kupstream's error codes, one per row of KUPSTREAM_ERRC_MAP (name, value and message are
/// there). An Errc converts implicitly to a std::error_code of error_category() and compares
/// equal to one.
enum class Errc : int {
/// Makes one enumerator of a table row (undefined again right below).
#define KUPSTREAM_ERRC_ENUM(name, value, message) name = value,
  KUPSTREAM_ERRC_MAP(KUPSTREAM_ERRC_ENUM)
#undef KUPSTREAM_ERRC_ENUM
};

}  // namespace kupstream

/// @cond
// Lets an Errc convert to a std::error_code (through kupstream::make_error_code()).
template <>
struct std::is_error_code_enum<kupstream::Errc> : std::true_type {};
/// @endcond

namespace kupstream {

/// The kupstream error category; name() is "kupstream".
KUPSTREAM_API const std::error_category& error_category() noexcept;

/// The enumerator's name, e.g. "no_endpoint"; "unknown" for a value outside the table.
KUPSTREAM_API const char* errc_name(Errc e) noexcept;

/// `e` as a std::error_code of error_category(); what the implicit conversion calls.
inline std::error_code make_error_code(Errc e) noexcept { return {static_cast<int>(e), error_category()}; }

/// An error code plus a human reason that names what is at fault, e.g.
/// `services[3].namespace: "Default" is not a DNS-1123 label`.
struct Error {
  std::error_code code;  ///< what kind of failure; an Errc of error_category() for kupstream's own
  std::string reason;    ///< what is at fault, for people (logs, API responses)

  /// No error: an empty code and reason.
  Error() = default;
  /// Any error code (e.g. a system one) with its reason.
  Error(std::error_code c, std::string r) : code(c), reason(std::move(r)) {}
  /// A kupstream code with its reason.
  Error(Errc e, std::string r) : code(make_error_code(e)), reason(std::move(r)) {}

  /// "reason (category:code)"-style text for logs.
  KUPSTREAM_API std::string message() const;
  /// Same code and same reason.
  friend bool operator==(const Error&, const Error&) = default;
};

/// An expected-like value: either a T or an Error. Accessing the wrong alternative is a
/// programming error and aborts in debug builds (it is never an exception).
template <class T>
class [[nodiscard]] Result {
 public:
  /// Success holding `value` (implicit, so a function may `return value;`).
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  /// Failure holding `error` (implicit, so a function may `return error;`).
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT
  /// Failure: Error{e, reason}.
  Result(Errc e, std::string reason) : v_(std::in_place_index<1>, Error{e, std::move(reason)}) {}

  /// True when it holds a value.
  bool ok() const noexcept { return v_.index() == 0; }
  /// Same as ok().
  explicit operator bool() const noexcept { return ok(); }

  /// The value; only when ok().
  T& value() & { return *std::get_if<0>(&v_); }
  /// The value; only when ok().
  const T& value() const& { return *std::get_if<0>(&v_); }
  /// The value, moved out; only when ok().
  T&& value() && { return std::move(*std::get_if<0>(&v_)); }
  /// Member access to the value; only when ok().
  T* operator->() { return std::get_if<0>(&v_); }
  /// Member access to the value; only when ok().
  const T* operator->() const { return std::get_if<0>(&v_); }
  /// The value; only when ok().
  T& operator*() & { return value(); }
  /// The value; only when ok().
  const T& operator*() const& { return value(); }

  /// The error; only when !ok().
  const Error& error() const& { return *std::get_if<1>(&v_); }
  /// The error, moved out; only when !ok().
  Error&& error() && { return std::move(*std::get_if<1>(&v_)); }

 private:
  std::variant<T, Error> v_;
};

/// Result<void>: success or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  /// Success (`return {};`).
  Result() = default;
  /// Failure holding `error` (implicit, so a function may `return error;`).
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT: implicit by design
  /// Failure: Error{e, reason}.
  Result(Errc e, std::string reason) : error_{e, std::move(reason)}, ok_(false) {}

  /// True on success.
  bool ok() const noexcept { return ok_; }
  /// Same as ok().
  explicit operator bool() const noexcept { return ok_; }
  /// The error; only when !ok() (an empty Error otherwise).
  const Error& error() const& { return error_; }
  /// The error, moved out; only when !ok().
  Error&& error() && { return std::move(error_); }

 private:
  Error error_;
  bool ok_ = true;
};

/// The result of an operation that returns nothing but may fail.
using Status = Result<void>;

}  // namespace kupstream
