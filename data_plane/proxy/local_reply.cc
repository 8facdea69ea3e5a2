#include "data_plane/proxy/local_reply.h"

#include <ctime>

#include "absl/strings/str_cat.h"

namespace portico::dp {

std::string_view reasonPhrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 426: return "Upgrade Required";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 429: return "Too Many Requests";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

void appendJsonEscaped(std::string_view in, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (char c : in) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else if (u < 0x20) {
      out->append("\\u00");
      out->push_back(kHex[u >> 4]);
      out->push_back(kHex[u & 15]);
    } else {
      out->push_back(c);
    }
  }
}

void appendLocalBody(int status, std::string_view body, std::string_view content_type,
                     bool keep_alive, std::string_view date, std::string* out,
                     std::string_view extra_headers) {
  auto sv = [](std::string_view s) { return absl::string_view(s.data(), s.size()); };
  absl::StrAppend(out, "HTTP/1.1 ", status, " ", sv(reasonPhrase(status)), "\r\nDate: ", sv(date),
                  "\r\n");
  if (!content_type.empty()) {
    absl::StrAppend(out, "Content-Type: ", sv(content_type), "\r\n");
  }
  out->append(extra_headers);
  if (extra_headers.find("Connection:") == std::string_view::npos) {
    absl::StrAppend(out, "Connection: ", keep_alive ? "keep-alive" : "close", "\r\n");
  }
  absl::StrAppend(out, "Content-Length: ", body.size(), "\r\nServer: ", sv(kServerHeader),
                  "\r\n\r\n");
  out->append(body);
}

std::string localReplyBody(std::string_view message) {
  std::string body = "{\"message\":\"";
  appendJsonEscaped(message, &body);
  body.append("\"}");
  return body;
}

void appendLocalReply(int status, std::string_view message, bool keep_alive,
                      std::string_view date, std::string* out, std::string_view extra_headers) {
  appendLocalBody(status, localReplyBody(message), kLocalReplyType, keep_alive, date, out,
                  extra_headers);
}

std::string httpDateNow() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  size_t n = std::strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return std::string(buf, n);
}

}  // namespace portico::dp
