#include "kube/line_splitter.h"

#include <cstring>

namespace kupstream::kube {

Status LineSplitter::append(std::string_view bytes) {
  // Drop the lines already handed out before growing, so the buffer holds at most one
  // partial line plus the new bytes.
  if (pos_ > 0) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  // Every line must fit, also one that arrives whole in a single append (not only a pending
  // one that never ends): measure the lines the new bytes continue, complete or start.
  std::size_t run = open_line_;
  const char* p = bytes.data();
  const char* const end = p + bytes.size();
  bool too_long = false;
  while (p < end && !too_long) {
    const void* nl = std::memchr(p, '\n', static_cast<std::size_t>(end - p));
    if (nl == nullptr) {
      run += static_cast<std::size_t>(end - p);
      break;
    }
    run += static_cast<std::size_t>(static_cast<const char*>(nl) - p);
    too_long = run > max_line_;
    run = 0;
    p = static_cast<const char*>(nl) + 1;
  }
  if (too_long || run > max_line_) {
    clear();
    return Status(Errc::decode_error,
                  "watch stream: an event line exceeds max_event_bytes (" + std::to_string(max_line_) + " bytes)");
  }
  open_line_ = run;
  buf_.append(bytes.data(), bytes.size());
  return {};
}

std::optional<std::string_view> LineSplitter::next() {
  while (true) {
    std::size_t from = pos_ + scan_;
    const void* nl = std::memchr(buf_.data() + from, '\n', buf_.size() - from);
    if (nl == nullptr) {
      scan_ = buf_.size() - pos_;
      return std::nullopt;
    }
    std::size_t end = static_cast<std::size_t>(static_cast<const char*>(nl) - buf_.data());
    std::string_view line(buf_.data() + pos_, end - pos_);
    pos_ = end + 1;
    scan_ = 0;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t' || line.front() == '\r')) line.remove_prefix(1);
    if (!line.empty()) return line;
  }
}

}  // namespace kupstream::kube
