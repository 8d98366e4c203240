// kube::CredentialSource: the current credential (Authorization header, and the client
// certificate an exec plugin may return) for one cluster, refreshed as Kubernetes clients do.
//
// Sources, in order of precedence (see ClusterCredentials):
//   exec plugin  run with uv_spawn on the host's loop; its ExecCredential is cached until
//                expirationTimestamp minus exec_refresh_before_expiry (or, without one,
//                until invalidate()); concurrent get() calls share one run.
//   token file   re-read when its inode/size/mtime changed, checked at most every
//                token_file_recheck (default 60 s) and at once after invalidate(). If a
//                re-read fails after a token was read once, the last token is kept and a
//                warning is logged (a rotation may be in progress).
//   token        static.
//   none         get() yields an empty authorization (client-certificate-only clusters).
//
// Thread: loop thread only. Lifetime: dropping the unique_ptr at any time (even inside a
// get() callback) cancels everything: a running plugin is killed, no callback runs after
// the drop, and the loop's handles close on their own (uv_loop_close then succeeds).
// Callbacks: get()'s callback runs exactly once, never inside get() itself.
// Errors: Errc::credential_error naming the plugin command, exit status or signal, an
// excerpt of its stderr and its installHint; Errc::io_error for an unreadable token file.
#pragma once

#include <uv.h>

#include <chrono>
#include <functional>
#include <memory>

#include "kube/exec_credential.h"
#include "kupstream/cluster.h"
#include "kupstream/error.h"
#include "kupstream/log.h"

namespace kupstream::kube {

struct CredentialOptions {
  std::chrono::milliseconds token_file_recheck = std::chrono::seconds(60);
  std::chrono::milliseconds exec_refresh_before_expiry = std::chrono::seconds(10);
  std::chrono::milliseconds exec_timeout = std::chrono::seconds(60);  // the plugin is killed after this
  std::size_t exec_max_output = 1u << 20;                            // stdout bytes
  LogFn log = {};
};

class CredentialSource {
 public:
  enum class Kind { none, token, token_file, exec };
  using CredentialPtr = std::shared_ptr<const Credential>;
  using Callback = std::function<void(Result<CredentialPtr>)>;

  // Fails with invalid_config/unsupported when the cluster's credentials are inconsistent.
  static Result<std::unique_ptr<CredentialSource>> create(uv_loop_t& loop, const ClusterConfig& cluster,
                                                          CredentialOptions options = {});
  ~CredentialSource();
  CredentialSource(const CredentialSource&) = delete;
  CredentialSource& operator=(const CredentialSource&) = delete;

  // Asks for the current credential. The callback runs once, later, on the loop thread.
  void get(Callback cb);

  // The server answered 401: forget the cached credential, so that the next get() re-reads
  // the token file or re-runs the plugin.
  void invalidate();

  Kind kind() const noexcept;

  struct State;

 private:
  explicit CredentialSource(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

}  // namespace kupstream::kube
