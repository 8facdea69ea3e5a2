#include "tests/support/echo_upstream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>

#include "tests/support/wire_util.h"

namespace portico::testing {
namespace {

std::string jsonEscape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}


// "%41+b" -> "A b" (query-string decoding).
std::string urlDecode(std::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out.push_back(' ');
    } else if (in[i] == '%' && i + 2 < in.size() && std::isxdigit(static_cast<unsigned char>(in[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(in[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

// {"k":"v","r":["1","2"],"flag":true}: a repeated name becomes a list, as Kong's mock
// upstream reports ngx.req.get_uri_args(); a bare name is true.
template <typename Pairs>
std::string jsonMultiMap(const Pairs& pairs) {
  std::vector<std::pair<std::string, std::vector<std::string>>> grouped;
  for (const auto& [k, v] : pairs) {
    auto it = std::find_if(grouped.begin(), grouped.end(), [&](auto& g) { return g.first == k; });
    if (it == grouped.end()) {
      grouped.push_back({k, {v}});
    } else {
      it->second.push_back(v);
    }
  }
  std::string out = "{";
  for (const auto& [k, vs] : grouped) {
    out += out.size() > 1 ? ",\"" : "\"";
    out += jsonEscape(k);
    out += "\":";
    auto one = [](const std::string& v) {
      std::string quoted = "\"";
      quoted += jsonEscape(v);
      quoted += "\"";
      return v == "\x01true" ? std::string("true") : quoted;
    };
    if (vs.size() == 1) {
      out += one(vs[0]);
    } else {
      out += "[";
      for (size_t i = 0; i < vs.size(); ++i) {
        if (i != 0) {
          out += ",";
        }
        out += one(vs[i]);
      }
      out += "]";
    }
  }
  return out + "}";
}

// What the echo upstream answers: {"method","path","query","headers","body","uri","body_size"}
// (the format tests/conformance/plugin_cases.yaml documents).
std::string echoJson(const EchoUpstream::Received& r,
                     const std::vector<std::pair<std::string, std::string>>& header_lines) {
  const size_t q = r.target.find('?');
  const std::string path = r.target.substr(0, q);
  std::vector<std::pair<std::string, std::string>> args;
  if (q != std::string::npos) {
    std::string_view rest(r.target);
    rest.remove_prefix(q + 1);
    while (!rest.empty()) {
      const size_t amp = rest.find('&');
      const std::string_view part = rest.substr(0, amp);
      rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
      if (part.empty()) {
        continue;
      }
      const size_t eq = part.find('=');
      args.emplace_back(urlDecode(part.substr(0, eq)),
                        eq == std::string_view::npos ? std::string("\x01true")
                                                     : urlDecode(part.substr(eq + 1)));
    }
  }
  return "{\"method\":\"" + jsonEscape(r.method) + "\",\"path\":\"" + jsonEscape(path) +
         "\",\"uri\":\"" + jsonEscape(r.target) + "\",\"query\":" + jsonMultiMap(args) +
         ",\"headers\":" + jsonMultiMap(header_lines) + ",\"body\":\"" + jsonEscape(r.body) +
         "\",\"body_size\":" + std::to_string(r.body.size()) + "}\n";
}

const char* echoReason(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

// GET /status/NNN answers NNN; everything else 200.
int echoStatus(const std::string& target) {
  if (target.rfind("/status/", 0) == 0 && target.size() >= 11 &&
      std::isdigit(static_cast<unsigned char>(target[8])) &&
      std::isdigit(static_cast<unsigned char>(target[9])) &&
      std::isdigit(static_cast<unsigned char>(target[10])) &&
      (target.size() == 11 || target[11] == '?' || target[11] == '/')) {
    return std::stoi(target.substr(8, 3));
  }
  return 200;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// EchoUpstream: one thread per connection is plenty for tests.

struct EchoUpstream::Impl {
  int listen_fd = -1;
  std::thread acceptor;
  std::mutex mu;
  std::vector<Received> received;
  std::vector<std::thread> connections;
  std::vector<int> connection_fds;
  std::atomic<bool> stopping{false};
  bool record = true;

  void serve(int fd) {
    std::string buffer;
    char buf[16384];
    while (!stopping) {
      size_t head_end;
      while ((head_end = buffer.find("\r\n\r\n")) == std::string::npos) {
        ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) {
          return;
        }
        buffer.append(buf, static_cast<size_t>(n));
      }
      Received r;
      std::vector<std::pair<std::string, std::string>> header_lines;
      std::istringstream head(buffer.substr(0, head_end));
      std::string line;
      std::getline(head, line);
      if (!line.empty() && line.back() == '\r') {
        line.pop_back();
      }
      std::istringstream request_line(line);
      std::string version;
      request_line >> r.method >> r.target >> version;
      while (std::getline(head, line)) {
        auto field = headerField(std::move(line));
        if (!field) {
          continue;
        }
        auto& [name, value] = *field;
        header_lines.emplace_back(name, value);
        if (r.headers.count(name) != 0) {
          r.headers[name] += ", " + value;
        } else {
          r.headers[name] = value;
        }
      }
      buffer.erase(0, head_end + 4);
      auto header = [&r](const std::string& name) {
        auto it = r.headers.find(name);
        return it == r.headers.end() ? std::string() : lower(it->second);
      };
      if (r.headers.count("content-length") != 0) {
        size_t len = std::strtoul(header("content-length").c_str(), nullptr, 10);
        while (buffer.size() < len) {
          ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
          if (n <= 0) {
            return;
          }
          buffer.append(buf, static_cast<size_t>(n));
        }
        r.body = buffer.substr(0, len);
        buffer.erase(0, len);
      } else if (header("transfer-encoding") == "chunked") {
        while (buffer.find("\r\n0\r\n\r\n") == std::string::npos &&
               buffer.rfind("0\r\n\r\n", 0) != 0) {
          ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
          if (n <= 0) {
            return;
          }
          buffer.append(buf, static_cast<size_t>(n));
        }
        size_t end = buffer.rfind("0\r\n\r\n", 0) == 0 ? 5 : buffer.find("\r\n0\r\n\r\n") + 7;
        dechunk(buffer.substr(0, end), &r.body);
        buffer.erase(0, end);
      }
      const std::string body = echoJson(r, header_lines);
      if (record) {
        r.echo = body;
      }
      bool close_after = header("connection") == "close";
      const int status = echoStatus(r.target);
      if (record) {
        std::lock_guard<std::mutex> lock(mu);
        received.push_back(std::move(r));
      }
      const bool bodiless = status == 204 || status == 304 || (status >= 100 && status < 200);
      std::string response = "HTTP/1.1 " + std::to_string(status) + " " + echoReason(status) +
                             "\r\n" +
                             "Content-Type: application/json\r\n" +
                             (bodiless ? std::string()
                                       : "Content-Length: " + std::to_string(body.size()) +
                                             "\r\n") +
                             (close_after ? "Connection: close\r\n" : "") + "\r\n" +
                             (bodiless || r.method == "HEAD" ? std::string() : body);
      if (!writeAll(fd, response) || close_after) {
        return;
      }
    }
  }
};

EchoUpstream::EchoUpstream(int port, bool record) : impl_(std::make_unique<Impl>()) {
  impl_->record = record;
  impl_->listen_fd = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(impl_->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::bind(impl_->listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(impl_->listen_fd, 128) != 0) {
    throw std::runtime_error("EchoUpstream: cannot listen on port " + std::to_string(port) +
                             ": " + std::strerror(errno));
  }
  socklen_t len = sizeof(addr);
  ::getsockname(impl_->listen_fd, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  Impl* impl = impl_.get();
  impl_->acceptor = std::thread([impl] {
    while (!impl->stopping) {
      int fd = ::accept(impl->listen_fd, nullptr, nullptr);
      if (fd < 0) {
        if (errno == EINTR) {
          continue;
        }
        return;
      }
      int nodelay = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, sizeof(nodelay));
      std::lock_guard<std::mutex> lock(impl->mu);
      impl->connection_fds.push_back(fd);
      impl->connections.emplace_back([impl, fd] { impl->serve(fd); });
    }
  });
}

EchoUpstream::~EchoUpstream() {
  impl_->stopping = true;
  ::shutdown(impl_->listen_fd, SHUT_RDWR);
  ::close(impl_->listen_fd);
  impl_->acceptor.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    for (int fd : impl_->connection_fds) {
      ::shutdown(fd, SHUT_RDWR);
    }
    threads.swap(impl_->connections);
  }
  for (auto& t : threads) {
    t.join();
  }
  for (int fd : impl_->connection_fds) {
    ::close(fd);
  }
}

std::vector<EchoUpstream::Received> EchoUpstream::received() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->received;
}

}  // namespace portico::testing
