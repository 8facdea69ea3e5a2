#include "cli/http_client.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/http/chunked.h"
#include "common/http/http_parser.h"

namespace portico::cli {
namespace {

bool startsWithNoCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && http::equalsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

// Waits until `fd` is ready for `events`; false on timeout or error.
absl::Status waitFor(int fd, short events, int timeout_ms, const char* what) {
  pollfd p{fd, events, 0};
  for (;;) {
    const int r = ::poll(&p, 1, timeout_ms);
    if (r > 0) {
      return absl::OkStatus();
    }
    if (r == 0) {
      return absl::DeadlineExceededError(
          absl::StrCat("timed out after ", timeout_ms, " ms ", what));
    }
    if (errno != EINTR) {
      return absl::UnavailableError(absl::StrCat("poll: ", std::strerror(errno)));
    }
  }
}

}  // namespace

absl::StatusOr<HttpEndpoint> parseHttpUrl(std::string_view url) {
  HttpEndpoint ep;
  ep.display = std::string(url);
  if (startsWithNoCase(url, "https://")) {
    return absl::InvalidArgumentError(
        "'" + ep.display + "': https is not supported by porticoctl; use http:// (the Admin API "
        "listens on plain HTTP, 127.0.0.1:8001 by default) or a local TLS-terminating proxy");
  }
  if (!startsWithNoCase(url, "http://")) {
    if (url.find("://") != std::string_view::npos) {
      return absl::InvalidArgumentError("'" + ep.display +
                                        "': only http:// URLs are supported");
    }
  } else {
    url.remove_prefix(7);
  }
  const size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view path = url.substr(slash);
    while (!path.empty() && path.back() == '/') {
      path.remove_suffix(1);
    }
    ep.base_path = std::string(path);
  }
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos) {
    return absl::InvalidArgumentError("'" + ep.display +
                                      "': user info in the URL is not supported; use --headers");
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return absl::InvalidArgumentError("'" + ep.display + "': bad IPv6 address");
    }
    ep.host = std::string(authority.substr(1, close - 1));
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return absl::InvalidArgumentError("'" + ep.display + "': bad address");
      }
      port = rest.substr(1);
    }
  } else {
    const size_t colon = authority.rfind(':');
    ep.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
    }
  }
  if (ep.host.empty()) {
    return absl::InvalidArgumentError("'" + ep.display + "': no host");
  }
  if (!port.empty()) {
    uint32_t p = 0;
    if (!absl::SimpleAtoi(absl::string_view(port.data(), port.size()), &p) || p == 0 ||
        p > 65535) {
      return absl::InvalidArgumentError("'" + ep.display + "': bad port");
    }
    ep.port = static_cast<uint16_t>(p);
  }
  return ep;
}

HttpClient::~HttpClient() { closeSocket(); }

void HttpClient::closeSocket() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  buf_.clear();
}

absl::Status HttpClient::connectSocket() {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(endpoint_.port);
  if (int rc = ::getaddrinfo(endpoint_.host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot resolve '", endpoint_.host, "': ", ::gai_strerror(rc)));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, &::freeaddrinfo);
  std::string last_error = "no address";
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                            a->ai_protocol);
    if (fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      absl::Status st = waitFor(fd, POLLOUT, options_.connect_timeout_ms, "connecting");
      if (!st.ok()) {
        last_error = std::string(st.message());
        ::close(fd);
        continue;
      }
      int err = 0;
      socklen_t len = sizeof(err);
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc != 0) {
      last_error = std::strerror(errno);
      ::close(fd);
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fd_ = fd;
    return absl::OkStatus();
  }
  return absl::UnavailableError(absl::StrCat("cannot connect to ", endpoint_.host, ":",
                                             endpoint_.port, ": ", last_error));
}

absl::Status HttpClient::sendAll(std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (absl::Status st = waitFor(fd_, POLLOUT, options_.io_timeout_ms, "sending");
          !st.ok()) {
        return st;
      }
      continue;
    }
    return absl::UnavailableError(absl::StrCat("send: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<HttpResponse> HttpClient::request(std::string_view method, std::string_view path,
                                                 std::string_view body) {
  std::string head;
  head.reserve(256 + path.size());
  absl::StrAppend(&head, std::string(method), " ", endpoint_.base_path, std::string(path),
                  " HTTP/1.1\r\nHost: ",
                  endpoint_.host.find(':') != std::string::npos ? "[" + endpoint_.host + "]"
                                                                : endpoint_.host,
                  ":", endpoint_.port,
                  "\r\nUser-Agent: porticoctl\r\nAccept: application/json\r\n");
  for (const auto& [k, v] : options_.headers) {
    absl::StrAppend(&head, k, ": ", v, "\r\n");
  }
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    absl::StrAppend(&head, "Content-Type: application/json\r\nContent-Length: ", body.size(),
                    "\r\n");
  }
  head += "\r\n";
  const bool is_head = method == "HEAD";
  // A kept-alive connection the server closed meanwhile fails on first use: retry once on a
  // fresh connection. Only then, so a request is never sent twice on a live connection.
  const bool reused = fd_ >= 0;
  absl::StatusOr<HttpResponse> r = roundTrip(head, body, is_head);
  if (!r.ok() && reused && absl::IsAborted(r.status())) {
    closeSocket();
    r = roundTrip(head, body, is_head);
  }
  if (!r.ok()) {
    closeSocket();
    if (absl::IsAborted(r.status())) {
      return absl::UnavailableError(r.status().message());
    }
  }
  return r;
}

absl::StatusOr<HttpResponse> HttpClient::roundTrip(const std::string& head, std::string_view body,
                                                   bool is_head) {
  if (fd_ < 0) {
    if (absl::Status st = connectSocket(); !st.ok()) {
      return st;
    }
  }
  if (absl::Status st = sendAll(head); !st.ok()) {
    return absl::AbortedError(st.message());
  }
  if (absl::Status st = sendAll(body); !st.ok()) {
    return absl::AbortedError(st.message());
  }
  std::string in = std::move(buf_);
  buf_.clear();
  http::HeadParser parser;
  auto parsed = std::make_unique<http::ResponseHead>();
  bool have_head = false;
  HttpResponse out;
  http::ChunkedDecoder chunked;
  size_t body_start = 0;
  size_t chunk_pos = 0;  // how much of `in` past the head the chunked decoder consumed
  bool done = false;
  bool got_any = !in.empty();
  char tmp[1 << 16];
  for (;;) {
    if (!have_head) {
      http::HeadParser::Status s = parser.parseResponse(in, is_head, parsed.get());
      if (s == http::HeadParser::Status::kError) {
        return absl::InternalError(absl::StrCat("malformed HTTP response from ",
                                                endpoint_.display, ": ",
                                                std::string(http::describe(parser.error()))));
      }
      if (s == http::HeadParser::Status::kComplete) {
        if (parsed->status >= 100 && parsed->status < 200) {  // skip 100 Continue and such
          in.erase(0, parsed->head_bytes);
          parser.reset();
          continue;
        }
        have_head = true;
        out.status = parsed->status;
        body_start = parsed->head_bytes;
        if (parsed->body == http::BodyKind::kContentLength &&
            parsed->content_length > options_.max_response_bytes) {
          return absl::ResourceExhaustedError(
              absl::StrCat("response larger than ", options_.max_response_bytes, " bytes"));
        }
        if (is_head || out.status == 204 || out.status == 304 ||
            parsed->body == http::BodyKind::kNone) {
          buf_ = in.substr(body_start);
          done = true;
        }
      }
    }
    if (have_head && !done) {
      if (parsed->body == http::BodyKind::kContentLength) {
        if (in.size() - body_start >= parsed->content_length) {
          out.body = in.substr(body_start, parsed->content_length);
          buf_ = in.substr(body_start + parsed->content_length);
          done = true;
        }
      } else if (parsed->body == http::BodyKind::kChunked) {
        size_t consumed = 0;
        std::string_view rest(in.data() + body_start + chunk_pos,
                              in.size() - body_start - chunk_pos);
        http::ChunkedDecoder::Result r = chunked.decode(
            rest, &consumed, [&out](std::string_view data) { out.body.append(data); });
        chunk_pos += consumed;
        if (r == http::ChunkedDecoder::Result::kError) {
          return absl::InternalError("malformed chunked body from " + endpoint_.display);
        }
        if (out.body.size() > options_.max_response_bytes) {
          return absl::ResourceExhaustedError(
              absl::StrCat("response larger than ", options_.max_response_bytes, " bytes"));
        }
        if (r == http::ChunkedDecoder::Result::kDone) {
          buf_ = in.substr(body_start + chunk_pos);
          done = true;
        }
      }
      // kUntilClose: read to EOF below.
    }
    if (done) {
      break;
    }
    if (in.size() > options_.max_response_bytes + 64 * 1024) {
      return absl::ResourceExhaustedError(
          absl::StrCat("response larger than ", options_.max_response_bytes, " bytes"));
    }
    const ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
    if (n > 0) {
      in.append(tmp, static_cast<size_t>(n));
      got_any = true;
      continue;
    }
    if (n == 0) {
      if (have_head && parsed->body == http::BodyKind::kUntilClose) {
        out.body = in.substr(body_start);
        closeSocket();
        return out;
      }
      // Closed before any byte: an idle keep-alive connection the server had closed.
      if (!got_any) {
        return absl::AbortedError(
            absl::StrCat("connection to ", endpoint_.display, " closed by the server"));
      }
      return absl::InternalError("connection closed in the middle of a response from " +
                                 endpoint_.display);
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (absl::Status st = waitFor(fd_, POLLIN, options_.io_timeout_ms,
                                    "waiting for the Admin API's answer");
          !st.ok()) {
        return st;
      }
      continue;
    }
    if (errno == ECONNRESET && !got_any) {
      return absl::AbortedError("connection reset by the server");
    }
    return absl::UnavailableError(absl::StrCat("recv: ", std::strerror(errno)));
  }
  if (!parsed->keep_alive) {
    closeSocket();
  }
  return out;
}

}  // namespace portico::cli
