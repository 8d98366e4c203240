// kube::Decoder: Kubernetes JSON (objects, watch event lines, LIST bodies, Status bodies)
// into the plain structs of objects.h, using simdjson's On-Demand API.
//
// Thread: a Decoder is single-threaded (it owns a reusable simdjson parser and a padded
// scratch buffer); use one per thread or per watch. Results own their strings.
//
// Errors: every failure is Errc::decode_error with a reason that names the object and the
// field, e.g. `EndpointSlice default/httpbin-abc12: endpoints[2].addresses is missing`.
// Unknown fields are ignored. Malformed JSON is an error, never a crash or an exception.
//
// What is required (anything else may be absent):
//   every object        metadata.resourceVersion; metadata.name (not in BOOKMARK events);
//                       metadata.namespace for namespaced kinds (EndpointSlice, Service)
//   EndpointSlice       addressType; endpoints[i].addresses; hints.forZones[i].name
//   Service             spec.ports[i].port
//   watch event         type; object
//   LIST body           metadata.resourceVersion
// null is read as absent everywhere (an empty list, "" or nullopt).
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

#include "kube/objects.h"
#include "kupstream/error.h"

namespace kupstream::kube {

class Decoder {
 public:
  Decoder();
  ~Decoder();
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  // One object, e.g. a GET response body. T is EndpointSlice, Service or Node.
  template <class T>
  Result<T> decode(std::string_view json);

  // One watch event line: {"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": ...}.
  // An ERROR event decodes successfully (type error, status filled); it is the caller's job
  // to act on it (e.g. 410 Expired → relist).
  template <class T>
  Result<WatchEvent<T>> decode_event(std::string_view json);

  // A LIST body, e.g. {"kind":"EndpointSliceList","metadata":{...},"items":[...]}.
  template <class T>
  Result<ObjectList<T>> decode_list(std::string_view json);

  // A meta/v1 Status body (401/403/404/410/422/429/5xx answers).
  Result<ApiStatus> decode_status(std::string_view json);

  // Frees the buffers that a large input left behind (the padded copy of the input and the
  // parser's index, both sized by the largest input so far) when they exceed `keep` bytes. A
  // LIST body is far larger than a watch event: without this, every watch would hold its
  // LIST's size for its whole life. The next decode allocates what it needs again.
  void release_memory(std::size_t keep = 64u << 10);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

extern template Result<EndpointSlice> Decoder::decode<EndpointSlice>(std::string_view);
extern template Result<Service> Decoder::decode<Service>(std::string_view);
extern template Result<Node> Decoder::decode<Node>(std::string_view);
extern template Result<WatchEvent<EndpointSlice>> Decoder::decode_event<EndpointSlice>(std::string_view);
extern template Result<WatchEvent<Service>> Decoder::decode_event<Service>(std::string_view);
extern template Result<WatchEvent<Node>> Decoder::decode_event<Node>(std::string_view);
extern template Result<ObjectList<EndpointSlice>> Decoder::decode_list<EndpointSlice>(std::string_view);
extern template Result<ObjectList<Service>> Decoder::decode_list<Service>(std::string_view);
extern template Result<ObjectList<Node>> Decoder::decode_list<Node>(std::string_view);

// The Kubernetes kind names used in messages and checked against "kind" when present.
template <class T>
struct KindName;
template <>
struct KindName<EndpointSlice> {
  static constexpr std::string_view kind = "EndpointSlice";
  static constexpr std::string_view list_kind = "EndpointSliceList";
  static constexpr bool namespaced = true;
};
template <>
struct KindName<Service> {
  static constexpr std::string_view kind = "Service";
  static constexpr std::string_view list_kind = "ServiceList";
  static constexpr bool namespaced = true;
};
template <>
struct KindName<Node> {
  static constexpr std::string_view kind = "Node";
  static constexpr std::string_view list_kind = "NodeList";
  static constexpr bool namespaced = false;
};

}  // namespace kupstream::kube
