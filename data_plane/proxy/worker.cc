#include "data_plane/proxy/worker.h"

#include <malloc.h>
#include <sys/socket.h>

#include <utility>  // Boost 1.74 asio/awaitable.hpp uses std::exchange without it

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cerrno>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "data_plane/vitals/vitals.h"
#include "data_plane/proxy/local_reply.h"
#include "data_plane/proxy/session.h"

namespace portico::dp {
namespace {

using boost::system::error_code;
constexpr int kTickMs = 50;
constexpr uint64_t kTrimAfterDrop = 1000;  // connections gone since the peak

Task<void> acceptLoop(Worker* worker, Acceptor* acceptor, bool tls) {
  for (;;) {
    error_code ec;
    Socket socket = co_await acceptor->async_accept(asio::redirect_error(kUseAwaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor->is_open()) {
        co_return;
      }
      // EMFILE and friends: back off instead of spinning.
      LOG_WARN("proxy", "accept failed: %s", ec.message());
      Timer t(worker->io(), std::chrono::milliseconds(20));
      co_await t.async_wait(asio::redirect_error(kUseAwaitable, ec));
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    WorkerStats::inc(worker->stats().connections_accepted);
    asio::co_spawn(worker->io(), runSession(std::make_unique<Session>(*worker, std::move(socket), tls)),
                   asio::detached);
  }
}

}  // namespace

UpstreamConnPtr UpstreamPool::acquire(const std::string& key, uint64_t now_ms) {
  auto it = idle_.find(key);
  if (it == idle_.end()) {
    return nullptr;
  }
  std::vector<UpstreamConnPtr>& list = it->second;
  while (!list.empty()) {
    UpstreamConnPtr conn = std::move(list.back());
    list.pop_back();
    if (now_ms - conn->idle_since_ms > 1000) {
      // Idle for a while: the upstream may have closed it. A peek costs one syscall, paid only
      // on cold connections (hot ones are reused within milliseconds).
      char b;
      ssize_t n = ::recv(conn->socket.native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
      if (!(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) {
        continue;  // EOF, error, or unsolicited bytes: not reusable
      }
    }
    return conn;
  }
  return nullptr;
}

void UpstreamPool::release(UpstreamConnPtr conn, uint64_t now_ms) {
  std::vector<UpstreamConnPtr>& list = idle_[conn->key];
  if (list.size() >= options_.upstream_keepalive_pool_size) {
    return;  // closes it
  }
  conn->idle_since_ms = now_ms;
  list.push_back(std::move(conn));
}

void UpstreamPool::sweep(uint64_t now_ms) {
  for (auto& [key, list] : idle_) {
    std::erase_if(list, [&](const UpstreamConnPtr& c) {
      return now_ms - c->idle_since_ms > options_.upstream_keepalive_idle_timeout_ms;
    });
  }
}

Worker::Worker(size_t index, const ProxyOptions& options, SnapshotStore& store,
               WorkerStats& stats, asio::ssl::context* tls_context)
    : index_(index),
      options_(options),
      store_(store),
      stats_(stats),
      pool_(options),
      tls_context_(tls_context),
      date_(httpDateNow()),
      io_(std::make_unique<asio::io_context>(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO)),
      acceptor_(std::make_unique<Acceptor>(*io_)),
      tls_acceptor_(std::make_unique<Acceptor>(*io_)),
      tick_timer_(std::make_unique<Timer>(*io_)) {
  if (options.vitals != nullptr && index < options.vitals->workers()) {
    vitals_ = &options.vitals->worker(index);
  }
}

Worker::~Worker() {
  // Sockets must go before the io_context; destroying the io_context then destroys the
  // suspended sessions, whose destructors still use sessions_ and stats_.
  tick_timer_.reset();
  pool_.clear();
  acceptor_.reset();
  tls_acceptor_.reset();
  io_.reset();
}

namespace {

// SO_REUSEPORT lets our workers share a port, but it would also let a second portico-dp (or
// anything else with the option) silently take half the traffic. Before the first worker
// binds, a plain bind (no SO_REUSEPORT) tells whether another socket already listens there.
absl::Status probeUnused(const tcp::endpoint& ep, const std::string& address) {
  error_code ec;
  tcp::acceptor probe(asio::system_executor{});
  probe.open(ep.protocol(), ec);
  if (!ec) {
    probe.set_option(asio::socket_base::reuse_address(true), ec);  // TIME_WAIT is fine
  }
  if (!ec) {
    probe.bind(ep, ec);
  }
  if (ec == asio::error::address_in_use) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address, ":", ep.port(),
                                               ": address already in use by another process"));
  }
  return absl::OkStatus();  // other errors surface from the real bind below
}

absl::Status listenOn(Acceptor& acceptor, const std::string& address, uint16_t port,
                      bool first) {
  error_code ec;
  asio::ip::address addr = asio::ip::make_address(address, ec);
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat("invalid proxy listen address: ", address));
  }
  tcp::endpoint ep(addr, port);
  if (first && port != 0) {
    if (absl::Status st = probeUnused(ep, address); !st.ok()) {
      return st;
    }
  }
  acceptor.open(ep.protocol(), ec);
  if (!ec) {
    acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  }
  if (!ec) {
    int one = 1;
    if (::setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) !=
        0) {
      ec = error_code(errno, boost::system::system_category());
    }
  }
  if (!ec) {
    acceptor.bind(ep, ec);
  }
  if (!ec) {
    acceptor.listen(4096, ec);
  }
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address, ":", port, ": ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Worker::listen(uint16_t port) {
  absl::Status st = listenOn(*acceptor_, options_.listen_address, port, index_ == 0);
  if (st.ok()) {
    listen_port_ = acceptor_->local_endpoint().port();
  }
  return st;
}

absl::Status Worker::listenTls(uint16_t port) {
  absl::Status st = listenOn(*tls_acceptor_, options_.ssl_listen_address, port, index_ == 0);
  if (st.ok()) {
    tls_listen_port_ = tls_acceptor_->local_endpoint().port();
  }
  return st;
}

uint16_t Worker::boundPort() const { return listen_port_; }

void Worker::run() {
  asio::co_spawn(*io_, acceptLoop(this, acceptor_.get(), false), asio::detached);
  if (tls_acceptor_->is_open()) {
    asio::co_spawn(*io_, acceptLoop(this, tls_acceptor_.get(), true), asio::detached);
  }
  tick();
  io_->run();
}

// After a spike of connections (a flood, 10,000 idle clients) has gone, their buffers sit in
// glibc's free lists; hand them back to the OS so the DP's memory returns near its baseline.
// At most once a second per worker, and only after a large drop: trimming walks the heap.
void Worker::trimAfterSpike() {
  const uint64_t active = stats_.connections_active.load(std::memory_order_relaxed);
  connections_peak_ = std::max(connections_peak_, active);
  const bool big_drop = connections_peak_ >= active + kTrimAfterDrop && active * 2 <= connections_peak_;
  const bool now_idle = active == 0 && connections_peak_ >= kTrimAfterDrop / 10;  // the tail
  if (big_drop || now_idle) {
    malloc_trim(0);
    connections_peak_ = active;
  }
}

void Worker::tick() {
  const uint64_t now = nowMs();
  for (Session* s = sessions_; s != nullptr;) {
    Session* next = s->next;  // checkDeadline never destroys the session synchronously
    s->checkDeadline(now);
    s = next;
  }
  static thread_local std::time_t last_second = 0;
  std::time_t t = std::time(nullptr);
  if (t != last_second) {
    last_second = t;
    date_ = httpDateNow();
  }
  if (now - last_sweep_ms_ >= 1000) {
    last_sweep_ms_ = now;
    if (vitals_ != nullptr) {
      vitals_->tick(static_cast<int64_t>(t));  // an idle worker's bucket closes on time too
    }
    pool_.sweep(now);
    trimAfterSpike();
  }
  tick_timer_->expires_after(std::chrono::milliseconds(kTickMs));
  tick_timer_->async_wait([this](const error_code& ec) {
    if (!ec) {
      tick();
    }
  });
}

// Posted callbacks capture `this`: a Worker outlives its io_context's run (ProxyServer joins
// the thread before destroying the worker), so the pointer is valid whenever they run.
void Worker::beginDrain() {
  asio::post(*io_, [this] {
    draining_ = true;
    error_code ec;
    acceptor_->close(ec);
    tls_acceptor_->close(ec);
    for (Session* s = sessions_; s != nullptr; s = s->next) {
      s->closeIfIdle();
    }
  });
}

void Worker::stop() { io_->stop(); }

void Worker::add(Session* s) {
  s->prev = nullptr;
  s->next = sessions_;
  if (sessions_ != nullptr) {
    sessions_->prev = s;
  }
  sessions_ = s;
}

void Worker::remove(Session* s) {
  if (s->prev != nullptr) {
    s->prev->next = s->next;
  } else if (sessions_ == s) {
    sessions_ = s->next;
  }
  if (s->next != nullptr) {
    s->next->prev = s->prev;
  }
  s->prev = s->next = nullptr;
}

}  // namespace portico::dp
