// A temporary directory removed (recursively) at the end of the test.
#pragma once

#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace kube_test {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/kupstream-kube-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    ::nftw(
        path_.c_str(), [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); }, 16,
        FTW_DEPTH | FTW_PHYS);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

  // Writes a file (creating parent directories one level deep) and returns its path.
  std::string write(const std::string& name, const std::string& content, bool executable = false) const {
    auto slash = name.rfind('/');
    if (slash != std::string::npos) ::mkdir(file(name.substr(0, slash)).c_str(), 0755);
    std::string p = file(name);
    std::string tmp = p + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out << content;
    }
    ::chmod(tmp.c_str(), executable ? 0755 : 0644);
    ::rename(tmp.c_str(), p.c_str());  // atomic replace, like a kubelet token rotation
    return p;
  }

 private:
  std::string path_;
};

}  // namespace kube_test
