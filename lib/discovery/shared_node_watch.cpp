#include "discovery/shared_node_watch.h"

#include <algorithm>

#include "discovery/access_preflight.h"
#include "kube/objects.h"
#include "kube/reflector.h"

namespace kupstream::detail {

SharedNodeWatch::SharedNodeWatch(kube::ApiClient& api, kube::ReflectorOptions options, LogFn log)
    : api_(api), options_(std::make_unique<kube::ReflectorOptions>(std::move(options))), log_(std::move(log)) {}

SharedNodeWatch::~SharedNodeWatch() = default;

void SharedNodeWatch::start() {
  if (reflector_) return;
  // Callbacks run on the loop; each keeps the watch alive while the views it tells may drop it.
  std::weak_ptr<SharedNodeWatch> weak = weak_from_this();
  kube::ReflectorCallbacks<kube::Node> cb;
  cb.on_replace = [weak](std::vector<kube::Node> items, const std::string&) {
    auto self = weak.lock();
    if (!self) return;
    Names fresh;
    for (auto& n : items) fresh.insert(std::move(n.metadata.name));
    // A relist that finds the same Nodes keeps the epoch: the views keep their merged slices.
    if (fresh != self->names_) {
      self->names_ = std::move(fresh);
      ++self->epoch_;
    }
    self->synced_ = true;
    self->changed();
  };
  cb.on_event = [weak](kube::EventType type, kube::Node n, const std::string&) {
    auto self = weak.lock();
    if (!self) return;
    // Most Node events are status updates of a Node already listed: nothing a view reads
    // changed, so no view re-merges its Service's slices for them.
    if (!apply_event(self->names_, type, std::move(n.metadata.name))) return;
    ++self->epoch_;
    self->changed();
  };
  cb.on_health = [weak](const Status& s) {
    if (auto self = weak.lock()) {
      self->health_ = s;
      self->changed();
    }
  };
  cb.on_waiting = [weak](const std::string& text) {
    if (auto self = weak.lock()) {
      self->waiting_ = text;
      self->changed();
    }
  };
  cb.on_note = [weak](const std::string& text) {
    if (auto self = weak.lock()) {
      self->note_ = text;
      self->changed();
    }
  };
  reflector_ = std::make_unique<kube::Reflector<kube::Node>>(api_, *options_, std::move(cb));
  reflector_->start();
  preflight_run_ = std::make_unique<AccessPreflight>(
      api_, node_access_checks(),
      [weak](Status s) {
        auto self = weak.lock();
        if (!self) return;
        self->preflight_ = std::move(s);
        self->preflight_run_.reset();  // done (it answers once; dropping it in its callback is allowed)
        self->changed();
      },
      log_);
}

bool SharedNodeWatch::apply_event(Names& names, kube::EventType type, std::string name) {
  if (type == kube::EventType::deleted) return names.erase(name) != 0;
  return names.insert(std::move(name)).second;
}

void SharedNodeWatch::add(std::weak_ptr<NodeSink> sink) {
  std::erase_if(sinks_, [](const auto& s) { return s.expired(); });
  sinks_.push_back(std::move(sink));
}

std::size_t SharedNodeWatch::sinks() const {
  return static_cast<std::size_t>(std::count_if(sinks_.begin(), sinks_.end(), [](const auto& s) { return !s.expired(); }));
}

void SharedNodeWatch::changed() {
  auto keep = shared_from_this();
  // A copy: a view told may drop itself, or another view may join, while this runs.
  const auto sinks = sinks_;
  for (const auto& weak : sinks)
    if (auto sink = weak.lock()) sink->on_nodes_changed();
  std::erase_if(sinks_, [](const auto& s) { return s.expired(); });
}

}  // namespace kupstream::detail
