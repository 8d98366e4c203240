// ProxyExchange: one client request forwarded to an upstream through its worker's Forwarder
// (Upstream::forward, or UpstreamWorker::forward with several workers) with the response
// streamed back.
//
// Request bodies: up to kBufferLimit bytes with a known Content-Length are collected first and
// sent whole, so that the Upstream may retry them on another Pod; larger or chunked bodies are
// streamed as they arrive, with backpressure both ways (UpstreamRequest::write_body() false →
// the client socket stops being read until on_writable; the client's socket above its
// high-water mark → UpstreamRequest::pause_body() until it drains).
// Errors before the response head: no_endpoint → 503, timed_out → 504, anything else → 502,
// each with a one-line text body. After the head: the client connection is closed.
//
// Thread: its worker's loop. Lifetime: holds the WorkerRoutes it started on, so a reload never
// pulls its Forwarder (nor, through the Gateway's accounting, its Upstream) away.
#pragma once

#include <memory>
#include <string>

#include "http_server.h"
#include "worker.h"

namespace kupgw {

class ProxyExchange final : public RequestHandler {
 public:
  static constexpr std::size_t kBufferLimit = 64 * 1024;

  ProxyExchange(Worker& worker, std::shared_ptr<WorkerRoutes> routes, Lane& lane, RequestHead& head,
                ResponseWriter& writer);
  ~ProxyExchange() override;

  // Starts at once (no body, or a streamed one) or once the body is buffered.
  void begin();

  // One is created and destroyed per request: freed blocks are kept for the next ones (per
  // thread, bounded; not under AddressSanitizer).
  static void* operator new(std::size_t size);
  static void operator delete(void* p, std::size_t size) noexcept;

  void on_body(std::string_view data) override;
  void on_body_end() override;
  void on_writable() override;

 private:
  void forward();
  void fail(const kupstream::Error& error);
  void count(int status);

  const std::string& name() const;

  Worker& worker_;
  std::shared_ptr<WorkerRoutes> routes_;
  Lane& lane_;
  ResponseWriter& writer_;
  kupstream::ForwardRequest request_;
  std::unique_ptr<kupstream::UpstreamRequest> upstream_request_;
  bool buffering_ = false;
  bool streamed_ = false;  // the body goes to the Upstream as it arrives
  bool forwarded_ = false;
  bool response_paused_ = false;
  bool done_ = false;
};

}  // namespace kupgw
