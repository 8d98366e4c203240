// DocumentReader: walks a YAML (or JSON) document and collects every problem, each located by
// path and line: "source:line: path: problem". Used by the upstream document parser.
//
// Thread: a plain object; one thread at a time.
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <charconv>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "kupstream/error.h"

namespace kupstream::detail {

// `s` in double quotes, with quotes, backslashes and control characters escaped.
std::string quote(std::string_view s);

class DocumentReader {
 public:
  DocumentReader(std::string_view source, std::string_view base_dir, bool line_numbers)
      : source_(source), base_dir_(base_dir), line_numbers_(line_numbers) {}

  // Parses `text`; a syntax error is reported (and returned) with its line.
  Status load(std::string_view text, YAML::Node& root);
  // The node at `path` ("" = root, else keys and [i] indexes such as "upstreams[2]"); an
  // undefined node (after an error) when it is missing.
  YAML::Node descend(const YAML::Node& root, const std::string& path);

  void error_at(int line, const std::string& path, const std::string& problem);
  void error(const YAML::Node& node, const std::string& path, const std::string& problem) {
    error_at(line_of(node), path, problem);
  }
  static int line_of(const YAML::Node& node) { return node.IsDefined() ? node.Mark().line + 1 : 0; }
  // A validator's reason "path: problem" (relative to `prefix`) becomes a located error.
  void validator_error(const std::string& prefix, const std::string& reason);

  // Reports keys of `node` that are not in `allowed`. False when `node` is not a map.
  bool check_map(const YAML::Node& node, const std::string& path, std::initializer_list<std::string_view> allowed);
  // False (after an error) when `n` is not a list.
  bool sequence(const YAML::Node& n, const std::string& path);
  // Calls `add(key, value)` for each entry of a map of strings.
  void string_map(const YAML::Node& n, const std::string& path,
                  const std::function<void(const std::string&, const std::string&)>& add);

  std::optional<std::string> string(const YAML::Node& parent, const std::string& path, std::string_view key,
                                    bool required = false);
  std::optional<bool> boolean(const YAML::Node& parent, const std::string& path, std::string_view key);
  std::optional<std::chrono::milliseconds> millis(const YAML::Node& parent, const std::string& path,
                                                  std::string_view key) {
    auto v = number<std::uint64_t>(parent, path, key, 0, 24ULL * 3600 * 1000);
    if (!v) return std::nullopt;
    return std::chrono::milliseconds{*v};
  }
  template <class T>
  std::optional<T> number(const YAML::Node& parent, const std::string& path, std::string_view key, T min, T max,
                          bool required = false) {
    YAML::Node n = parent[std::string(key)];
    std::string p = join(path, key);
    if (!n.IsDefined() || n.IsNull()) {
      if (required) error(parent, p, "is required");
      return std::nullopt;
    }
    return number_value<T>(n, p, min, max);
  }
  template <class T>
  std::optional<T> number_value(const YAML::Node& n, const std::string& p, T min, T max) {
    if (!n.IsScalar()) {
      error(n, p, "expected a number");
      return std::nullopt;
    }
    const std::string& s = n.Scalar();
    T v{};
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size()) {
      error(n, p, fmt::format("{} is not a number", quote(s)));
      return std::nullopt;
    }
    if (v < min || v > max) {
      error(n, p, fmt::format("{} is out of range {}..{}", s, min, max));
      return std::nullopt;
    }
    return v;
  }

  static std::string join(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }
  std::string resolve(const std::string& file) const {
    if (file.empty() || file[0] == '/' || base_dir_.empty()) return file;
    return base_dir_ + "/" + file;
  }

  const std::vector<std::string>& errors() const { return errors_; }
  // invalid_config with one line per problem.
  Error failure() const;

 private:
  void remember(const std::string& path, const YAML::Node& node) {
    if (node.IsDefined()) lines_.emplace(path, line_of(node));
  }
  int line_for(std::string path) const;

  std::string source_, base_dir_;
  bool line_numbers_;
  std::vector<std::string> errors_;
  std::map<std::string, int> lines_;
};

}  // namespace kupstream::detail
