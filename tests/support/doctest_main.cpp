// The test main: doctest's, with SIGPIPE ignored as every host of kupstream must (libuv writes
// with write(2), and a peer that closed would otherwise kill the process).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <csignal>

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  return doctest::Context(argc, argv).run();
}
