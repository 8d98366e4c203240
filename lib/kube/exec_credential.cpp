#include "kube/exec_credential.h"

#include <simdjson.h>

#include <cstdio>

#include "kube/base64.h"

namespace kupstream::kube {

std::string json_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::string exec_info_json(const ClusterConfig& cluster, const ExecConfig& exec, std::string_view ca_pem) {
  std::string out = R"({"kind":"ExecCredential","apiVersion":")" + json_escape(exec.api_version) + R"(","spec":{)";
  if (exec.provide_cluster_info) {
    out += R"("cluster":{"server":")" + json_escape(cluster.server) + '"';
    if (!cluster.tls_server_name.empty()) out += R"(,"tls-server-name":")" + json_escape(cluster.tls_server_name) + '"';
    if (cluster.insecure_skip_tls_verify) out += R"(,"insecure-skip-tls-verify":true)";
    if (!ca_pem.empty()) out += R"(,"certificate-authority-data":")" + base64_encode(ca_pem) + '"';
    out += "},";
  }
  out += R"("interactive":false}})";
  return out;
}

namespace {

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

// Days since 1970-01-01 of a civil date (proleptic Gregorian), Howard Hinnant's algorithm.
long days_from_civil(int y, int m, int d) {
  y -= m <= 2;
  const long era = (y >= 0 ? y : y - 399) / 400;
  const long yoe = y - era * 400;
  const long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

}  // namespace

std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view s) {
  int y, mo, d, h, mi, sec;
  if (s.size() < 20 || !digits(s, 0, 4, y) || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
      !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't') || !digits(s, 11, 2, h) || s[13] != ':' ||
      !digits(s, 14, 2, mi) || s[16] != ':' || !digits(s, 17, 2, sec))
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  std::size_t pos = 19;
  long long nanos = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int n = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (n < 9) nanos = nanos * 10 + (s[pos] - '0'), ++n;
      ++pos;
    }
    if (n == 0) return std::nullopt;
    while (n++ < 9) nanos *= 10;
  }
  long offset = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' || !digits(s, pos + 4, 2, om))
      return std::nullopt;
    offset = (oh * 60L + om) * 60L * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  long long secs = days_from_civil(y, mo, d) * 86400LL + h * 3600LL + mi * 60LL + sec - offset;
  // system_clock counts nanoseconds in 64 bits: about 1678 to 2262. A time beyond that range
  // (a plugin's "expires in 9999") is the range's end rather than an overflow.
  using Clock = std::chrono::system_clock;
  constexpr long long kLimit = std::chrono::duration_cast<std::chrono::seconds>(Clock::duration::max()).count() - 1;
  if (secs >= kLimit) return Clock::time_point::max();
  if (secs <= -kLimit) return Clock::time_point::min();
  auto tp = std::chrono::system_clock::time_point{} +
            std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::seconds(secs) +
                                                                            std::chrono::nanoseconds(nanos));
  return tp;
}

Result<Credential> parse_exec_credential(std::string_view json, std::string_view expected_api_version) {
  auto fail = [](std::string why) { return Error{Errc::credential_error, std::move(why)}; };
  simdjson::dom::parser parser;
  simdjson::padded_string padded(json);
  simdjson::dom::element root;
  if (auto e = parser.parse(padded).get(root))
    return fail(std::string("output is not JSON (") + simdjson::error_message(e) + ")");
  simdjson::dom::object obj;
  if (root.get(obj)) return fail("output is not a JSON object");
  auto str = [&](simdjson::dom::object o, const char* key, std::string_view& out) -> bool {
    simdjson::dom::element el;
    if (o[key].get(el)) {
      out = {};
      return true;  // absent
    }
    if (el.is_null()) {
      out = {};
      return true;
    }
    return !el.get(out);
  };
  std::string_view kind, api_version;
  if (!str(obj, "kind", kind) || kind != "ExecCredential")
    return fail("output has kind \"" + std::string(kind) + "\", expected \"ExecCredential\"");
  if (!str(obj, "apiVersion", api_version) || api_version != expected_api_version)
    return fail("output has apiVersion \"" + std::string(api_version) + "\", expected \"" +
                std::string(expected_api_version) + "\"");
  simdjson::dom::object status;
  if (obj["status"].get(status)) return fail("output has no status object");
  std::string_view token, cert, key, expiry;
  if (!str(status, "token", token)) return fail("status.token is not a string");
  if (!str(status, "clientCertificateData", cert)) return fail("status.clientCertificateData is not a string");
  if (!str(status, "clientKeyData", key)) return fail("status.clientKeyData is not a string");
  if (!str(status, "expirationTimestamp", expiry)) return fail("status.expirationTimestamp is not a string");
  if (cert.empty() != key.empty())
    return fail(cert.empty() ? "status.clientKeyData is set without status.clientCertificateData"
                             : "status.clientCertificateData is set without status.clientKeyData");
  if (token.empty() && cert.empty()) return fail("status has neither a token nor a client certificate");
  Credential c;
  if (!token.empty()) c.authorization = "Bearer " + std::string(token);
  c.client_certificate_pem = std::string(cert);
  c.client_key_pem = std::string(key);
  if (!expiry.empty()) {
    c.expiry = parse_rfc3339(expiry);
    if (!c.expiry) return fail("status.expirationTimestamp \"" + std::string(expiry) + "\" is not an RFC 3339 time");
  }
  return c;
}

}  // namespace kupstream::kube
