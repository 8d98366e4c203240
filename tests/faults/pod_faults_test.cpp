// The Pod-fault suite, library side: three real Pods (FaultPod servers on 127.0.<subnet>.1-3,
// one port, published as one Service through kubesim) behind an Upstream, with `kConcurrency`
// GET requests kept in flight the whole time. One Pod misbehaves for a while, then recovers.
// Each case asserts what the client saw (failed requests: zero where the retry policy allows a
// retry, otherwise exactly the requests that met the fault), the ejection and recovery times
// against the configured ones, and what stats() and prometheus_text() say. UpstreamEnv's
// destructor checks uv_loop_close == 0; the asan preset runs the same binary (leaks, UB).
// docs/reliability.md lists every case.
#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "faults/support/fault_pod.h"
#include "net/support/net_certs.h"
#include "upstream/support/upstream_env.h"

using namespace kupstream;
using namespace kupstream::test;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kConcurrency = 6;
constexpr int kPods = 3;
constexpr milliseconds kBaseEjection{500};
constexpr milliseconds kMaxEjection{1000};
constexpr milliseconds kHeaderTimeout{800};
constexpr std::uint32_t kConsecutiveFailures = 3;

// "upstream \"x\": Pod 127.0.1.2:8080: ..." → "127.0.1.2:8080".
std::string pod_in(const std::string& reason) {
  const auto at = reason.find(": Pod ");
  if (at == std::string::npos) return "?";
  const auto end = reason.find(": ", at + 6);
  return reason.substr(at + 6, end == std::string::npos ? std::string::npos : end - at - 6);
}

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// The options every case uses: failures eject quickly and briefly, a Pod that does not answer
// is given up after kHeaderTimeout, and the retry budget lets every request in flight retry at
// once (with one Pod in three failing, a third of all requests may need a retry at the same
// moment, which the default budget of max(3, 20%) would partly refuse).
UpstreamOptions fault_options() {
  UpstreamOptions o;
  o.timeouts.connect = milliseconds{1000};
  o.timeouts.response_header = kHeaderTimeout;
  o.timeouts.total = milliseconds{10000};
  o.retries.max_retries = 2;
  o.retries.min_concurrent = kConcurrency;
  o.outlier.consecutive_failures = kConsecutiveFailures;
  o.outlier.base_ejection = kBaseEjection;
  o.outlier.max_ejection = kMaxEjection;
  o.outlier.max_ejected_percent = 50;
  return o;
}

// Keeps `concurrency` GET / requests in flight until stop(), then lets them finish.
class Load {
 public:
  struct Result {
    int ok = 0, non_2xx = 0, failed = 0, failed_after_head = 0;
    std::map<std::string, int> ok_by_pod, failed_by_pod;  // pod = "address:port" of the answer
    std::vector<std::string> errors;
  };

  Load(Upstream& upstream, int concurrency, std::string method = "GET") : upstream_(upstream), method_(std::move(method)) {
    for (int i = 0; i < concurrency; ++i) launch();
  }

  // Stops launching and runs the loop until every request in flight has completed.
  const Result& stop(TestLoop& loop) {
    stopped_ = true;
    REQUIRE(loop.run_until([&] { return live_.empty(); }, 30000));
    return result_;
  }
  int completed() const { return result_.ok + result_.failed; }
  const Result& result() const { return result_; }

 private:
  struct Request {
    std::unique_ptr<UpstreamRequest> handle;
    int code = 0;
    std::string pod;
  };

  void launch() {
    if (stopped_) return;
    const std::uint64_t id = next_id_++;
    auto& r = live_[id];
    ForwardHandlers h;
    h.on_head = [this, id](const ForwardResponseHead& head) {
      auto& q = live_.at(id);
      q.code = head.status;
      q.pod = std::string(head.pod);
    };
    h.on_complete = [this, id](Status s) {
      auto node = live_.extract(id);  // dropping the handle inside its own handler is allowed
      Request& q = node.mapped();
      if (!s.ok()) {
        ++result_.failed;
        if (!q.pod.empty()) {
          ++result_.failed_after_head;
          ++result_.failed_by_pod[q.pod];
        } else {
          ++result_.failed_by_pod[pod_in(s.error().reason)];
        }
        if (result_.errors.size() < 10) result_.errors.push_back(s.error().reason);
      } else if (q.code < 200 || q.code > 299) {
        ++result_.non_2xx;
      } else {
        ++result_.ok;
        ++result_.ok_by_pod[q.pod];
      }
      launch();
    };
    ForwardRequest req;
    req.method = method_;
    req.target = "/";
    req.client_address = "192.0.2.7";
    if (method_ == "POST") req.body = "order=1";
    auto handle = upstream_.forward(std::move(req), std::move(h));
    if (!handle.ok()) FAIL("forward() refused a request: " << handle.error().reason);
    r.handle = std::move(*handle);
  }

  Upstream& upstream_;
  std::string method_;
  bool stopped_ = false;
  std::uint64_t next_id_ = 0;
  std::map<std::uint64_t, Request> live_;
  Result result_;
};

// Three FaultPods published as `service` on tke-a, and the Upstream over them. The Pods are
// declared before the env: the env (the Upstream and its loop check) goes first.
struct Farm {
  Farm(const std::string& service_name, int subnet, UpstreamOptions options = fault_options(),
       const TestPki* pki = nullptr)
      : service(service_name) {
    for (int i = 0; i < kPods; ++i) {
      const std::string address = "127.0." + std::to_string(subnet) + "." + std::to_string(i + 1);
      pods.push_back(std::make_unique<FaultPod>(service + "-" + std::to_string(i), address,
                                                i == 0 ? 0 : pods[0]->port(), pki));
    }
    env.publish("tke-a", service, pods[0]->port(), specs());
    UpstreamConfig config = UpstreamEnv::config_for("tke-a", service);
    if (pki != nullptr) {
      config.scheme = Scheme::https;
      options.tls.ca_file = pki->ca_cert;
      options.tls.server_name = "api.kupstream.test";  // a name pki.server_cert carries
    }
    env.start(config, std::move(options));
    REQUIRE(env.loop.run_until([&] { return env.upstream->picker()->pickable() == kPods; }, 10000));
  }

  std::vector<PodSpec> specs(int except = -1) const {
    std::vector<PodSpec> out;
    for (int i = 0; i < kPods; ++i)
      if (i != except) out.push_back({pods[i]->address(), pods[i]->name()});
    return out;
  }

  PodStats pod_stats(int i) const {
    for (const auto& p : env.upstream->stats().pods)
      if (p.pod_name == pods[i]->name()) return p;
    return {};
  }

  std::string service;
  std::vector<std::unique_ptr<FaultPod>> pods;
  UpstreamEnv env;
};

struct FaultRun {
  Load::Result load;
  double eject_ms = -1;    // fault on → the Pod ejected (stats), -1 if never
  double recover_ms = -1;  // fault off → the Pod answers a request again
  int faulted = 0;         // requests that met the fault at the Pod
  PodStats victim;         // its stats at the end
  UpstreamStats stats;
  std::string metrics;
};

// Traffic for `before_ms`, then Pod `victim` misbehaves for `fault_ms`, then it recovers; the
// traffic runs until the Pod has answered again (at most `recover_limit_ms`) and 200 ms more.
FaultRun run_fault(Farm& f, int victim, PodFault fault, int n = 0, const std::string& method = "GET",
                   int fault_ms = 2000, int recover_limit_ms = 5000) {
  FaultPod& pod = *f.pods[victim];
  auto& loop = f.env.loop;
  FaultRun out;
  Load load(*f.env.upstream, kConcurrency, method);
  loop.run_for(300);
  const int answered_before = pod.answered();
  CHECK_MESSAGE(answered_before > 0, "the Pod took no traffic before the fault");

  const auto on = Clock::now();
  pod.set_fault(fault, n);
  loop.run_until([&] {
    if (out.eject_ms < 0 && f.pod_stats(victim).ejected) out.eject_ms = ms_since(on);
    return ms_since(on) >= fault_ms;
  }, fault_ms + 5000);

  const auto off = Clock::now();
  pod.set_fault(PodFault::none);
  const int answered_at_off = pod.answered();
  loop.run_until([&] { return pod.answered() > answered_at_off; }, recover_limit_ms);
  if (pod.answered() > answered_at_off) out.recover_ms = ms_since(off);
  loop.run_for(200);
  out.load = load.stop(loop);
  out.faulted = pod.faulted();
  out.victim = f.pod_stats(victim);
  out.stats = f.env.upstream->stats();
  out.metrics = f.env.upstream->prometheus_text();
  MESSAGE(std::string(pod_fault_name(fault)) << ": ok " << out.load.ok << ", failed " << out.load.failed << " ("
                                << out.load.failed_after_head << " after the head), non-2xx " << out.load.non_2xx
                                << ", faulted " << out.faulted << ", Pod failures " << out.victim.failures
                                << ", ejections " << out.victim.ejections << ", retries " << out.stats.retries
                                << ", ejected after " << out.eject_ms << " ms, answered again after "
                                << out.recover_ms << " ms");
  return out;
}

void check_no_client_failures(const FaultRun& r) {
  CAPTURE(r.load.errors.empty() ? std::string() : r.load.errors.front());
  CHECK(r.load.failed == 0);
  CHECK(r.load.non_2xx == 0);
  CHECK(r.stats.failures == 0);
}

// The Pod failed, was ejected within the time its failures allow, and came back within the
// ejection time (ejections × base, capped at max) plus slack for the shared machine.
void check_ejected_and_back(const FaultRun& r, const Farm& f, int victim) {
  CHECK(r.victim.failures >= kConsecutiveFailures);
  CHECK(r.victim.ejections >= 1);
  CHECK(r.eject_ms >= 0);
  CHECK(r.eject_ms <= kHeaderTimeout.count() + 1000);  // three failures; a timeout takes kHeaderTimeout
  CHECK(r.recover_ms >= 0);
  // A request that met the fault just before it ended may fail one header timeout later and
  // start a last ejection (at most kMaxEjection); plus 1 s of slack for the shared machine.
  CHECK(r.recover_ms <= kHeaderTimeout.count() + kMaxEjection.count() + 1000);
  CHECK_FALSE(r.victim.ejected);
  // The metrics name the Pod and its ejections; the other Pods never failed.
  const std::string line = "kupstream_pod_ejections_total{upstream=\"" + f.service + "\",service=\"" +
                           prometheus_label_value(r.victim.service) + "\",pod=\"" + r.victim.pod + "\"} " +
                           std::to_string(r.victim.ejections) + "\n";
  CHECK_MESSAGE(r.metrics.find(line) != std::string::npos, line);
  for (const auto& p : r.stats.pods)
    if (p.pod_name != f.pods[victim]->name()) CHECK(p.failures == 0);
}

}  // namespace

TEST_SUITE("PodFaults") {
  TEST_CASE("a Pod that refuses connections: retried elsewhere, no client failure, ejected and back") {
    Farm f("fx-refuse", 61);
    auto r = run_fault(f, 1, PodFault::refuse);
    check_no_client_failures(r);
    check_ejected_and_back(r, f, 1);
    CHECK(r.stats.retries >= 1);
  }

  TEST_CASE("a Pod that resets before the response: GETs retried, no client failure, ejected and back") {
    Farm f("fx-reset", 62);
    auto r = run_fault(f, 1, PodFault::reset_before);
    check_no_client_failures(r);
    check_ejected_and_back(r, f, 1);
    CHECK(r.stats.retries >= 1);
    CHECK(r.faulted >= static_cast<int>(r.victim.failures));  // the pool's retry-once may add a reset
  }

  TEST_CASE("a Pod that resets in the middle of the body: exactly the requests it held fail") {
    Farm f("fx-midbody", 63);
    auto r = run_fault(f, 1, PodFault::reset_mid_body);
    // The head had reached the client: no retry can hide the cut. Every request the Pod cut
    // fails, after its head, naming that Pod; nothing else fails.
    CHECK(r.faulted >= 1);
    CHECK(r.load.failed == r.faulted);
    CHECK(r.load.failed_after_head == r.faulted);
    CHECK(r.load.failed_by_pod[f.pods[1]->host_port()] == r.faulted);
    CHECK(r.load.non_2xx == 0);
    CHECK(r.stats.failures == static_cast<std::uint64_t>(r.faulted));
    CHECK(r.victim.failures >= static_cast<std::uint64_t>(r.faulted));  // a slow answer may time out, too
    check_ejected_and_back(r, f, 1);
  }

  TEST_CASE("a Pod that accepts and never answers: timed out, retried, no client failure, ejected and back") {
    Farm f("fx-hang", 64);
    auto r = run_fault(f, 1, PodFault::hang);
    check_no_client_failures(r);
    check_ejected_and_back(r, f, 1);
    CHECK(r.stats.retries >= 1);
  }

  TEST_CASE("a Pod that answers garbage: parse error, retried, no client failure, ejected and back") {
    Farm f("fx-garbage", 65);
    auto r = run_fault(f, 1, PodFault::garbage);
    check_no_client_failures(r);
    check_ejected_and_back(r, f, 1);
  }

  TEST_CASE("a Pod that closes every keep-alive connection after one response is not a failure") {
    Farm f("fx-close1", 66);
    auto r = run_fault(f, 1, PodFault::close_each);
    check_no_client_failures(r);
    CHECK(r.victim.failures == 0);
    CHECK(r.victim.ejections == 0);
    CHECK(r.recover_ms >= 0);
    CHECK(f.pods[1]->accepted() > 10);  // it really closed them: new connections were needed
  }

  TEST_CASE("POSTs to a Pod that closes every keep-alive connection: only those that met the close fail") {
    // The Pod closes right behind each response without "Connection: close". A request sent on
    // such a connection before its FIN arrived meets the close; a POST may not be replayed
    // (RFC 9112 9.3.1), so it fails, before any response byte, on that Pod. The pool's
    // hang-up check (net_connection_pool_test) keeps every request whose FIN had arrived off
    // the dead connection; what is left is the microseconds between the response and the close.
    Farm f("fx-close1-post", 73);
    auto r = run_fault(f, 1, PodFault::close_each, 0, "POST");
    CAPTURE(r.load.errors.empty() ? std::string() : r.load.errors.front());
    CHECK(r.load.non_2xx == 0);
    CHECK(r.load.failed_after_head == 0);
    CHECK(r.load.failed_by_pod[f.pods[1]->host_port()] == r.load.failed);  // all on that Pod
    CHECK(r.victim.failures == static_cast<std::uint64_t>(r.load.failed));
    for (const auto& p : r.stats.pods)
      if (p.pod_name != f.pods[1]->name()) CHECK(p.failures == 0);
  }

  TEST_CASE("a Pod that closes keep-alive connections after three responses is not a failure") {
    Farm f("fx-close3", 67);
    auto r = run_fault(f, 1, PodFault::close_after_n, 3);
    check_no_client_failures(r);
    CHECK(r.victim.failures == 0);
    CHECK(r.victim.ejections == 0);
    CHECK(f.pods[1]->accepted() > 5);
  }

  TEST_CASE("a slow-loris Pod that dribbles its head: response-header timeout, retried, ejected and back") {
    Farm f("fx-loris", 68);
    auto r = run_fault(f, 1, PodFault::dribble_head, 40);  // a byte per 40 ms: ~2 s for the head
    check_no_client_failures(r);
    check_ejected_and_back(r, f, 1);
  }

  TEST_CASE("a Pod that answers 503: retried on another Pod, no client failure, ejected and back") {
    Farm f("fx-503", 69);
    auto r = run_fault(f, 1, PodFault::status_503);
    check_no_client_failures(r);
    check_ejected_and_back(r, f, 1);
    CHECK(r.stats.retries >= static_cast<std::uint64_t>(kConsecutiveFailures));
  }

  TEST_CASE("an HTTPS Pod whose certificate changes to one for another name, or expires") {
    TempDir dir;
    TestPki pki(dir.path());
    for (PodCert cert : {PodCert::wrong_name, PodCert::expired}) {
      CAPTURE(static_cast<int>(cert));
      Farm f(cert == PodCert::wrong_name ? "fx-tls-name" : "fx-tls-expired", cert == PodCert::wrong_name ? 70 : 71,
             fault_options(), &pki);
      FaultPod& pod = *f.pods[2];
      Load load(*f.env.upstream, kConcurrency);
      f.env.loop.run_for(300);
      const auto on = Clock::now();
      pod.set_cert(cert);  // new connections get it; open ones close after their next response
      double eject_ms = -1;
      f.env.loop.run_until([&] {
        if (eject_ms < 0 && f.pod_stats(2).ejected) eject_ms = ms_since(on);
        return ms_since(on) >= 2000;
      }, 6500);
      const auto off = Clock::now();
      pod.set_cert(PodCert::good);
      const int answered = pod.answered();
      f.env.loop.run_until([&] { return pod.answered() > answered; }, 5000);
      const double recover_ms = pod.answered() > answered ? ms_since(off) : -1;
      f.env.loop.run_for(200);
      const auto& res = load.stop(f.env.loop);
      MESSAGE("certificate " << static_cast<int>(cert) << ": ok " << res.ok << ", failed " << res.failed
                             << ", ejected after " << eject_ms << " ms, answered again after " << recover_ms << " ms");
      CAPTURE(res.errors.empty() ? std::string() : res.errors.front());
      CHECK(res.failed == 0);  // tls_verify_failed is a connect-phase error: retried for any method
      CHECK(res.non_2xx == 0);
      const PodStats victim = f.pod_stats(2);
      CHECK(victim.failures >= kConsecutiveFailures);
      CHECK(victim.ejections >= 1);
      CHECK(eject_ms >= 0);
      CHECK(eject_ms <= 1500);
      CHECK(recover_ms >= 0);
      CHECK(recover_ms <= kMaxEjection.count() + 1500);
    }
  }

  TEST_CASE("a Pod removed from the EndpointSlice while requests are on it: they finish, no new ones come") {
    UpstreamOptions o = fault_options();
    o.timeouts.response_header = milliseconds{5000};  // the Pod's 400 ms are not a fault here
    Farm f("fx-gone", 72, o);
    FaultPod& pod = *f.pods[0];
    pod.set_fault(PodFault::slow, 400);  // requests stay on it for 400 ms
    Load load(*f.env.upstream, kConcurrency);
    REQUIRE(f.env.loop.run_until([&] { return pod.busy() >= 1; }, 5000));
    const int in_flight_at_removal = f.pod_stats(0).in_flight;
    CHECK(in_flight_at_removal >= 1);
    int status = 0;
    int in_flight_at_swap = -1, answered_at_swap = 0;
    const auto removed = Clock::now();
    f.env.admin_async("tke-a", {apply_op(slice_object(f.service, f.service + "-1", pod.port(), f.specs(0)))},
                      [&](int s) { status = s; });
    // The snapshot without the Pod arrives: it leaves the Picker. Requests on it then are the
    // last it gets.
    REQUIRE(f.env.loop.run_until([&] {
      if (f.env.upstream->picker()->pickable() != kPods - 1) return false;
      in_flight_at_swap = static_cast<int>(f.pod_stats(0).in_flight);
      answered_at_swap = pod.answered();
      return true;
    }, 10000));
    const double propagation_ms = ms_since(removed);
    // Its requests in flight finish normally, within the Pod's delay.
    REQUIRE(f.env.loop.run_until([&] { return pod.busy() == 0 && status != 0; }, 5000));
    f.env.loop.run_for(500);
    const auto& res = load.stop(f.env.loop);
    MESSAGE("removed from the slice with " << in_flight_at_removal << " request(s) on it (" << in_flight_at_swap
                                           << " at the swap): ok " << res.ok << ", failed " << res.failed
                                           << ", propagation " << propagation_ms << " ms");
    CAPTURE(res.errors.empty() ? std::string() : res.errors.front());
    CHECK(status == 200);
    CHECK(res.failed == 0);
    CHECK(res.non_2xx == 0);
    CHECK(in_flight_at_swap >= 0);
    CHECK(pod.answered() - answered_at_swap <= in_flight_at_swap);  // nothing new reached it
    // It is gone from the stats once its last request ended (its pool was released).
    for (const auto& p : f.env.upstream->stats().pods) CHECK(p.pod_name != pod.name());
    CHECK(f.env.upstream->stats().failures == 0);
  }
}
