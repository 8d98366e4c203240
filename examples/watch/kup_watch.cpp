// kup-watch: prints a Service port's merged, ready endpoints each time they change.
//
//   kup-watch [--kubeconfig FILE] [--context NAME] NAMESPACE/SERVICE:PORT... [--node-label k=v]...
//             [--json] [--watch-timeout SECONDS] [--idle-timeout MS] [--backoff MS] [--watch-list] [--watch-list-timeout MS]
//             [--slice-watch per_service|per_namespace]
//
// With several targets (all through one ClusterClient, so they share its watches), each JSON
// line carries "service":"NAMESPACE/SERVICE:PORT" and each table line starts with it.
//
// Works against a real cluster as against tests/kubesim. Uses only the public API. Stops on
// SIGINT or SIGTERM.
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <uv.h>

#include <csignal>
#include <cstring>
#include <string>

#include "kupstream/cluster.h"
#include "kupstream/cluster_client.h"

using namespace kupstream;

namespace {

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      out += fmt::format("\\u{:04x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string endpoints_json(const EndpointList& list) {
  std::string out = "[";
  for (const auto& e : list) {
    out += fmt::format("{}{{\"address\":{},\"port\":{},\"pod\":{},\"node\":{},\"zone\":{}}}", out.size() > 1 ? "," : "",
                       json_string(e.address), e.port, json_string(e.pod_name), json_string(e.node_name), json_string(e.zone));
  }
  return out + "]";
}

std::string time_text(std::chrono::system_clock::time_point t) {
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", std::chrono::floor<std::chrono::seconds>(t));
}

// `label` is "" with one target, "NS/SVC:PORT" with several.
std::string json_label(const std::string& label) {
  return label.empty() ? "" : fmt::format("\"service\":{},", json_string(label));
}

void print_update(const EndpointSetPtr& set, const WatchState& state, bool json, const std::string& label) {
  if (json) {
    // lagMicros: from the change's last-change-trigger-time to this snapshot (null if unknown).
    const std::string lag = state.propagation_lag && state.generation == set->generation
                                ? std::to_string(state.propagation_lag->count())
                                : "null";
    fmt::print("{{\"type\":\"update\",{}\"generation\":{},\"resourceVersion\":{},\"ready\":{},\"draining\":{},"
               "\"lagMicros\":{}}}\n",
               json_label(label), set->generation, json_string(set->resource_version), endpoints_json(set->ready),
               endpoints_json(set->draining), lag);
  } else {
    if (!label.empty()) fmt::print("{}: ", label);
    fmt::print("generation {} (resourceVersion {}, {}): {} ready, {} draining\n", set->generation, set->resource_version,
               to_string(state.phase), set->ready.size(), set->draining.size());
    fmt::print("  {:<8} {:<40} {:<28} {:<16} {}\n", "STATE", "ADDRESS", "POD", "NODE", "ZONE");
    for (const auto* list : {&set->ready, &set->draining})
      for (const auto& e : *list)
        fmt::print("  {:<8} {:<40} {:<28} {:<16} {}\n", list == &set->ready ? "ready" : "draining", e.host_port(),
                   e.pod_name, e.node_name, e.zone);
  }
  std::fflush(stdout);
}

void print_state(const WatchState& s, bool json, const std::string& label) {
  if (json) {
    std::string notes = "[";
    for (const auto& n : s.notes) notes += (notes.size() > 1 ? "," : "") + json_string(n);
    fmt::print("{{\"type\":\"state\",{}\"phase\":\"{}\",\"reason\":{},\"since\":\"{}\",\"generation\":{},\"notes\":{}]}}\n",
               json_label(label), to_string(s.phase), json_string(s.reason), time_text(s.since), s.generation, notes);
  } else {
    if (!label.empty()) fmt::print("{}: ", label);
    fmt::print("state {} since {}{}{}\n", to_string(s.phase), time_text(s.since), s.reason.empty() ? "" : ": ", s.reason);
  }
  std::fflush(stdout);
}

int usage(const char* why) {
  fmt::print(stderr, "kup-watch: {}\nusage: kup-watch [--kubeconfig FILE] [--context NAME] NAMESPACE/SERVICE:PORT... "
                     "[--node-label k=v]... [--json] [--watch-timeout S] [--idle-timeout MS] [--backoff MS] [--watch-list] "
                     "[--watch-list-timeout MS] [--slice-watch per_service|per_namespace]\n",
             why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);  // libuv writes with write(2): a closed peer must not kill us
  KubeconfigOptions kc;
  ClusterClientOptions options;
  ServiceRef ref;
  std::vector<ServiceRef> targets;
  bool json = false;
  options.log = [](LogLevel level, std::string_view text) {
    if (level >= LogLevel::warning) fmt::print(stderr, "{}: {}\n", log_level_name(level), text);
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        usage(("missing value for " + a).c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--kubeconfig") {
      kc.paths.push_back(value());
    } else if (a == "--context") {
      kc.context = value();
    } else if (a == "--json") {
      json = true;
    } else if (a == "--watch-list") {
      options.watch_list = true;
    } else if (a == "--slice-watch") {
      std::string mode = value();
      if (mode == "per_service")
        options.slice_watch = SliceWatchMode::per_service;
      else if (mode == "per_namespace")
        options.slice_watch = SliceWatchMode::per_namespace;
      else
        return usage(("--slice-watch takes per_service or per_namespace, not " + mode).c_str());
    } else if (a == "--watch-list-timeout") {
      options.watch_list_bookmark_timeout = std::chrono::milliseconds{std::stoi(value())};
    } else if (a == "--watch-timeout") {
      options.watch_timeout = std::chrono::seconds{std::stoi(value())};
    } else if (a == "--idle-timeout") {
      options.idle_timeout = std::chrono::milliseconds{std::stoi(value())};
    } else if (a == "--backoff") {
      options.backoff_initial = std::chrono::milliseconds{std::stoi(value())};
      options.backoff_max = 4 * options.backoff_initial;
    } else if (a == "--node-label") {
      std::string kv = value();
      auto eq = kv.find('=');
      if (eq == std::string::npos) return usage(("--node-label needs k=v, not " + kv).c_str());
      ref.node_labels[kv.substr(0, eq)] = kv.substr(eq + 1);
    } else if (!a.empty() && a[0] != '-') {
      auto slash = a.find('/');
      auto colon = a.rfind(':');
      if (slash == std::string::npos || colon == std::string::npos || colon < slash)
        return usage(("expected NAMESPACE/SERVICE:PORT, not " + a).c_str());
      ServiceRef t;
      t.namespace_name = a.substr(0, slash);
      t.service = a.substr(slash + 1, colon - slash - 1);
      t.port = PortRef::parse(a.substr(colon + 1));
      targets.push_back(std::move(t));
    } else {
      return usage(("unexpected argument " + a).c_str());
    }
  }
  if (targets.empty()) return usage("missing NAMESPACE/SERVICE:PORT");
  for (auto& t : targets) t.node_labels = ref.node_labels;
  kc.log = options.log;
  auto config = load_kubeconfig(kc);
  if (!config) {
    fmt::print(stderr, "kup-watch: {}\n", config.error().message());
    return 1;
  }
  for (auto& t : targets) t.cluster = config->name;
  const bool labelled = targets.size() > 1;

  uv_loop_t loop;
  uv_loop_init(&loop);
  int rc = 0;
  {
    auto cluster = ClusterClient::create(loop, *config, options);
    if (!cluster) {
      fmt::print(stderr, "kup-watch: {}\n", cluster.error().message());
      return 1;
    }
    struct Target {
      std::string label;
      std::unique_ptr<EndpointWatcher> watch;
    };
    std::vector<Target> watches(targets.size());
    for (std::size_t i = 0; i < targets.size(); ++i) {
      const ServiceRef& t = targets[i];
      watches[i].label = labelled ? fmt::format("{}/{}:{}", t.namespace_name, t.service, t.port.to_string()) : "";
      EndpointWatcherCallbacks cb;
      cb.on_update = [&watches, i, json](const EndpointSetPtr& set) {
        print_update(set, watches[i].watch->state(), json, watches[i].label);
      };
      cb.on_state = [&watches, i, json](const WatchState& s) { print_state(s, json, watches[i].label); };
      auto watch = (*cluster)->watch(t, std::move(cb));
      if (!watch) {
        fmt::print(stderr, "kup-watch: {}\n", watch.error().message());
        watches.clear();
        cluster->reset();
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        return 1;
      }
      watches[i].watch = std::move(*watch);
    }

    // SIGINT/SIGTERM: drop the watch and let the loop drain.
    struct Stop {
      uv_signal_t sigint, sigterm;
      std::vector<Target>* watches;
    } stop{{}, {}, &watches};
    for (auto* s : {&stop.sigint, &stop.sigterm}) {
      uv_signal_init(&loop, s);
      s->data = &stop;
      uv_signal_start_oneshot(s, [](uv_signal_t* h, int) {
        auto* st = static_cast<Stop*>(h->data);
        st->watches->clear();
        uv_close(reinterpret_cast<uv_handle_t*>(&st->sigint), nullptr);
        uv_close(reinterpret_cast<uv_handle_t*>(&st->sigterm), nullptr);
        // Closing restored the default action: a second signal during teardown is ignored.
        std::signal(SIGTERM, SIG_IGN);
        std::signal(SIGINT, SIG_IGN);
      }, s == &stop.sigint ? SIGINT : SIGTERM);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    watches.clear();
    cluster->reset();
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  if (uv_loop_close(&loop) != 0) {
    fmt::print(stderr, "kup-watch: loop did not drain\n");
    rc = 3;
  }
  return rc;
}
