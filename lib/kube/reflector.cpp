#include "kube/reflector.h"

#include <fmt/format.h>
#include <uv.h>

#include <algorithm>
#include <charconv>
#include <random>
#include <unordered_map>

#include "kube/decoder.h"
#include "kube/line_splitter.h"

namespace kupstream::kube {
namespace {

constexpr std::string_view kInitialEventsEnd = "k8s.io/initial-events-end";

std::optional<std::chrono::seconds> retry_after(const net::HttpResponseHead& head) {
  const std::string* v = head.find("Retry-After");
  if (!v) return std::nullopt;
  unsigned seconds = 0;
  auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), seconds);
  if (ec != std::errc{} || end != v->data() + v->size()) return std::nullopt;
  return std::chrono::seconds{std::min(seconds, 600u)};
}

// a < b for resourceVersions that are both decimal (as every real server's are); false otherwise
// (they are opaque to clients, so nothing is concluded from other forms).
bool older_resource_version(std::string_view a, std::string_view b) {
  std::uint64_t x = 0, y = 0;
  auto [ea, ca] = std::from_chars(a.data(), a.data() + a.size(), x);
  auto [eb, cb] = std::from_chars(b.data(), b.data() + b.size(), y);
  if (ca != std::errc{} || cb != std::errc{} || ea != a.data() + a.size() || eb != b.data() + b.size()) return false;
  return x < y;
}

std::string object_key(const ObjectMeta& m) { return m.namespace_ + '/' + m.name; }

}  // namespace

template <class T>
struct Reflector<T>::Impl : std::enable_shared_from_this<Reflector<T>::Impl> {
  Impl(ApiClient& c, ReflectorOptions o, ReflectorCallbacks<T> cb)
      : client(c), options(std::move(o)), callbacks(std::move(cb)),
        rng(options.seed ? options.seed : std::random_device{}()),
        resource(resource_of_path(options.path)),
        memory(options.watch_list_memory ? options.watch_list_memory : std::make_shared<WatchListMemory>()) {
    lines = LineSplitter(options.max_event_bytes);
    timer = new uv_timer_t;
    uv_timer_init(&client.loop(), timer);
    timer->data = this;
    bookmark_timer = new uv_timer_t;
    uv_timer_init(&client.loop(), bookmark_timer);
    bookmark_timer->data = this;
  }

  ApiClient& client;
  ReflectorOptions options;
  ReflectorCallbacks<T> callbacks;
  std::mt19937_64 rng;
  uv_timer_t* timer;
  std::function<void()> timer_action;
  std::string resource;                    // "endpointslices": the WatchListMemory's key
  std::shared_ptr<WatchListMemory> memory;
  uv_timer_t* bookmark_timer;              // bounds a watch-list's wait for initial-events-end
  std::uint64_t bookmark_timer_call = 0;   // the call it was armed for
  std::string waiting;                     // what on_waiting last said
  std::string note;                        // what on_note last said
  std::string fallback_floor_rv;           // the resourceVersion a timed-out stream had reached
  std::string initial_rv;                  // watch-list: reached by the initial events (rv is the copy's)
  bool stopped = false;

  std::unique_ptr<ApiCall> call;
  bool listing = false;            // the current call is a LIST page
  bool watch_established = false;  // the current watch answered 200 (not in its initial events)
  std::chrono::steady_clock::time_point watch_opened{};
  std::uint64_t watch_events = 0;  // events and bookmarks on the current watch
  std::uint64_t call_id = 0;  // handlers of replaced calls check this and go quiet
  int status = 0;             // HTTP status of the current response
  std::optional<std::chrono::seconds> retry_after_hint;
  std::string body;
  std::size_t response_bytes = 0;  // of the current LIST (all pages) or initial events, or error body
  LineSplitter lines;
  Decoder decoder;

  std::string rv;                  // last seen resourceVersion
  std::string continue_token;      // paging
  std::vector<T> pending;          // items of a LIST or of a watch-list's initial events
  std::unordered_map<std::string, std::size_t> pending_index;  // watch-list: key -> index in pending
  bool initial_events = false;     // the current watch is streaming the initial state
  bool synced = false;             // a replace was delivered at least once
  bool healthy = false;
  bool retried_unauthorized = false;
  bool relist_needed = false;      // a LIST failed part-way: the next attempt starts a fresh one
  int failures = 0;
  std::chrono::steady_clock::time_point healthy_since{};
  Counters counters;

  std::string what() const { return fmt::format("cluster \"{}\": {}", client.cluster_name(), options.what); }

  void log(LogLevel level, const std::string& text) const {
    if (options.log) options.log(level, text);
  }

  void schedule(std::chrono::milliseconds delay, std::function<void()> action) {
    timer_action = std::move(action);
    uv_timer_start(timer, [](uv_timer_t* t) {
      auto* self = static_cast<Impl*>(t->data);
      auto keep = self->shared_from_this();
      auto due = std::move(self->timer_action);
      if (due) due();
    }, static_cast<std::uint64_t>(delay.count()), 0);
  }

  // Callbacks are not cleared here: the owner may be dropping us from inside one of them, and
  // destroying a running std::function is undefined. `stopped` silences them instead; they
  // are destroyed with the Impl once no call stack holds it.
  void shutdown() {
    stopped = true;
    call.reset();
    timer_action = {};
    uv_timer_stop(timer);
    uv_close(reinterpret_cast<uv_handle_t*>(timer), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    uv_timer_stop(bookmark_timer);
    uv_close(reinterpret_cast<uv_handle_t*>(bookmark_timer), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  }

  void set_waiting(std::string text) {
    if (text == waiting) return;
    waiting = std::move(text);
    if (!stopped && callbacks.on_waiting) callbacks.on_waiting(waiting);
  }

  void set_note(std::string text) {
    if (text == note) return;
    note = std::move(text);
    if (!stopped && callbacks.on_note) callbacks.on_note(note);
  }

  // The watch-list stream of call `id` answered 200: its initial-events-end bookmark must come
  // within the bound, or the resource is listed instead.
  void arm_bookmark_timer(std::uint64_t id) {
    bookmark_timer_call = id;
    uv_timer_start(bookmark_timer, [](uv_timer_t* t) {
      auto* self = static_cast<Impl*>(t->data);
      auto keep = self->shared_from_this();
      self->on_bookmark_timeout();
    }, static_cast<std::uint64_t>(std::max<long long>(0, options.watch_list_bookmark_timeout.count())), 0);
    set_waiting(fmt::format("{}: watch-list: waiting for the initial-events-end bookmark (LIST instead after {} ms)",
                            what(), options.watch_list_bookmark_timeout.count()));
  }

  void disarm_bookmark_timer() {
    uv_timer_stop(bookmark_timer);
    bookmark_timer_call = 0;
  }

  std::string query(bool watch) const {
    std::string q = "?";
    auto add = [&](std::string_view key, std::string_view value) {
      if (q.size() > 1) q += '&';
      q += key;
      q += '=';
      q += url_encode(value);
    };
    if (!options.label_selector.empty()) add("labelSelector", options.label_selector);
    if (!options.field_selector.empty()) add("fieldSelector", options.field_selector);
    if (!watch) {
      add("limit", std::to_string(options.page_size));
      if (!continue_token.empty()) add("continue", continue_token);
    }
    return q;
  }

  void report_health(const Status& s) {
    if (s.ok() == healthy && s.ok()) return;
    healthy = s.ok();
    if (healthy) {
      healthy_since = std::chrono::steady_clock::now();
      retried_unauthorized = false;
    }
    if (!stopped && callbacks.on_health) callbacks.on_health(s);
  }

  // Starts a GET whose handlers reach this Impl only while it is the current call.
  void begin_call(std::string path, std::chrono::milliseconds idle, bool streaming) {
    const std::uint64_t id = ++call_id;
    status = 0;
    listing = !streaming;
    watch_established = false;
    watch_events = 0;
    retry_after_hint.reset();
    body.clear();
    lines.clear();
    std::weak_ptr<Impl> weak = this->shared_from_this();
    auto current = [weak, id]() -> std::shared_ptr<Impl> {
      auto self = weak.lock();
      return self && !self->stopped && self->call_id == id ? self : nullptr;
    };
    ApiHandlers h;
    h.on_head = [current, streaming](const net::HttpResponseHead& head) {
      if (auto self = current()) {
        self->status = head.status;
        self->retry_after_hint = retry_after(head);
        // An established watch proves health; a LIST only once its body decodes, and a
        // watch-list once its initial events are complete.
        if (streaming && head.status == 200) {
          self->watch_established = true;
          self->watch_opened = std::chrono::steady_clock::now();
          if (!self->initial_events) self->report_health(Status{});
          else self->arm_bookmark_timer(self->call_id);
        }
      }
    };
    h.on_body = [current, streaming](std::string_view bytes) {
      auto self = current();
      if (!self) return;
      if (streaming && self->status == 200) return self->on_watch_bytes(bytes);
      if (!self->count_response_bytes(bytes.size())) return;
      self->body.append(bytes);
    };
    h.on_complete = [current, streaming](Status s) {
      auto self = current();
      if (!self) return;
      if (!s && streaming && self->watch_established && !self->initial_events && self->lines.pending_bytes() == 0)
        return self->on_watch_end(Error{s.error().code, fmt::format("{}: {}", self->options.what, s.error().reason)});
      if (!s) return self->fail(Error{s.error().code, fmt::format("{}: {}", self->options.what, s.error().reason)});
      if (self->status != 200) return self->on_error_status();
      streaming ? self->on_watch_end(std::nullopt) : self->on_list_page();
    };
    auto result = client.get(options.path + std::move(path), std::move(h), idle);
    if (!result) return fail(result.error());
    call = std::move(*result);
  }

  // A (re)sync: watch-list when asked for and the cluster's memory does not say skip, else LIST.
  void start() {
    if (!options.watch_list) return start_list();
    const auto now = std::chrono::steady_clock::now();
    if (auto skip = memory->skip(resource, now)) {
      const auto left = std::chrono::duration_cast<std::chrono::seconds>(memory->retry_after() - (now - skip->when));
      set_note(fmt::format("watch-list skipped for {} in this cluster: it was {} {} s ago (LIST for {} s more)", resource,
                           skip->why == WatchListMemory::Why::slow ? "slow" : "refused",
                           std::chrono::duration_cast<std::chrono::seconds>(now - skip->when).count(), left.count()));
      continue_token.clear();
      return start_list();
    }
    start_watch(true);
  }

  // The bound passed without the initial-events-end bookmark: drop the stream and LIST. Nothing
  // of the stream was delivered (its items wait in `pending` until the bookmark), so the LIST's
  // replace cannot duplicate or lose anything; it must not be older than the stream was.
  void on_bookmark_timeout() {
    if (stopped || !initial_events || bookmark_timer_call != call_id) return;
    bookmark_timer_call = 0;
    ++counters.watch_list_fallbacks;
    memory->record(resource, WatchListMemory::Why::slow, std::chrono::steady_clock::now());
    const auto bound = options.watch_list_bookmark_timeout.count();
    log(LogLevel::info, fmt::format("{}: watch-list: no initial-events-end bookmark within {} ms ({} initial events "
                                    "so far); falling back to LIST + watch",
                                    what(), bound, pending.size()));
    fallback_floor_rv = initial_rv;
    call.reset();
    ++call_id;
    lines.clear();
    initial_events = false;
    pending.clear();
    pending_index.clear();
    set_waiting(fmt::format("{}: watch-list: no initial-events-end bookmark within {} ms; listing instead", what(), bound));
    if (stopped) return;
    set_note(fmt::format("watch-list: no initial-events-end bookmark within {} ms; fell back to LIST + watch "
                         "(watch-list skipped for {} in this cluster for {} s)",
                         bound, resource, std::chrono::duration_cast<std::chrono::seconds>(memory->retry_after()).count()));
    if (stopped) return;
    continue_token.clear();
    start_list();
  }

  // Bytes a LIST (all its pages), a watch-list's initial events or an error body may hold in
  // memory: over max_response_bytes the call fails (http_limit_exceeded, naming the limit).
  bool count_response_bytes(std::size_t n) {
    response_bytes += n;
    if (response_bytes <= options.max_response_bytes) return true;
    fail(Error{Errc::http_limit_exceeded, fmt::format("{}: response larger than max_response_bytes ({} bytes)", what(),
                                                      options.max_response_bytes)});
    return false;
  }

  void start_list() {
    if (continue_token.empty()) {
      pending.clear();
      response_bytes = 0;
    }
    ++counters.lists;
    begin_call(query(false), std::chrono::milliseconds{0}, false);
  }

  void on_list_page() {
    auto list = decoder.decode_list<T>(body);
    // A LIST is far larger than the watch events that follow: give its buffers back rather
    // than hold a LIST's size for the life of the watch (60 MB across 60 services of 1,000
    // endpoints).
    if (body.capacity() > (64u << 10)) std::string().swap(body);
    body.clear();
    decoder.release_memory();
    if (!list) return fail(Error{Errc::decode_error, fmt::format("{}: LIST: {}", what(), list.error().reason)});
    for (auto& item : list->items) pending.push_back(std::move(item));
    continue_token = list->continue_token;
    if (!continue_token.empty()) return start_list();
    // resourceVersions only move forward: a LIST without resourceVersion is a consistent read,
    // so it cannot be older than what the dropped watch-list stream showed; if it were, the
    // copy would go back in time, so it is retried instead.
    if (!fallback_floor_rv.empty() && older_resource_version(list->resource_version, fallback_floor_rv))
      return fail(Error{Errc::server_error, fmt::format("{}: LIST returned resourceVersion {}, older than {} of the "
                                                        "watch-list stream it replaces",
                                                        what(), list->resource_version, fallback_floor_rv)});
    fallback_floor_rv.clear();
    rv = list->resource_version;
    deliver_replace();
    if (stopped) return;
    start_watch(false);
  }

  void deliver_replace() {
    auto keep = this->shared_from_this();
    synced = true;
    pending_index.clear();
    report_health(Status{});
    if (stopped) return;
    if (callbacks.on_replace) callbacks.on_replace(std::move(pending), rv);
    pending.clear();
    set_waiting("");
  }

  void start_watch(bool initial) {
    initial_events = initial;
    response_bytes = 0;
    if (initial) {
      pending.clear();
      pending_index.clear();
      initial_rv.clear();
      ++counters.watch_lists;
    }
    ++counters.watches;
    std::uniform_int_distribution<long long> spread(options.watch_timeout.count(), 2 * options.watch_timeout.count() - 1);
    const auto timeout = std::chrono::seconds{std::max<long long>(1, spread(rng))};
    std::string q = query(true);
    q += fmt::format("&watch=1&allowWatchBookmarks=true&timeoutSeconds={}", timeout.count());
    if (initial)
      q += "&sendInitialEvents=true&resourceVersionMatch=NotOlderThan";
    else
      q += "&resourceVersion=" + url_encode(rv);
    const auto idle = options.idle_timeout.count() > 0
                          ? options.idle_timeout
                          : std::chrono::duration_cast<std::chrono::milliseconds>(timeout + std::chrono::seconds{30});
    begin_call(std::move(q), idle, true);
  }

  void on_watch_bytes(std::string_view bytes) {
    const std::uint64_t id = call_id;
    auto keep = this->shared_from_this();
    if (initial_events && !count_response_bytes(bytes.size())) return;
    if (Status s = lines.append(bytes); !s) return fail(Error{Errc::decode_error, fmt::format("{}: WATCH: {}", what(), s.error().reason)});
    while (!stopped && call_id == id) {
      auto line = lines.next();
      if (!line) break;
      handle_event(*line);
    }
  }

  void handle_event(std::string_view line) {
    auto ev = decoder.decode_event<T>(line);
    if (!ev) return fail(Error{Errc::decode_error, fmt::format("{}: WATCH event: {}", what(), ev.error().reason)});
    switch (ev->type) {
      case EventType::error:
        if (ev->status.code == 410) {
          log(LogLevel::info, fmt::format("{}: resourceVersion {} expired ({}); relisting", what(), rv, ev->status.message));
          ++counters.relists_after_gone;
          continue_token.clear();
          call.reset();
          ++call_id;
          disarm_bookmark_timer();
          initial_events = false;
          return start();
        }
        return fail(Error{Errc::server_error, fmt::format("{}: WATCH error {} {}: {}", what(), ev->status.code,
                                                          ev->status.reason, ev->status.message)});
      case EventType::bookmark:
        ++counters.bookmarks;
        ++watch_events;
        // The copy's resourceVersion moves only with the copy: during the initial events the
        // owner still has the previous state (a relist must not resume from a newer version).
        if (!ev->resource_version.empty()) (initial_events ? initial_rv : rv) = ev->resource_version;
        if (initial_events && ev->object.metadata.annotation(kInitialEventsEnd) == "true") {
          initial_events = false;
          rv = initial_rv;
          disarm_bookmark_timer();
          memory->forget(resource);
          set_note("");
          if (stopped) return;
          deliver_replace();
        }
        return;
      default:
        ++counters.events;
        ++watch_events;
        if (!ev->resource_version.empty()) (initial_events ? initial_rv : rv) = ev->resource_version;
        if (initial_events) return add_initial(ev->type, std::move(ev->object));
        if (!stopped && callbacks.on_event) callbacks.on_event(ev->type, std::move(ev->object), rv);
    }
  }

  // Before the initial-events-end bookmark, every event belongs to the initial state: the server
  // may send changes made after the synthetic ADDED events first (a v1.28 server does, when the
  // write that releases the bookmark is in the watched namespace). Keyed, so a change replaces
  // its object and a deletion removes it: no duplicates, nothing deleted kept.
  void add_initial(EventType type, T object) {
    std::string key = object_key(object.metadata);
    auto it = pending_index.find(key);
    if (type == EventType::deleted) {
      if (it == pending_index.end()) return;
      const std::size_t at = it->second;
      pending_index.erase(it);
      if (at + 1 != pending.size()) {
        pending[at] = std::move(pending.back());
        pending_index[object_key(pending[at].metadata)] = at;
      }
      pending.pop_back();
      return;
    }
    if (it != pending_index.end()) {
      pending[it->second] = std::move(object);
      return;
    }
    pending_index.emplace(std::move(key), pending.size());
    pending.push_back(std::move(object));
  }

  // The current watch ended: normally (`error` empty: the server's timeoutSeconds) or by a
  // connection error after it was established (an API server restart, a proxy's idle close).
  void on_watch_end(std::optional<Error> error) {
    if (lines.pending_bytes() > 0)
      return fail(Error{Errc::decode_error, fmt::format("{}: WATCH stream ended inside an event ({} bytes cut off)", what(),
                                                        lines.pending_bytes())});
    if (initial_events) {
      // The server closed before the initial state was complete: start over (fail() resets it).
      return fail(Error{Errc::connection_closed, fmt::format("{}: watch-list ended before its initial events", what())});
    }
    // A watch that lived a while or carried events is resumed at once from the last
    // resourceVersion, without touching the health. One that ended right after it began, with
    // nothing in it, is a failure: resuming at once could spin against a broken server.
    // An idle timeout is not "short": the watch was silent for the whole idle interval.
    const bool idle = error && error->code == make_error_code(Errc::timed_out);
    const bool short_lived =
        !idle && std::chrono::steady_clock::now() - watch_opened < std::chrono::seconds{1} && watch_events == 0;
    if (short_lived)
      return fail(error ? std::move(*error)
                        : Error{Errc::connection_closed, fmt::format("{}: WATCH ended right after it began", what())});
    if (error) log(LogLevel::info, fmt::format("{}; resuming the watch", error->reason));
    call.reset();
    start_watch(false);
  }

  void on_error_status() {
    std::string message = body.substr(0, 300);
    if (auto st = decoder.decode_status(body); st && !st->message.empty()) message = st->message;
    switch (status) {
      case 401:
        // Every 401 makes the next request fetch fresh credentials (a rotated token file, a
        // new exec credential); only the first of a failure streak retries without backoff.
        client.invalidate_credentials();
        if (!retried_unauthorized) {
          retried_unauthorized = true;
          log(LogLevel::info, fmt::format("{}: 401 Unauthorized; refreshing credentials and retrying", what()));
          call.reset();
          ++call_id;
          return resume();
        }
        return fail(Error{Errc::unauthorized, fmt::format("{}: 401 Unauthorized: {}", what(), message)});
      case 403:
        return fail(Error{Errc::forbidden, fmt::format("{}: 403 Forbidden: {}", what(), message)});
      case 404:
        return fail(Error{Errc::not_found, fmt::format("{}: 404 Not Found: {}", what(), message)});
      case 410:
        ++counters.relists_after_gone;
        log(LogLevel::info, fmt::format("{}: 410 Gone ({}); relisting", what(), message));
        continue_token.clear();
        call.reset();
        ++call_id;
        if (listing) return start_list();
        initial_events = false;
        return start();
      case 422:
        if (initial_events) {
          log(LogLevel::info, fmt::format("{}: server refused watch-list (422: {}); using LIST", what(), message));
          memory->record(resource, WatchListMemory::Why::refused, std::chrono::steady_clock::now());
          initial_events = false;
          call.reset();
          ++call_id;
          set_note(fmt::format("watch-list refused by the server (422); using LIST (watch-list skipped for {} in this "
                               "cluster for {} s)",
                               resource, std::chrono::duration_cast<std::chrono::seconds>(memory->retry_after()).count()));
          if (stopped) return;
          return start_list();
        }
        break;
      case 429:
        return fail(Error{Errc::too_many_requests, fmt::format("{}: 429 Too Many Requests: {}", what(), message)});
      default:
        break;
    }
    return fail(Error{Errc::server_error, fmt::format("{}: HTTP {}: {}", what(), status, message)});
  }

  std::chrono::milliseconds backoff() {
    const auto now = std::chrono::steady_clock::now();
    if (healthy && now - healthy_since >= options.backoff_reset_after) failures = 0;
    ++failures;
    double delay = static_cast<double>(options.backoff_initial.count());
    for (int i = 1; i < failures && delay < options.backoff_max.count(); ++i) delay *= 2;
    delay = std::min(delay, static_cast<double>(options.backoff_max.count()));
    std::uniform_real_distribution<double> jitter(1.0, 1.25);
    return std::chrono::milliseconds{static_cast<long long>(delay * jitter(rng))};
  }

  // After a failure: a LIST cut short starts over (its pages belong together); a synced
  // reflector resumes watching from its resourceVersion (a 410 then brings a relist).
  void resume() {
    if (relist_needed) {
      relist_needed = false;
      continue_token.clear();
      return start();
    }
    if (!synced) return start();
    if (rv.empty()) return start_list();
    start_watch(false);
  }

  void fail(Error error) {
    auto keep = this->shared_from_this();
    ++counters.failures;
    if (listing) relist_needed = true;
    listing = false;
    call.reset();
    ++call_id;
    lines.clear();
    disarm_bookmark_timer();
    if (initial_events) {
      // A relist by watch-list broke off: the next attempt relists again (the copy's
      // resourceVersion may be the expired one that caused it).
      relist_needed = true;
      initial_events = false;
      pending.clear();
      pending_index.clear();
    }
    auto delay = backoff();
    if (retry_after_hint && (status == 429 || status == 503))
      delay = std::max(delay, std::chrono::duration_cast<std::chrono::milliseconds>(*retry_after_hint));
    log(LogLevel::warning, fmt::format("{}; retrying in {} ms", error.reason, delay.count()));
    report_health(Status{std::move(error)});
    if (stopped) return;
    set_waiting("");
    if (stopped) return;
    schedule(delay, [this] { resume(); });
  }
};

template <class T>
Reflector<T>::Reflector(ApiClient& client, ReflectorOptions options, ReflectorCallbacks<T> callbacks)
    : impl_(std::make_shared<Impl>(client, std::move(options), std::move(callbacks))) {}

template <class T>
Reflector<T>::~Reflector() {
  impl_->shutdown();
}

template <class T>
void Reflector<T>::start() {
  impl_->schedule(std::chrono::milliseconds{0}, [impl = impl_.get()] { impl->start(); });
}

template <class T>
const std::string& Reflector<T>::resource_version() const noexcept {
  return impl_->rv;
}

template <class T>
typename Reflector<T>::Counters Reflector<T>::counters() const noexcept {
  return impl_->counters;
}

template class Reflector<EndpointSlice>;
template class Reflector<Service>;
template class Reflector<Node>;

}  // namespace kupstream::kube
