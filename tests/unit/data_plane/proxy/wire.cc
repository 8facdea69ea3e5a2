#include "tests/unit/data_plane/proxy/wire.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "common/http/chunked.h"
#include "common/http/http_parser.h"

namespace portico::dp::testing {
namespace {

int connectTo(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    throw std::runtime_error("connect failed");
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

void sendAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) {
      return;
    }
    off += static_cast<size_t>(n);
  }
}

// Reads more bytes into buf; false on EOF/error/timeout.
bool readMore(int fd, std::string* buf) {
  char tmp[65536];
  ssize_t n = ::recv(fd, tmp, sizeof(tmp), 0);
  if (n <= 0) {
    return false;
  }
  buf->append(tmp, static_cast<size_t>(n));
  return true;
}

// Reads one message body per framing from buf/fd into *body; consumes it from buf.
bool readBody(int fd, std::string* buf, http::BodyKind kind, uint64_t len, std::string* body) {
  if (kind == http::BodyKind::kContentLength) {
    while (buf->size() < len) {
      if (!readMore(fd, buf)) return false;
    }
    body->assign(buf->substr(0, len));
    buf->erase(0, len);
    return true;
  }
  if (kind == http::BodyKind::kChunked) {
    http::ChunkedDecoder d;
    for (;;) {
      size_t used = 0;
      auto r = d.decode(*buf, &used, [&](std::string_view p) { body->append(p); });
      buf->erase(0, used);
      if (r == http::ChunkedDecoder::Result::kDone) return true;
      if (r == http::ChunkedDecoder::Result::kError) return false;
      if (!readMore(fd, buf)) return false;
    }
  }
  if (kind == http::BodyKind::kUntilClose) {
    while (readMore(fd, buf)) {
    }
    body->swap(*buf);
    buf->clear();
  }
  return true;
}

}  // namespace

std::string WireResponse::header(const std::string& name) const {
  for (auto& [k, v] : headers) {
    if (http::equalsIgnoreCase(k, name)) return v;
  }
  return "";
}

RawClient::RawClient(int port) : fd_(connectTo(port)) {}
RawClient::~RawClient() { ::close(fd_); }
void RawClient::send(const std::string& bytes) { sendAll(fd_, bytes); }

WireResponse RawClient::read(const std::string& method) {
  WireResponse out;
  http::HeadParser p;
  http::ResponseHead h;
  for (;;) {
    auto st = p.parseResponse(buf_, method == "HEAD", &h);
    if (st == http::HeadParser::Status::kComplete) break;
    if (st == http::HeadParser::Status::kError || !readMore(fd_, &buf_)) return out;
  }
  for (uint32_t i = 0; i < h.num_headers; ++i) {
    out.headers.emplace_back(std::string(h.headers[i].name), std::string(h.headers[i].value));
  }
  const int status = h.status;
  const auto kind = h.body;
  const uint64_t len = h.content_length;
  out.chunked = kind == http::BodyKind::kChunked;
  buf_.erase(0, h.head_bytes);
  if (!readBody(fd_, &buf_, kind, len, &out.body)) return out;
  out.status = status;
  return out;
}

std::string RawClient::readBytes(size_t n) {
  while (buf_.size() < n) {
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, 3000) <= 0 || !readMore(fd_, &buf_)) break;
  }
  std::string out = buf_.substr(0, n);
  buf_.erase(0, out.size());
  return out;
}

bool RawClient::closedByPeer() {
  pollfd pfd{fd_, POLLIN, 0};
  if (::poll(&pfd, 1, 3000) <= 0) return false;
  char c;
  return ::recv(fd_, &c, 1, MSG_PEEK) <= 0;
}

ScriptedUpstream::ScriptedUpstream() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  ::listen(listen_fd_, 128);
  socklen_t len = sizeof(a);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  accept_thread_ = std::thread([this] {
    for (;;) {
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0 || stop_) {
        if (fd >= 0) ::close(fd);
        return;
      }
      ++connections_;
      std::lock_guard<std::mutex> l(mu_);
      fds_.push_back(fd);
      threads_.emplace_back([this, fd] { serve(fd); });
    }
  });
}

ScriptedUpstream::~ScriptedUpstream() {
  stop_ = true;
  ::shutdown(listen_fd_, SHUT_RDWR);
  ::close(listen_fd_);
  accept_thread_.join();
  std::lock_guard<std::mutex> l(mu_);
  for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
  for (auto& t : threads_) t.join();
}

void ScriptedUpstream::serve(int fd) {
  std::string buf;
  for (;;) {
    http::HeadParser p;
    http::RequestHead h;
    for (;;) {
      auto st = p.parseRequest(buf, &h);
      if (st == http::HeadParser::Status::kComplete) break;
      if (st == http::HeadParser::Status::kError || !readMore(fd, &buf)) {
        ::close(fd);
        return;
      }
    }
    std::string echo = std::string(h.method) + " " + std::string(h.target) + "\n";
    for (uint32_t i = 0; i < h.num_headers; ++i) {
      echo += std::string(h.headers[i].name) + ": " + std::string(h.headers[i].value) + "\n";
    }
    const std::string path(h.path);
    const auto kind = h.body;
    const uint64_t len = h.content_length;
    const std::string query(h.has_query ? h.query : std::string_view());  // h views buf
    buf.erase(0, h.head_bytes);
    if (path.rfind("/early", 0) == 0) {
      // Answers before reading the body, then reads (and drops) whatever comes until EOF.
      sendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nearly");
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      ::shutdown(fd, SHUT_WR);
      while (readMore(fd, &buf)) buf.clear();
      ::close(fd);
      return;
    }
    if (path.rfind("/ws", 0) == 0) {
      // WebSocket-like upgrade: 101, then echoes every byte back until EOF.
      sendAll(fd, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n");
      if (!buf.empty()) sendAll(fd, buf);
      buf.clear();
      while (readMore(fd, &buf)) {
        sendAll(fd, buf);
        buf.clear();
      }
      ::close(fd);
      return;
    }
    std::string body;
    if (!readBody(fd, &buf, kind, len, &body)) {
      ::close(fd);
      return;
    }
    echo += "\n" + body;
    // Each query argument as a response header line (a repeated argument, a repeated
    // header), %XX decoded: httpbin's /response-headers, and /reply.
    auto queryHeaders = [&query]() {
      std::string headers;
      std::string_view q = query;
      auto decode = [](std::string_view in) {
        std::string o;
        for (size_t i = 0; i < in.size(); ++i) {
          if (in[i] == '%' && i + 2 < in.size()) {
            o.push_back(static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16)));
            i += 2;
          } else {
            o.push_back(in[i] == '+' ? ' ' : in[i]);
          }
        }
        return o;
      };
      while (!q.empty()) {
        const size_t amp = q.find('&');
        const std::string_view arg = q.substr(0, amp);
        const size_t eq = arg.find('=');
        if (eq != std::string_view::npos) {
          headers += decode(arg.substr(0, eq)) + ": " + decode(arg.substr(eq + 1)) + "\r\n";
        }
        if (amp == std::string_view::npos) break;
        q.remove_prefix(amp + 1);
      }
      return headers;
    };
    std::string out;
    if (path.rfind("/chunked", 0) == 0) {
      out = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Up: 1\r\n\r\n"
            "5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n";
    } else if (path.rfind("/close", 0) == 0) {
      out = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil-close body";
      sendAll(fd, out);
      ::close(fd);
      return;
    } else if (path.rfind("/big", 0) == 0) {
      out = "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n" + std::string(1 << 20, 'x');
    } else if (path.rfind("/reply", 0) == 0) {
      // The request body comes back as the response body, with the query's headers, framed
      // as the path says: "/reply" Content-Length, "/reply/chunked" chunked (pieces of at
      // most 7 bytes), "/reply/close" until close. X-Serial numbers the upstream's replies.
      const std::string headers = "HTTP/1.1 200 OK\r\nX-Serial: " +
                                  std::to_string(serial_.fetch_add(1) + 1) + "\r\n" +
                                  queryHeaders();
      if (path.rfind("/reply/close", 0) == 0) {
        sendAll(fd, headers + "Connection: close\r\n\r\n" + body);
        ::close(fd);
        return;
      }
      if (path.rfind("/reply/chunked", 0) == 0) {
        out = headers + "Transfer-Encoding: chunked\r\n\r\n";
        for (size_t i = 0; i < body.size(); i += 7) {
          const std::string piece = body.substr(i, 7);
          char size[16];
          std::snprintf(size, sizeof(size), "%zx\r\n", piece.size());
          out += size + piece + "\r\n";
        }
        out += "0\r\n\r\n";
      } else {
        out = headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
      }
    } else if (path.rfind("/response-headers", 0) == 0) {
      // httpbin's /response-headers: each query argument becomes a response header.
      const std::string headers = queryHeaders();
      out = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + headers +
            "Content-Length: " + std::to_string(echo.size()) + "\r\n\r\n" + echo;
    } else {
      if (path.rfind("/slow", 0) == 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1500));
      }
      out = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
            std::to_string(echo.size()) + "\r\n\r\n" + echo;
    }
    sendAll(fd, out);
  }
}

int closedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

}  // namespace portico::dp::testing
