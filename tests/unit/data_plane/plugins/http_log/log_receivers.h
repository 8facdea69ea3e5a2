// Real log servers on loopback free ports for the *-log plugin tests: an HTTP server (answering
// each request with a scripted status, or misbehaving: never reading, resetting), a TCP line
// receiver and a UDP receiver. Each runs on a thread of its own with plain sockets; waits are
// bounded so a test never hangs.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <nlohmann/json.hpp>


namespace portico::dp::testing {

inline int listenLoopback(int type, int* port) {
  const int fd = ::socket(AF_INET, type, 0);
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  if (type == SOCK_STREAM) {
    ::listen(fd, 128);
  }
  return fd;
}

// A port nothing listens on (connections are refused).
inline int closedPort() {
  int port = 0;
  ::close(listenLoopback(SOCK_STREAM, &port));
  return port;
}

// Waits up to `ms` for `pred`.
inline bool waitFor(const std::function<bool()>& pred, int ms = 5000) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

struct ReceivedRequest {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // lower-cased names
  std::string body;
};

class HttpReceiver {
 public:
  enum class Mode { kAnswer, kNeverRead, kReset };
  explicit HttpReceiver(Mode mode = Mode::kAnswer) : mode_(mode) {
    fd_ = listenLoopback(SOCK_STREAM, &port_);
    thread_ = std::thread([this] { loop(); });
  }
  ~HttpReceiver() {
    stop_ = true;
    thread_.join();
    for (int c : held_) ::close(c);
    ::close(fd_);
  }
  int port() const { return port_; }
  // Statuses for the next answers (then 200).
  void script(std::vector<int> statuses) {
    std::lock_guard<std::mutex> l(mu_);
    script_.assign(statuses.begin(), statuses.end());
  }
  std::vector<ReceivedRequest> requests() {
    std::lock_guard<std::mutex> l(mu_);
    return got_;
  }
  size_t count() {
    std::lock_guard<std::mutex> l(mu_);
    return got_.size();
  }
  int accepted() const { return accepted_; }
  int connections() const { return connections_; }

 private:
  struct Client {
    int fd;
    std::string in;
  };
  void loop() {
    std::vector<Client> clients;
    while (!stop_) {
      std::vector<pollfd> p{{fd_, POLLIN, 0}};
      for (const Client& c : clients) p.push_back({c.fd, POLLIN, 0});
      ::poll(p.data(), p.size(), 20);
      if (p[0].revents & POLLIN) {
        const int c = ::accept(fd_, nullptr, nullptr);
        if (c >= 0) {
          ++accepted_;
          if (mode_ == Mode::kNeverRead) {
            held_.push_back(c);
          } else if (mode_ == Mode::kReset) {
            linger l{1, 0};
            ::setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
            ::close(c);
          } else {
            ++connections_;
            clients.push_back({c, {}});
          }
        }
      }
      for (size_t i = 1; i < p.size(); ++i) {
        if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        Client& c = clients[i - 1];
        char buf[65536];
        const ssize_t n = ::read(c.fd, buf, sizeof(buf));
        if (n <= 0) {
          ::close(c.fd);
          c.fd = -1;
          continue;
        }
        c.in.append(buf, static_cast<size_t>(n));
        while (parseOne(&c)) {
        }
      }
      std::erase_if(clients, [](const Client& c) { return c.fd < 0; });
    }
    for (Client& c : clients) ::close(c.fd);
  }
  bool parseOne(Client* c) {
    const size_t end = c->in.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    ReceivedRequest r;
    std::string head = c->in.substr(0, end);
    size_t eol = head.find("\r\n");
    std::string line = head.substr(0, eol);
    r.method = line.substr(0, line.find(' '));
    r.target = line.substr(line.find(' ') + 1, line.rfind(' ') - line.find(' ') - 1);
    size_t len = 0;
    while (eol != std::string::npos) {
      const size_t next = head.find("\r\n", eol + 2);
      const std::string h = head.substr(eol + 2, next == std::string::npos ? std::string::npos
                                                                            : next - eol - 2);
      const size_t colon = h.find(':');
      std::string name = h.substr(0, colon);
      for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      std::string value = h.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      r.headers[name] = value;
      if (name == "content-length") len = std::stoul(value);
      eol = next;
    }
    if (c->in.size() < end + 4 + len) return false;
    r.body = c->in.substr(end + 4, len);
    c->in.erase(0, end + 4 + len);
    int status = 200;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!script_.empty()) {
        status = script_.front();
        script_.pop_front();
      }
      got_.push_back(std::move(r));
    }
    const std::string body = status < 300 ? "ok" : "no";
    const std::string resp = "HTTP/1.1 " + std::to_string(status) +
                             " X\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
                             body;
    (void)!::write(c->fd, resp.data(), resp.size());
    return true;
  }

  Mode mode_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::atomic<int> connections_{0};
  std::vector<int> held_;
  std::mutex mu_;
  std::deque<int> script_;
  std::vector<ReceivedRequest> got_;
  std::thread thread_;
};

// TCP: collects newline-terminated lines from every connection.
class LineReceiver {
 public:
  LineReceiver() {
    fd_ = listenLoopback(SOCK_STREAM, &port_);
    thread_ = std::thread([this] { loop(); });
  }
  ~LineReceiver() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  std::vector<std::string> lines() {
    std::lock_guard<std::mutex> l(mu_);
    return lines_;
  }
  int connections() const { return connections_; }

 private:
  void loop() {
    std::vector<std::pair<int, std::string>> clients;
    while (!stop_) {
      std::vector<pollfd> p{{fd_, POLLIN, 0}};
      for (const auto& c : clients) p.push_back({c.first, POLLIN, 0});
      ::poll(p.data(), p.size(), 20);
      if (p[0].revents & POLLIN) {
        const int c = ::accept(fd_, nullptr, nullptr);
        if (c >= 0) {
          ++connections_;
          clients.emplace_back(c, std::string());
        }
      }
      for (size_t i = 1; i < p.size(); ++i) {
        if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        auto& [fd, in] = clients[i - 1];
        char buf[65536];
        const ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n <= 0) {
          ::close(fd);
          fd = -1;
          continue;
        }
        in.append(buf, static_cast<size_t>(n));
        for (size_t nl; (nl = in.find('\n')) != std::string::npos;) {
          std::lock_guard<std::mutex> l(mu_);
          lines_.push_back(in.substr(0, nl));
          in.erase(0, nl + 1);
        }
      }
      std::erase_if(clients, [](const auto& c) { return c.first < 0; });
    }
    for (auto& c : clients) ::close(c.first);
  }
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::mutex mu_;
  std::vector<std::string> lines_;
  std::thread thread_;
};

class UdpReceiver {
 public:
  UdpReceiver() {
    fd_ = listenLoopback(SOCK_DGRAM, &port_);
    thread_ = std::thread([this] {
      std::vector<char> buf(65536);
      while (!stop_) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 20) <= 0) continue;
        const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
        if (n >= 0) {
          std::lock_guard<std::mutex> l(mu_);
          datagrams_.emplace_back(buf.data(), static_cast<size_t>(n));
        }
      }
    });
  }
  ~UdpReceiver() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  std::vector<std::string> datagrams() {
    std::lock_guard<std::mutex> l(mu_);
    return datagrams_;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::string> datagrams_;
  std::thread thread_;
};

// A TLS server (a self-signed certificate made by the openssl CLI) collecting what clients
// send: newline-terminated lines, or HTTP requests (answered 200) when `http`. Records the SNI
// each connection asked for.
class TlsReceiver {
 public:
  explicit TlsReceiver(bool http) : http_(http) {
    const std::string dir = "/tmp/portico-log-tls-" + std::to_string(::getpid());
    const std::string cmd = "mkdir -p " + dir + " && openssl req -x509 -newkey rsa:2048 -nodes "
                            "-subj /CN=logs.example -days 1 -keyout " + dir + "/k.pem -out " +
                            dir + "/c.pem >/dev/null 2>&1";
    ok_ = std::system(cmd.c_str()) == 0;
    ctx_ = SSL_CTX_new(TLS_server_method());
    ok_ = ok_ && SSL_CTX_use_certificate_file(ctx_, (dir + "/c.pem").c_str(), SSL_FILETYPE_PEM) == 1 &&
          SSL_CTX_use_PrivateKey_file(ctx_, (dir + "/k.pem").c_str(), SSL_FILETYPE_PEM) == 1;
    fd_ = listenLoopback(SOCK_STREAM, &port_);
    thread_ = std::thread([this] { loop(); });
  }
  ~TlsReceiver() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
    SSL_CTX_free(ctx_);
  }
  bool ok() const { return ok_; }
  int port() const { return port_; }
  std::vector<std::string> received() {  // lines, or HTTP request bodies
    std::lock_guard<std::mutex> l(mu_);
    return got_;
  }
  std::vector<std::string> snis() {
    std::lock_guard<std::mutex> l(mu_);
    return snis_;
  }

 private:
  void loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      SSL* ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, c);
      if (SSL_accept(ssl) == 1) {
        const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
        {
          std::lock_guard<std::mutex> l(mu_);
          snis_.push_back(sni != nullptr ? sni : "");
        }
        serve(ssl, c);
      }
      SSL_free(ssl);
      ::close(c);
    }
  }
  void serve(SSL* ssl, int fd) {
    std::string in;
    while (!stop_) {
      if (SSL_pending(ssl) == 0) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 20) <= 0) continue;
      }
      char buf[16384];
      const int n = SSL_read(ssl, buf, sizeof(buf));
      if (n <= 0) return;
      in.append(buf, static_cast<size_t>(n));
      if (!http_) {
        for (size_t nl; (nl = in.find('\n')) != std::string::npos;) {
          std::lock_guard<std::mutex> l(mu_);
          got_.push_back(in.substr(0, nl));
          in.erase(0, nl + 1);
        }
        continue;
      }
      for (;;) {
        const size_t end = in.find("\r\n\r\n");
        if (end == std::string::npos) break;
        const std::string head = in.substr(0, end);
        size_t len = 0;
        const size_t cl = head.find("Content-Length: ");
        if (cl != std::string::npos) len = std::stoul(head.substr(cl + 16));
        if (in.size() < end + 4 + len) break;
        {
          std::lock_guard<std::mutex> l(mu_);
          got_.push_back(in.substr(end + 4, len));
        }
        in.erase(0, end + 4 + len);
        const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        SSL_write(ssl, resp.data(), static_cast<int>(resp.size()));
      }
    }
  }

  bool http_;
  bool ok_ = false;
  SSL_CTX* ctx_ = nullptr;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::string> got_;
  std::vector<std::string> snis_;
  std::thread thread_;
};

// A counter's value in a /metrics text ("name value" line), 0 when absent.
inline double metricValue(const std::string& text, const std::string& name) {
  const std::string key = "\n" + name + " ";
  const size_t at = ("\n" + text).find(key);
  if (at == std::string::npos) return 0;
  return std::stod(text.substr(at + key.size() - 1));
}

}  // namespace portico::dp::testing
