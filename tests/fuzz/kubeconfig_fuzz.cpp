// libFuzzer target: the kubeconfig loader (load_kubeconfig: YAML, merging, contexts, users with
// tokens, client certificates and exec plugins, base64 *-data fields, server URLs).
//
// Input: the kubeconfig file, written to a private temporary file and loaded with its
// current-context. Seeds: tests/fuzz/fixtures/seeds/kubeconfig.
// Checked: a failure is invalid_config, unsupported or io_error (as cluster.h documents) with a
// reason that names the file; nothing escapes as an exception; nothing leaks.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "kupstream/cluster.h"

namespace {

// A private directory for the input file, removed at exit.
struct Scratch {
  std::string dir, path;
  Scratch() {
    char d[] = "/tmp/kup-kubeconfig-fuzz-XXXXXX";
    if (mkdtemp(d) == nullptr) std::abort();
    dir = d;
    path = dir + "/config";
  }
  ~Scratch() {
    std::remove(path.c_str());
    rmdir(dir.c_str());
  }
};

const std::string& scratch_path() {
  static const Scratch scratch;
  return scratch.path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kupstream;
  {
    std::ofstream out(scratch_path(), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  auto r = load_kubeconfig({.paths = {scratch_path()}, .kubeconfig_env = std::nullopt, .context = {}, .log = {}});
  if (!r) {
    const auto& e = r.error();
    // The codes cluster.h documents; the reason names the file.
    const bool documented = e.code == make_error_code(Errc::invalid_config) || e.code == make_error_code(Errc::unsupported) ||
                            e.code == make_error_code(Errc::io_error);
    if (!documented || e.reason.find(scratch_path()) == std::string::npos) {
      std::fprintf(stderr, "kubeconfig_fuzz: unexpected error %s: %s\n", e.code.message().c_str(), e.reason.c_str());
      std::abort();
    }
  }
  return 0;
}
