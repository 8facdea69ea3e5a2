// A TCP proxy for fault tests, placed between two real processes (a DP and its CP, a CP and
// PostgreSQL): it forwards bytes both ways on 127.0.0.1 and, on command, cuts every
// connection (RST), refuses new ones, or stalls the bytes in flight (both directions stop
// reading, so the peers' kernel buffers fill as on a congested link). In PostgreSQL mode it
// also reads the client's protocol messages and can cut a connection exactly at its next
// COMMIT, before or after the server got it: the "commit outcome unknown" case, on demand.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace portico::testing {

class TcpProxy {
 public:
  // Listens on a free 127.0.0.1 port and forwards to 127.0.0.1:target_port. `postgres`:
  // the client side speaks PostgreSQL's protocol (armCommitCut).
  explicit TcpProxy(int target_port, bool postgres = false);
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  int port() const { return port_; }

  // Resets every open connection now.
  void cutAll();
  // While on, a new connection is accepted and reset at once.
  void setRefuse(bool on) { refuse_ = on; }
  // While on, no byte moves in either direction; connections stay open.
  void setStall(bool on) { stall_ = on; }

  enum class CommitCut {
    kNone,
    kBeforeCommit,  // reset the connection instead of forwarding its COMMIT: never committed
    kAfterCommit,   // forward the COMMIT, withhold the answer, reset: committed, client unsure
    // Reset the client's side instead of forwarding the COMMIT, but keep the server's side
    // open and silent: a partition the server does not notice (its transaction stays open).
    kSilentServer,
  };
  // The next COMMIT any connection sends is cut so (postgres mode). With `then_isolate`,
  // every other connection is reset too and new ones refused until setRefuse(false).
  void armCommitCut(CommitCut mode, bool then_isolate = false);
  // How many armed cuts fired so far.
  int commitCuts() const { return commit_cuts_; }

  int accepted() const { return accepted_; }

 private:
  struct Conn;
  void acceptLoop();
  void pump(std::shared_ptr<Conn> c, bool client_to_server);
  // Postgres mode: forwards whole client messages from c->pending, acting on an armed COMMIT.
  // False once the connection was cut.
  bool forwardClientMessages(const std::shared_ptr<Conn>& c);
  void reset(Conn& c);

  const int target_port_;
  const bool postgres_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> refuse_{false};
  std::atomic<bool> stall_{false};
  std::atomic<int> armed_{0};  // CommitCut
  std::atomic<bool> isolate_{false};
  std::atomic<int> commit_cuts_{0};
  std::atomic<int> accepted_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::shared_ptr<Conn>> conns_;
  std::vector<std::thread> threads_;
  std::vector<int> held_fds_;  // server sockets kept open by kSilentServer, closed at the end
};

}  // namespace portico::testing
