// A small blocking HTTP/1.1 client for porticoctl's Admin API calls (ping, dump, diff, sync,
// reset): plain http:// only, one keep-alive connection per client object (one per worker
// thread), connect/read timeouts, a response size limit, chunked and Content-Length bodies
// (the project's strict head parser and chunked decoder, common/http/). Not thread-safe: each
// thread owns its own HttpClient.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace portico::cli {

struct HttpEndpoint {
  std::string host;         // as given (a name or an IP literal, without brackets)
  uint16_t port = 80;
  std::string base_path;    // a path prefix from the URL without the trailing '/', or ""
  std::string display;      // the URL as given, for messages
};

// Parses "http://host[:port][/prefix]". https:// and other schemes are refused with a message
// saying so.
absl::StatusOr<HttpEndpoint> parseHttpUrl(std::string_view url);

struct HttpOptions {
  int connect_timeout_ms = 5000;
  int io_timeout_ms = 60000;                 // per read or write wait
  uint64_t max_response_bytes = 256u << 20;  // a 10,000-route page is a few MB
  std::vector<std::pair<std::string, std::string>> headers;  // sent on every request
};

struct HttpResponse {
  int status = 0;
  std::string body;
};

class HttpClient {
 public:
  HttpClient(HttpEndpoint endpoint, HttpOptions options)
      : endpoint_(std::move(endpoint)), options_(std::move(options)) {}
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends one request on the kept-alive connection (opened on first use, reopened once when
  // the server had closed an idle one). `path` starts with '/' and is appended to the
  // endpoint's base path. A non-empty `body` is sent as application/json. Errors are transport
  // errors (kUnavailable: cannot connect; kDeadlineExceeded; kResourceExhausted; kInternal for
  // a malformed answer); any HTTP status is a response.
  absl::StatusOr<HttpResponse> request(std::string_view method, std::string_view path,
                                       std::string_view body = {});

 private:
  absl::Status connectSocket();
  void closeSocket();
  absl::Status sendAll(std::string_view data);
  absl::StatusOr<HttpResponse> roundTrip(const std::string& head, std::string_view body,
                                         bool is_head);

  HttpEndpoint endpoint_;
  HttpOptions options_;
  int fd_ = -1;
  std::string buf_;  // bytes read past the previous response (none expected; kept for safety)
};

}  // namespace portico::cli
