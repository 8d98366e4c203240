// The test main: doctest's, with SIGPIPE ignored: kupstream no longer needs it (its writes use
// send(MSG_NOSIGNAL), see net_sigpipe_test), but test servers written with libuv (the gateway's
// HttpServer) write with write(2), which raises SIGPIPE when a client has gone.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <csignal>

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  return doctest::Context(argc, argv).run();
}
