// Plain structs for the Kubernetes objects kupstream reads: EndpointSlice, Service, Node,
// watch events, LIST bodies and Status. Produced by kube::Decoder (decoder.h).
//
// Thread: plain values, no invariants beyond their fields; safe to move between threads.
// Strings are copies of the JSON text (unescaped); nothing points into the input bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kupstream/endpoint.h"

namespace kupstream::kube {

// Labels and annotations. Transparent comparator: find() accepts a string_view.
using StringMap = std::map<std::string, std::string, std::less<>>;

inline constexpr std::string_view kServiceNameLabel = "kubernetes.io/service-name";
inline constexpr std::string_view kLastChangeTriggerTimeAnnotation =
    "endpoints.kubernetes.io/last-change-trigger-time";

struct ObjectMeta {
  std::string name;
  std::string namespace_;  // "" for cluster-scoped objects (Node)
  std::string uid;
  std::string resource_version;
  StringMap labels;
  StringMap annotations;

  // The value of a label or annotation, "" when absent.
  std::string_view label(std::string_view key) const;
  std::string_view annotation(std::string_view key) const;
  friend bool operator==(const ObjectMeta&, const ObjectMeta&) = default;
};

enum class AddressType : std::uint8_t {
  unset,  // "" (BOOKMARK events carry "addressType":"")
  ipv4,
  ipv6,
  fqdn,
};
const char* address_type_name(AddressType t) noexcept;

// discovery.k8s.io/v1 EndpointConditions as sent: each may be absent (nullopt).
struct SliceConditions {
  std::optional<bool> ready;
  std::optional<bool> serving;
  std::optional<bool> terminating;

  // The Kubernetes defaults: nil ready → true, nil serving → true, nil terminating → false.
  bool ready_or_default() const noexcept { return ready.value_or(true); }
  bool serving_or_default() const noexcept { return serving.value_or(true); }
  bool terminating_or_default() const noexcept { return terminating.value_or(false); }
  kupstream::EndpointConditions defaulted() const noexcept {
    return {ready_or_default(), serving_or_default(), terminating_or_default()};
  }
  friend bool operator==(const SliceConditions&, const SliceConditions&) = default;
};

// core/v1 ObjectReference, the fields kupstream uses ("" when absent).
struct ObjectRef {
  std::string kind;
  std::string name;
  std::string namespace_;
  friend bool operator==(const ObjectRef&, const ObjectRef&) = default;
};

// An endpoint's addresses. The API allows 1..100, but controllers write exactly one and
// consumers may use only the first, so the first is stored inline (no allocation).
class AddressList {
 public:
  class const_iterator {
   public:
    using value_type = std::string;
    using difference_type = std::ptrdiff_t;
    using reference = const std::string&;
    using pointer = const std::string*;
    using iterator_category = std::forward_iterator_tag;
    const_iterator() = default;
    const_iterator(const AddressList* l, std::size_t i) : list_(l), i_(i) {}
    reference operator*() const { return (*list_)[i_]; }
    pointer operator->() const { return &(*list_)[i_]; }
    const_iterator& operator++() {
      ++i_;
      return *this;
    }
    const_iterator operator++(int) {
      auto old = *this;
      ++i_;
      return old;
    }
    friend bool operator==(const const_iterator&, const const_iterator&) = default;

   private:
    const AddressList* list_ = nullptr;
    std::size_t i_ = 0;
  };

  AddressList() = default;
  AddressList(std::initializer_list<std::string> l) {
    for (const auto& s : l) push_back(s);
  }

  std::size_t size() const noexcept { return has_first_ ? 1 + rest_.size() : 0; }
  bool empty() const noexcept { return !has_first_; }
  const std::string& operator[](std::size_t i) const { return i == 0 ? first_ : rest_[i - 1]; }
  const std::string& front() const { return first_; }
  const_iterator begin() const { return {this, 0}; }
  const_iterator end() const { return {this, size()}; }

  template <class... Args>
  void emplace_back(Args&&... args) {
    if (!has_first_) {
      first_.assign(std::forward<Args>(args)...);
      has_first_ = true;
    } else {
      rest_.emplace_back(std::forward<Args>(args)...);
    }
  }
  void push_back(std::string s) { emplace_back(std::move(s)); }
  void clear() noexcept {
    first_.clear();
    rest_.clear();
    has_first_ = false;
  }

  // Heap bytes owned (string and vector capacities beyond the inline storage).
  std::size_t rest_capacity() const noexcept { return rest_.capacity(); }
  const std::vector<std::string>& rest() const noexcept { return rest_; }

  friend bool operator==(const AddressList&, const AddressList&) = default;

 private:
  std::string first_;
  std::vector<std::string> rest_;
  bool has_first_ = false;
};

struct SliceEndpoint {
  // User-provided so that emplace_back() does not zero the whole struct before
  // constructing its members (measurable in the decoder).
  SliceEndpoint() noexcept {}

  AddressList addresses;  // required (an empty list is kept as sent)
  SliceConditions conditions;
  std::string hostname;
  std::string node_name;
  std::string zone;
  std::vector<std::string> hint_zones;  // hints.forZones[].name
  std::optional<ObjectRef> target_ref;
  friend bool operator==(const SliceEndpoint&, const SliceEndpoint&) = default;
};

struct SlicePort {
  std::string name;                   // "" when absent
  std::optional<std::int32_t> port;   // nullopt when absent or null ("all ports")
  std::string protocol = "TCP";       // API default when absent
  std::string app_protocol;           // "" when absent
  friend bool operator==(const SlicePort&, const SlicePort&) = default;
};

struct EndpointSlice {
  ObjectMeta metadata;
  AddressType address_type = AddressType::unset;
  std::vector<SliceEndpoint> endpoints;  // null → empty
  std::vector<SlicePort> ports;          // null → empty

  std::string_view service_name() const { return metadata.label(kServiceNameLabel); }
  friend bool operator==(const EndpointSlice&, const EndpointSlice&) = default;
};

// A Service port's targetPort: a number, a named container port, or absent (= port).
struct IntOrString {
  std::optional<std::int32_t> number;
  std::string name;
  bool is_set() const noexcept { return number.has_value() || !name.empty(); }
  friend bool operator==(const IntOrString&, const IntOrString&) = default;
};

struct ServicePort {
  std::string name;  // "" when absent (allowed for single-port services)
  std::int32_t port = 0;
  IntOrString target_port;  // unset when absent: the API then uses `port`
  std::string protocol = "TCP";
  std::string app_protocol;
  friend bool operator==(const ServicePort&, const ServicePort&) = default;
};

struct Service {
  ObjectMeta metadata;
  std::string type = "ClusterIP";  // spec.type
  std::string cluster_ip;          // spec.clusterIP ("None" for headless)
  StringMap selector;              // spec.selector
  std::vector<ServicePort> ports;  // spec.ports
  friend bool operator==(const Service&, const Service&) = default;
};

struct Node {
  ObjectMeta metadata;
  friend bool operator==(const Node&, const Node&) = default;
};

// meta/v1 Status, the body of API errors and of watch ERROR events.
struct ApiStatus {
  std::string status;   // "Failure" / "Success"
  std::string reason;   // "Expired", "Unauthorized", ...
  std::string message;
  std::int32_t code = 0;  // HTTP status, 0 when absent
  std::string continue_token;  // metadata.continue (an expired continue token's successor)
  std::optional<std::int32_t> retry_after_seconds;  // details.retryAfterSeconds
  friend bool operator==(const ApiStatus&, const ApiStatus&) = default;
};

enum class EventType : std::uint8_t { added, modified, deleted, bookmark, error };
const char* event_type_name(EventType t) noexcept;

// One watch event. For added/modified/deleted, `object` is the decoded object. For bookmark,
// only `resource_version` is meaningful (also copied into object.metadata.resource_version).
// For error, `status` holds the Status and `object` is default.
template <class T>
struct WatchEvent {
  EventType type = EventType::added;
  T object;
  std::string resource_version;  // object's metadata.resourceVersion ("" for error)
  ApiStatus status;
  friend bool operator==(const WatchEvent&, const WatchEvent&) = default;
};

// A LIST response page.
template <class T>
struct ObjectList {
  std::string resource_version;  // metadata.resourceVersion
  std::string continue_token;    // metadata.continue, "" on the last page
  std::optional<std::int64_t> remaining_item_count;
  std::vector<T> items;
  friend bool operator==(const ObjectList&, const ObjectList&) = default;
};

}  // namespace kupstream::kube
