// NamespaceSliceWatch: the fan-in mode's one EndpointSlice list+watch per (ClusterClient,
// namespace), shared by the ServiceCaches of every watched Service in that namespace.
//
//  - One Reflector<EndpointSlice> with the set-based label selector
//    `kubernetes.io/service-name in (a,b,...)` naming every member service (sorted).
//  - Each slice goes to the member its `kubernetes.io/service-name` label names; a slice is
//    remembered with the member it was given to, so a slice relabelled to another service (or
//    out of the selector, which the server reports as DELETED with its previous labels) is taken
//    back from its old member first.
//  - A relist (the first sync, a 410, a watch-list's initial events) gives every member its
//    slices in one replace, an empty one for a member with none: never emptied first.
//  - Health, watch-list waiting text and notes are the shared Reflector's, told to every
//    member. So is the RBAC preflight (list/watch endpointslices, get/list/watch services in
//    the namespace), which runs once per NamespaceSliceWatch instead of once per Service.
//  - When the members change (a service joins or leaves), the watch is restarted with the new
//    selector on a later loop turn (joins and leaves of one turn make one restart): the old
//    Reflector is dropped and a new one LISTs (or streams) with the new selector. Members
//    keep their slices, and so their last good snapshot, until the new list replaces them;
//    a new member is unsynced until then. The restart is not a failure: no health change.
//
// Thread: loop thread only. Lifetime: held by shared_ptr (ClusterClient keeps a weak one per
// namespace; each member's Membership keeps it alive). Dropping the last Membership stops the
// watch; no member callback runs for a member whose Membership is gone.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kube/objects.h"
#include "kupstream/error.h"
#include "kupstream/log.h"

typedef struct uv_loop_s uv_loop_t;

namespace kupstream::kube {
class ApiClient;
struct ReflectorOptions;
template <class T>
class Reflector;
}  // namespace kupstream::kube

namespace kupstream::detail {

class AccessPreflight;

// What one service's cache hears from a shared slice watch: the same calls, with the same
// meaning, as the callbacks of a per-service Reflector (kube::ReflectorCallbacks).
class SliceSink {
 public:
  virtual ~SliceSink() = default;
  virtual void on_slices_replace(std::vector<kube::EndpointSlice> items, const std::string& resource_version) = 0;
  virtual void on_slice_event(kube::EventType type, kube::EndpointSlice slice, const std::string& resource_version) = 0;
  virtual void on_slices_health(const Status& health) = 0;
  virtual void on_slices_waiting(const std::string& text) = 0;
  virtual void on_slices_note(const std::string& text) = 0;
  // The namespace's RBAC preflight answered (ok, or forbidden naming the rules to add); a
  // member that joins later hears the known answer on a later loop turn.
  virtual void on_preflight(const Status& result) = 0;
};

// The label every EndpointSlice carries with the name of its Service.
inline constexpr const char* kServiceNameLabel = "kubernetes.io/service-name";

// `kubernetes.io/service-name in (a,b,...)` for sorted, distinct names.
std::string service_set_selector(const std::vector<std::string>& services);

class NamespaceSliceWatch : public std::enable_shared_from_this<NamespaceSliceWatch> {
 public:
  // `make_options(selector, what)` gives the Reflector options of one (re)start: the cluster's
  // timeouts, backoff, watch-list settings and limits, with this selector and message text.
  using OptionsFactory = std::function<kube::ReflectorOptions(std::string label_selector, std::string what)>;

  NamespaceSliceWatch(uv_loop_t& loop, kube::ApiClient& api, std::string ns, OptionsFactory make_options, LogFn log);
  ~NamespaceSliceWatch();
  NamespaceSliceWatch(const NamespaceSliceWatch&) = delete;
  NamespaceSliceWatch& operator=(const NamespaceSliceWatch&) = delete;

  // A member's place in the watch; dropping it leaves (and restarts the watch without it).
  class Membership {
   public:
    Membership(std::shared_ptr<NamespaceSliceWatch> watch, std::string service);
    ~Membership();
    Membership(const Membership&) = delete;
    Membership& operator=(const Membership&) = delete;

   private:
    std::shared_ptr<NamespaceSliceWatch> watch_;
    std::string service_;
  };

  // Adds `service` (one sink per service name: the ClusterClient has one ServiceCache per
  // (namespace, service)). The sink hears nothing before a later loop turn.
  static std::unique_ptr<Membership> join(const std::shared_ptr<NamespaceSliceWatch>& watch, const std::string& service,
                                          std::weak_ptr<SliceSink> sink);

  // For tests and stats: how many times a Reflector was started (the first start and every
  // restart after a change of members), and the members now.
  std::uint64_t starts() const noexcept { return starts_; }
  std::vector<std::string> members() const;

 private:
  struct Member {
    std::weak_ptr<SliceSink> sink;
  };

  void leave(const std::string& service);
  void start_preflight();
  void schedule_restart();
  void restart();
  std::vector<std::shared_ptr<SliceSink>> live_sinks();
  std::shared_ptr<SliceSink> sink_of(const std::string& service);

  void on_replace(std::vector<kube::EndpointSlice> items, const std::string& rv);
  void on_event(kube::EventType type, kube::EndpointSlice slice, const std::string& rv);

  uv_loop_t& loop_;
  kube::ApiClient& api_;
  std::string ns_;
  OptionsFactory make_options_;
  std::map<std::string, Member, std::less<>> members_;
  std::vector<std::string> selected_;  // the members the running Reflector selects
  std::map<std::string, std::string, std::less<>> owner_;  // slice name -> member it was given to
  std::unique_ptr<kube::Reflector<kube::EndpointSlice>> reflector_;
  LogFn log_;
  std::unique_ptr<AccessPreflight> preflight_;
  std::optional<Status> preflight_result_;
  bool restart_pending_ = false;
  std::uint64_t starts_ = 0;
};

}  // namespace kupstream::detail
