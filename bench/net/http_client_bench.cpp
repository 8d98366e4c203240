// HTTP client throughput and TLS handshake cost against nginx on loopback, beside wrk measured
// against the same nginx in the same run (wrk is this machine's client ceiling).
//
//   kupstream_bench_http_client [--duration SECONDS] [--connections N] [--rounds N] [--only TEXT] [--verify on|off]
//
// The machine is shared, so each scenario runs in `rounds` alternating wrk / kupstream windows
// and reports the median round of each; the ratio compares the two medians.
// Rows: keep-alive GET (plain, TLS), a new connection per request (plain, TLS with a full
// handshake, TLS resumed), each at 32 concurrent and at 1 (whose 1000/req/s is the per-connection
// cost in ms), as requests/s and p50/p99 latency. wrk's latency starts after its connect and
// handshake; kupstream's includes them (it is measured from send()). wrk cannot resume TLS
// sessions, so the resumed rows have no wrk column.
#include <fmt/core.h>
#include <sys/resource.h>
#include <uv.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "net/connection_pool.h"
#include "net/support/net_certs.h"
#include "net/support/net_nginx.h"
#include "net/support/net_process.h"
#include "net/tls_context.h"

using namespace kupstream;
using namespace kupstream::net;
using namespace kupstream::test;

namespace {

struct Numbers {
  double rps = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  double cpu_pct = 0;  // kupstream only: CPU time of the client thread / wall time
  std::uint64_t errors = 0;
  std::string note;
};

double wrk_latency_ms(const std::string& text) {
  // "1.23ms", "456.00us", "1.2s"
  double v = std::atof(text.c_str());
  if (text.find("us") != std::string::npos) return v / 1000.0;
  if (text.find("ms") != std::string::npos) return v;
  if (text.find('s') != std::string::npos) return v * 1000.0;
  return v;
}

std::optional<Numbers> run_wrk(const std::string& url, int connections, int seconds, bool close) {
  std::string cmd = fmt::format("wrk -t1 -c{} -d{}s --latency {} {} 2>&1", connections, seconds,
                                close ? "-H 'Connection: close'" : "", url);
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return std::nullopt;
  std::string out;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
  pclose(p);
  Numbers n;
  auto rps = out.find("Requests/sec:");
  if (rps == std::string::npos) {
    std::fprintf(stderr, "wrk output not understood:\n%s\n", out.c_str());
    return std::nullopt;
  }
  n.rps = std::atof(out.c_str() + rps + 13);
  auto find_pct = [&](const char* label) {
    auto at = out.find(label, out.find("Latency Distribution"));
    if (at == std::string::npos) return 0.0;
    at += std::string(label).size();
    while (out[at] == ' ') ++at;
    return wrk_latency_ms(out.substr(at, out.find('\n', at) - at));
  };
  n.p50_ms = find_pct(" 50%");
  n.p99_ms = find_pct(" 99%");
  auto errs = out.find("Non-2xx or 3xx responses:");
  if (errs != std::string::npos) n.errors += std::strtoull(out.c_str() + errs + 25, nullptr, 10);
  auto sock = out.find("Socket errors:");
  if (sock != std::string::npos) n.note = out.substr(sock, out.find('\n', sock) - sock);
  return n;
}

// `connections` request loops on one pool, one thread, for `seconds`.
Numbers run_kupstream(const std::string& host, int port, std::shared_ptr<TlsContext> tls, int connections,
                      int seconds, bool close) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  Numbers n;
  auto cpu_now = [] {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  };
  const double cpu0 = cpu_now();
  const std::uint64_t wall0 = uv_hrtime();
  {
    PoolOptions po;
    po.connection.host = host;
    po.connection.port = static_cast<std::uint16_t>(port);
    po.connection.tls = std::move(tls);
    po.max_connections = static_cast<std::size_t>(connections);
    po.max_idle = static_cast<std::size_t>(connections);
    auto pool = std::move(ConnectionPool::create(loop, po)).value();

    struct Slot {
      std::unique_ptr<HttpExchange> ex;
      std::uint64_t started = 0;
    };
    std::vector<Slot> slots(static_cast<std::size_t>(connections));
    std::vector<std::uint64_t> latencies;
    latencies.reserve(1 << 20);
    std::uint64_t completed = 0;
    const std::uint64_t t0 = uv_hrtime();
    const std::uint64_t warmup_end = t0 + 500'000'000ull;  // 0.5 s warm-up, not counted
    const std::uint64_t end = warmup_end + static_cast<std::uint64_t>(seconds) * 1'000'000'000ull;
    bool stopping = false;
    HttpRequest req;
    req.target = "/hello";
    if (close) req.headers.push_back({"Connection", "close"});

    std::function<void(Slot&)> start = [&](Slot& s) {
      s.started = uv_hrtime();
      HttpHandlers h;
      h.on_complete = [&, sp = &s](Status st) {
        std::uint64_t now = uv_hrtime();
        if (!st.ok()) {
          ++n.errors;
          if (n.note.empty()) n.note = st.error().message();
        } else if (sp->started >= warmup_end && now <= end) {
          ++completed;
          latencies.push_back(now - sp->started);
        }
        if (now >= end) {
          stopping = true;
          return;
        }
        start(*sp);
      };
      auto r = pool->send(req, std::move(h));
      if (!r) {
        ++n.errors;
        return;
      }
      s.ex = std::move(r).value();  // the previous exchange (done) is released here
    };
    // start() replaces s.ex from inside its own on_complete; the old exchange is done, so
    // dropping it there is allowed by the contract.
    for (auto& s : slots) start(s);
    while (!stopping) uv_run(&loop, UV_RUN_ONCE);
    n.rps = static_cast<double>(completed) / seconds;
    n.cpu_pct = 100.0 * (cpu_now() - cpu0) / (static_cast<double>(uv_hrtime() - wall0) / 1e9);
    std::sort(latencies.begin(), latencies.end());
    if (!latencies.empty()) {
      n.p50_ms = static_cast<double>(latencies[latencies.size() / 2]) / 1e6;
      n.p99_ms = static_cast<double>(latencies[latencies.size() * 99 / 100]) / 1e6;
    }
    slots.clear();
    pool.reset();
  }
  while (uv_loop_alive(&loop)) uv_run(&loop, UV_RUN_NOWAIT);
  if (uv_loop_close(&loop) != 0) std::fprintf(stderr, "warning: loop did not close cleanly\n");
  return n;
}

// Median by requests/s; latencies are taken from the same round.
Numbers median(std::vector<Numbers> v) {
  std::sort(v.begin(), v.end(), [](const Numbers& a, const Numbers& b) { return a.rps < b.rps; });
  return v[v.size() / 2];
}

void row(const char* name, const std::optional<Numbers>& wrk, const Numbers& ours) {
  double w = wrk ? wrk->rps : 0;
  std::printf("%-34s | %10.0f %8.3f %8.3f | %10.0f %8.3f %8.3f %5.0f%% | %6.1f%% | %llu%s%s\n", name, w,
              wrk ? wrk->p50_ms : 0, wrk ? wrk->p99_ms : 0, ours.rps, ours.p50_ms, ours.p99_ms, ours.cpu_pct,
              w > 0 ? 100.0 * ours.rps / w : 0.0, static_cast<unsigned long long>(ours.errors),
              ours.note.empty() ? "" : " ", ours.note.c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  int seconds = 5;
  int connections = 32;
  int rounds = 3;
  std::string only;
  bool verify = true;  // wrk does not verify certificates; --verify off shows what that costs us
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--duration") seconds = std::atoi(argv[i + 1]);
    if (a == "--connections") connections = std::atoi(argv[i + 1]);
    if (a == "--rounds") rounds = std::max(1, std::atoi(argv[i + 1]));
    if (a == "--only") only = argv[i + 1];
    if (a == "--verify") verify = std::string(argv[i + 1]) != "off";
  }
  TempDir dir;
  TestPki pki(dir.path());
  NginxServer nginx(dir.path(), &pki);
  TlsConfig tc;
  tc.ca_file = pki.ca_cert;
  tc.insecure_skip_verify = !verify;
  auto tls = std::move(TlsContext::create(tc)).value();
  TlsConfig tc_full = tc;
  tc_full.session_resumption = false;
  auto tls_full = std::move(TlsContext::create(tc_full)).value();

  std::printf("nginx (one process) on 127.0.0.1; wrk -t1 -c%d -d%ds; kupstream: one loop thread, %d concurrent; "
              "median of %d alternating rounds\n",
              connections, seconds, connections, rounds);
  std::printf("%-34s | %10s %8s %8s | %10s %8s %8s %6s | %7s | errors\n", "scenario", "wrk req/s", "p50 ms",
              "p99 ms", "kup req/s", "p50 ms", "p99 ms", "cpu", "ratio");
  std::string plain = fmt::format("http://127.0.0.1:{}/hello", nginx.plain_port);
  std::string https = fmt::format("https://127.0.0.1:{}/hello", nginx.tls_port);

  auto scenario = [&](const char* name, const std::string& url, int port, std::shared_ptr<TlsContext> ctx, bool close,
                      bool with_wrk, int conns) {
    if (!only.empty() && std::string(name).find(only) == std::string::npos) return;
    std::vector<Numbers> w, k;
    for (int r = 0; r < rounds; ++r) {
      if (with_wrk) {
        if (auto n = run_wrk(url, conns, seconds, close)) w.push_back(*n);
      }
      k.push_back(run_kupstream("127.0.0.1", port, ctx, conns, seconds, close));
    }
    row(name, w.empty() ? std::nullopt : std::optional<Numbers>(median(w)), median(k));
  };
  scenario("keep-alive GET, plain", plain, nginx.plain_port, nullptr, false, true, connections);
  scenario("keep-alive GET, TLS", https, nginx.tls_port, tls, false, true, connections);
  scenario("new connection per GET, plain", plain, nginx.plain_port, nullptr, true, true, connections);
  scenario("new TLS conn per GET, full hs", https, nginx.tls_port, tls_full, true, true, connections);
  scenario("new TLS conn per GET, resumed", https, nginx.tls_port, tls, true, false, connections);
  // One connection at a time: 1000 / req/s is the cost of connect (+ handshake) + one GET.
  scenario("c=1 new connection per GET, plain", plain, nginx.plain_port, nullptr, true, true, 1);
  scenario("c=1 new TLS conn per GET, full hs", https, nginx.tls_port, tls_full, true, true, 1);
  scenario("c=1 new TLS conn per GET, resumed", https, nginx.tls_port, tls, true, false, 1);
  return 0;
}
