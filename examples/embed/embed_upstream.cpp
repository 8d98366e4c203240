// Embedding an Upstream into an existing libuv program: docs/getting-started.md walks through it.
// Usage: kup-embed KUBECONFIG NAMESPACE SERVICE PORT PATH
// Waits until the Service's Pods are known, sends GET PATH to one of them, prints the answer.
#include <kupstream/kupstream.h>
#include <uv.h>

#include <cstdio>
#include <functional>

using namespace kupstream;

int fail(const Error& e) { return std::fprintf(stderr, "kup-embed: %s\n", e.reason.c_str()), 1; }

int main(int argc, char** argv) {
  if (argc != 6) return std::fprintf(stderr, "usage: kup-embed KUBECONFIG NAMESPACE SERVICE PORT PATH\n"), 2;
  uv_loop_t loop;  // the host's own loop: kupstream never creates, runs or closes one
  uv_loop_init(&loop);

  KubeconfigOptions kubeconfig;
  kubeconfig.paths = {argv[1]};
  auto cluster_config = load_kubeconfig(kubeconfig);
  if (!cluster_config) return fail(cluster_config.error());
  auto cluster = ClusterClient::create(loop, *cluster_config);
  if (!cluster) return fail(cluster.error());

  ServiceRef service;  // cluster "main" / NAMESPACE / SERVICE : PORT
  service.cluster = "main", service.namespace_name = argv[2], service.service = argv[3];
  service.port = PortRef::parse(argv[4]);
  UpstreamConfig config;
  config.name = "example", config.services = {service};
  auto upstream = Upstream::create(loop, config, {{"main", cluster->get()}});
  if (!upstream) return fail(upstream.error());

  int status = 0;
  std::unique_ptr<UpstreamRequest> request;
  auto send = [&] {
    ForwardRequest get;
    get.target = argv[5];
    ForwardHandlers on;
    on.on_head = [&](const ForwardResponseHead& head) { status = head.status; };
    on.on_body = [](std::string_view chunk) { std::fwrite(chunk.data(), 1, chunk.size(), stdout); };
    on.on_complete = [&](Status done) {
      if (!done) fail(done.error());
      request.reset(), upstream->reset(), cluster->reset();  // dropping handles stops everything
    };
    auto sent = (*upstream)->forward(get, on);
    if (sent) request = std::move(*sent);
    else fail(sent.error()), upstream->reset(), cluster->reset();
  };
  // The host decides when to send; here, as soon as the first Pods are known.
  uv_timer_t timer;
  std::function<void()> when_ready = [&] {
    if (!(*upstream)->ready()) return;
    uv_close(reinterpret_cast<uv_handle_t*>(&timer), nullptr);
    send();
  };
  timer.data = &when_ready;
  uv_timer_init(&loop, &timer);
  uv_timer_start(&timer, [](uv_timer_t* t) { (*static_cast<std::function<void()>*>(t->data))(); }, 10, 10);

  uv_run(&loop, UV_RUN_DEFAULT);  // returns once every handle is closed
  std::fprintf(stderr, "kup-embed: HTTP %d\n", status);
  return uv_loop_close(&loop) == 0 && status == 200 ? 0 : 1;
}
