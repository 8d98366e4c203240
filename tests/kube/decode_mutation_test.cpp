// Deterministic stand-in for the fuzzer: thousands of seeded mutations (byte flips, inserted
// JSON punctuation, truncations, splices) of the real and hand-written fixtures go through
// every decoder; each must return a value or a decode_error, never crash.
#include <doctest/doctest.h>

#include <dirent.h>

#include <algorithm>
#include <random>

#include "fixture.h"
#include "fuzz/decode_all.h"

namespace {

std::vector<std::string> files_in(const std::string& dir, bool json_only) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  REQUIRE(d != nullptr);
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    if (!json_only || n.ends_with(".json") || n.ends_with(".jsonl")) names.push_back(dir + "/" + n);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  std::vector<std::string> out;
  for (auto& n : names) out.push_back(kube_test::read_file(n));
  return out;
}

std::vector<std::string> all_fixtures() { return files_in(kube_test::source_dir() + "/tests/kube/fixtures", true); }

std::string mutate(const std::string& in, const std::string& other, std::mt19937& rng) {
  std::string s = in;
  static const char kPunct[] = "{}[]\":,\\ntf0-.e \x00\xff\n";
  int rounds = 1 + static_cast<int>(rng() % 4);
  for (int r = 0; r < rounds && !s.empty(); ++r) {
    std::size_t pos = rng() % s.size();
    switch (rng() % 6) {
      case 0: s[pos] = static_cast<char>(s[pos] ^ (1 << (rng() % 8))); break;
      case 1: s[pos] = kPunct[rng() % (sizeof(kPunct) - 1)]; break;
      case 2: s.insert(pos, 1, kPunct[rng() % (sizeof(kPunct) - 1)]); break;
      case 3: s.resize(pos); break;
      case 4: s.erase(pos, 1 + rng() % 16); break;
      case 5: {
        std::size_t from = rng() % std::max<std::size_t>(other.size(), 1);
        s.insert(pos, other.substr(from, 1 + rng() % 64));
        break;
      }
    }
  }
  return s;
}

}  // namespace

TEST_SUITE("Decoder") {
  TEST_CASE("thousands of mutated fixtures give a value or a decode_error, never a crash") {
    auto fixtures = all_fixtures();
    REQUIRE(fixtures.size() >= 20);
    kupstream::kube::Decoder d;
    std::mt19937 rng(20261127);
    int accepted_clean = 0;
    for (auto& f : fixtures) accepted_clean += kube_fuzz::decode_all(d, f);
    CHECK(accepted_clean >= static_cast<int>(fixtures.size()));  // each fixture fits some decoder
    int accepted = 0;
    const int kMutations = 4000;
    for (int i = 0; i < kMutations; ++i) {
      const auto& base = fixtures[rng() % fixtures.size()];
      const auto& other = fixtures[rng() % fixtures.size()];
      accepted += kube_fuzz::decode_all(d, mutate(base, other, rng));
    }
    // Some mutations hit ignored fields and still decode: the mix exercises both paths.
    CHECK(accepted > 0);
    MESSAGE("decoders accepted " << accepted << " of " << kMutations << " mutated inputs (summed over decoders)");
  }

  TEST_CASE("inputs that once crashed under the fuzzer give a value or a decode_error") {
    kupstream::kube::Decoder d;
    auto inputs = files_in(kube_test::source_dir() + "/tests/kube/fuzz/regressions", false);
    REQUIRE_FALSE(inputs.empty());
    for (const auto& in : inputs) kube_fuzz::decode_all(d, in);
  }

  TEST_CASE("every truncation of a real watch event is rejected or decodes, never crashes") {
    auto line = kube_test::fixture_lines("watch-endpointslices.jsonl").at(1);
    kupstream::kube::Decoder d;
    for (std::size_t n = 0; n < line.size(); ++n) {
      auto r = d.decode_event<kupstream::kube::EndpointSlice>(std::string_view(line).substr(0, n));
      CHECK_FALSE(r.ok());  // a strict prefix of one JSON object is never a complete one
    }
  }
}
