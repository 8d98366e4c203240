// Test helpers: a child process guard that always stops its process by PID, free loopback
// ports, waiting for a listener, temporary directories, running a shell command.
#pragma once

#include <string>
#include <vector>

namespace kupstream::test {

// A child process started with execvp. The destructor sends SIGTERM (then SIGKILL after a grace
// period) to that PID only and reaps it, even when the test failed.
class ProcessGuard {
 public:
  ProcessGuard() = default;
  explicit ProcessGuard(const std::vector<std::string>& argv, const std::string& log_file = "");
  ~ProcessGuard();
  ProcessGuard(const ProcessGuard&) = delete;
  ProcessGuard& operator=(const ProcessGuard&) = delete;
  ProcessGuard(ProcessGuard&& other) noexcept;
  ProcessGuard& operator=(ProcessGuard&& other) noexcept;

  int pid() const noexcept { return pid_; }
  bool running();
  void stop(int signal = 15);

 private:
  int pid_ = -1;
};

// A port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close).
int free_port();
// Polls until something accepts TCP connections on 127.0.0.1:port (or ::1). False on timeout.
bool wait_for_port(int port, int timeout_ms = 5000, const char* host = "127.0.0.1");
// A fresh directory under $TMPDIR; removed (rm -rf) by the guard's destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const noexcept { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// True once SIGPIPE is ignored (done when this library is linked). kupstream itself no longer
// needs it (lib/net writes with send(MSG_NOSIGNAL)); test servers written with libuv, such as
// the gateway's HttpServer, do. net_sigpipe_test restores the default in its children.
bool sigpipe_is_ignored();

// Runs `sh -c command`, returns its exit status (0 = success). Output goes to `log` if given.
int run_shell(const std::string& command);
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& text);

}  // namespace kupstream::test
