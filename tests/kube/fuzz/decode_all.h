// Runs every kube decoder and the line splitter over one input. Shared by the libFuzzer
// target (decode_fuzz.cpp) and the deterministic mutation test (decode_mutation_test.cpp).
// Returns the number of decoders that accepted the input; any failure must be a
// decode_error with a non-empty reason (anything else aborts, so a fuzzer sees it).
#pragma once

#include <cstdlib>
#include <string_view>

#include "kube/decoder.h"
#include "kube/line_splitter.h"

namespace kube_fuzz {

template <class R>
inline int check(const R& r) {
  if (r.ok()) return 1;
  if (r.error().code != kupstream::make_error_code(kupstream::Errc::decode_error) || r.error().reason.empty())
    std::abort();
  return 0;
}

inline int decode_all(kupstream::kube::Decoder& d, std::string_view in) {
  using namespace kupstream::kube;
  int ok = 0;
  ok += check(d.decode<EndpointSlice>(in));
  ok += check(d.decode<Service>(in));
  ok += check(d.decode<Node>(in));
  ok += check(d.decode_event<EndpointSlice>(in));
  ok += check(d.decode_event<Service>(in));
  ok += check(d.decode_event<Node>(in));
  ok += check(d.decode_list<EndpointSlice>(in));
  ok += check(d.decode_list<Service>(in));
  ok += check(d.decode_status(in));
  // The same bytes as a watch stream: every complete line as an event.
  LineSplitter s(1u << 20);
  if (s.append(in).ok()) {
    while (auto line = s.next()) ok += check(d.decode_event<EndpointSlice>(*line));
  }
  return ok;
}

}  // namespace kube_fuzz
