#include "config/document_reader.h"

#include <algorithm>

namespace kupstream::detail {

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

Status DocumentReader::load(std::string_view text, YAML::Node& root) {
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    error_at(e.mark.line + 1, "", e.msg);
    return failure();
  }
  return {};
}

YAML::Node DocumentReader::descend(const YAML::Node& root, const std::string& path) {
  YAML::Node cur = root;  // reset(), not operator=, rebinds a yaml-cpp node without writing to it
  std::size_t i = 0;
  while (i < path.size()) {
    YAML::Node next;
    std::size_t end;
    if (path[i] == '[') {
      end = std::min(path.find(']', i), path.size() - 1) + 1;
      std::size_t index = 0;
      auto [p, ec] = std::from_chars(path.data() + i + 1, path.data() + end - 1, index);
      if (ec == std::errc{} && cur.IsSequence() && index < cur.size()) next.reset(cur[index]);
    } else {
      if (path[i] == '.') ++i;
      end = std::min(path.find_first_of(".[", i), path.size());
      if (cur.IsMap()) next.reset(cur[path.substr(i, end - i)]);
    }
    if (!next.IsDefined() || next.IsNull()) {
      error(cur, path.substr(0, end), "is required");
      return YAML::Node(YAML::NodeType::Undefined);
    }
    cur.reset(next);
    i = end;
  }
  return cur;
}

void DocumentReader::error_at(int line, const std::string& path, const std::string& problem) {
  std::string where;
  if (!source_.empty()) where = line_numbers_ ? fmt::format("{}:{}: ", source_, line) : source_ + ": ";
  std::string text = path.empty() ? where + problem : fmt::format("{}{}: {}", where, path, problem);
  // One problem is one line: control bytes from keys or values (in paths, or in a validator's
  // reason that quotes them raw) are shown as \xNN.
  std::string out;
  for (char c : text) {
    if (static_cast<unsigned char>(c) < 0x20) out += fmt::format("\\x{:02x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
    else out += c;
  }
  errors_.push_back(std::move(out));
}

int DocumentReader::line_for(std::string path) const {
  while (true) {
    if (auto it = lines_.find(path); it != lines_.end()) return it->second;
    auto cut = path.find_last_of(".[");
    if (cut == std::string::npos || cut == 0) return 0;
    path.resize(cut);
  }
}

void DocumentReader::validator_error(const std::string& prefix, const std::string& reason) {
  auto colon = reason.find(": ");
  std::string rel = colon == std::string::npos ? "" : reason.substr(0, colon);
  bool looks_like_path = !rel.empty() && rel.find(' ') == std::string::npos;
  std::string full = looks_like_path ? join(prefix, rel) : prefix;
  std::string problem = looks_like_path ? reason.substr(colon + 2) : reason;
  error_at(line_for(full), full, problem);
}

bool DocumentReader::check_map(const YAML::Node& node, const std::string& path,
                               std::initializer_list<std::string_view> allowed) {
  if (!node.IsMap()) {
    error(node, path, "expected a mapping");
    return false;
  }
  remember(path, node);
  for (auto it = node.begin(); it != node.end(); ++it) {
    std::string key = it->first.IsScalar() ? it->first.Scalar() : "?";
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      std::string known;
      for (auto k : allowed) known += (known.empty() ? "" : ", ") + std::string(k);
      error(it->first, join(path, key), fmt::format("unknown key {} (known: {})", quote(key), known));
    } else {
      remember(join(path, key), it->second);
    }
  }
  return true;
}

bool DocumentReader::sequence(const YAML::Node& n, const std::string& path) {
  if (!n.IsSequence()) {
    error(n, path, "expected a list");
    return false;
  }
  remember(path, n);
  return true;
}

void DocumentReader::string_map(const YAML::Node& n, const std::string& path,
                                const std::function<void(const std::string&, const std::string&)>& add) {
  if (!n.IsMap()) {
    error(n, path, "expected a mapping");
    return;
  }
  remember(path, n);
  for (auto it = n.begin(); it != n.end(); ++it) {
    std::string key = it->first.IsScalar() ? it->first.Scalar() : "";
    std::string kp = path + "." + key;
    remember(kp, it->second);
    if (!it->second.IsScalar()) {
      error(it->second, kp, "expected a string");
      continue;
    }
    add(key, it->second.Scalar());
  }
}

std::optional<std::string> DocumentReader::string(const YAML::Node& parent, const std::string& path,
                                                  std::string_view key, bool required) {
  YAML::Node n = parent[std::string(key)];
  std::string p = join(path, key);
  if (!n.IsDefined() || n.IsNull()) {
    if (required) error(parent, p, "is required");
    return std::nullopt;
  }
  if (!n.IsScalar()) {
    error(n, p, "expected a string");
    return std::nullopt;
  }
  return n.Scalar();
}

std::optional<bool> DocumentReader::boolean(const YAML::Node& parent, const std::string& path, std::string_view key) {
  YAML::Node n = parent[std::string(key)];
  if (!n.IsDefined() || n.IsNull()) return std::nullopt;
  if (n.IsScalar() && (n.Scalar() == "true" || n.Scalar() == "false")) return n.Scalar() == "true";
  error(n, join(path, key), fmt::format("{} is not true or false", quote(n.IsScalar() ? n.Scalar() : "?")));
  return std::nullopt;
}

Error DocumentReader::failure() const {
  std::string all;
  for (const auto& e : errors_) all += (all.empty() ? "" : "\n") + e;
  return Error{Errc::invalid_config, std::move(all)};
}

}  // namespace kupstream::detail
