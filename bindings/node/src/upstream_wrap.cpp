#include "upstream_wrap.h"

#include <fmt/format.h>
#include <strings.h>

#include <chrono>
#include <map>

#include "cluster_wrap.h"
#include "kupstream/upstream_document.h"

namespace kupnode {

using kupstream::Errc;

namespace {

double epoch_ms(std::chrono::system_clock::time_point t) {
  return static_cast<double>(std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count());
}

Napi::Object state_object(Napi::Env env, const std::string& service, const kupstream::WatchState& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("service", service);
  o.Set("phase", kupstream::to_string(s.phase));
  o.Set("reason", s.reason);
  o.Set("since", Napi::Date::New(env, epoch_ms(s.since)));
  o.Set("generation", Napi::Number::New(env, static_cast<double>(s.generation)));
  o.Set("resourceVersion", s.resource_version);
  return o;
}

Napi::Object snapshot_object(Napi::Env env, UpstreamCore& core) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("upstream", core.name);
  o.Set("ready", core.upstream && core.upstream->ready());
  Napi::Array endpoints = Napi::Array::New(env);
  if (core.upstream) {
    kupstream::PickerPtr picker = core.upstream->picker();
    const auto& list = picker->endpoints();
    for (std::uint32_t i = 0; i < list.size(); ++i) {
      Napi::Object e = Napi::Object::New(env);
      e.Set("address", list[i].endpoint->address);
      e.Set("port", list[i].endpoint->port);
      e.Set("pod", list[i].endpoint->pod_name.str());
      e.Set("node", list[i].endpoint->node_name.str());
      e.Set("service", core.service_of(picker, i));
      e.Set("weight", list[i].weight);
      endpoints.Set(i, e);
    }
  }
  o.Set("endpoints", endpoints);
  Napi::Array services = Napi::Array::New(env);
  for (std::size_t i = 0; i < core.watchers.size(); ++i) {
    Napi::Object s = Napi::Object::New(env);
    s.Set("service", core.services[i]);
    kupstream::EndpointSetPtr set = core.watchers[i] ? core.watchers[i]->current() : nullptr;
    kupstream::WatchState state = core.watchers[i] ? core.watchers[i]->state() : kupstream::WatchState{};
    s.Set("phase", kupstream::to_string(state.phase));
    s.Set("generation", Napi::Number::New(env, set ? static_cast<double>(set->generation) : 0));
    s.Set("ready", Napi::Number::New(env, set ? static_cast<double>(set->ready.size()) : 0));
    s.Set("draining", Napi::Number::New(env, set ? static_cast<double>(set->draining.size()) : 0));
    services.Set(static_cast<std::uint32_t>(i), s);
  }
  o.Set("services", services);
  return o;
}

Napi::Array string_array(Napi::Env env, const std::vector<std::string>& v) {
  Napi::Array a = Napi::Array::New(env, v.size());
  for (std::uint32_t i = 0; i < v.size(); ++i) a.Set(i, v[i]);
  return a;
}

}  // namespace

const std::string& UpstreamCore::service_of(const kupstream::PickerPtr& picker, std::uint32_t index) {
  static const std::string none;
  if (picker != table_picker) {
    // Match the Picker's endpoints to the services' current snapshots by address and port.
    std::map<std::string, std::uint32_t, std::less<>> where;
    for (std::uint32_t s = 0; s < watchers.size(); ++s) {
      kupstream::EndpointSetPtr set = watchers[s] ? watchers[s]->current() : nullptr;
      if (!set) continue;
      for (const auto* list : {&set->ready, &set->draining})
        for (const auto& e : *list) where.emplace(e.host_port(), s);
    }
    table_service.clear();
    for (const auto& w : picker->endpoints()) {
      auto it = where.find(w.endpoint->host_port());
      table_service.push_back(it == where.end() ? UINT32_MAX : it->second);
    }
    table_picker = picker;
  }
  if (index >= table_service.size() || table_service[index] >= services.size()) return none;
  return services[table_service[index]];
}

std::vector<std::unique_ptr<PendingRequest>> UpstreamCore::shutdown() {
  wrap = nullptr;
  std::vector<std::unique_ptr<PendingRequest>> canceled;
  for (auto& [id, p] : requests) canceled.push_back(std::move(p));
  requests.clear();
  for (auto& p : canceled) p->request.reset();  // cancels: no handler runs afterwards
  watchers.clear();
  table_picker.reset();
  upstream.reset();
  clusters.clear();
  return canceled;
}

Napi::Function UpstreamWrap::define(Napi::Env env) {
  return DefineClass(env, "Upstream",
                     {InstanceMethod<&UpstreamWrap::close>("close"), InstanceMethod<&UpstreamWrap::ref_js>("ref"),
                      InstanceMethod<&UpstreamWrap::unref_js>("unref"), InstanceMethod<&UpstreamWrap::pick>("pick"),
                      InstanceMethod<&UpstreamWrap::request>("_request"),
                      InstanceMethod<&UpstreamWrap::control>("_control"),
                      InstanceMethod<&UpstreamWrap::stats>("stats"), InstanceMethod<&UpstreamWrap::metrics>("metrics"),
                      InstanceMethod<&UpstreamWrap::snapshot>("snapshot"),
                      InstanceAccessor<&UpstreamWrap::get_name>("name"),
                      InstanceAccessor<&UpstreamWrap::get_ready>("ready"),
                      InstanceAccessor<&UpstreamWrap::get_closed>("closed"),
                      InstanceAccessor<&UpstreamWrap::get_hash_header>("hashHeader")});
}

// new Upstream(text, lineNumbers, clusterNames[], clusters[], source?) — index.js normalizes the
// user's arguments into this; `source` prefixes the document's problems (`upstream "web"`).
UpstreamWrap::UpstreamWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<UpstreamWrap>(info) {
  Napi::Env env = info.Env();
  env_ = env_state(env);
  auto fail = [&](Errc code, const std::string& reason) {
    make_error(env, kupstream::Error{code, reason}).ThrowAsJavaScriptException();
  };
  if (info.Length() < 4 || !info[0].IsString() || !info[2].IsArray() || !info[3].IsArray())
    {
    fail(Errc::invalid_argument, "native Upstream(text, lineNumbers, names, clusters): bad arguments");
    return;
  }
  kupstream::UpstreamDocumentOptions doc_options;
  doc_options.source = info.Length() > 4 && info[4].IsString() ? info[4].As<Napi::String>().Utf8Value() : "upstream config";
  doc_options.line_numbers = info[1].ToBoolean().Value();
  auto doc = kupstream::parse_upstream_document(info[0].As<Napi::String>().Utf8Value(), doc_options);
  if (!doc) {
    make_error(env, doc.error()).ThrowAsJavaScriptException();
    return;
  }
  auto core = std::make_shared<UpstreamCore>();
  core->env = env_;
  core->name = doc->config.name;
  core->hash_header = doc->hash_header;
  const std::string who = fmt::format("upstream \"{}\"", core->name);

  kupstream::ClusterMap map;
  Napi::Array names = info[2].As<Napi::Array>();
  Napi::Array clusters = info[3].As<Napi::Array>();
  for (std::uint32_t i = 0; i < names.Length() && i < clusters.Length(); ++i) {
    std::string name = names.Get(i).ToString().Utf8Value();
    Napi::Value c = clusters.Get(i);
    if (!c.IsObject() || !c.As<Napi::Object>().InstanceOf(env_cluster_ctor(env)))
      {
    fail(Errc::invalid_argument, fmt::format("{}: clusters[\"{}\"] is not a Cluster", who, name));
    return;
  }
    ClusterWrap* cw = ClusterWrap::Unwrap(c.As<Napi::Object>());
    if (!cw->client())
      {
    fail(Errc::invalid_argument, fmt::format("{}: cluster \"{}\" is closed", who, cw->name()));
    return;
  }
    map[name] = cw->client().get();
    core->clusters.push_back(cw->client());
  }

  std::weak_ptr<UpstreamCore> weak = core;
  doc->options.log = [weak](kupstream::LogLevel level, std::string_view message) {
    auto c = weak.lock();
    if (!c || !c->wrap) return;
    UpstreamWrap* w = c->wrap;
    Napi::Env e = w->Env();
    Napi::HandleScope scope(e);
    Napi::Object self = w->Value();
    Napi::Value emit = self.Get("emit");
    if (!emit.IsFunction()) return;
    call_js(e, self, emit.As<Napi::Function>(),
            {Napi::String::New(e, "log"), Napi::String::New(e, kupstream::log_level_name(level)),
             Napi::String::New(e, message.data(), message.size())},
            w->context());
  };
  std::vector<kupstream::ServiceRef> refs = doc->config.services;
  auto upstream = kupstream::Upstream::create(*env_->loop(), std::move(doc->config), map, std::move(doc->options));
  if (!upstream) {
    std::string reason = upstream.error().reason;
    if (reason.find(core->name) == std::string::npos) reason = fmt::format("{}: {}", who, reason);
    {
    fail(static_cast<Errc>(upstream.error().code.value()), reason);
    return;
  }
  }
  core->upstream = std::move(*upstream);

  // The Upstream subscribed first, so when these run it has already rebuilt its Picker.
  for (std::size_t i = 0; i < refs.size(); ++i) {
    core->services.push_back(refs[i].to_string());
    kupstream::EndpointWatcherCallbacks cb;
    cb.on_update = [weak](const kupstream::EndpointSetPtr&) {
      auto c = weak.lock();
      if (!c || !c->wrap) return;
      Napi::Env e = c->wrap->Env();
      Napi::HandleScope scope(e);
      c->wrap->emit("change", snapshot_object(e, *c));
    };
    cb.on_state = [weak, i](const kupstream::WatchState& state) {
      auto c = weak.lock();
      if (!c || !c->wrap) return;
      Napi::Env e = c->wrap->Env();
      Napi::HandleScope scope(e);
      c->wrap->emit("state", state_object(e, c->services[i], state));
    };
    auto watch = map.find(refs[i].cluster)->second->watch(refs[i], std::move(cb));
    core->watchers.push_back(watch ? std::move(*watch) : nullptr);
  }

  core_ = std::move(core);
  context_ = std::make_unique<Napi::AsyncContext>(env, "kupstream.Upstream", info.This().As<Napi::Object>());
  core_->wrap = this;
  open_ = true;
  ++env_->live_upstreams;
  env_->hold();
  set_held(true);
}

UpstreamWrap::~UpstreamWrap() {
  held_ = false;
  if (!open_) return;
  if (refd_) env_->release();
  core_->wrap = nullptr;
  // Collected while open: never destroy library objects inside the collector; a later loop turn.
  env_->defer([core = std::move(core_), env = env_] {
    env->live_requests -= core->requests.size();
    core->shutdown();
    --env->live_upstreams;
  });
}

void UpstreamWrap::set_held(bool held) {
  if (held == held_) return;
  held_ = held;
  if (held) {
    Ref();
  } else {
    Unref();
  }
}

void UpstreamWrap::emit(const char* event, napi_value payload) {
  Napi::Env env = Env();
  Napi::Object self = Value();
  Napi::Value fn = self.Get("emit");
  if (!fn.IsFunction()) return;
  call_js(env, self, fn.As<Napi::Function>(), {Napi::String::New(env, event), payload}, *context_);
}

Napi::Value UpstreamWrap::close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!open_) return env.Undefined();
  open_ = false;
  env_->live_requests -= core_->requests.size();
  auto canceled = core_->shutdown();
  --env_->live_upstreams;
  if (refd_) env_->release();
  set_held(false);
  // Work pending at shutdown completes once, with operation_canceled (CONVENTIONS #5).
  for (auto& p : canceled) {
    Napi::Error err = make_error(
        env, kupstream::Error{Errc::operation_canceled, fmt::format("upstream \"{}\": closed", core_->name)});
    if (p->streamed)
      p->callback.Call({Napi::Number::New(env, 2), err.Value()});
    else
      p->callback.Call({err.Value()});
    if (env.IsExceptionPending()) break;
  }
  return env.Undefined();
}

Napi::Value UpstreamWrap::ref_js(const Napi::CallbackInfo& info) {
  if (open_ && !refd_) {
    refd_ = true;
    env_->hold();
    set_held(true);
  }
  return info.This();
}

Napi::Value UpstreamWrap::unref_js(const Napi::CallbackInfo& info) {
  if (open_ && refd_) {
    refd_ = false;
    env_->release();
    set_held(false);
  }
  return info.This();
}

Napi::Value UpstreamWrap::pick(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!open_) {
    make_error(env, {Errc::operation_canceled, fmt::format("upstream \"{}\": closed", core_ ? core_->name : "")})
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::uint64_t hash = 0;
  if (info.Length() > 0 && info[0].IsString()) hash = kupstream::hash_key(info[0].As<Napi::String>().Utf8Value());
  else if (info.Length() > 0 && info[0].IsNumber()) hash = static_cast<std::uint64_t>(info[0].As<Napi::Number>().Int64Value());
  else if (info.Length() > 0 && info[0].IsBigInt()) {
    bool lossless = false;
    hash = info[0].As<Napi::BigInt>().Uint64Value(&lossless);
  }
  kupstream::PickerPtr picker = core_->upstream->picker();
  kupstream::PickResult r = picker->pick(hash);
  if (!r) {
    std::string why = picker->no_endpoint_reason();
    make_error(env, {Errc::no_endpoint, fmt::format("upstream \"{}\": no endpoint{}{}", core_->name,
                                                    why.empty() ? "" : ": ", why)})
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("address", r.endpoint->address);
  o.Set("port", r.endpoint->port);
  o.Set("pod", r.endpoint->pod_name.str());
  o.Set("service", core_->service_of(picker, r.index));
  return o;
}

// _request(method, path, headers[name, value, ...], body, clientAddress, clientHost, clientScheme,
//          hashKey, streamed, callback) → request id.
// Buffered: callback(err, status, rawHeaders, body, pod, attempts) once.
// Streamed: callback(0, status, rawHeaders, pod, attempts); callback(1, chunk), inside which the
//           JS side calls _control(id, 0) to pause; callback(2, err|null) once at the end.
Napi::Value UpstreamWrap::request(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto throw_error = [&](const kupstream::Error& e) {
    make_error(env, e).ThrowAsJavaScriptException();
    return env.Undefined();
  };
  if (!open_) return throw_error({Errc::operation_canceled, fmt::format("upstream \"{}\": closed", core_->name)});
  if (info.Length() < 10 || !info[9].IsFunction())
    return throw_error({Errc::invalid_argument, "native _request: bad arguments"});
  kupstream::ForwardRequest req;
  if (info[0].IsString()) req.method = info[0].As<Napi::String>().Utf8Value();
  if (info[1].IsString()) req.target = info[1].As<Napi::String>().Utf8Value();
  if (info[2].IsArray()) {
    Napi::Array h = info[2].As<Napi::Array>();
    const std::uint32_t n = h.Length();
    req.headers.reserve(n / 2);
    for (std::uint32_t i = 0; i + 1 < n; i += 2)
      req.headers.emplace_back(h.Get(i).ToString().Utf8Value(), h.Get(i + 1).ToString().Utf8Value());
  }
  if (info[3].IsBuffer()) {
    auto b = info[3].As<Napi::Buffer<char>>();
    req.body.assign(b.Data(), b.Length());
  } else if (info[3].IsString()) {
    req.body = info[3].As<Napi::String>().Utf8Value();
  }
  if (info[4].IsString()) req.client_address = info[4].As<Napi::String>().Utf8Value();
  if (info[5].IsString()) req.client_host = info[5].As<Napi::String>().Utf8Value();
  if (info[6].IsString()) req.client_scheme = info[6].As<Napi::String>().Utf8Value();
  if (info[7].IsString()) {
    req.hash = kupstream::hash_key(info[7].As<Napi::String>().Utf8Value());
  } else if (info[7].IsNumber()) {
    req.hash = static_cast<std::uint64_t>(info[7].As<Napi::Number>().Int64Value());
  } else if (!core_->hash_header.empty()) {
    for (const auto& [name, value] : req.headers)
      if (strcasecmp(name.c_str(), core_->hash_header.c_str()) == 0) {
        req.hash = kupstream::hash_key(value);
        break;
      }
  }
  const bool streamed = info[8].ToBoolean().Value();

  auto pending = std::make_unique<PendingRequest>();
  pending->streamed = streamed;
  pending->callback = Napi::Persistent(info[9].As<Napi::Function>());
  const std::uint64_t id = core_->next_request++;
  std::weak_ptr<UpstreamCore> weak = core_;

  kupstream::ForwardHandlers handlers;
  handlers.on_head = [weak, id](const kupstream::ForwardResponseHead& head) {
    auto c = weak.lock();
    if (!c) return;
    auto it = c->requests.find(id);
    if (it == c->requests.end()) return;
    PendingRequest& p = *it->second;
    p.status = head.status;
    p.pod.assign(head.pod);
    p.attempts = head.attempts;
    p.raw_headers.reserve(head.headers.size() * 2);
    for (const auto& [name, value] : head.headers) {
      p.raw_headers.emplace_back(name);
      p.raw_headers.emplace_back(value);
    }
    if (p.streamed && c->wrap) c->wrap->deliver_head(p);
  };
  handlers.on_body = [weak, id](std::string_view chunk) {
    auto c = weak.lock();
    if (!c) return;
    auto it = c->requests.find(id);
    if (it == c->requests.end()) return;
    PendingRequest& p = *it->second;
    if (!p.streamed) {
      p.body.append(chunk);
      return;
    }
    // Backpressure: the JS side calls _control(id, pause) inside the callback.
    if (c->wrap) c->wrap->deliver_chunk(p, chunk);
  };
  handlers.on_complete = [weak, id](kupstream::Status status) {
    auto c = weak.lock();
    if (!c) return;
    auto it = c->requests.find(id);
    if (it == c->requests.end()) return;
    std::unique_ptr<PendingRequest> p = std::move(it->second);
    c->requests.erase(it);
    --c->env->live_requests;
    if (c->wrap) c->wrap->complete(std::move(p), status);
  };
  auto started = core_->upstream->forward(std::move(req), std::move(handlers));
  if (!started) {
    kupstream::Error e = started.error();
    if (e.reason.find(core_->name) == std::string::npos)
      e.reason = fmt::format("upstream \"{}\": {}", core_->name, e.reason);
    return throw_error(e);
  }
  pending->request = std::move(*started);
  core_->requests.emplace(id, std::move(pending));
  ++env_->live_requests;
  return Napi::Number::New(env, static_cast<double>(id));
}

void UpstreamWrap::deliver_head(PendingRequest& p) {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  call_js(env, Value(), p.callback.Value(),
          {Napi::Number::New(env, 0), Napi::Number::New(env, p.status), string_array(env, p.raw_headers),
           Napi::String::New(env, p.pod), Napi::Number::New(env, p.attempts)},
          *context_);
}

void UpstreamWrap::deliver_chunk(PendingRequest& p, std::string_view chunk) {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  Napi::Function fn = p.callback.Value();  // `p` may be gone after the call (aborted inside it)
  call_js(env, Value(), fn, {Napi::Number::New(env, 1), Napi::Buffer<char>::Copy(env, chunk.data(), chunk.size())},
          *context_);
}

void UpstreamWrap::complete(std::unique_ptr<PendingRequest> p, const kupstream::Status& status) {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  Napi::Value err = env.Null();
  if (!status) err = make_error(env, status.error()).Value();
  Napi::Function fn = p->callback.Value();
  if (p->streamed) {
    call_js(env, Value(), fn, {Napi::Number::New(env, 2), err}, *context_);
    return;
  }
  if (!status) {
    call_js(env, Value(), fn, {err}, *context_);
    return;
  }
  // The body is handed over without a copy: the Buffer owns the string.
  auto* body = new std::string(std::move(p->body));
  Napi::Buffer<char> buf = Napi::Buffer<char>::New(env, body->data(), body->size(),
                                                   [](Napi::Env, char*, std::string* s) { delete s; }, body);
  call_js(env, Value(), fn,
          {env.Null(), Napi::Number::New(env, p->status), string_array(env, p->raw_headers), buf,
           Napi::String::New(env, p->pod), Napi::Number::New(env, p->attempts)},
          *context_);
}

// _control(id, op): 0 pause, 1 resume, 2 abort (drops the request: no callback afterwards).
Napi::Value UpstreamWrap::control(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!open_ || info.Length() < 2) return env.Undefined();
  const auto id = static_cast<std::uint64_t>(info[0].As<Napi::Number>().Int64Value());
  const int op = info[1].As<Napi::Number>().Int32Value();
  auto it = core_->requests.find(id);
  if (it == core_->requests.end()) return env.Undefined();
  if (op == 0) it->second->request->pause_body();
  else if (op == 1) it->second->request->resume_body();
  else {
    auto p = std::move(it->second);
    core_->requests.erase(it);
    --env_->live_requests;
    p->request.reset();
  }
  return env.Undefined();
}

Napi::Value UpstreamWrap::stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!open_) return env.Null();
  kupstream::UpstreamStats s = core_->upstream->stats();
  auto num = [&](auto v) { return Napi::Number::New(env, static_cast<double>(v)); };
  Napi::Object o = Napi::Object::New(env);
  o.Set("upstream", core_->name);
  o.Set("requests", num(s.requests));
  o.Set("failures", num(s.failures));
  o.Set("retries", num(s.retries));
  o.Set("noEndpoint", num(s.no_endpoint));
  o.Set("inFlight", num(s.in_flight));
  o.Set("panic", s.panic);
  o.Set("usingDraining", s.using_draining);
  o.Set("latencySumSeconds", num(s.latency_sum_seconds));
  Napi::Array buckets = Napi::Array::New(env);
  for (std::uint32_t i = 0; i < s.latency_counts.size(); ++i) {
    Napi::Object b = Napi::Object::New(env);
    b.Set("le", i < s.latency_buckets_seconds.size() ? num(s.latency_buckets_seconds[i])
                                                     : Napi::Number::New(env, INFINITY));
    b.Set("count", num(s.latency_counts[i]));
    buckets.Set(i, b);
  }
  o.Set("latency", buckets);
  Napi::Array pods = Napi::Array::New(env);
  for (std::uint32_t i = 0; i < s.pods.size(); ++i) {
    const auto& p = s.pods[i];
    Napi::Object po = Napi::Object::New(env);
    po.Set("pod", p.pod);
    po.Set("podName", p.pod_name);
    po.Set("service", p.service);
    po.Set("weight", num(p.weight));
    po.Set("ejected", p.ejected);
    po.Set("draining", p.draining);
    po.Set("requests", num(p.requests));
    po.Set("failures", num(p.failures));
    po.Set("ejections", num(p.ejections));
    po.Set("inFlight", num(p.in_flight));
    po.Set("zone", p.zone);
    pods.Set(i, po);
  }
  o.Set("pods", pods);
  Napi::Array services = Napi::Array::New(env);
  for (std::uint32_t i = 0; i < s.services.size(); ++i) {
    const auto& sv = s.services[i];
    Napi::Object so = state_object(env, sv.ref.to_string(), sv.state);
    so.Set("stalenessMs", num(sv.staleness.count()));
    so.Set("ready", num(sv.ready));
    so.Set("draining", num(sv.draining));
    services.Set(i, so);
  }
  o.Set("services", services);
  const kupstream::LocalityStats& l = s.locality;
  Napi::Object lo = Napi::Object::New(env);
  lo.Set("enabled", l.enabled);
  lo.Set("zone", l.zone);
  lo.Set("mode", kupstream::to_string(l.mode));
  lo.Set("hints", l.hints);
  lo.Set("reason", l.reason);
  lo.Set("localShare", num(l.local_share));
  lo.Set("localRequests", num(l.local_requests));
  lo.Set("crossZoneRequests", num(l.cross_zone_requests));
  Napi::Array zones = Napi::Array::New(env);
  for (std::uint32_t i = 0; i < l.zones.size(); ++i) {
    const auto& z = l.zones[i];
    Napi::Object zo = Napi::Object::New(env);
    zo.Set("zone", z.zone);
    zo.Set("endpoints", num(z.endpoints));
    zo.Set("healthy", num(z.healthy));
    zo.Set("trafficStart", num(z.traffic_start));
    zo.Set("capacity", num(z.capacity));
    zo.Set("routed", num(z.routed));
    zones.Set(i, zo);
  }
  lo.Set("zones", zones);
  o.Set("locality", lo);
  return o;
}

Napi::Value UpstreamWrap::metrics(const Napi::CallbackInfo& info) {
  if (!open_) return Napi::String::New(info.Env(), "");
  return Napi::String::New(info.Env(), core_->upstream->prometheus_text());
}

Napi::Value UpstreamWrap::snapshot(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!open_) return env.Null();
  return snapshot_object(env, *core_);
}

Napi::Value UpstreamWrap::get_name(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), core_ ? core_->name : "");
}
Napi::Value UpstreamWrap::get_ready(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), open_ && core_->upstream->ready());
}
Napi::Value UpstreamWrap::get_closed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !open_); }
Napi::Value UpstreamWrap::get_hash_header(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), core_ ? core_->hash_header : "");
}

}  // namespace kupnode
