#include "kube/decoder.h"

#include <simdjson.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

namespace kupstream::kube {

namespace od = simdjson::ondemand;
using simdjson::error_code;

// ---- objects.h helpers -------------------------------------------------------------------

namespace {
std::string_view lookup(const StringMap& m, std::string_view key) {
  auto it = m.find(key);
  return it == m.end() ? std::string_view{} : std::string_view{it->second};
}
}  // namespace

std::string_view ObjectMeta::label(std::string_view key) const { return lookup(labels, key); }
std::string_view ObjectMeta::annotation(std::string_view key) const { return lookup(annotations, key); }

const char* address_type_name(AddressType t) noexcept {
  switch (t) {
    case AddressType::unset: return "";
    case AddressType::ipv4: return "IPv4";
    case AddressType::ipv6: return "IPv6";
    case AddressType::fqdn: return "FQDN";
  }
  return "?";
}

const char* event_type_name(EventType t) noexcept {
  switch (t) {
    case EventType::added: return "ADDED";
    case EventType::modified: return "MODIFIED";
    case EventType::deleted: return "DELETED";
    case EventType::bookmark: return "BOOKMARK";
    case EventType::error: return "ERROR";
  }
  return "?";
}

namespace {

// A decode failure: the path of the field at fault, relative to the object being decoded,
// built bottom-up (only on the error path), and what is wrong with it.
struct Fail {
  std::string path;
  std::string what;  // "is missing" or ": expected a string, got number"

  void prepend_field(std::string_view name) {
    std::string p(name);
    if (!path.empty() && path[0] != '[') p += '.';
    path.insert(0, p);
  }
  void prepend_index(std::size_t i) {
    std::string p = "[" + std::to_string(i) + "]";
    if (!path.empty() && path[0] != '[') p += '.';
    path.insert(0, p);
  }
  std::string text() const {
    if (path.empty()) return what.size() > 2 && what[0] == ':' ? what.substr(2) : what;
    return path + (what.starts_with(':') ? "" : " ") + what;
  }
};

const char* json_type_name(od::json_type t) {
  switch (t) {
    case od::json_type::array: return "array";
    case od::json_type::object: return "object";
    case od::json_type::number: return "number";
    case od::json_type::string: return "string";
    case od::json_type::boolean: return "boolean";
    case od::json_type::null: return "null";
  }
  return "?";
}

bool json_fail(Fail& f, error_code e) {
  f.what = std::string(": malformed JSON (") + simdjson::error_message(e) + ")";
  return false;
}

bool missing(Fail& f, std::string_view field) {
  f.path.clear();
  f.prepend_field(field);
  f.what = "is missing";
  return false;
}

// Peeks at the value's type; fails on malformed JSON.
bool type_of(od::value& v, od::json_type& t, Fail& f) {
  if (auto e = v.type().get(t)) return json_fail(f, e);
  return true;
}

bool wrong_type(Fail& f, const char* expected, od::json_type got) {
  f.what = std::string(": expected ") + expected + ", got " + json_type_name(got);
  return false;
}

// A field's name. is() compares the raw bytes of the name with a literal without first
// finding its end (the raw name is followed by '"' and the input is padded), which is the
// common case: the API server never escapes the letters of a field name. Names that match
// nothing and contain escapes are offered again unescaped (see for_each_field).
class Key {
 public:
  explicit Key(od::field& fld) : fld_(&fld), raw_(fld.key().raw()) {}

  template <std::size_t N>
  bool is(const char (&lit)[N]) {
    constexpr std::size_t n = N - 1;
    static_assert(n < simdjson::SIMDJSON_PADDING);
    bool eq = unescaped_.data() != nullptr ? unescaped_ == std::string_view(lit, n)
                                           : raw_[n] == '"' && std::memcmp(raw_, lit, n) == 0;
    matched_ = matched_ || eq;
    return eq;
  }

  // The name itself (unescaped), for map keys and messages.
  bool str(std::string_view& out, Fail& f) {
    matched_ = true;
    if (unescaped_.data() != nullptr) {
      out = unescaped_;
      return true;
    }
    std::size_t n = 0;
    while (raw_[n] != '"') {
      if (raw_[n] == '\\') return unescape(out, f);
      ++n;
    }
    out = std::string_view(raw_, n);
    return true;
  }
  // The name for messages: unescaped when it was unescaped, else as written (never calls
  // into simdjson, so it is safe after a failed unescape).
  std::string text() const {
    if (unescaped_.data() != nullptr) return std::string(unescaped_);
    std::size_t n = 0;
    while (n < 256 && raw_[n] != '"') n += raw_[n] == '\\' ? 2 : 1;
    return std::string(raw_, std::min<std::size_t>(n, 256));
  }

  bool matched() const { return matched_; }

  // For an unmatched name: whether it has escapes, in which case it becomes the unescaped
  // name and may be offered again.
  bool retry_unescaped(Fail& f, bool& failed) {
    failed = false;
    if (unescaped_.data() != nullptr || unescape_failed_) return false;
    std::size_t n = 0;
    while (raw_[n] != '"' && raw_[n] != '\\') ++n;
    if (raw_[n] != '\\') return false;
    std::string_view out;
    if (!unescape(out, f)) {
      failed = true;
      return false;
    }
    matched_ = false;
    return true;
  }

 private:
  bool unescape(std::string_view& out, Fail& f) {
    // unescaped_key() consumes the key: it may be called once only.
    if (unescape_failed_) return json_fail(f, simdjson::STRING_ERROR);
    if (auto e = fld_->unescaped_key().get(unescaped_)) {
      unescape_failed_ = true;
      unescaped_ = {};
      return json_fail(f, e);
    }
    if (unescaped_.data() == nullptr) unescaped_ = std::string_view("", 0);
    out = unescaped_;
    return true;
  }

  od::field* fld_;
  const char* raw_;
  std::string_view unescaped_;
  bool matched_ = false;
  bool unescape_failed_ = false;
};

// Calls fn(key, value) for every field of an object; a null value counts as an empty object
// when allow_null is set.
template <class Fn>
bool for_each_field(od::value& v, Fail& f, Fn&& fn, bool allow_null = true, bool* was_null = nullptr) {
  od::object obj;
  if (auto e = v.get_object().get(obj)) {
    if (e != simdjson::INCORRECT_TYPE) return json_fail(f, e);
    od::json_type t;
    if (!type_of(v, t, f)) return false;
    if (t == od::json_type::null && allow_null) {
      if (was_null) *was_null = true;
      return true;
    }
    return wrong_type(f, "an object", t);
  }
  for (auto fr : obj) {
    if (auto e = fr.error()) return json_fail(f, e);
    // Use the field in place: copying it out of the result costs a store-forwarding stall
    // per field (measured: a third of the decoder's time).
    od::field& fld = fr.value_unsafe();
    Key key(fld);
    if (!fn(key, fld.value())) {
      f.prepend_field(key.text());
      return false;
    }
    bool failed = false;
    if (!key.matched() && key.retry_unescaped(f, failed)) {
      if (!fn(key, fld.value())) {
        f.prepend_field(key.text());
        return false;
      }
    }
    if (failed) return false;
  }
  return true;
}

// Calls fn(index, value) for every element; null counts as empty.
template <class Fn>
bool for_each_element(od::value& v, Fail& f, Fn&& fn, bool* was_null = nullptr) {
  od::array arr;
  if (auto e = v.get_array().get(arr)) {
    if (e != simdjson::INCORRECT_TYPE) return json_fail(f, e);
    od::json_type t;
    if (!type_of(v, t, f)) return false;
    if (t == od::json_type::null) {
      if (was_null) *was_null = true;
      return true;
    }
    return wrong_type(f, "an array", t);
  }
  std::size_t i = 0;
  for (auto er : arr) {
    if (auto e = er.error()) {
      f.prepend_index(i);
      return json_fail(f, e);
    }
    od::value& ev = er.value_unsafe();
    if (!fn(i, ev)) {
      f.prepend_index(i);
      return false;
    }
    ++i;
  }
  return true;
}

// A string; null reads as "".
// After a typed read failed with INCORRECT_TYPE: null is accepted (returns true with
// is_null set), anything else is a type error.
bool null_or_wrong(od::value& v, error_code e, const char* expected, bool& is_null, Fail& f) {
  if (e != simdjson::INCORRECT_TYPE) return json_fail(f, e);
  od::json_type t;
  if (!type_of(v, t, f)) return false;
  if (t != od::json_type::null) return wrong_type(f, expected, t);
  is_null = true;
  return true;
}

bool read_string_view(od::value& v, std::string_view& out, Fail& f) {
  // The typed read first: peeking at the type of every value costs more than the rare retry.
  auto e = v.get_string().get(out);
  if (!e) return true;
  bool is_null = false;
  out = {};
  return null_or_wrong(v, e, "a string", is_null, f);
}

bool read_string(od::value& v, std::string& out, Fail& f) {
  std::string_view s;
  if (!read_string_view(v, s, f)) return false;
  out.assign(s.data(), s.size());
  return true;
}

bool read_opt_bool(od::value& v, std::optional<bool>& out, Fail& f) {
  bool b = false;
  auto e = v.get_bool().get(b);
  if (!e) {
    out = b;
    return true;
  }
  bool is_null = false;
  out.reset();
  return null_or_wrong(v, e, "a boolean", is_null, f);
}

bool read_opt_int64(od::value& v, std::optional<std::int64_t>& out, Fail& f) {
  std::int64_t n = 0;
  auto e = v.get_int64().get(n);
  if (!e) {
    out = n;
    return true;
  }
  out.reset();
  od::json_type t;
  if (!type_of(v, t, f)) return false;
  if (t == od::json_type::null) return true;
  if (t != od::json_type::number) return wrong_type(f, "an integer", t);
  f.what = std::string(": expected an integer (") + simdjson::error_message(e) + ")";
  return false;
}

bool read_opt_int32(od::value& v, std::optional<std::int32_t>& out, Fail& f) {
  std::optional<std::int64_t> n;
  if (!read_opt_int64(v, n, f)) return false;
  if (n && (*n < std::numeric_limits<std::int32_t>::min() || *n > std::numeric_limits<std::int32_t>::max())) {
    f.what = ": " + std::to_string(*n) + " is out of range for a 32-bit integer";
    return false;
  }
  out = n ? std::optional<std::int32_t>(static_cast<std::int32_t>(*n)) : std::nullopt;
  return true;
}

bool read_string_map(od::value& v, StringMap& out, Fail& f) {
  out.clear();
  return for_each_field(v, f, [&](Key& key, od::value& val) {
    std::string_view name;
    if (!key.str(name, f)) return false;
    std::string k(name);  // copy now: reading the value may reuse the parser's string buffer
    std::string s;
    if (!read_string(val, s, f)) return false;
    out.insert_or_assign(std::move(k), std::move(s));
    return true;
  });
}

template <class List>
bool read_string_array(od::value& v, List& out, Fail& f, bool* was_null = nullptr) {
  out.clear();
  return for_each_element(v, f, [&](std::size_t, od::value& ev) {
    std::string_view s;
    if (auto e = ev.get_string().get(s)) {
      bool is_null = false;
      if (!null_or_wrong(ev, e, "a string", is_null, f)) return false;
      return wrong_type(f, "a string", od::json_type::null);
    }
    out.emplace_back(s);
    return true;
  }, was_null);
}

// ---- objects --------------------------------------------------------------------------------

// Sizes seen in earlier documents, used to reserve vectors.
struct SizeHint {
  std::size_t endpoints = 0;
};

struct MetaSeen {
  bool any = false;  // "metadata" was present
  bool name = false;
  bool namespace_ = false;
  bool resource_version = false;
};

bool decode_meta(od::value& v, ObjectMeta& m, MetaSeen& seen, Fail& f) {
  seen.any = true;
  return for_each_field(v, f, [&](Key& key, od::value& val) {
    if (key.is("name")) {
      seen.name = true;
      return read_string(val, m.name, f);
    }
    if (key.is("namespace")) {
      seen.namespace_ = true;
      return read_string(val, m.namespace_, f);
    }
    if (key.is("resourceVersion")) {
      seen.resource_version = true;
      return read_string(val, m.resource_version, f);
    }
    if (key.is("uid")) return read_string(val, m.uid, f);
    if (key.is("labels")) return read_string_map(val, m.labels, f);
    if (key.is("annotations")) return read_string_map(val, m.annotations, f);
    return true;
  });
}

// Checks the metadata fields every full object needs.
template <class T>
bool check_meta(const ObjectMeta& m, const MetaSeen& seen, bool bookmark, Fail& f) {
  if (!seen.any) return missing(f, "metadata");
  if (!bookmark && (!seen.name || m.name.empty())) return missing(f, "metadata.name");
  if (!bookmark && KindName<T>::namespaced && (!seen.namespace_ || m.namespace_.empty()))
    return missing(f, "metadata.namespace");
  if (!seen.resource_version || m.resource_version.empty()) return missing(f, "metadata.resourceVersion");
  return true;
}

bool check_kind(std::string_view got, std::string_view want, Fail& f) {
  if (got.empty() || got == want) return true;
  f.path.clear();
  f.what = ": expected \"" + std::string(want) + "\", got \"" + std::string(got) + "\"";
  return false;
}

bool decode_conditions(od::value& v, SliceConditions& c, Fail& f) {
  return for_each_field(v, f, [&](Key& key, od::value& val) {
    if (key.is("ready")) return read_opt_bool(val, c.ready, f);
    if (key.is("serving")) return read_opt_bool(val, c.serving, f);
    if (key.is("terminating")) return read_opt_bool(val, c.terminating, f);
    return true;
  });
}

bool decode_object_ref(od::value& v, ObjectRef& r, Fail& f, bool* was_null) {
  return for_each_field(
      v, f,
      [&](Key& key, od::value& val) {
        if (key.is("kind")) return read_string(val, r.kind, f);
        if (key.is("name")) return read_string(val, r.name, f);
        if (key.is("namespace")) return read_string(val, r.namespace_, f);
        return true;
      },
      true, was_null);
}

bool decode_hints(od::value& v, std::vector<std::string>& zones, Fail& f) {
  return for_each_field(v, f, [&](Key& key, od::value& val) {
    if (!key.is("forZones")) return true;
    return for_each_element(val, f, [&](std::size_t, od::value& zv) {
      bool has_name = false;
      std::string name;
      if (!for_each_field(
              zv, f,
              [&](Key& k, od::value& nv) {
                if (!k.is("name")) return true;
                has_name = true;
                return read_string(nv, name, f);
              },
              false))
        return false;
      if (!has_name) return missing(f, "name");
      zones.push_back(std::move(name));
      return true;
    });
  });
}

bool decode_slice_endpoint(od::value& v, SliceEndpoint& ep, Fail& f) {
  bool has_addresses = false;
  if (!for_each_field(
          v, f,
          [&](Key& key, od::value& val) {
            if (key.is("addresses")) {
              bool was_null = false;  // null is reported as missing below
              if (!read_string_array(val, ep.addresses, f, &was_null)) return false;
              has_addresses = !was_null;
              return true;
            }
            if (key.is("conditions")) return decode_conditions(val, ep.conditions, f);
            if (key.is("nodeName")) return read_string(val, ep.node_name, f);
            if (key.is("zone")) return read_string(val, ep.zone, f);
            if (key.is("hostname")) return read_string(val, ep.hostname, f);
            if (key.is("hints")) return decode_hints(val, ep.hint_zones, f);
            if (key.is("targetRef")) {
              bool was_null = false;
              ep.target_ref.emplace();
              if (!decode_object_ref(val, *ep.target_ref, f, &was_null)) return false;
              if (was_null) ep.target_ref.reset();
              return true;
            }
            return true;
          },
          false))
    return false;
  if (!has_addresses) return missing(f, "addresses");
  return true;
}

bool decode_slice_port(od::value& v, SlicePort& p, Fail& f) {
  return for_each_field(
      v, f,
      [&](Key& key, od::value& val) {
        if (key.is("name")) return read_string(val, p.name, f);
        if (key.is("port")) return read_opt_int32(val, p.port, f);
        if (key.is("protocol")) {
          if (!read_string(val, p.protocol, f)) return false;
          if (p.protocol.empty()) p.protocol = "TCP";
          return true;
        }
        if (key.is("appProtocol")) return read_string(val, p.app_protocol, f);
        return true;
      },
      false);
}

bool parse_address_type(std::string_view s, AddressType& t, Fail& f) {
  if (s == "IPv4") t = AddressType::ipv4;
  else if (s == "IPv6") t = AddressType::ipv6;
  else if (s == "FQDN") t = AddressType::fqdn;
  else {
    f.what = ": unknown address type \"" + std::string(s) + "\"";
    return false;
  }
  return true;
}

// Decodes the fields of an object of kind T from an object value. `bookmark` relaxes the
// requirements to metadata.resourceVersion and ignores everything else.
bool decode_fields(od::value& v, EndpointSlice& s, bool bookmark, Fail& f, SizeHint& hint) {
  MetaSeen seen;
  bool has_address_type = false;
  if (!for_each_field(
          v, f,
          [&](Key& key, od::value& val) {
            if (key.is("metadata")) return decode_meta(val, s.metadata, seen, f);
            if (bookmark) return true;
            if (key.is("kind")) {
              std::string_view k;
              return read_string_view(val, k, f) && check_kind(k, "EndpointSlice", f);
            }
            if (key.is("addressType")) {
              std::string_view at;
              if (!read_string_view(val, at, f)) return false;
              if (at.empty()) return true;  // reported as missing below
              has_address_type = true;
              return parse_address_type(at, s.address_type, f);
            }
            if (key.is("endpoints")) {
              // Slices of one watch tend to have similar sizes: reserving the last size
              // saves most reallocations without a counting pass over the array.
              s.endpoints.reserve(hint.endpoints);
              bool ok = for_each_element(val, f, [&](std::size_t, od::value& ev) {
                s.endpoints.emplace_back();
                return decode_slice_endpoint(ev, s.endpoints.back(), f);
              });
              if (s.endpoints.size() * 2 < s.endpoints.capacity()) s.endpoints.shrink_to_fit();
              if (!s.endpoints.empty()) hint.endpoints = s.endpoints.size();
              return ok;
            }
            if (key.is("ports")) {
              return for_each_element(val, f, [&](std::size_t, od::value& pv) {
                s.ports.emplace_back();
                return decode_slice_port(pv, s.ports.back(), f);
              });
            }
            return true;
          },
          false))
    return false;
  if (!check_meta<EndpointSlice>(s.metadata, seen, bookmark, f)) return false;
  if (!bookmark && !has_address_type) return missing(f, "addressType");
  return true;
}

bool decode_int_or_string(od::value& v, IntOrString& out, Fail& f) {
  od::json_type t;
  if (!type_of(v, t, f)) return false;
  if (t == od::json_type::string) return read_string(v, out.name, f);
  return read_opt_int32(v, out.number, f);
}

bool decode_service_port(od::value& v, ServicePort& p, Fail& f) {
  std::optional<std::int32_t> port;
  if (!for_each_field(
          v, f,
          [&](Key& key, od::value& val) {
            if (key.is("name")) return read_string(val, p.name, f);
            if (key.is("port")) return read_opt_int32(val, port, f);
            if (key.is("targetPort")) return decode_int_or_string(val, p.target_port, f);
            if (key.is("protocol")) {
              if (!read_string(val, p.protocol, f)) return false;
              if (p.protocol.empty()) p.protocol = "TCP";
              return true;
            }
            if (key.is("appProtocol")) return read_string(val, p.app_protocol, f);
            return true;
          },
          false))
    return false;
  if (!port) return missing(f, "port");
  p.port = *port;
  return true;
}

bool decode_service_spec(od::value& v, Service& s, Fail& f) {
  return for_each_field(v, f, [&](Key& key, od::value& val) {
    if (key.is("type")) {
      if (!read_string(val, s.type, f)) return false;
      if (s.type.empty()) s.type = "ClusterIP";
      return true;
    }
    if (key.is("clusterIP")) return read_string(val, s.cluster_ip, f);
    if (key.is("selector")) return read_string_map(val, s.selector, f);
    if (key.is("ports")) {
      return for_each_element(val, f, [&](std::size_t, od::value& pv) {
        s.ports.emplace_back();
        return decode_service_port(pv, s.ports.back(), f);
      });
    }
    return true;
  });
}

bool decode_fields(od::value& v, Service& s, bool bookmark, Fail& f, SizeHint&) {
  MetaSeen seen;
  if (!for_each_field(
          v, f,
          [&](Key& key, od::value& val) {
            if (key.is("metadata")) return decode_meta(val, s.metadata, seen, f);
            if (bookmark) return true;
            if (key.is("kind")) {
              std::string_view k;
              return read_string_view(val, k, f) && check_kind(k, "Service", f);
            }
            if (key.is("spec")) return decode_service_spec(val, s, f);
            return true;
          },
          false))
    return false;
  return check_meta<Service>(s.metadata, seen, bookmark, f);
}

bool decode_fields(od::value& v, Node& n, bool bookmark, Fail& f, SizeHint&) {
  MetaSeen seen;
  if (!for_each_field(
          v, f,
          [&](Key& key, od::value& val) {
            if (key.is("metadata")) return decode_meta(val, n.metadata, seen, f);
            if (bookmark) return true;
            if (key.is("kind")) {
              std::string_view k;
              return read_string_view(val, k, f) && check_kind(k, "Node", f);
            }
            return true;
          },
          false))
    return false;
  return check_meta<Node>(n.metadata, seen, bookmark, f);
}

bool decode_status_fields(od::value& v, ApiStatus& s, Fail& f) {
  return for_each_field(
      v, f,
      [&](Key& key, od::value& val) {
        if (key.is("kind")) {
          std::string_view k;
          return read_string_view(val, k, f) && check_kind(k, "Status", f);
        }
        if (key.is("status")) return read_string(val, s.status, f);
        if (key.is("reason")) return read_string(val, s.reason, f);
        if (key.is("message")) return read_string(val, s.message, f);
        if (key.is("code")) {
          std::optional<std::int32_t> c;
          if (!read_opt_int32(val, c, f)) return false;
          s.code = c.value_or(0);
          return true;
        }
        if (key.is("metadata")) {
          return for_each_field(val, f, [&](Key& mk, od::value& mv) {
            if (mk.is("continue")) return read_string(mv, s.continue_token, f);
            return true;
          });
        }
        if (key.is("details")) {
          return for_each_field(val, f, [&](Key& dk, od::value& dv) {
            if (dk.is("retryAfterSeconds")) return read_opt_int32(dv, s.retry_after_seconds, f);
            return true;
          });
        }
        return true;
      },
      false);
}

// "EndpointSlice demo/web-1", "Node node-a", "EndpointSlice <unnamed>".
template <class T>
std::string object_label(const ObjectMeta& m) {
  std::string out(KindName<T>::kind);
  out += ' ';
  if (!m.namespace_.empty()) {
    out += m.namespace_;
    out += '/';
  }
  out += m.name.empty() ? "<unnamed>" : m.name;
  return out;
}

bool parse_event_type(std::string_view s, EventType& t) {
  if (s == "ADDED") t = EventType::added;
  else if (s == "MODIFIED") t = EventType::modified;
  else if (s == "DELETED") t = EventType::deleted;
  else if (s == "BOOKMARK") t = EventType::bookmark;
  else if (s == "ERROR") t = EventType::error;
  else return false;
  return true;
}

}  // namespace

// ---- Decoder --------------------------------------------------------------------------------

struct Decoder::Impl {
  od::parser parser;
  SizeHint hint;
  std::unique_ptr<char[]> buf;
  std::size_t cap = 0;

  // Copies the input into a buffer with simdjson's padding and starts iterating.
  error_code start(std::string_view json, od::document& doc) {
    if (cap < json.size() + simdjson::SIMDJSON_PADDING) {
      cap = json.size() + simdjson::SIMDJSON_PADDING;
      if (cap < 4096) cap = 4096;
      buf.reset(new char[cap]);  // (not make_unique: that zeroes the whole buffer first)
    }
    if (!json.empty()) std::memcpy(buf.get(), json.data(), json.size());
    std::memset(buf.get() + json.size(), 0, simdjson::SIMDJSON_PADDING);
    return parser.iterate(buf.get(), json.size(), cap).get(doc);
  }
};

namespace {

Error decode_error(std::string reason) { return Error{Errc::decode_error, std::move(reason)}; }

// Gets the root value and checks, once decoding is done, that nothing follows it.
bool root_value(od::document& doc, od::value& v, Fail& f) {
  if (auto e = doc.get_value().get(v)) return json_fail(f, e);
  return true;
}

bool at_end(od::document& doc, Fail& f) {
  // simdjson 3.0 has no document::at_end(); current_location() answers OUT_OF_BOUNDS there.
  if (doc.current_location().error() != simdjson::OUT_OF_BOUNDS) {
    f.path.clear();
    f.what = ": malformed JSON (trailing content after the value)";
    return false;
  }
  return true;
}

}  // namespace

Decoder::Decoder() : impl_(std::make_unique<Impl>()) {}
Decoder::~Decoder() = default;

template <class T>
Result<T> Decoder::decode(std::string_view json) {
  od::document doc;
  Fail f;
  T obj;
  if (auto e = impl_->start(json, doc)) {
    json_fail(f, e);
    return decode_error(std::string(KindName<T>::kind) + ": " + f.text());
  }
  od::value v;
  if (!root_value(doc, v, f) || !decode_fields(v, obj, false, f, impl_->hint) || !at_end(doc, f))
    return decode_error(object_label<T>(obj.metadata) + ": " + f.text());
  return obj;
}

template <class T>
Result<WatchEvent<T>> Decoder::decode_event(std::string_view json) {
  od::document doc;
  Fail f;
  WatchEvent<T> ev;
  if (auto e = impl_->start(json, doc)) {
    json_fail(f, e);
    return decode_error("watch event: " + f.text());
  }
  bool has_type = false;
  bool has_object = false;
  bool object_first = false;  // "object" came before "type": decode it in a second pass
  bool object_failed = false;
  auto decode_object = [&](od::value& ov) {
    if (ev.type == EventType::error) {
      return decode_status_fields(ov, ev.status, f);
    }
    if (!decode_fields(ov, ev.object, ev.type == EventType::bookmark, f, impl_->hint)) {
      object_failed = true;
      return false;
    }
    ev.resource_version = ev.object.metadata.resource_version;
    return true;
  };
  od::value root;
  bool ok = root_value(doc, root, f) &&
            for_each_field(
                root, f,
                [&](Key& key, od::value& val) {
                  if (key.is("type")) {
                    std::string_view t;
                    if (!read_string_view(val, t, f)) return false;
                    if (!parse_event_type(t, ev.type)) {
                      f.what = ": unknown event type \"" + std::string(t) + "\"";
                      return false;
                    }
                    has_type = true;
                    return true;
                  }
                  if (key.is("object")) {
                    has_object = true;
                    if (!has_type) {
                      object_first = true;
                      return true;
                    }
                    return decode_object(val);
                  }
                  return true;
                },
                false) &&
            at_end(doc, f);
  if (ok && !has_type) ok = missing(f, "type");
  if (ok && !has_object) ok = missing(f, "object");
  if (ok && object_first) {
    // Rare: a producer that writes "object" before "type". Rewind and read it again.
    doc.rewind();
    od::value ov;
    if (auto e = doc.find_field_unordered("object").get(ov)) ok = json_fail(f, e);
    else ok = decode_object(ov);
    if (!ok) f.prepend_field("object");
  }
  if (!ok) {
    if (object_failed) {
      // Report the path relative to the object, which is named first.
      if (f.path.starts_with("object")) f.path.erase(0, f.path.size() > 6 && f.path[6] == '.' ? 7 : 6);
      return decode_error(object_label<T>(ev.object.metadata) + " (" + event_type_name(ev.type) +
                          " event): " + f.text());
    }
    return decode_error("watch event: " + f.text());
  }
  if (ev.type == EventType::error) ev.object = T{};
  return ev;
}

void Decoder::release_memory(std::size_t keep) {
  if (impl_->cap > keep) {
    impl_->buf.reset();
    impl_->cap = 0;
  }
  if (impl_->parser.capacity() > keep) impl_->parser = od::parser{};
}

template <class T>
Result<ObjectList<T>> Decoder::decode_list(std::string_view json) {
  od::document doc;
  Fail f;
  ObjectList<T> list;
  std::string list_kind(KindName<T>::list_kind);
  if (auto e = impl_->start(json, doc)) {
    json_fail(f, e);
    return decode_error(list_kind + ": " + f.text());
  }
  bool has_rv = false;
  std::size_t failed_item = std::size_t(-1);
  od::value root;
  bool ok = root_value(doc, root, f) &&
            for_each_field(
                root, f,
                [&](Key& key, od::value& val) {
                  if (key.is("kind")) {
                    std::string_view k;
                    return read_string_view(val, k, f) && check_kind(k, list_kind, f);
                  }
                  if (key.is("metadata")) {
                    return for_each_field(val, f, [&](Key& mk, od::value& mv) {
                      if (mk.is("resourceVersion")) {
                        has_rv = true;
                        return read_string(mv, list.resource_version, f);
                      }
                      if (mk.is("continue")) return read_string(mv, list.continue_token, f);
                      if (mk.is("remainingItemCount")) {
                        std::optional<std::int64_t> n;
                        if (!read_opt_int64(mv, n, f)) return false;
                        list.remaining_item_count = n;
                      }
                      return true;
                    });
                  }
                  if (key.is("items")) {
                    return for_each_element(val, f, [&](std::size_t i, od::value& iv) {
                      list.items.emplace_back();
                      if (!decode_fields(iv, list.items.back(), false, f, impl_->hint)) {
                        failed_item = i;
                        return false;
                      }
                      return true;
                    });
                  }
                  return true;
                },
                false) &&
            at_end(doc, f);
  if (ok && (!has_rv || list.resource_version.empty())) ok = missing(f, "metadata.resourceVersion");
  if (!ok) {
    if (failed_item != std::size_t(-1)) {
      // The path is "items[i].<field>": report the item's own name and its relative path.
      std::string rel = f.path;
      std::string prefix = "items[" + std::to_string(failed_item) + "]";
      if (rel.starts_with(prefix)) rel.erase(0, prefix.size() + (rel.size() > prefix.size() && rel[prefix.size()] == '.' ? 1 : 0));
      Fail inner{rel, f.what};
      return decode_error(list_kind + " " + prefix + ": " + object_label<T>(list.items.back().metadata) + ": " +
                          inner.text());
    }
    return decode_error(list_kind + ": " + f.text());
  }
  return list;
}

Result<ApiStatus> Decoder::decode_status(std::string_view json) {
  od::document doc;
  Fail f;
  ApiStatus s;
  if (auto e = impl_->start(json, doc)) {
    json_fail(f, e);
    return decode_error("Status: " + f.text());
  }
  od::value v;
  if (!root_value(doc, v, f) || !decode_status_fields(v, s, f) || !at_end(doc, f))
    return decode_error("Status: " + f.text());
  return s;
}

template Result<EndpointSlice> Decoder::decode<EndpointSlice>(std::string_view);
template Result<Service> Decoder::decode<Service>(std::string_view);
template Result<Node> Decoder::decode<Node>(std::string_view);
template Result<WatchEvent<EndpointSlice>> Decoder::decode_event<EndpointSlice>(std::string_view);
template Result<WatchEvent<Service>> Decoder::decode_event<Service>(std::string_view);
template Result<WatchEvent<Node>> Decoder::decode_event<Node>(std::string_view);
template Result<ObjectList<EndpointSlice>> Decoder::decode_list<EndpointSlice>(std::string_view);
template Result<ObjectList<Service>> Decoder::decode_list<Service>(std::string_view);
template Result<ObjectList<Node>> Decoder::decode_list<Node>(std::string_view);

}  // namespace kupstream::kube
