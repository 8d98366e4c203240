#include <strings.h>

#include <cstdio>

#include "net/exchange_core.h"
#include "net/http_types.h"

namespace kupstream::net {
namespace {

bool has_ctl(std::string_view s) {
  for (char c : s)
    if (c == '\r' || c == '\n' || c == '\0') return true;
  return false;
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 32 || u >= 127 || c == ':' || c == '"' || c == '(' || c == ')' || c == ',' || c == '/' || c == ';' ||
        c == '<' || c == '=' || c == '>' || c == '?' || c == '@' || c == '[' || c == '\\' || c == ']' || c == '{' ||
        c == '}')
      return false;
  }
  return true;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

bool method_expects_body(std::string_view m) { return m == "POST" || m == "PUT" || m == "PATCH"; }

}  // namespace

const std::string* HttpResponseHead::find(std::string_view name) const noexcept {
  for (const auto& h : headers)
    if (iequals(h.name, name)) return &h.value;
  return nullptr;
}

Status serialize_request_head(const HttpRequest& request, const std::string& authority, std::string& out) {
  if (!is_token(request.method)) return Error{Errc::invalid_argument, "request.method: '" + request.method + "' is not an HTTP token"};
  if (request.target.empty() || has_ctl(request.target) || request.target.find(' ') != std::string::npos)
    return Error{Errc::invalid_argument, "request.target: '" + request.target + "' is empty or has spaces or control characters"};
  bool has_host = request.header_lines_have_host;
  std::size_t size = request.method.size() + request.target.size() + 64 + authority.size() + request.header_lines.size();
  for (std::size_t i = 0; i < request.headers.size(); ++i) {
    const auto& h = request.headers[i];
    if (!is_token(h.name))
      return Error{Errc::invalid_argument, "request.headers[" + std::to_string(i) + "].name: '" + h.name + "' is not an HTTP token"};
    if (has_ctl(h.value))
      return Error{Errc::invalid_argument, "request.headers[" + std::to_string(i) + "] (" + h.name + "): value has CR, LF or NUL"};
    if (iequals(h.name, "content-length") || iequals(h.name, "transfer-encoding"))
      return Error{Errc::invalid_argument, "request.headers[" + std::to_string(i) + "]: " + h.name + " is set by the client from body_mode"};
    if (iequals(h.name, "host")) has_host = true;
    size += h.name.size() + h.value.size() + 4;
  }
  if (request.body_mode == BodyMode::buffered) size += request.body.size();
  out.reserve(out.size() + size);
  out += request.method;
  out += ' ';
  out += request.target;
  out += " HTTP/1.1\r\n";
  if (!has_host) {
    out += "Host: ";
    out += authority;
    out += "\r\n";
  }
  for (const auto& h : request.headers) {
    out += h.name;
    out += ": ";
    out += h.value;
    out += "\r\n";
  }
  out += request.header_lines;
  switch (request.body_mode) {
    case BodyMode::buffered:
      if (!request.body.empty() || method_expects_body(request.method)) {
        out += "Content-Length: ";
        out += std::to_string(request.body.size());
        out += "\r\n";
      }
      break;
    case BodyMode::streamed_length:
      out += "Content-Length: ";
      out += std::to_string(request.content_length);
      out += "\r\n";
      break;
    case BodyMode::streamed_chunked:
      out += "Transfer-Encoding: chunked\r\n";
      break;
  }
  out += "\r\n";
  if (request.body_mode == BodyMode::buffered) out += request.body;
  return {};
}

void frame_chunk(std::string_view data, std::string& out) {
  if (data.empty()) return;  // an empty chunk would end the body
  char size[24];
  int n = std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  out.append(size, static_cast<std::size_t>(n));
  out.append(data);
  out += "\r\n";
}

}  // namespace kupstream::net
