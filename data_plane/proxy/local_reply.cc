#include "data_plane/proxy/local_reply.h"

#include <ctime>

#include "absl/strings/str_cat.h"

namespace portico::dp {

std::string_view reasonPhrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 426: return "Upgrade Required";
    case 400: return "Bad Request";
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

void appendLocalReply(int status, std::string_view message, bool keep_alive,
                      std::string_view date, std::string* out, std::string_view extra_headers) {
  const size_t body_len = message.size() + 14;  // {"message":""}
  auto sv = [](std::string_view s) { return absl::string_view(s.data(), s.size()); };
  absl::StrAppend(out, "HTTP/1.1 ", status, " ", sv(reasonPhrase(status)), "\r\nDate: ", sv(date),
                  "\r\nContent-Type: application/json; charset=utf-8\r\n", sv(extra_headers));
  if (extra_headers.find("Connection:") == std::string_view::npos) {
    absl::StrAppend(out, "Connection: ", keep_alive ? "keep-alive" : "close", "\r\n");
  }
  absl::StrAppend(out, "Content-Length: ", body_len,
                  "\r\nServer: ", sv(kServerHeader), "\r\n\r\n{\"message\":\"", sv(message),
                  "\"}");
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
