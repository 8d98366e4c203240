#include "kube/credential_source.h"

#include <sys/stat.h>

#include <csignal>
#include <cstring>
#include <string>
#include <vector>

#include "kube/file_util.h"

extern char** environ;

namespace kupstream::kube {

namespace {

using Clock = std::chrono::system_clock;

struct FileSig {
  ino_t ino = 0;
  off_t size = -1;
  long long mtime_ns = 0;
  friend bool operator==(const FileSig&, const FileSig&) = default;
};

std::string excerpt(std::string s, std::size_t max = 512) {
  s = trim(std::move(s));
  if (s.size() > max) {
    s.resize(max);
    s += "...";
  }
  return s;
}

}  // namespace

struct ExecRun;

struct CredentialSource::State {
  uv_loop_t* loop = nullptr;
  ClusterConfig cluster;
  CredentialOptions opts;
  Kind kind = Kind::none;
  bool closed = false;

  // Kept while any uv handle is open; the last close callback releases it.
  std::shared_ptr<State> self;
  int open_handles = 0;

  uv_timer_t dispatch{};
  std::vector<std::pair<Callback, Result<CredentialPtr>>> ready;
  std::vector<Callback> waiting;  // get() calls waiting for a plugin run

  CredentialPtr cached;
  bool invalidated = false;

  // token file
  bool checked = false;
  std::uint64_t last_check_ms = 0;
  FileSig sig;

  ExecRun* run = nullptr;  // the plugin run in flight

  void handle_opened() { ++open_handles; }
  void handle_closed() {
    if (--open_handles == 0) {
      auto last = std::move(self);  // may destroy *this when `last` goes out of scope
    }
  }

  void log(LogLevel l, const std::string& m) {
    if (opts.log) opts.log(l, m);
  }

  void deliver(Callback cb, Result<CredentialPtr> r) {
    ready.emplace_back(std::move(cb), std::move(r));
    uv_timer_start(&dispatch, &State::on_dispatch, 0, 0);
  }

  static void on_dispatch(uv_timer_t* t) {
    auto* st = static_cast<State*>(t->data);
    auto keep = st->self;
    auto batch = std::move(st->ready);
    st->ready.clear();
    for (auto& [cb, r] : batch) {
      if (st->closed) return;
      cb(std::move(r));
    }
  }

  Result<CredentialPtr> token_file_credential();
  void start_exec();
  void exec_done(ExecRun* r);
  void close();
};

// One plugin process with its two output pipes and its timeout timer. Deleted when all four
// handles have closed.
struct ExecRun {
  CredentialSource::State* st;
  uv_process_t proc{};
  uv_pipe_t out{};
  uv_pipe_t err{};
  uv_timer_t timer{};
  int open = 0;
  bool proc_open = false, out_open = false, err_open = false, timer_open = false;
  bool spawned = false, exited = false, finished = false, timed_out = false, overflow = false;
  int spawn_error = 0;
  std::int64_t exit_status = 0;
  int term_signal = 0;
  std::string out_buf, err_buf;
  char read_buf[16384];

  explicit ExecRun(CredentialSource::State* s) : st(s) {}

  template <class H>
  void init_handle(H* h, bool& flag) {
    h->data = this;
    flag = true;
    ++open;
    st->handle_opened();
  }

  template <class H>
  void close_handle(H* h, bool& flag) {
    if (!flag) return;
    flag = false;
    uv_close(reinterpret_cast<uv_handle_t*>(h), [](uv_handle_t* hh) {
      auto* self = static_cast<ExecRun*>(hh->data);
      auto* state = self->st;
      if (--self->open == 0) delete self;
      state->handle_closed();  // last: may destroy the state
    });
  }

  void kill() {
    if (spawned && !exited) uv_process_kill(&proc, SIGKILL);
  }

  // Done once the process has exited and both pipes are closed.
  void maybe_finish() {
    if (finished || !exited || out_open || err_open) return;
    finished = true;
    if (timer_open) {
      uv_timer_stop(&timer);
      close_handle(&timer, timer_open);
    }
    st->exec_done(this);
  }

  static void on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
    auto* r = static_cast<ExecRun*>(h->data);
    *buf = uv_buf_init(r->read_buf, sizeof r->read_buf);
  }

  static void on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
    auto* r = static_cast<ExecRun*>(s->data);
    bool is_out = s == reinterpret_cast<uv_stream_t*>(&r->out);
    if (n > 0) {
      std::string& dst = is_out ? r->out_buf : r->err_buf;
      std::size_t limit = is_out ? r->st->opts.exec_max_output : 64 * 1024;
      if (dst.size() + static_cast<std::size_t>(n) > limit) {
        if (is_out) {
          r->overflow = true;
          r->kill();
        }
        return;  // stderr beyond 64 KiB is dropped
      }
      dst.append(buf->base, static_cast<std::size_t>(n));
      return;
    }
    if (n < 0) {  // EOF or a read error: this pipe is done
      if (is_out) r->close_handle(&r->out, r->out_open);
      else r->close_handle(&r->err, r->err_open);
      r->maybe_finish();
    }
  }

  static void on_exit(uv_process_t* p, std::int64_t status, int signal) {
    auto* r = static_cast<ExecRun*>(p->data);
    r->exited = true;
    r->exit_status = status;
    r->term_signal = signal;
    r->close_handle(&r->proc, r->proc_open);
    r->maybe_finish();
  }

  static void on_timeout(uv_timer_t* t) {
    auto* r = static_cast<ExecRun*>(t->data);
    r->timed_out = true;
    r->kill();
    // A grandchild may hold the pipes open: stop waiting for them.
    r->close_handle(&r->out, r->out_open);
    r->close_handle(&r->err, r->err_open);
    r->maybe_finish();
  }
};

Result<CredentialSource::CredentialPtr> CredentialSource::State::token_file_credential() {
  const std::string& path = cluster.credentials.token_file;
  std::uint64_t now = uv_now(loop);
  bool force = invalidated || !cached;
  if (!force && checked && now - last_check_ms < static_cast<std::uint64_t>(opts.token_file_recheck.count()))
    return cached;
  last_check_ms = now;
  checked = true;
  auto keep_or = [&](Error e) -> Result<CredentialPtr> {
    if (cached) {
      log(LogLevel::warning, e.reason + "; keeping the token read before");
      invalidated = false;
      return cached;
    }
    return e;
  };
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return keep_or(Error{Errc::io_error, "token file " + path + ": " + std::strerror(errno)});
  FileSig now_sig{st.st_ino, st.st_size, st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec};
  if (!force && now_sig == sig) return cached;
  auto text = read_whole_file(path, 1u << 20);
  if (!text) return keep_or(Error{Errc::io_error, "token file " + text.error().reason});
  std::string token = trim(std::move(*text));
  if (token.empty()) return keep_or(Error{Errc::credential_error, "token file " + path + " is empty"});
  sig = now_sig;
  invalidated = false;
  auto c = std::make_shared<Credential>();
  c->authorization = "Bearer " + token;
  if (cached && cached->authorization != c->authorization) log(LogLevel::info, "token file " + path + " changed; using the new token");
  cached = std::move(c);
  return cached;
}

void CredentialSource::State::start_exec() {
  const ExecConfig& ex = *cluster.credentials.exec;
  auto* r = new ExecRun(this);
  run = r;
  r->init_handle(&r->timer, r->timer_open);
  uv_timer_init(loop, &r->timer);
  uv_timer_start(&r->timer, &ExecRun::on_timeout, static_cast<std::uint64_t>(opts.exec_timeout.count()), 0);
  r->init_handle(&r->out, r->out_open);
  uv_pipe_init(loop, &r->out, 0);
  r->init_handle(&r->err, r->err_open);
  uv_pipe_init(loop, &r->err, 0);

  std::string ca = cluster.certificate_authority_data;
  if (ex.provide_cluster_info && ca.empty() && !cluster.certificate_authority_file.empty()) {
    if (auto f = read_whole_file(cluster.certificate_authority_file)) ca = std::move(*f);
  }
  // The library's environment, then the kubeconfig's env entries, then KUBERNETES_EXEC_INFO.
  std::vector<std::pair<std::string, std::string>> overrides;
  for (const auto& e : ex.env) overrides.emplace_back(e.name, e.value);
  overrides.emplace_back("KUBERNETES_EXEC_INFO", exec_info_json(cluster, ex, ca));
  std::vector<std::string> env_strings;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    std::string_view name = kv.substr(0, kv.find('='));
    bool overridden = false;
    for (const auto& o : overrides) overridden = overridden || o.first == name;
    if (!overridden) env_strings.emplace_back(kv);
  }
  for (const auto& o : overrides) env_strings.push_back(o.first + "=" + o.second);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> arg_strings{ex.command};
  arg_strings.insert(arg_strings.end(), ex.args.begin(), ex.args.end());
  std::vector<char*> argv;
  for (auto& s : arg_strings) argv.push_back(s.data());
  argv.push_back(nullptr);

  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_IGNORE;  // never interactive: kupstream has no terminal
  stdio[1].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
  stdio[1].data.stream = reinterpret_cast<uv_stream_t*>(&r->out);
  stdio[2].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
  stdio[2].data.stream = reinterpret_cast<uv_stream_t*>(&r->err);
  uv_process_options_t po{};
  po.exit_cb = &ExecRun::on_exit;
  po.file = ex.command.c_str();
  po.args = argv.data();
  po.env = envp.data();
  po.stdio_count = 3;
  po.stdio = stdio;
  r->init_handle(&r->proc, r->proc_open);
  int rc = uv_spawn(loop, &r->proc, &po);
  if (rc != 0) {
    // The handle was initialised by uv_spawn and must still be closed.
    r->spawn_error = rc;
    r->exited = true;
    r->close_handle(&r->proc, r->proc_open);
    r->close_handle(&r->out, r->out_open);
    r->close_handle(&r->err, r->err_open);
    r->maybe_finish();
    return;
  }
  r->spawned = true;
  uv_read_start(reinterpret_cast<uv_stream_t*>(&r->out), &ExecRun::on_alloc, &ExecRun::on_read);
  uv_read_start(reinterpret_cast<uv_stream_t*>(&r->err), &ExecRun::on_alloc, &ExecRun::on_read);
}

void CredentialSource::State::exec_done(ExecRun* r) {
  if (run == r) run = nullptr;
  if (closed) return;
  const ExecConfig& ex = *cluster.credentials.exec;
  std::string who = "exec plugin \"" + ex.command + "\"" + (cluster.name.empty() ? "" : " for cluster \"" + cluster.name + "\"");
  auto failure = [&](const std::string& what) {
    std::string m = who + ": " + what;
    std::string e = excerpt(r->err_buf);
    if (!e.empty()) m += "; stderr: " + e;
    if (!ex.install_hint.empty()) m += "; " + ex.install_hint;
    return Error{Errc::credential_error, std::move(m)};
  };
  Result<CredentialPtr> result{CredentialPtr{}};
  if (r->spawn_error != 0) {
    result = failure(std::string("cannot run: ") + uv_strerror(r->spawn_error));
  } else if (r->timed_out) {
    result = failure("timed out after " + std::to_string(opts.exec_timeout.count()) + " ms and was killed");
  } else if (r->overflow) {
    result = failure("wrote more than " + std::to_string(opts.exec_max_output) + " bytes to stdout");
  } else if (r->term_signal != 0) {
    result = failure("was killed by signal " + std::to_string(r->term_signal));
  } else if (r->exit_status != 0) {
    result = failure("exited with status " + std::to_string(r->exit_status));
  } else if (auto c = parse_exec_credential(r->out_buf, ex.api_version); !c) {
    result = failure(c.error().reason);
  } else {
    if (!r->err_buf.empty()) {
      // A plugin that echoes what it returned on stderr must not put the secret in our log.
      std::string text = r->err_buf;
      std::string_view token = std::string_view(c->authorization).substr(c->authorization.empty() ? 0 : 7);
      for (std::string_view secret : {token, std::string_view(c->client_key_pem)}) {
        for (std::size_t at; !secret.empty() && (at = text.find(secret)) != std::string::npos;)
          text.replace(at, secret.size(), "<redacted>");
      }
      log(LogLevel::debug, who + " stderr: " + excerpt(std::move(text)));
    }
    cached = std::make_shared<Credential>(std::move(*c));
    invalidated = false;
    result = cached;
  }
  auto cbs = std::move(waiting);
  waiting.clear();
  for (auto& cb : cbs) deliver(std::move(cb), result);
}

void CredentialSource::State::close() {
  closed = true;
  ready.clear();
  waiting.clear();
  if (run) {
    ExecRun* r = run;
    run = nullptr;
    r->kill();
    r->close_handle(&r->out, r->out_open);
    r->close_handle(&r->err, r->err_open);
    if (r->timer_open) {
      uv_timer_stop(&r->timer);
      r->close_handle(&r->timer, r->timer_open);
    }
    // The process handle closes in on_exit (after SIGKILL) so that the child is reaped.
    if (r->exited) r->close_handle(&r->proc, r->proc_open);
  }
  uv_timer_stop(&dispatch);
  uv_close(reinterpret_cast<uv_handle_t*>(&dispatch), [](uv_handle_t* h) { static_cast<State*>(h->data)->handle_closed(); });
}

Result<std::unique_ptr<CredentialSource>> CredentialSource::create(uv_loop_t& loop, const ClusterConfig& cluster,
                                                                   CredentialOptions options) {
  const auto& k = cluster.credentials;
  if (k.exec) {
    if (k.exec->command.empty()) return Error{Errc::invalid_config, "exec plugin: command is missing"};
    if (k.exec->interactive_mode == ExecInteractiveMode::always)
      return Error{Errc::unsupported, "exec plugin \"" + k.exec->command + "\": interactiveMode Always is not supported"};
    if (k.exec->api_version != "client.authentication.k8s.io/v1" &&
        k.exec->api_version != "client.authentication.k8s.io/v1beta1")
      return Error{Errc::unsupported, "exec plugin \"" + k.exec->command + "\": apiVersion \"" + k.exec->api_version +
                                          "\" is not supported"};
  }
  auto st = std::make_shared<State>();
  st->loop = &loop;
  st->cluster = cluster;
  st->opts = std::move(options);
  st->kind = k.exec ? Kind::exec : !k.token_file.empty() ? Kind::token_file : !k.token.empty() ? Kind::token : Kind::none;
  if (st->kind == Kind::token || st->kind == Kind::none) {
    auto c = std::make_shared<Credential>();
    if (st->kind == Kind::token) c->authorization = "Bearer " + k.token;
    st->cached = std::move(c);
  }
  uv_timer_init(&loop, &st->dispatch);
  st->dispatch.data = st.get();
  st->handle_opened();
  st->self = st;
  return std::unique_ptr<CredentialSource>(new CredentialSource(std::move(st)));
}

CredentialSource::CredentialSource(std::shared_ptr<State> state) : state_(std::move(state)) {}

CredentialSource::~CredentialSource() { state_->close(); }

CredentialSource::Kind CredentialSource::kind() const noexcept { return state_->kind; }

void CredentialSource::invalidate() {
  State& s = *state_;
  s.invalidated = true;
  if (s.kind == Kind::exec) s.cached.reset();
}

void CredentialSource::get(Callback cb) {
  State& s = *state_;
  switch (s.kind) {
    case Kind::none:
    case Kind::token:
      s.deliver(std::move(cb), s.cached);
      return;
    case Kind::token_file:
      s.deliver(std::move(cb), s.token_file_credential());
      return;
    case Kind::exec: {
      if (s.cached && !s.invalidated) {
        bool fresh = !s.cached->expiry || Clock::now() + s.opts.exec_refresh_before_expiry < *s.cached->expiry;
        if (fresh) {
          s.deliver(std::move(cb), s.cached);
          return;
        }
      }
      s.waiting.push_back(std::move(cb));
      if (!s.run) s.start_exec();
      return;
    }
  }
}

}  // namespace kupstream::kube
