#include "net/tls_errors.h"

#include <openssl/err.h>

namespace kupstream::net {

std::string take_ssl_error(std::string_view what) {
  std::string out(what);
  unsigned long first = ERR_get_error();
  if (first != 0) {
    char buf[256];
    ERR_error_string_n(first, buf, sizeof buf);
    if (!out.empty()) out += ": ";
    out += buf;
  }
  ERR_clear_error();
  return out;
}

}  // namespace kupstream::net
