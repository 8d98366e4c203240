#include "kube/credential_auth.h"

#include <fmt/format.h>

#include "kube/credential_source.h"

namespace kupstream::kube {
namespace {

// The API client's AuthProvider on top of the CredentialSource (static token, token file
// re-read on change and after a 401, exec plugin cached until expiry and re-run after a 401).
class CredentialAuth final : public AuthProvider {
 public:
  CredentialAuth(std::string cluster, std::unique_ptr<CredentialSource> source)
      : cluster_(std::move(cluster)), source_(std::move(source)) {}

  void authorization(std::function<void(Result<std::string>)> cb) override {
    // The source answers later, never inside get(); dropping it (with this provider) cancels.
    source_->get([cb = std::move(cb), cluster = cluster_](Result<CredentialSource::CredentialPtr> credential) {
      if (!credential) return cb(credential.error());
      const Credential& c = **credential;
      if (c.authorization.empty() && !c.client_certificate_pem.empty())
        return cb(Error{Errc::unsupported,
                        fmt::format("cluster \"{}\": the exec plugin returned a client certificate; kupstream's API "
                                    "client accepts only tokens from exec plugins",
                                    cluster)});
      cb(c.authorization);
    });
  }

  void invalidate() override { source_->invalidate(); }

 private:
  std::string cluster_;
  std::unique_ptr<CredentialSource> source_;
};

}  // namespace

Result<std::shared_ptr<AuthProvider>> make_auth_provider(uv_loop_t& loop, const ClusterConfig& config, LogFn log) {
  CredentialOptions options;
  options.log = std::move(log);
  auto source = CredentialSource::create(loop, config, std::move(options));
  if (!source) return source.error();
  if ((*source)->kind() == CredentialSource::Kind::none) return std::shared_ptr<AuthProvider>{};
  return std::shared_ptr<AuthProvider>(std::make_shared<CredentialAuth>(config.name, std::move(*source)));
}

}  // namespace kupstream::kube
