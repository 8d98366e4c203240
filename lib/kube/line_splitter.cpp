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
  buf_.append(bytes.data(), bytes.size());
  const void* nl = std::memchr(buf_.data() + scan_, '\n', buf_.size() - scan_);
  if (nl == nullptr && buf_.size() > max_line_) {
    std::size_t n = buf_.size();
    clear();
    return Status(Errc::decode_error,
                  "watch stream: an event line exceeds " + std::to_string(max_line_) + " bytes (" +
                      std::to_string(n) + " bytes without a newline)");
  }
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
