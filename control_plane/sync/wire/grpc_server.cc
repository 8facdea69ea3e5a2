// GrpcServer: the listener, the accept loop with the pending-connection caps, worker threads
// each running its connections (server_internal.h), the sweeps and a graceful shutdown. See
// grpc_server.h for why this server exists and what it covers.
#include "control_plane/sync/wire/grpc_server.h"

#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <boost/asio/post.hpp>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "control_plane/sync/wire/server_internal.h"

namespace portico::cp::wire {
namespace {

using namespace internal;  // NOLINT: the server's own parts

// ---------------------------------------------------------------------------------------------
// Server

class GrpcServerImpl final : public GrpcServer {
 public:
  explicit GrpcServerImpl(std::unique_ptr<ServerCore> core) : core_(std::move(core)) {}
  ~GrpcServerImpl() override { shutdown(0); }

  absl::Status init();
  int port() const override { return port_; }
  void shutdown(uint32_t grace_ms) override;
  ServerStats stats() const override {
    ServerStats s;
    s.connections_active = core_->connections_active.load();
    s.connections_total = core_->connections_total.load();
    s.calls_active = core_->calls_active.load();
    s.handshake_failures = core_->handshake_failures.load();
    s.protocol_errors = core_->protocol_errors.load();
    s.connections_pending = core_->pendingTotal();
    s.connections_refused = core_->connections_refused.load();
    return s;
  }

 private:
  void accept();
  void scheduleSweep(Worker& w);
  void forEachConnection(const std::function<void(Connection&)>& fn);
  void reap(Worker& w);

  std::unique_ptr<ServerCore> core_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<tcp::acceptor> acceptor_;
  std::unique_ptr<asio::steady_timer> accept_retry_;  // on workers_[0], like the acceptor
  size_t next_worker_ = 0;
  int port_ = 0;
  bool shut_down_ = false;
};

absl::Status GrpcServerImpl::init() {
  const ServerOptions& o = core_->options;
  const size_t colon = o.listen_address.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError("cluster listen address must be host:port: " +
                                      o.listen_address);
  }
  std::string host = o.listen_address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty() || host == "*") {
    host = "0.0.0.0";
  }
  const int want_port = std::atoi(o.listen_address.c_str() + colon + 1);
  const uint32_t n = std::max<uint32_t>(1, o.workers);
  for (uint32_t i = 0; i < n; ++i) {
    auto w = std::make_unique<Worker>();
    w->guard = std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(
        w->ctx.get_executor());
    workers_.push_back(std::move(w));
  }
  boost::system::error_code ec;
  tcp::resolver resolver(workers_[0]->ctx);
  auto results = resolver.resolve(host, std::to_string(want_port), ec);
  if (ec || results.empty()) {
    return absl::UnavailableError(absl::StrCat("cannot resolve cluster listen address ", host,
                                               ": ", ec.message()));
  }
  const tcp::endpoint ep = results.begin()->endpoint();
  acceptor_ = std::make_unique<tcp::acceptor>(workers_[0]->ctx);
  accept_retry_ = std::make_unique<asio::steady_timer>(workers_[0]->ctx);
  acceptor_->open(ep.protocol(), ec);
  if (!ec) {
    acceptor_->set_option(tcp::acceptor::reuse_address(true), ec);
    acceptor_->bind(ep, ec);
  }
  if (!ec) {
    acceptor_->listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", o.listen_address,
                                               " for cluster sync: ", ec.message()));
  }
  port_ = acceptor_->local_endpoint(ec).port();
  for (auto& w : workers_) {
    w->sweep = std::make_unique<asio::steady_timer>(w->ctx);
    scheduleSweep(*w);
    Worker* wp = w.get();
    w->thread = std::thread([wp] { wp->ctx.run(); });
  }
  asio::post(workers_[0]->ctx, [this] { accept(); });
  return absl::OkStatus();
}

void GrpcServerImpl::accept() {
  Worker& target = *workers_[next_worker_++ % workers_.size()];
  acceptor_->async_accept(target.ctx, [this, &target](const boost::system::error_code& ec,
                                                      tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_->is_open()) {
      return;
    }
    if (!ec) {
      boost::system::error_code addr_ec;
      const tcp::endpoint remote = socket.remote_endpoint(addr_ec);
      std::string client = addr_ec ? std::string() : remote.address().to_string();
      if (!core_->admitPending(client)) {
        // Closed before any read or TLS state: costs the attacker a connect, us a socket.
        core_->connections_refused++;
        socket.close(addr_ec);
        accept();
        return;
      }
      asio::post(target.ctx, [this, &target, s = std::move(socket),
                              client = std::move(client)]() mutable {
        auto conn = std::make_shared<Connection>(*core_, target, std::move(s), std::move(client));
        target.connections.emplace(conn.get(), conn);
        core_->connections_active++;
        core_->connections_total++;
        if (core_->stopping.load()) {
          conn->close("");
        } else {
          conn->start();
        }
        reap(target);
      });
    } else if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space) {
      // A timer, not a sleep: this thread also serves worker 0's connections.
      LOG_WARN(kLog, "cluster listener: %s; pausing accepts for 100 ms", ec.message());
      accept_retry_->expires_after(std::chrono::milliseconds(100));
      accept_retry_->async_wait([this](const boost::system::error_code& wait_ec) {
        if (!wait_ec) {
          accept();
        }
      });
      return;
    }
    accept();
  });
}

void GrpcServerImpl::reap(Worker& w) {
  for (auto it = w.connections.begin(); it != w.connections.end();) {
    if (it->first->finished()) {
      core_->connections_active--;
      it = w.connections.erase(it);
    } else {
      ++it;
    }
  }
}

void GrpcServerImpl::scheduleSweep(Worker& w) {
  // Often enough that no timeout fires more than half of itself late (and at most 1 s).
  const ServerOptions& o = core_->options;
  const uint32_t shortest =
      std::min({o.handshake_timeout_ms, o.keepalive_time_ms, o.keepalive_timeout_ms});
  w.sweep->expires_after(std::chrono::milliseconds(std::clamp<uint32_t>(shortest / 2, 10, 1000)));
  w.sweep->async_wait([this, &w](const boost::system::error_code& ec) {
    if (ec) {
      return;
    }
    const int64_t now = nowMs();
    for (auto& [ptr, conn] : w.connections) {
      ptr->sweep(now);
    }
    reap(w);
    core_->trimAfterBurst();
    scheduleSweep(w);
  });
}

void GrpcServerImpl::forEachConnection(const std::function<void(Connection&)>& fn) {
  for (auto& w : workers_) {
    Worker* wp = w.get();
    asio::post(wp->ctx, [this, wp, fn] {
      std::vector<std::shared_ptr<Connection>> conns;
      for (auto& [ptr, conn] : wp->connections) {
        conns.push_back(conn);
      }
      for (auto& c : conns) {
        fn(*c);
      }
      reap(*wp);
    });
  }
}

void GrpcServerImpl::shutdown(uint32_t grace_ms) {
  if (shut_down_) {
    return;
  }
  shut_down_ = true;
  core_->stopping = true;
  if (workers_.empty()) {
    return;
  }
  asio::post(workers_[0]->ctx, [this] {
    boost::system::error_code ec;
    if (acceptor_ != nullptr) {
      acceptor_->close(ec);
    }
    accept_retry_->cancel();
  });
  forEachConnection([](Connection& c) { c.sendGoaway(kNoError, "server shutdown"); });
  auto wait_calls = [this](int64_t ms) {
    const int64_t until = nowMs() + ms;
    while ((core_->calls_active.load() > 0 || core_->dones_pending.load() > 0) &&
           nowMs() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  };
  wait_calls(grace_ms);
  forEachConnection([](Connection& c) { c.close("server shutdown"); });
  wait_calls(5000);
  if (core_->calls_active.load() > 0) {
    LOG_ERROR(kLog, "cluster listener: %d calls still open at shutdown",
              core_->calls_active.load());
  }
  // Every onDone has returned (dones_pending); stop.
  for (auto& w : workers_) {
    Worker* wp = w.get();
    asio::post(wp->ctx, [wp] {
      wp->sweep->cancel();
      wp->guard.reset();
      wp->ctx.stop();
    });
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) {
      w->thread.join();
    }
  }
  for (auto& w : workers_) {
    w->connections.clear();
  }
}

}  // namespace

const std::string* CallInfo::header(std::string_view name) const {
  for (const auto& [k, v] : metadata) {
    if (k == name) {
      return &v;
    }
  }
  return nullptr;
}

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::start(ServerOptions options,
                                                               std::string path,
                                                               CallFactory factory) {
  Methods methods;
  methods.emplace(std::move(path), std::move(factory));
  return start(std::move(options), std::move(methods));
}

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::start(ServerOptions options,
                                                               Methods methods) {
  if (methods.empty()) {
    return absl::InvalidArgumentError("grpc server: no method to serve");
  }
  auto core = std::make_unique<ServerCore>();
  // Options first: the TLS context's verify callback keeps a pointer into them.
  core->options = std::move(options);
  if (!core->options.cert_pem.empty()) {
    // TLS writes go through OpenSSL's socket BIO, i.e. plain write(2), which raises SIGPIPE
    // when a DP has just gone (e.g. an alert after a refused certificate). Like nginx and
    // Envoy, the process ignores it and sees EPIPE instead.
    struct sigaction current {};
    if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
      signal(SIGPIPE, SIG_IGN);
    }
    auto ctx = makeSslCtx(core->options);
    if (!ctx.ok()) {
      return ctx.status();
    }
    core->ssl_ctx = std::move(*ctx);
  }
  core->methods = std::move(methods);
  auto server = std::make_unique<GrpcServerImpl>(std::move(core));
  if (absl::Status st = server->init(); !st.ok()) {
    return st;
  }
  return std::unique_ptr<GrpcServer>(std::move(server));
}

}  // namespace portico::cp::wire
