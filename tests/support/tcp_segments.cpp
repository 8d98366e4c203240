// In a file of its own: <linux/tcp.h> (which has the data segment counters) and glibc's
// <netinet/tcp.h> (which uv.h includes) both define struct tcp_info.
#include "support/tcp_segments.h"

#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>

namespace kupstream::test {
namespace {

bool read_info(int fd, tcp_info& info) {
  socklen_t len = sizeof info;
  return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 &&
         len >= offsetof(tcp_info, tcpi_data_segs_out) + sizeof info.tcpi_data_segs_out;
}

}  // namespace

std::int64_t tcp_data_segments_in(int fd) {
  tcp_info info{};
  return read_info(fd, info) ? info.tcpi_data_segs_in : -1;
}

std::int64_t tcp_data_segments_out(int fd) {
  tcp_info info{};
  return read_info(fd, info) ? info.tcpi_data_segs_out : -1;
}

}  // namespace kupstream::test
