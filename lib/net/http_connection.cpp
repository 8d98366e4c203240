#include "net/http_connection.h"

#include "net/connection_core.h"
#include "net/exchange_core.h"

namespace kupstream::net {

Status validate_connection_options(const HttpConnectionOptions& options) {
  if (options.host.empty()) return Error{Errc::invalid_argument, "connection.host: empty"};
  if (options.host.find_first_of("[]/ \r\n") != std::string::npos)
    return Error{Errc::invalid_argument, "connection.host: '" + options.host + "' (give an IP literal without brackets or a DNS name)"};
  if (options.port == 0) return Error{Errc::invalid_argument, "connection.port: 0 (must be 1..65535) for host " + options.host};
  if (options.limits.max_header_bytes == 0 || options.limits.max_header_count == 0)
    return Error{Errc::invalid_argument, "connection.limits: zero limit"};
  return {};
}

Result<std::unique_ptr<HttpConnection>> HttpConnection::create(uv_loop_t& loop, HttpConnectionOptions options) {
  if (Status s = validate_connection_options(options); !s) return s.error();
  return std::unique_ptr<HttpConnection>(new HttpConnection(new ConnectionCore(loop, std::move(options))));
}

HttpConnection::~HttpConnection() { core_->release(); }

Status HttpConnection::connect(std::function<void(Status)> cb) { return core_->connect(std::move(cb)); }

Result<std::unique_ptr<HttpExchange>> HttpConnection::send(HttpRequest request, HttpHandlers handlers) {
  auto ex = std::make_shared<ExchangeCore>();
  ex->request = std::move(request);
  ex->handlers = std::move(handlers);
  if (Status s = core_->start(ex); !s) return s.error();
  return std::make_unique<HttpExchange>(std::move(ex));
}

bool HttpConnection::reusable() const noexcept { return core_->reusable(); }
bool HttpConnection::connected() const noexcept { return core_->connected(); }
std::string HttpConnection::alpn() const { return core_->alpn(); }
bool HttpConnection::tls_resumed() const noexcept { return core_->tls_resumed(); }

}  // namespace kupstream::net
