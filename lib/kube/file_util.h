// Small synchronous file helpers for configuration and credential files.
#pragma once

#include <string>

#include "kupstream/error.h"

namespace kupstream::kube {

// The whole file; io_error naming the path and errno text on failure.
Result<std::string> read_whole_file(const std::string& path, std::size_t max_bytes = 16u << 20);

bool file_exists(const std::string& path);

// The directory part of a path ("." when it has none).
std::string dir_of(const std::string& path);

// `path` unchanged when empty or absolute, else base_dir + "/" + path.
std::string resolve_path(const std::string& base_dir, const std::string& path);

// Trims ASCII whitespace at both ends.
std::string trim(std::string s);

}  // namespace kupstream::kube
