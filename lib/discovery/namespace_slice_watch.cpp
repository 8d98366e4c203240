#include "discovery/namespace_slice_watch.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/defer.h"
#include "discovery/access_preflight.h"
#include "kube/reflector.h"

namespace kupstream::detail {

std::string service_set_selector(const std::vector<std::string>& services) {
  std::string out = std::string(kServiceNameLabel) + " in (";
  for (std::size_t i = 0; i < services.size(); ++i) {
    if (i) out += ',';
    out += services[i];
  }
  return out + ')';
}

NamespaceSliceWatch::NamespaceSliceWatch(uv_loop_t& loop, kube::ApiClient& api, std::string ns,
                                         OptionsFactory make_options, LogFn log)
    : loop_(loop), api_(api), ns_(std::move(ns)), make_options_(std::move(make_options)), log_(std::move(log)) {}

NamespaceSliceWatch::~NamespaceSliceWatch() = default;

NamespaceSliceWatch::Membership::Membership(std::shared_ptr<NamespaceSliceWatch> watch, std::string service)
    : watch_(std::move(watch)), service_(std::move(service)) {}

NamespaceSliceWatch::Membership::~Membership() { watch_->leave(service_); }

std::unique_ptr<NamespaceSliceWatch::Membership> NamespaceSliceWatch::join(
    const std::shared_ptr<NamespaceSliceWatch>& watch, const std::string& service, std::weak_ptr<SliceSink> sink) {
  watch->members_[service] = Member{std::move(sink)};
  watch->schedule_restart();
  if (!watch->preflight_ && !watch->preflight_result_) watch->start_preflight();
  if (watch->preflight_result_) {
    // Known already: tell the newcomer on a later turn (never inside join()).
    defer(watch->loop_, [weak = std::weak_ptr<NamespaceSliceWatch>(watch), service] {
      auto self = weak.lock();
      if (!self || !self->preflight_result_) return;
      if (auto member = self->sink_of(service)) member->on_preflight(*self->preflight_result_);
    });
  }
  return std::make_unique<Membership>(watch, service);
}

// The permissions preflight runs beside the first LIST, once for the namespace: it only adds a
// clearer reason (the verb, resource, namespace and the rule to add) when the watches are
// refused.
void NamespaceSliceWatch::start_preflight() {
  preflight_ = std::make_unique<AccessPreflight>(
      api_, service_access_checks(ns_),
      [this](Status s) {
        auto keep = shared_from_this();
        preflight_result_ = s;
        preflight_.reset();
        std::vector<std::shared_ptr<SliceSink>> sinks;
        for (const auto& [name, m] : members_)
          if (auto sink = m.sink.lock()) sinks.push_back(std::move(sink));
        for (auto& sink : sinks) sink->on_preflight(s);
      },
      log_);
}

std::vector<std::string> NamespaceSliceWatch::members() const {
  std::vector<std::string> out;
  for (const auto& [name, m] : members_) out.push_back(name);
  return out;
}

void NamespaceSliceWatch::leave(const std::string& service) {
  members_.erase(service);
  std::erase_if(owner_, [&](const auto& kv) { return kv.second == service; });
  if (members_.empty()) {
    // Nobody is left: stop at once (the watch object goes with the last Membership).
    reflector_.reset();
    selected_.clear();
    return;
  }
  schedule_restart();
}

// Joins and leaves of one loop turn (a gateway starting 200 upstreams, a reload) make one
// restart, on a later turn: never inside join() and never inside a Reflector callback.
void NamespaceSliceWatch::schedule_restart() {
  if (restart_pending_) return;
  restart_pending_ = true;
  defer(loop_, [weak = weak_from_this()] {
    auto self = weak.lock();
    if (!self) return;
    self->restart_pending_ = false;
    self->restart();
  });
}

void NamespaceSliceWatch::restart() {
  std::vector<std::string> wanted = members();  // sorted: members_ is a map
  if (wanted.empty()) return;
  if (reflector_ && wanted == selected_) return;  // a leave and a join that cancel out
  // Dropping the Reflector stops it at once (no callback after); the members keep their slices
  // until the new one's first replace.
  reflector_.reset();
  selected_ = wanted;
  const std::string selector = service_set_selector(selected_);
  std::string what = selected_.size() == 1
                         ? fmt::format("endpointslices of service {}/{} (shared namespace watch)", ns_, selected_[0])
                         : fmt::format("endpointslices of {} services in namespace \"{}\" (shared watch: {} ...)",
                                       selected_.size(), ns_, selected_[0]);
  auto ro = make_options_(selector, std::move(what));
  kube::ReflectorCallbacks<kube::EndpointSlice> cb;
  // The Reflector is owned here and dropped before this object, so `this` is valid in its
  // callbacks; each keeps this object alive while it fans out (a member's subscriber may drop
  // the last handle, and with it the last Membership, from inside).
  cb.on_replace = [this](std::vector<kube::EndpointSlice> items, const std::string& rv) {
    auto keep = shared_from_this();
    on_replace(std::move(items), rv);
  };
  cb.on_event = [this](kube::EventType type, kube::EndpointSlice s, const std::string& rv) {
    auto keep = shared_from_this();
    on_event(type, std::move(s), rv);
  };
  cb.on_health = [this](const Status& s) {
    auto keep = shared_from_this();
    for (auto& sink : live_sinks()) sink->on_slices_health(s);
  };
  cb.on_waiting = [this](const std::string& text) {
    auto keep = shared_from_this();
    for (auto& sink : live_sinks()) sink->on_slices_waiting(text);
  };
  cb.on_note = [this](const std::string& text) {
    auto keep = shared_from_this();
    for (auto& sink : live_sinks()) sink->on_slices_note(text);
  };
  reflector_ = std::make_unique<kube::Reflector<kube::EndpointSlice>>(api_, std::move(ro), std::move(cb));
  ++starts_;
  reflector_->start();
}

std::vector<std::shared_ptr<SliceSink>> NamespaceSliceWatch::live_sinks() {
  std::vector<std::shared_ptr<SliceSink>> out;
  for (const auto& name : selected_)
    if (auto s = sink_of(name)) out.push_back(std::move(s));
  return out;
}

std::shared_ptr<SliceSink> NamespaceSliceWatch::sink_of(const std::string& service) {
  auto it = members_.find(service);
  return it == members_.end() ? nullptr : it->second.sink.lock();
}

void NamespaceSliceWatch::on_replace(std::vector<kube::EndpointSlice> items, const std::string& rv) {
  // Only the members this Reflector selects are replaced: one that joined since has not been
  // listed by it (an empty replace would publish an empty set); its restart is already due.
  std::map<std::string, std::vector<kube::EndpointSlice>, std::less<>> by_service;
  for (const auto& name : selected_) by_service[name];
  owner_.clear();
  for (auto& s : items) {
    std::string service(s.metadata.label(kServiceNameLabel));
    auto it = by_service.find(service);
    if (it == by_service.end()) continue;  // a member that left since
    owner_[s.metadata.name] = service;
    it->second.push_back(std::move(s));
  }
  for (auto& [service, slices] : by_service) {
    auto m = members_.find(service);
    if (m == members_.end()) continue;
    if (auto sink = m->second.sink.lock()) sink->on_slices_replace(std::move(slices), rv);
  }
}

void NamespaceSliceWatch::on_event(kube::EventType type, kube::EndpointSlice slice, const std::string& rv) {
  std::string labelled(slice.metadata.label(kServiceNameLabel));
  std::string previous;
  if (auto it = owner_.find(slice.metadata.name); it != owner_.end()) previous = it->second;
  const bool selected = std::binary_search(selected_.begin(), selected_.end(), labelled);
  if (type == kube::EventType::deleted || !selected) {
    // Deleted, or no longer selected: the watch cache sends DELETED with the previous labels,
    // but the slice goes back to whichever member it was given to, whatever its labels say.
    owner_.erase(slice.metadata.name);
    const std::string& from = previous.empty() ? labelled : previous;
    if (auto sink = sink_of(from)) sink->on_slice_event(kube::EventType::deleted, std::move(slice), rv);
    return;
  }
  if (!previous.empty() && previous != labelled) {
    // Relabelled from one member to another (both selected: the server sends MODIFIED with
    // the new labels): the old one loses it first.
    if (auto sink = sink_of(previous)) sink->on_slice_event(kube::EventType::deleted, slice, rv);
  }
  owner_[slice.metadata.name] = labelled;
  if (auto sink = sink_of(labelled)) sink->on_slice_event(type, std::move(slice), rv);
}

}  // namespace kupstream::detail
