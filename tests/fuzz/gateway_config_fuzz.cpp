// libFuzzer target: kup-gateway's YAML configuration (examples/gateway/config.h parse_config:
// listeners, server limits, clusters, upstreams with every option, routes).
//
// Input: the YAML text. Seeds: tests/fuzz/fixtures/seeds/gateway_config (the example configs of
// tests/gateway and the demo's template).
// Checked: a failure is invalid_config whose every line starts with "fuzz.yaml:" (each problem
// names its line); a success has at least one listener, and every route names a known upstream;
// nothing escapes as an exception; nothing leaks.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "config.h"

namespace {

[[noreturn]] void finding(const char* what, const std::string& detail) {
  std::fprintf(stderr, "gateway_config_fuzz: %s: %s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kupstream;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = kupgw::parse_config(text, "fuzz.yaml", "/nonexistent-base");
  if (!r) {
    const auto& e = r.error();
    if (e.code != make_error_code(Errc::invalid_config) || e.reason.empty()) finding("unexpected error", e.reason);
    std::string_view rest = e.reason;
    while (!rest.empty()) {
      const auto nl = rest.find('\n');
      const auto line = rest.substr(0, nl);
      if (line.rfind("fuzz.yaml:", 0) != 0) finding("an error line that does not name the file and line", e.reason);
      if (nl == std::string_view::npos) break;
      rest.remove_prefix(nl + 1);
    }
    return 0;
  }
  if (r->listeners.empty()) finding("accepted a config without listeners", std::string(text));
  std::set<std::string> names;
  for (const auto& u : r->upstreams) names.insert(u.config.name);
  for (const auto& route : r->routes)
    if (!names.count(route.upstream)) finding("a route to an unknown upstream was accepted", route.upstream);
  return 0;
}
