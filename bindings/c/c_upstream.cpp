// The C ABI's upstreams, picks, pickers, statistics and zone-aware routing state (kupstream_c.h)
// over Upstream, configured by one upstream document (upstream_document.h).
#include <cstddef>
#include <cstring>

#include "c_abi.h"
#include "kupstream/upstream_document.h"

using namespace kupstream;
using kupstream::capi::fail;
using kupstream::capi::guard;

namespace kupstream::capi {

int copy_pick(const PickResult& r, const std::vector<std::string>& services, kup_pick_result* out) noexcept {
  const Endpoint& e = *r.endpoint;
  capi::copy_into(out->address, e.address);
  out->port = e.port;
  capi::copy_into(out->pod_name, e.pod_name);
  std::string_view service = r.group < services.size() ? std::string_view(services[r.group]) : std::string_view();
  capi::copy_into(out->service, service);
  return KUP_OK;
}

}  // namespace kupstream::capi

namespace {

using kupstream::capi::copy_pick;

static_assert(KUP_LOCALITY_OFF == static_cast<int>(LocalityMode::off) &&
                  KUP_LOCALITY_LOCAL == static_cast<int>(LocalityMode::local) &&
                  KUP_LOCALITY_SPILL == static_cast<int>(LocalityMode::spill) &&
                  KUP_LOCALITY_EVERYWHERE == static_cast<int>(LocalityMode::everywhere),
              "kup_locality_mode must mirror kupstream::LocalityMode");

int pick_from(const Picker& picker, const std::vector<std::string>& services, std::uint64_t hash,
              kup_pick_result* out, kup_error* err) noexcept {
  PickResult r = picker.pick(hash);
  if (!r) return fail(err, KUP_NO_ENDPOINT, picker.no_endpoint_reason());
  return copy_pick(r, services, out);
}

}  // namespace

extern "C" {

KUP_API int kup_upstream_create(uv_loop_t* loop, const char* document, size_t length, kup_cluster* const* clusters,
                                size_t cluster_count, kup_log_fn log, void* log_data, kup_upstream** out,
                                kup_error* err) {
  if (out != nullptr) *out = nullptr;
  if (loop == nullptr || document == nullptr || out == nullptr || (clusters == nullptr && cluster_count > 0))
    return fail(err, KUP_INVALID_ARGUMENT, "kup_upstream_create: loop, document and out must not be NULL");
  return guard(err, [&]() -> int {
    std::string_view text(document, length == static_cast<size_t>(-1) ? std::strlen(document) : length);
    UpstreamDocumentOptions dopts;
    dopts.source = "upstream config";
    auto doc = parse_upstream_document(text, dopts);
    if (!doc) return fail(err, doc.error());

    ClusterMap map;
    for (size_t i = 0; i < cluster_count; ++i) {
      if (clusters[i] == nullptr)
        return fail(err, KUP_INVALID_ARGUMENT, "kup_upstream_create: clusters[" + std::to_string(i) + "] is NULL");
      const std::string& name = clusters[i]->client->name();
      if (!map.emplace(name, clusters[i]->client.get()).second)
        return fail(err, KUP_INVALID_ARGUMENT,
                    "kup_upstream_create: clusters[" + std::to_string(i) + "]: cluster \"" + name + "\" is given twice");
    }
    auto services = std::make_shared<std::vector<std::string>>();
    for (const auto& ref : doc->config.services) services->push_back(ref.to_string());

    doc->options.log = capi::make_log(log, log_data, "upstream " + doc->config.name + ": ");
    auto handle = std::make_unique<kup_upstream>();
    handle->hash_header = std::move(doc->hash_header);
    handle->services = std::move(services);
    auto up = Upstream::create(*loop, std::move(doc->config), map, std::move(doc->options));
    if (!up) return fail(err, up.error());
    handle->upstream = std::move(*up);
    *out = handle.release();
    return KUP_OK;
  });
}

KUP_API void kup_upstream_destroy(kup_upstream* upstream) { delete upstream; }

KUP_API const char* kup_upstream_name(const kup_upstream* upstream) {
  return upstream != nullptr ? upstream->upstream->config().name.c_str() : "";
}

KUP_API const char* kup_upstream_hash_header(const kup_upstream* upstream) {
  return upstream != nullptr ? upstream->hash_header.c_str() : "";
}

KUP_API int kup_upstream_ready(const kup_upstream* upstream) {
  return upstream != nullptr && upstream->upstream->ready() ? 1 : 0;
}

KUP_API int kup_upstream_pick(const kup_upstream* upstream, uint64_t hash, kup_pick_result* out, kup_error* err) {
  if (upstream == nullptr || out == nullptr)
    return fail(err, KUP_INVALID_ARGUMENT, "kup_upstream_pick: upstream and out must not be NULL");
  // Upstream::pick keeps the Picker alive for this thread until its next pick; the copy happens
  // before that, so no reference is needed here.
  PickResult r = upstream->upstream->pick(hash);
  if (!r) {
    PickerPtr p = upstream->upstream->picker();
    return fail(err, KUP_NO_ENDPOINT, "upstream \"" + upstream->upstream->config().name + "\": " +
                                          (p ? p->no_endpoint_reason() : std::string("no picker")));
  }
  return copy_pick(r, *upstream->services, out);
}

KUP_API kup_picker* kup_upstream_picker(const kup_upstream* upstream) {
  if (upstream == nullptr) return nullptr;
  return new (std::nothrow) kup_picker{upstream->upstream->picker(), upstream->services};
}

KUP_API void kup_picker_destroy(kup_picker* picker) { delete picker; }

KUP_API int kup_picker_pick(const kup_picker* picker, uint64_t hash, kup_pick_result* out, kup_error* err) {
  if (picker == nullptr || out == nullptr)
    return fail(err, KUP_INVALID_ARGUMENT, "kup_picker_pick: picker and out must not be NULL");
  return pick_from(*picker->picker, *picker->services, hash, out, err);
}

KUP_API size_t kup_picker_count(const kup_picker* picker) {
  return picker != nullptr ? picker->picker->size() : 0;
}

KUP_API int kup_picker_endpoint(const kup_picker* picker, size_t index, kup_endpoint* out, uint32_t* weight) {
  if (picker == nullptr || out == nullptr || index >= picker->picker->size()) return KUP_INVALID_ARGUMENT;
  const PickResult at = picker->picker->at(index);
  if (!at.endpoint) return KUP_INVALID_ARGUMENT;  // the Upstream never publishes a null one
  capi::fill_endpoint(*at.endpoint, out);
  if (weight != nullptr) *weight = at.weight;
  return KUP_OK;
}

KUP_API int kup_upstream_stats(const kup_upstream* upstream, kup_stats* out) {
  if (upstream == nullptr || out == nullptr) return KUP_INVALID_ARGUMENT;
  return guard(nullptr, [&]() -> int {
    UpstreamStats s = upstream->upstream->stats();
    *out = kup_stats{};
    out->requests = s.requests;
    out->failures = s.failures;
    out->retries = s.retries;
    out->no_endpoint = s.no_endpoint;
    out->in_flight = s.in_flight;
    out->panic = s.panic ? 1 : 0;
    out->using_draining = s.using_draining ? 1 : 0;
    out->pods = s.pods.size();
    for (const auto& p : s.pods) out->ejected += p.ejected ? 1 : 0;
    out->services = s.services.size();
    for (const auto& svc : s.services) out->services_synced += svc.state.phase == WatchPhase::synced ? 1 : 0;
    return KUP_OK;
  });
}

KUP_API int kup_upstream_locality(const kup_upstream* upstream, kup_locality_stats* out) {
  if (upstream == nullptr || out == nullptr || out->size < offsetof(kup_locality_stats, hints)) return KUP_INVALID_ARGUMENT;
  return guard(nullptr, [&]() -> int {
    const LocalityStats l = upstream->upstream->stats().locality;
    kup_locality_stats c{};
    c.size = out->size < sizeof c ? out->size : sizeof c;
    c.enabled = l.enabled ? 1 : 0;
    c.mode = static_cast<kup_locality_mode>(static_cast<int>(l.mode));
    c.hints = l.hints ? 1 : 0;
    c.local_share = l.local_share;
    c.local_requests = l.local_requests;
    c.cross_zone_requests = l.cross_zone_requests;
    c.zones = l.zones.size();
    capi::copy_into(c.zone, l.zone);
    capi::copy_into(c.reason, l.reason);
    std::memcpy(out, &c, c.size);  // an older header's smaller struct gets its own fields only
    return KUP_OK;
  });
}

KUP_API char* kup_upstream_metrics(const kup_upstream* upstream, size_t* length) {
  if (length != nullptr) *length = 0;
  if (upstream == nullptr) return nullptr;
  try {
    std::string text = upstream->upstream->prometheus_text();
    char* s = capi::dup_string(text);
    if (s != nullptr && length != nullptr) *length = text.size();
    return s;
  } catch (...) {
    return nullptr;
  }
}

}  // extern "C"
