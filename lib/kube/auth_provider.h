// AuthProvider: where the API client gets its Authorization header from.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "kupstream/error.h"

namespace kupstream::kube {

// Thread: loop thread only. authorization() answers later (never inside the call) with the
// header value ("Bearer …", or "" to send none) or an Errc::credential_error naming the source.
// invalidate() is called after a 401: the next authorization() must fetch afresh (re-read a
// token file, re-run an exec plugin).
class AuthProvider {
 public:
  virtual ~AuthProvider() = default;
  virtual void authorization(std::function<void(Result<std::string>)> cb) = 0;
  virtual void invalidate() = 0;
};

}  // namespace kupstream::kube
