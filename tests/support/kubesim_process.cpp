#include "support/kubesim_process.h"

#include <chrono>
#include <stdexcept>
#include <thread>

namespace kupstream::test {
namespace {

std::string source_dir() {
  const char* dir = std::getenv("KUPSTREAM_SOURCE_DIR");
  if (!dir) throw std::runtime_error("KUPSTREAM_SOURCE_DIR is not set (run the test through ctest)");
  return dir;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

KubesimProcess::KubesimProcess(const std::string& cluster, const std::vector<std::string>& extra_args) {
  std::vector<std::string> argv{"python3", source_dir() + "/tests/kubesim/kubesim.py", "--port", "0", "--state-dir",
                                dir_.path(), "--cluster-name", cluster};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  process_ = ProcessGuard(argv, dir_.file("kubesim.log"));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (read_file(dir_.file("kubesim.json")).find("\"pid\": " + std::to_string(process_.pid())) == std::string::npos) {
    if (!process_.running()) throw std::runtime_error("kubesim exited: " + read_file(dir_.file("kubesim.log")));
    if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("kubesim did not become ready");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

std::string KubesimProcess::kubeconfig(const std::string& user) const {
  const std::string out = dir_.file("kubeconfig-path.txt");
  const std::string cmd = "python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[\"users\"][sys.argv[2]][\"kubeconfig\"], end=\"\")' " +
                          shell_quote(dir_.file("kubesim.json")) + " " + shell_quote(user) + " > " + shell_quote(out);
  if (run_shell(cmd) != 0) throw std::runtime_error("no kubeconfig for user " + user);
  return read_file(out);
}

std::string KubesimProcess::admin(const std::string& method, const std::string& path, const std::string& json) const {
  const std::string body = dir_.file("admin-body.json"), out = dir_.file("admin-out.json");
  std::string cmd = "python3 " + shell_quote(source_dir() + "/tests/kubesim/kubesimctl.py") + " --state-dir " +
                    shell_quote(dir_.path()) + " " + method + " " + shell_quote(path);
  if (!json.empty()) {
    write_file(body, json);
    cmd += " @" + shell_quote(body);
  }
  cmd += " > " + shell_quote(out) + " 2>&1";
  if (run_shell(cmd) != 0) throw std::runtime_error("kubesim admin " + method + " " + path + " failed: " + read_file(out));
  return read_file(out);
}

std::string service_json(const std::string& ns, const std::string& name, const std::string& port_name, int port,
                         int target_port) {
  return "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"" + name + "\",\"namespace\":\"" + ns +
         "\"},\"spec\":{\"selector\":{\"app\":\"" + name + "\"},\"ports\":[{\"name\":\"" + port_name +
         "\",\"port\":" + std::to_string(port) + ",\"targetPort\":" + std::to_string(target_port) +
         ",\"protocol\":\"TCP\"}]}}";
}

std::string slice_json(const std::string& ns, const std::string& name, const std::string& service,
                       const std::string& port_name, int port, const std::vector<std::string>& addresses) {
  std::string eps;
  for (const auto& a : addresses)
    eps += (eps.empty() ? "" : ",") + std::string("{\"addresses\":[\"") + a + "\"],\"conditions\":{\"ready\":true}}";
  return "{\"apiVersion\":\"discovery.k8s.io/v1\",\"kind\":\"EndpointSlice\",\"metadata\":{\"name\":\"" + name +
         "\",\"namespace\":\"" + ns + "\",\"labels\":{\"kubernetes.io/service-name\":\"" + service +
         "\"}},\"addressType\":\"IPv4\",\"endpoints\":[" + eps + "],\"ports\":[{\"name\":\"" + port_name +
         "\",\"port\":" + std::to_string(port) + ",\"protocol\":\"TCP\"}]}";
}

}  // namespace kupstream::test
