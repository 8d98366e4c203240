// Test environment for Upstream integration tests: kubesim clusters (one process per cluster
// name, shared by all test cases of a binary), an asynchronous admin client so that objects
// change while requests flow on the same loop, JSON builders for Services and EndpointSlices,
// and traffic drivers that count answers per Pod.
#pragma once

#include <doctest/doctest.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kubesim/kubesim_process.h"
#include "kupstream/cluster_client.h"
#include "kupstream/upstream.h"
#include "net/connection_pool.h"
#include "net/support/net_loop.h"

namespace kupstream::test {

// One endpoint of a slice.
struct PodSpec {
  std::string address;
  std::string name;
  bool ready = true;
  bool serving = true;
  bool terminating = false;
  std::string zone = {};            // the endpoint's `zone`; "" = left out
  std::vector<std::string> hints = {};  // hints.forZones; empty = no hints
};

std::string service_object(const std::string& name, int target_port);
std::string slice_object(const std::string& service, const std::string& slice, int port, const std::vector<PodSpec>& pods);
std::string apply_op(const std::string& object);
std::string delete_slice_op(const std::string& slice);

class PodFarm;
// Every Pod of the farm, ready, under its name.
std::vector<PodSpec> pods_of(const PodFarm& farm);
// Pods first .. first+count-1 of the farm, ready, under their names.
std::vector<PodSpec> pods_of(const PodFarm& farm, int first, int count);

// The kubesim process for `cluster`, started on first use and kept for the whole binary.
KubesimProcess& shared_kubesim(const std::string& cluster);

struct Outcome {
  bool done = false;
  Status status;
  int code = 0;
  std::string pod, body;
  std::vector<Header> headers;  // copied from ForwardResponseHead::headers
  std::uint32_t attempts = 0;
};

struct TrafficResult {
  std::map<std::string, int> by_body;  // body → count (Pods answer their name)
  int ok = 0, failed = 0, non_2xx = 0;
  std::vector<std::string> errors;
};

// A test's loop, ClusterClients for the clusters it names, and its Upstream.
class UpstreamEnv {
 public:
  explicit UpstreamEnv(std::vector<std::string> clusters = {"tke-a"});
  ~UpstreamEnv();  // drops the Upstream, the admin pools and the clients; CHECKs close == 0

  // Applies admin ops (a JSON array of op objects) on `cluster`, running the loop meanwhile.
  void admin(const std::string& cluster, const std::vector<std::string>& ops);
  // Same, without waiting: `done` runs on the loop with the HTTP status.
  void admin_async(const std::string& cluster, const std::vector<std::string>& ops, std::function<void(int)> done = {});
  // Applies the Service `service` (targetPort `port`) and its one slice "<service>-1" holding
  // `pods` on `cluster`.
  void publish(const std::string& cluster, const std::string& service, int port, const std::vector<PodSpec>& pods);

  // Creates the Upstream and waits until it is ready (when wait_ready).
  void start(UpstreamConfig config, UpstreamOptions options = {}, bool wait_ready = true);
  static ServiceRef ref(const std::string& cluster, const std::string& service, std::uint32_t weight = 1);
  // An upstream named `service` over that one Service of `cluster` (weight 1).
  static UpstreamConfig config_for(const std::string& cluster, const std::string& service);

  // One request, run to completion (REQUIREs it completes within timeout_ms).
  Outcome send(ForwardRequest request, int timeout_ms = 10000);
  Outcome get(const std::string& target, int timeout_ms = 10000);
  // n GET requests, `concurrency` in flight at once.
  TrafficResult traffic(int n, int concurrency = 16, const std::string& target = "/");

  TestLoop loop;
  std::map<std::string, std::unique_ptr<ClusterClient>> clients;
  std::unique_ptr<Upstream> upstream;

 private:
  std::map<std::string, std::unique_ptr<net::ConnectionPool>> admin_pools_;
  std::vector<std::unique_ptr<net::HttpExchange>> admin_exchanges_;
};

// A GET of `target` that pauses its body after every piece it receives, so that it stays in
// flight holding its Pod; handle->resume_body() lets the next piece in. REQUIREs that forward()
// succeeds.
class PausedDownload {
 public:
  PausedDownload(Upstream& upstream, const std::string& target);
  PausedDownload(const PausedDownload&) = delete;
  PausedDownload& operator=(const PausedDownload&) = delete;

  std::string pod, body;  // the answering Pod (host:port) and the body so far
  bool done = false;
  Status status;
  std::unique_ptr<UpstreamRequest> handle;
};

// Keeps `concurrency` GET requests in flight until stop(); counts outcomes.
class TrafficLoop {
 public:
  TrafficLoop(Upstream& upstream, int concurrency, std::string target = "/");
  ~TrafficLoop();
  void stop();
  const TrafficResult& result() const { return *result_; }
  int completed() const { return result_->ok + result_->failed; }

 private:
  struct State;
  std::shared_ptr<State> state_;
  std::shared_ptr<TrafficResult> result_;
};

}  // namespace kupstream::test
