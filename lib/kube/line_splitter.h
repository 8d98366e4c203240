// kube::LineSplitter: turns the bytes of a watch response body (newline-delimited JSON
// events, split by the transport at arbitrary points) into complete event lines.
//
// Thread: single-threaded value type. Lines returned by next() are views into the splitter's
// buffer, valid until the next append() or clear().
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "kupstream/error.h"

namespace kupstream::kube {

class LineSplitter {
 public:
  // A line longer than max_line_bytes (without its '\n') is an error, whether it is still
  // pending or arrives whole: a server or proxy that never sends a newline must not grow
  // memory without bound, and no event may be larger than the limit.
  explicit LineSplitter(std::size_t max_line_bytes = 64u << 20) : max_line_(max_line_bytes) {}

  // Adds body bytes. Fails (Errc::decode_error) when the pending, unterminated line exceeds
  // the limit; the splitter is then unusable until clear().
  Status append(std::string_view bytes);

  // The next complete line without its "\n" (and without a "\r" before it); empty and
  // whitespace-only lines are skipped. nullopt when no complete line is buffered.
  std::optional<std::string_view> next();

  // Bytes of an unterminated last line. At the end of a stream, a non-zero value means the
  // last event was cut off (the stream ended early).
  std::size_t pending_bytes() const noexcept { return buf_.size() - pos_; }

  // The unterminated tail, for callers that accept a final event without a newline.
  std::string_view pending() const noexcept { return std::string_view(buf_).substr(pos_); }

  void clear() noexcept {
    buf_.clear();
    pos_ = 0;
    scan_ = 0;
    open_line_ = 0;
  }

 private:
  std::string buf_;
  std::size_t pos_ = 0;   // start of the first unreturned line
  std::size_t scan_ = 0;  // bytes from pos_ already known to hold no '\n'
  std::size_t open_line_ = 0;  // length of the unterminated line at the end of buf_
  std::size_t max_line_;
};

}  // namespace kupstream::kube
