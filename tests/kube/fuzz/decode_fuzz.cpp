// libFuzzer target over every kube decoder. Built with clang and -DKUPSTREAM_FUZZ=ON:
//   cmake -B build/fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang -DKUPSTREAM_FUZZ=ON
//   cmake --build build/fuzz --target kube_decode_fuzz
//   build/fuzz/tests/kube/kube_decode_fuzz tests/kube/fixtures -max_total_time=60
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz/decode_all.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static kupstream::kube::Decoder decoder;  // reused, as a watch reuses it
  kube_fuzz::decode_all(decoder, std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
