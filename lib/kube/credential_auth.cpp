#include "kube/credential_auth.h"

#include <fmt/format.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "core/defer.h"

namespace kupstream::kube {
namespace {

// A fixed bearer token, or one read from a file that is re-read at most every minute and at
// once after a 401 (bound service-account tokens rotate).
class TokenAuth final : public AuthProvider {
 public:
  TokenAuth(uv_loop_t& loop, std::string cluster, std::string token, std::string file)
      : loop_(loop), cluster_(std::move(cluster)), token_(std::move(token)), file_(std::move(file)) {}

  void authorization(std::function<void(Result<std::string>)> cb) override {
    Result<std::string> header = current();
    detail::defer(loop_, [cb = std::move(cb), header = std::move(header)]() mutable { cb(std::move(header)); });
  }
  void invalidate() override { read_at_ = {}; }

 private:
  Result<std::string> current() {
    if (file_.empty()) return "Bearer " + token_;
    const auto now = std::chrono::steady_clock::now();
    if (read_at_ == std::chrono::steady_clock::time_point{} || now - read_at_ >= std::chrono::minutes{1}) {
      std::ifstream in(file_);
      std::stringstream text;
      text << in.rdbuf();
      std::string token = text.str();
      while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) token.pop_back();
      if (!in || token.empty())
        return Error{Errc::credential_error, fmt::format("cluster \"{}\": token file {} is unreadable or empty", cluster_, file_)};
      token_ = std::move(token);
      read_at_ = now;
    }
    return "Bearer " + token_;
  }

  uv_loop_t& loop_;
  std::string cluster_;
  std::string token_;
  std::string file_;
  std::chrono::steady_clock::time_point read_at_{};
};

}  // namespace

Result<std::shared_ptr<AuthProvider>> make_auth_provider(uv_loop_t& loop, const ClusterConfig& config, LogFn) {
  const auto& c = config.credentials;
  if (c.exec)
    return Error{Errc::unsupported, fmt::format("cluster \"{}\": exec credential plugins are not wired yet", config.name)};
  if (!c.token_file.empty() || !c.token.empty())
    return std::shared_ptr<AuthProvider>(std::make_shared<TokenAuth>(loop, config.name, c.token, c.token_file));
  return std::shared_ptr<AuthProvider>{};
}

}  // namespace kupstream::kube
