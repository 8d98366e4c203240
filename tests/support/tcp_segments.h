// TCP segment counters of one connected socket, from the kernel (TCP_INFO): what a test reads
// to see how many segments carried a stream's bytes, e.g. that writes were batched.
#pragma once

#include <cstdint>

namespace kupstream::test {

// Segments with payload received (tcpi_data_segs_in) and sent (tcpi_data_segs_out) on the
// connected TCP socket fd so far; -1 when TCP_INFO cannot be read. Any thread.
std::int64_t tcp_data_segments_in(int fd);
std::int64_t tcp_data_segments_out(int fd);

}  // namespace kupstream::test
