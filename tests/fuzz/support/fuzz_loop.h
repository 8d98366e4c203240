// The loop side of the fuzz targets that drive real connections: one process-wide uv loop, a
// loopback Responder that answers each connection with scripted bytes, and a bounded run that
// aborts (so libFuzzer reports it) when an input leaves the code stuck or a handle open.
//
// Thread: the fuzzer's thread only. Lifetime: the loop and the Responder live for the whole
// process (libFuzzer never returns from its driver; the replay test exits after its inputs).
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace kupfuzz {

// KUPFUZZ_TRACE=1 in the environment: harnesses print what each input did (for seed work).
bool tracing();

// The process's loop (created on first use; SIGPIPE is ignored from then on).
uv_loop_t& loop();

// Runs the loop until done() holds and no handle other than the persistent ones (listeners
// registered with keep_handle) is active or closing. (An open but inactive handle cannot hang
// anything; if it was leaked, LeakSanitizer reports the memory that holds it.) Aborts with `what` after timeout_ms: a hang or
// a leaked handle is a finding.
// `describe` (optional) adds the harness's state to the abort message.
void run_until_quiet(const std::function<bool()>& done, const char* what, int timeout_ms = 5000,
                     const std::function<std::string()>& describe = {});

// A handle that lives across inputs (a listener): not counted by run_until_quiet.
void keep_handle(const uv_handle_t* handle);
// Every handle open now lives across inputs (a server's listeners and timers).
void keep_current_handles();

// A loopback (127.0.0.1) server on loop(). Each accepted connection reads until the end of a
// request head ("\r\n\r\n"), calls answer(head) and writes what it returns, then half-closes
// (FIN) and closes once the client closes. The next request head on the same connection gets
// nothing (the answer holds every byte the peer will ever send there).
class Responder {
 public:
  using Answer = std::function<std::string(std::string_view request_head)>;
  Responder();
  std::uint16_t port() const noexcept { return port_; }
  void set_answer(Answer answer) { answer_ = std::move(answer); }
  // Called after a connection's socket closed (the client went away or reset).
  void set_on_closed(std::function<void()> cb) { on_closed_ = std::move(cb); }
  int open_connections() const noexcept { return open_; }

 private:
  struct Conn;
  static void on_connection(uv_stream_t* server, int status);
  uv_tcp_t listener_;
  std::uint16_t port_ = 0;
  int open_ = 0;
  Answer answer_;
  std::function<void()> on_closed_;
};

// A blocking-free loopback client on loop(): connects to 127.0.0.1:port, writes `bytes`
// (split in up to `pieces` writes), half-closes, reads until the server closes, and keeps
// what it read. done() once the socket is closed.
class RawClient {
 public:
  RawClient(std::uint16_t port, std::string bytes, std::size_t pieces);
  bool done() const noexcept { return closed_; }
  const std::string& received() const noexcept { return received_; }

 private:
  static void on_connect(uv_connect_t* req, int status);
  void close();
  uv_tcp_t tcp_;
  uv_connect_t connect_;
  uv_shutdown_t shutdown_;
  std::string bytes_;
  std::size_t pieces_;
  std::string received_;
  bool closing_ = false, closed_ = false;
};

}  // namespace kupfuzz
