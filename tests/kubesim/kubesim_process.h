// Test helper: runs tests/kubesim/kubesim.py as a child process for C++ tests (POSIX only).
//
//   kupstream::test::KubesimProcess::Options options;
//   options.cluster = "tke-a";
//   kupstream::test::KubesimProcess sim(options);
//   sim.info().port, sim.info().ca_file, sim.info().users.at("admin").token
//   sim.admin("POST", "/faults", R"({"code":500})");   // blocking, via kubesimctl.py
//
// Thread: any, but admin()/api() block until kubesimctl.py exits, so call them while the test's
// uv loop is not running (between uv_run calls). Lifetime: the destructor stops the server by
// its PID (SIGTERM, then SIGKILL after 3 s) and removes a state dir it created itself.
// Errors: the constructor throws std::runtime_error when the server does not become ready.
// The script is found through $KUPSTREAM_SOURCE_DIR (set by CTest for every test).
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

extern char** environ;

namespace kupstream::test {

// A small JSON reader: enough for the ready file and admin answers.
class Json {
 public:
  using Object = std::map<std::string, Json>;
  using Array = std::vector<Json>;

  static Json parse(std::string_view text) {
    std::size_t pos = 0;
    Json value = parse_value(text, pos);
    skip_ws(text, pos);
    if (pos != text.size()) throw std::runtime_error("json: trailing characters");
    return value;
  }

  bool is_null() const { return std::holds_alternative<std::monostate>(value_); }
  bool is_object() const { return std::holds_alternative<Object>(value_); }
  const Object& object() const { return std::get<Object>(value_); }
  const Array& array() const { return std::get<Array>(value_); }
  const std::string& str() const { return std::get<std::string>(value_); }
  double number() const { return std::get<double>(value_); }
  bool boolean() const { return std::get<bool>(value_); }
  bool has(const std::string& key) const { return is_object() && object().count(key) != 0; }
  const Json& operator[](const std::string& key) const {
    auto it = object().find(key);
    if (it == object().end()) throw std::runtime_error("json: no key " + key);
    return it->second;
  }
  const Json& operator[](std::size_t i) const { return array().at(i); }

 private:
  std::variant<std::monostate, bool, double, std::string, Array, Object> value_;

  static void skip_ws(std::string_view t, std::size_t& p) {
    while (p < t.size() && (t[p] == ' ' || t[p] == '\n' || t[p] == '\r' || t[p] == '\t')) ++p;
  }
  static void expect(std::string_view t, std::size_t& p, std::string_view word) {
    if (t.substr(p, word.size()) != word) throw std::runtime_error("json: bad literal");
    p += word.size();
  }
  static std::string parse_string(std::string_view t, std::size_t& p) {
    std::string out;
    ++p;  // opening quote
    while (p < t.size() && t[p] != '"') {
      char c = t[p++];
      if (c != '\\') {
        out += c;
        continue;
      }
      if (p >= t.size()) break;
      char e = t[p++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          unsigned cp = static_cast<unsigned>(std::stoul(std::string(t.substr(p, 4)), nullptr, 16));
          p += 4;
          if (cp < 0x80) {
            out += static_cast<char>(cp);
          } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
          } else {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
          }
          break;
        }
        default: out += e;
      }
    }
    if (p >= t.size()) throw std::runtime_error("json: unterminated string");
    ++p;  // closing quote
    return out;
  }
  static Json parse_value(std::string_view t, std::size_t& p) {
    skip_ws(t, p);
    if (p >= t.size()) throw std::runtime_error("json: unexpected end");
    Json j;
    char c = t[p];
    if (c == '{') {
      ++p;
      Object obj;
      skip_ws(t, p);
      if (p < t.size() && t[p] == '}') {
        ++p;
      } else {
        for (;;) {
          skip_ws(t, p);
          if (p >= t.size() || t[p] != '"') throw std::runtime_error("json: expected key");
          std::string key = parse_string(t, p);
          skip_ws(t, p);
          expect(t, p, ":");
          obj.emplace(std::move(key), parse_value(t, p));
          skip_ws(t, p);
          if (p < t.size() && t[p] == ',') {
            ++p;
            continue;
          }
          expect(t, p, "}");
          break;
        }
      }
      j.value_ = std::move(obj);
    } else if (c == '[') {
      ++p;
      Array arr;
      skip_ws(t, p);
      if (p < t.size() && t[p] == ']') {
        ++p;
      } else {
        for (;;) {
          arr.push_back(parse_value(t, p));
          skip_ws(t, p);
          if (p < t.size() && t[p] == ',') {
            ++p;
            continue;
          }
          expect(t, p, "]");
          break;
        }
      }
      j.value_ = std::move(arr);
    } else if (c == '"') {
      j.value_ = parse_string(t, p);
    } else if (c == 't') {
      expect(t, p, "true");
      j.value_ = true;
    } else if (c == 'f') {
      expect(t, p, "false");
      j.value_ = false;
    } else if (c == 'n') {
      expect(t, p, "null");
    } else {
      std::size_t end = p;
      while (end < t.size() && std::string_view("+-0123456789.eE").find(t[end]) != std::string_view::npos) ++end;
      if (end == p) throw std::runtime_error("json: unexpected character");
      j.value_ = std::stod(std::string(t.substr(p, end - p)));
      p = end;
    }
    return j;
  }
};

struct KubesimUser {
  std::string token;
  std::string kubeconfig;
  std::string client_cert;  // empty unless the user has a client certificate
  std::string client_key;
  std::string kubeconfig_cert;
};

struct KubesimInfo {
  int pid = 0;
  std::string cluster;
  std::string host;
  int port = 0;
  std::string server;  // https://127.0.0.1:PORT
  std::string ca_file;
  std::string admin_token;
  std::string admin_url;
  std::string state_dir;
  std::map<std::string, KubesimUser> users;
};

struct KubesimResult {
  int exit_code = -1;  // 0 when the HTTP status was 2xx
  std::string body;    // the JSON answer
  Json json() const { return Json::parse(body); }
};

class KubesimProcess {
 public:
  struct Options {
    std::string cluster = "kubesim";
    std::string tokens_file;              // JSON users file; empty = one "admin" user allowed everything
    std::vector<std::string> extra_args;  // e.g. {"--watch-list", "support", "--bookmark-interval", "1"}
    std::string state_dir;                // empty = a fresh temporary directory, removed at the end
    double start_timeout_s = 20;
  };

  KubesimProcess() : KubesimProcess(Options{}) {}
  explicit KubesimProcess(Options options) : options_(std::move(options)) {
    const char* src = std::getenv("KUPSTREAM_SOURCE_DIR");
    if (src == nullptr) throw std::runtime_error("KUPSTREAM_SOURCE_DIR is not set");
    dir_ = std::filesystem::path(src) / "tests" / "kubesim";
    state_dir_ = options_.state_dir;
    if (state_dir_.empty()) {
      std::string tmpl = (std::filesystem::temp_directory_path() / ("kubesim-" + options_.cluster + "-XXXXXX")).string();
      if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
      state_dir_ = tmpl;
      own_dir_ = true;
    }
    std::vector<std::string> args = {python(), (dir_ / "kubesim.py").string(), "--port", "0", "--state-dir",
                                     state_dir_, "--cluster-name", options_.cluster, "--exit-with-parent"};
    if (!options_.tokens_file.empty()) {
      args.push_back("--tokens-file");
      args.push_back(options_.tokens_file);
    }
    args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
    const auto ready = std::filesystem::path(state_dir_) / "kubesim.json";
    std::error_code ec;
    std::filesystem::remove(ready, ec);
    // the server's stdout (the ready JSON line) is not wanted; stderr goes to STATE_DIR/kubesim.log
    const std::string log = (std::filesystem::path(state_dir_) / "kubesim.log").string();
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    try {
      pid_ = spawn(args, &actions);
    } catch (...) {
      posix_spawn_file_actions_destroy(&actions);
      cleanup();
      throw;
    }
    posix_spawn_file_actions_destroy(&actions);
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::milliseconds(static_cast<long>(options_.start_timeout_s * 1000));
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        cleanup();
        throw std::runtime_error("kubesim exited before it was ready");
      }
      if (std::filesystem::exists(ready)) {
        std::ifstream in(ready);
        std::stringstream ss;
        ss << in.rdbuf();
        Json j = Json::parse(ss.str());
        if (static_cast<int>(j["pid"].number()) == pid_) {
          fill(j);
          return;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    cleanup();
    throw std::runtime_error("kubesim did not become ready in time");
  }

  KubesimProcess(const KubesimProcess&) = delete;
  KubesimProcess& operator=(const KubesimProcess&) = delete;
  ~KubesimProcess() { cleanup(); }

  const KubesimInfo& info() const { return info_; }
  const std::string& token(const std::string& user = "admin") const { return info_.users.at(user).token; }

  // Admin API call (path relative to /kubesim/admin), e.g. admin("POST", "/compact").
  KubesimResult admin(std::string_view method, std::string_view path, std::string_view json_body = {}) const {
    return ctl({std::string(method), std::string(path)}, json_body);
  }
  // Kubernetes API call as a user, e.g. api("admin", "GET", "/api/v1/nodes").
  KubesimResult api(std::string_view user, std::string_view method, std::string_view path,
                    std::string_view json_body = {}) const {
    return ctl({"--user", std::string(user), "api", std::string(method), std::string(path)}, json_body);
  }

  // Stops the server now (as if it crashed); the destructor then does nothing more.
  void kill_now() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = 0;
    }
  }

 private:
  Options options_;
  std::filesystem::path dir_;
  std::string state_dir_;
  bool own_dir_ = false;
  pid_t pid_ = 0;
  KubesimInfo info_;

  static pid_t spawn(const std::vector<std::string>& args, posix_spawn_file_actions_t* actions) {
    std::vector<char*> argv;
    argv.reserve(args.size() + 1);
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = 0;
    int rc = ::posix_spawnp(&pid, argv[0], actions, nullptr, argv.data(), environ);
    if (rc != 0) throw std::runtime_error("posix_spawnp(" + args[0] + ") failed: " + std::to_string(rc));
    return pid;
  }

  void fill(const Json& j) {
    info_.pid = static_cast<int>(j["pid"].number());
    info_.cluster = j["cluster"].str();
    info_.host = j["host"].str();
    info_.port = static_cast<int>(j["port"].number());
    info_.server = j["server"].str();
    info_.ca_file = j["ca_file"].str();
    info_.admin_token = j["admin_token"].str();
    info_.admin_url = j["admin_url"].str();
    info_.state_dir = j["state_dir"].str();
    for (const auto& [name, u] : j["users"].object()) {
      KubesimUser user;
      user.token = u["token"].str();
      user.kubeconfig = u["kubeconfig"].str();
      if (u.has("client_cert")) {
        user.client_cert = u["client_cert"].str();
        user.client_key = u["client_key"].str();
        user.kubeconfig_cert = u["kubeconfig_cert"].str();
      }
      info_.users.emplace(name, std::move(user));
    }
  }

  KubesimResult ctl(std::vector<std::string> tail, std::string_view json_body) const {
    std::vector<std::string> args = {python(), (dir_ / "kubesimctl.py").string(), "--state-dir", state_dir_};
    args.insert(args.end(), tail.begin(), tail.end());
    if (!json_body.empty()) args.emplace_back(json_body);
    return run(args);
  }

  // The interpreter: $KUPSTREAM_PYTHON, else python3 resolved once to its real binary (a pyenv
  // shim costs ~0.4 s per start).
  static const std::string& python() {
    static const std::string path = [] {
      if (const char* env = std::getenv("KUPSTREAM_PYTHON"); env != nullptr && *env != '\0') return std::string(env);
      KubesimResult r = run({"python3", "-c", "import sys; print(sys.executable)"});
      std::string out = r.body;
      while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
      return (r.exit_code == 0 && !out.empty()) ? out : std::string("python3");
    }();
    return path;
  }

  // Runs a command and returns its exit code and stdout.
  static KubesimResult run(const std::vector<std::string>& args) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    pid_t pid = 0;
    try {
      pid = spawn(args, &actions);
    } catch (...) {
      posix_spawn_file_actions_destroy(&actions);
      ::close(fds[0]);
      ::close(fds[1]);
      throw;
    }
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    KubesimResult result;
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(fds[0], buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      result.body.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fds[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
  }

  void cleanup() noexcept {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
      bool reaped = false;
      while (std::chrono::steady_clock::now() < deadline) {
        if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
          reaped = true;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      if (!reaped) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
      }
      pid_ = 0;
    }
    if (own_dir_) {
      std::error_code ec;
      std::filesystem::remove_all(state_dir_, ec);
      own_dir_ = false;
    }
  }
};

}  // namespace kupstream::test
