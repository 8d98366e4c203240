// KubesimProcess: the Kubernetes API simulator (tests/kubesim/kubesim.py) as this test's own
// child process, stopped by PID when the object goes away (also when the test fails).
// Objects are applied through its admin API with tests/kubesim/kubesimctl.py.
#pragma once

#include <string>
#include <vector>

#include "net/support/net_process.h"

namespace kupstream::test {

class KubesimProcess {
 public:
  // Starts kubesim for `cluster` and waits for its ready file; throws std::runtime_error.
  explicit KubesimProcess(const std::string& cluster, const std::vector<std::string>& extra_args = {});
  KubesimProcess(const KubesimProcess&) = delete;
  KubesimProcess& operator=(const KubesimProcess&) = delete;

  // The kubeconfig file kubesim wrote for `user`.
  std::string kubeconfig(const std::string& user = "admin") const;
  // POST /kubesim/admin/<path> with a JSON body; throws with kubesim's answer on failure.
  std::string admin(const std::string& method, const std::string& path, const std::string& json = "") const;
  // Creates or replaces an object (JSON text).
  void apply(const std::string& object_json) const {
    admin("POST", "/objects", "{\"op\":\"apply\",\"object\":" + object_json + "}");
  }
  void stop() { process_.stop(); }
  const std::string& state_dir() const noexcept { return dir_.path(); }

 private:
  TempDir dir_;
  ProcessGuard process_;
};

// JSON for a Service with one named port (port → target_port) and an EndpointSlice listing
// `addresses` (all ready) on `target_port`.
std::string service_json(const std::string& ns, const std::string& name, const std::string& port_name, int port,
                         int target_port);
std::string slice_json(const std::string& ns, const std::string& name, const std::string& service,
                       const std::string& port_name, int port, const std::vector<std::string>& addresses);

}  // namespace kupstream::test
