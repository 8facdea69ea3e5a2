#include "tests/faults/tcp_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <strings.h>
#include <stdexcept>
#include <set>
#include <string>

namespace portico::testing {

struct TcpProxy::Conn {
  int client_fd = -1;
  int server_fd = -1;
  std::atomic<bool> dead{false};
  std::atomic<bool> mute_server{false};  // withhold the server's bytes (a cut COMMIT's answer)
  std::atomic<int> pumps{2};             // the last pump to leave closes both sockets
  std::atomic<bool> keep_server{false};  // kSilentServer: the server's socket is held open
  // Postgres mode, the client->server pump's own state:
  std::string pending;                   // client bytes not yet forwarded
  bool startup_done = false;             // past SSLRequest/StartupMessage
  std::set<std::string> logging_statements;  // prepared statements that append to change_log
  bool wrote = false;                    // the open transaction appended to change_log
};

namespace {

bool writeAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

uint32_t be32(const std::string& s, size_t at) {
  return (static_cast<uint32_t>(static_cast<unsigned char>(s[at])) << 24) |
         (static_cast<uint32_t>(static_cast<unsigned char>(s[at + 1])) << 16) |
         (static_cast<uint32_t>(static_cast<unsigned char>(s[at + 2])) << 8) |
         static_cast<uint32_t>(static_cast<unsigned char>(s[at + 3]));
}

int connectTo(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    return fd;
  }
  if (fd >= 0) {
    ::close(fd);
  }
  return -1;
}

// Close with RST rather than FIN: what a peer sees when a middlebox drops the connection.
void closeHard(int fd) {
  if (fd < 0) {
    return;
  }
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  ::close(fd);
}

}  // namespace

TcpProxy::TcpProxy(int target_port, bool postgres)
    : target_port_(target_port), postgres_(postgres) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listen_fd_, 128) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw std::runtime_error(std::string("TcpProxy: cannot listen: ") + std::strerror(errno));
  }
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { acceptLoop(); });
}

TcpProxy::~TcpProxy() {
  stopping_ = true;
  cutAll();
  acceptor_.join();
  ::close(listen_fd_);
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    threads.swap(threads_);
  }
  for (std::thread& t : threads) {
    t.join();
  }
  for (int fd : held_fds_) {
    closeHard(fd);
  }
}

void TcpProxy::reset(Conn& c) {
  if (!c.dead.exchange(true)) {
    // The pumps notice within a poll interval; the last one closes the sockets (with RST).
    ::shutdown(c.client_fd, SHUT_RDWR);
    if (!c.keep_server) {
      ::shutdown(c.server_fd, SHUT_RDWR);
    }
  }
}

void TcpProxy::cutAll() {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& c : conns_) {
    reset(*c);
  }
  conns_.clear();
}

void TcpProxy::armCommitCut(CommitCut mode, bool then_isolate) {
  isolate_ = then_isolate;
  armed_ = static_cast<int>(mode);
}

void TcpProxy::acceptLoop() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) {
      continue;
    }
    const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) {
      continue;
    }
    ++accepted_;
    if (refuse_) {
      closeHard(client);
      continue;
    }
    const int server = connectTo(target_port_);
    if (server < 0) {
      closeHard(client);
      continue;
    }
    auto c = std::make_shared<Conn>();
    c->client_fd = client;
    c->server_fd = server;
    std::lock_guard<std::mutex> lock(mu_);
    conns_.push_back(c);
    threads_.emplace_back([this, c] { pump(c, true); });
    threads_.emplace_back([this, c] { pump(c, false); });
  }
}

void TcpProxy::pump(std::shared_ptr<Conn> c, bool client_to_server) {
  const int from = client_to_server ? c->client_fd : c->server_fd;
  const int to = client_to_server ? c->server_fd : c->client_fd;
  char buf[64 * 1024];
  while (!c->dead && !stopping_) {
    pollfd p{from, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) {
      continue;
    }
    // Checked between poll and read: bytes that arrive while stalled or muted stay unread.
    if (stall_ || (!client_to_server && c->mute_server) || c->dead) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    const ssize_t n = ::recv(from, buf, sizeof(buf), 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
      continue;
    }
    if (n <= 0) {
      reset(*c);  // one side closed: pass it on
      break;
    }
    if (client_to_server && postgres_) {
      c->pending.append(buf, static_cast<size_t>(n));
      if (!forwardClientMessages(c)) {
        break;
      }
    } else if (!writeAll(to, buf, static_cast<size_t>(n))) {
      reset(*c);
      break;
    }
  }
  if (--c->pumps == 0) {
    closeHard(c->client_fd);
    if (!c->keep_server) {
      closeHard(c->server_fd);
    }
  }
}

bool TcpProxy::forwardClientMessages(const std::shared_ptr<Conn>& c) {
  std::string& in = c->pending;
  while (true) {
    size_t size = 0;
    if (!c->startup_done) {
      // Untyped: SSLRequest / GSSENCRequest (answered by one byte), then StartupMessage.
      if (in.size() < 8 || in.size() < be32(in, 0)) {
        return true;
      }
      size = be32(in, 0);
      const uint32_t code = be32(in, 4);
      c->startup_done = code != 80877103 && code != 80877104;
    } else {
      if (in.size() < 5 || in.size() < 1 + static_cast<size_t>(be32(in, 1))) {
        return true;
      }
      size = 1 + be32(in, 1);
      // Only the COMMIT of a config write is cut (not a snapshot load's, say): one whose
      // transaction appended to change_log, through a statement of its own or a prepared one.
      const char type = in[0];
      const char* body = in.data() + 5;
      if (type == 'P') {  // Parse: statement name, query
        const std::string name(body);
        if (std::strstr(body + name.size() + 1, "INSERT INTO change_log") != nullptr) {
          c->logging_statements.insert(name);
          c->wrote = c->wrote || name.empty();  // unnamed: run right away
        }
      } else if (type == 'B') {  // Bind: portal name, statement name
        const std::string statement(body + std::strlen(body) + 1);
        c->wrote = c->wrote || c->logging_statements.count(statement) > 0;
      }
      const bool commit = type == 'Q' && strncasecmp(body, "COMMIT", 6) == 0;
      const bool end = commit || (type == 'Q' && strncasecmp(body, "ROLLBACK", 8) == 0);
      const bool wrote = c->wrote;
      if (end) {
        c->wrote = false;
      }
      const auto mode = commit && wrote ? static_cast<CommitCut>(armed_.exchange(0))
                                        : CommitCut::kNone;
      if (mode != CommitCut::kNone) {
        if (mode == CommitCut::kSilentServer) {
          std::lock_guard<std::mutex> lock(mu_);
          held_fds_.push_back(c->server_fd);
          c->keep_server = true;
        }
        if (mode == CommitCut::kAfterCommit) {
          c->mute_server = true;  // before the server can answer
          writeAll(c->server_fd, in.data(), size);
          std::this_thread::sleep_for(std::chrono::milliseconds(300));  // it commits
        }
        reset(*c);
        if (isolate_) {
          refuse_ = true;
          cutAll();
        }
        ++commit_cuts_;
        return false;
      }
    }
    if (!writeAll(c->server_fd, in.data(), size)) {
      reset(*c);
      return false;
    }
    in.erase(0, size);
  }
}

}  // namespace portico::testing
