// Reference weighted round-robin schedulers, written here from their published algorithms,
// to be measured beside kupstream's Picker in the same run.
#pragma once

#include <cstdint>
#include <queue>
#include <vector>

namespace kupstream::bench {

// nginx's smooth weighted round robin (ngx_http_upstream_get_peer): every pick adds each
// peer's weight to its current value, takes the largest, and subtracts the total from it.
// O(n) per pick, single-threaded (nginx keeps one per worker).
class NginxSmoothWrr {
 public:
  explicit NginxSmoothWrr(const std::vector<std::uint32_t>& weights);
  std::uint32_t pick();

 private:
  std::vector<std::int64_t> weight_;
  std::vector<std::int64_t> current_;
  std::int64_t total_ = 0;
};

// An earliest-deadline-first scheduler in the style of Envoy's EdfScheduler: a min-heap of
// (deadline, order, index); a pick pops the earliest and pushes it back 1/weight later.
// O(log n) per pick, single-threaded.
class EdfScheduler {
 public:
  explicit EdfScheduler(const std::vector<std::uint32_t>& weights);
  std::uint32_t pick();

 private:
  struct Entry {
    double deadline;
    std::uint64_t order;  // FIFO among equal deadlines
    std::uint32_t index;
    bool operator>(const Entry& o) const {
      return deadline != o.deadline ? deadline > o.deadline : order > o.order;
    }
  };
  std::vector<double> inverse_weight_;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap_;
  std::uint64_t order_ = 0;
};

}  // namespace kupstream::bench
