// Test helpers for tests/kube: fixture files and temp directories.
#pragma once

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace kube_test {

inline std::string source_dir() {
  const char* d = std::getenv("KUPSTREAM_SOURCE_DIR");
  return d ? d : KUPSTREAM_TEST_SOURCE_DIR;
}

inline std::string fixture_path(const std::string& name) { return source_dir() + "/tests/kube/fixtures/" + name; }

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string fixture(const std::string& name) { return read_file(fixture_path(name)); }

// The non-empty lines of a .jsonl fixture.
inline std::vector<std::string> fixture_lines(const std::string& name) {
  std::vector<std::string> out;
  std::istringstream in(fixture(name));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

}  // namespace kube_test
