// AuthProvider for a ClusterConfig's credentials.
#pragma once

#include <memory>

#include "kube/auth_provider.h"
#include "kupstream/cluster.h"
#include "kupstream/log.h"

typedef struct uv_loop_s uv_loop_t;

namespace kupstream::kube {

// Returns the provider for config.credentials (null when no bearer credential is configured;
// client certificates go into the TLS context instead). Errors: credential_error /
// unsupported naming the cluster.
Result<std::shared_ptr<AuthProvider>> make_auth_provider(uv_loop_t& loop, const ClusterConfig& config, LogFn log);

}  // namespace kupstream::kube
